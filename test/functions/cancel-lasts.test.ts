/**
 * `cancel` lasts (docs/claims.md "Cancelled requests"): a cancelled request forces and queues nothing more,
 * whichever delivery of it comes later and on whichever instance, and a claim that cancel deleted under a
 * live run is never taken over. Judged by the emulator's own dispatch records, with real rerunHttp servers
 * sharing one emulator.
 */
import { describe, expect, it } from 'vitest';
import { cancelRecordNameOf } from '../../shared/control/control-tasks.js';
import { parseQueueName } from '../../shared/cloud-tasks/names.js';
import { forcedCounts } from '../helpers/forced.js';
import { listTasksFull } from '../helpers/http.js';
import type { RerunServer } from '../helpers/rerun-server.js';
import { CONTROL, CONTROL_ENV, failedTask, queueName } from '../helpers/seeds.js';
import { instancesPerTest } from '../helpers/instances.js';

const ORDERS = queueName('orders');
const ENV = { RERUN_QUEUES: ORDERS, ...CONTROL_ENV };

const instances = instancesPerTest();

/** A new instance: its own process state, the shared emulator. */
async function instance(env: Record<string, string> = {}): Promise<RerunServer> {
  return instances.start({ ...ENV, ...env });
}

/** Failed tasks in ORDERS and a paused control queue: its tasks wait until the test delivers them. */
function seed(count: number): string[] {
  const tasks = Array.from({ length: count }, (_, i) => failedTask(ORDERS, `t${i}`, instances.target.url));
  instances.emulator.load({
    queues: [
      { name: ORDERS, retryConfig: { minBackoff: '3600s', maxBackoff: '3600s' }, tasks },
      { name: CONTROL, state: 'PAUSED', tasks: [] },
    ],
  });
  return tasks.map((task) => task.name);
}

const forced = (task: string) => forcedCounts(instances.emulator.dispatches).get(task) ?? 0;
const controlTasksOf = async (requestId: string) =>
  (await listTasksFull(instances.emulator.url, CONTROL)).filter((t) =>
    String(t.httpRequest?.url).includes(`requestId=${requestId}`),
  );

/** POSTs a control task's body to `s` with the headers Cloud Tasks sends. */
function deliver(s: RerunServer, task: Record<string, any>) {
  return s.post(Buffer.from(task.httpRequest.body as string, 'base64').toString('utf8'), {
    'X-CloudTasks-TaskName': String(task.name).split('/').pop()!,
    'X-CloudTasks-QueueName': 'rerun-control',
    'X-CloudTasks-TaskRetryCount': '0',
  });
}

describe('cancel lasts', () => {
  it('queued work, cancelled: the same request again forces and queues nothing, and is acknowledged', async () => {
    const names = seed(10);
    const s = await instance({ RERUN_MAX_RATE: '4', RERUN_TIME_BUDGET: '600ms' });
    const event = {
      kind: 'fix-deployed',
      requestId: 'cancel-queued',
      deployedAt: new Date(Date.now() - 1000).toISOString(),
      verify: '0s',
      breaker: false,
    };
    const first = await s.post(event);
    const queued = first.body.counts.queued as number;
    expect(queued).toBeGreaterThan(0);
    const waiting = await controlTasksOf(event.requestId);
    expect(waiting).toHaveLength(queued);

    const cancel = await s.post({ kind: 'cancel', requestId: event.requestId });
    expect(cancel.body).toMatchObject({ cancelled: queued, alreadyGone: 0 });
    const forcedBefore = names.filter((name) => forced(name) > 0).length;

    // A redelivery of the same event, on this instance and on another one.
    for (const delivery of [s, await instance()]) {
      const again = await delivery.post(event);
      expect(again.status).toBe(200);
      expect(again.body.counts).toMatchObject({ dispatched: 0, queued: 0, deferred: 0 });
      expect(again.body.skipped.cancelled).toBe(queued);
      expect(again.body.continueWith).toBeUndefined();
    }
    // A control task already on its way when cancel came: acknowledged, its task not forced.
    const late = await deliver(s, waiting[0]!);
    expect(late.status).toBe(200);
    expect(late.body.skipped).toEqual({ cancelled: 1 });

    expect(names.filter((name) => forced(name) > 0)).toHaveLength(forcedBefore);
    expect(names.filter((name) => forced(name) > 1)).toEqual([]);
    expect(await controlTasksOf(event.requestId)).toEqual([]);
    // The record carries no requestId: status counts nothing waiting.
    const status = await s.post({ kind: 'status', requestId: event.requestId });
    expect(status.body.waiting).toBe(0);
    const record = cancelRecordNameOf(parseQueueName(CONTROL)!, event.requestId).name;
    expect(instances.emulator.task(record)).toBeDefined();
    // A cancel sent again finds the record there: still cancelled, nothing to delete.
    const twice = await s.post({ kind: 'cancel', requestId: event.requestId });
    expect(twice.body).toMatchObject({ cancelled: 0, alreadyGone: 0 });
  });

  it("a claim a live run holds, deleted by cancel, is taken by no other instance's delivery, under way or later", async () => {
    const [slow] = seed(1);
    const [a, b] = [await instance(), await instance()];
    const event = {
      kind: 'tasks',
      requestId: 'cancel-live',
      cutoff: new Date(Date.now() - 1000).toISOString(),
      verify: '0s',
    };
    // A forces `slow`: its RunTask is held 4.5 s, and A holds the claim meanwhile.
    instances.emulator.injectFault({ method: 'RunTask', kind: 'delay', delayMs: 4_500, resources: [slow!] });
    const first = a.post({ ...event, tasks: [slow] });
    const runTaskSent = () => instances.emulator.calls.some((c) => c.method === 'RunTask' && c.name === slow);
    await expect.poll(runTaskSent, { timeout: 10_000 }).toBe(true);
    // B's delivery of the same request is under way: its claim of `slow` reaches the control queue late.
    instances.emulator.injectFault({
      method: 'CreateTask',
      kind: 'delay',
      delayMs: 3_000,
      resources: [CONTROL],
      times: 1,
    });
    const second = b.post({ ...event, tasks: [slow] });
    const createHeld = () =>
      instances.emulator.calls.some((c) => c.fault === 'delay' && c.method === 'CreateTask');
    await expect.poll(createHeld, { timeout: 10_000 }).toBe(true);
    // Cancel deletes A's claim before B's create is done: B meets the name released.
    const cancel = await a.post({ kind: 'cancel', requestId: event.requestId });
    expect(cancel.body.cancelled).toBe(1);
    // A delivery that starts now, on a third instance, while A still forces the task.
    const third = await (await instance()).post({ ...event, tasks: [slow] });
    expect(third.body.skipped).toEqual({ cancelled: 1 });
    const [firstDone, secondDone] = await Promise.all([first, second]);
    expect(firstDone.body.counts.dispatched).toBe(1);
    expect(forced(slow!)).toBe(1);
    expect(secondDone.status).toBe(200);
    expect(secondDone.body.counts.dispatched).toBe(0);
    expect(secondDone.body.skipped).toEqual({ cancelled: 1 });
  });

  it('a cancel record that cannot be read forces nothing: the tasks are deferred', async () => {
    const names = seed(3);
    const s = await instance();
    const record = cancelRecordNameOf(parseQueueName(CONTROL)!, 'cancel-unknown').name;
    instances.emulator.injectFault({ method: 'GetTask', kind: 500, resources: [record] });
    const event = {
      kind: 'tasks',
      tasks: names,
      requestId: 'cancel-unknown',
      cutoff: new Date(Date.now() - 1000).toISOString(),
      verify: '0s',
    };
    const r = await s.post(event);
    expect(r.body.counts).toMatchObject({ dispatched: 0, deferred: 3 });
    expect(r.body.continueWith).toBeDefined();
    expect(names.filter((name) => forced(name) > 0)).toEqual([]);
    instances.emulator.clearFaults();
    const again = await s.post(event);
    expect(again.body.counts.dispatched).toBe(3);
  });
});
