/**
 * A control task delivered twice at once, to two instances (docs/claims.md "One delivery at a time"):
 * Cloud Tasks delivers at least once. The delivery that takes the lease forces the task; the other is
 * answered 503, and Cloud Tasks' retry finds the task forced. Judged by the emulator's own dispatch
 * records, with two real rerunHttp servers sharing one emulator.
 */
import { describe, expect, it } from 'vitest';
import {
  controlTaskFor,
  deliveryLeaseTaskFor,
  type ControlWork,
} from '../../shared/control/control-tasks.js';
import { parseQueueName } from '../../shared/cloud-tasks/names.js';
import { forcedTwiceOrNever } from '../helpers/forced.js';
import { listTasksFull } from '../helpers/http.js';
import type { RerunServer } from '../helpers/rerun-server.js';
import { CONTROL, CONTROL_ENV, failedTask, queueName } from '../helpers/seeds.js';
import { instancesPerTest } from '../helpers/instances.js';

const ORDERS = queueName('orders');
const ENV = { RERUN_QUEUES: ORDERS, ...CONTROL_ENV };
const TARGET = {
  queue: parseQueueName(CONTROL)!,
  selfUrl: ENV.RERUN_SELF_URL,
  invokerServiceAccount: ENV.RERUN_INVOKER_SA,
  writtenBy: 'an-earlier-run',
};

const instances = instancesPerTest();

async function instance(): Promise<RerunServer> {
  return instances.start({ ...ENV, RERUN_MAX_RATE: '200' });
}

function workOf(task: string, requestId: string, cutoffMs: number): ControlWork {
  return {
    task,
    requestId,
    cutoffMs,
    mode: 'run',
    reason: undefined,
    requestKind: 'tasks',
    force: false,
    lastAttempts: false,
    verifyMs: 0,
    minBackoffLeftMs: 30_000,
  };
}

/** POSTs a control task's body to `s` as Cloud Tasks delivers it, on its `retry`-th retry. */
function deliver(s: RerunServer, task: ReturnType<typeof controlTaskFor>, retry: number) {
  return s.post(Buffer.from(task.httpRequest!.body as string, 'base64').toString('utf8'), {
    'X-CloudTasks-TaskName': task.name.split('/').pop()!,
    'X-CloudTasks-QueueName': 'rerun-control',
    'X-CloudTasks-TaskRetryCount': String(retry),
  });
}

describe('a control task delivered to two instances at once', () => {
  it('is forced once: the other delivery is answered 503, and the retry finds the task forced', async () => {
    const tasks = Array.from({ length: 10 }, (_, i) => failedTask(ORDERS, `t${i}`, instances.target.url));
    instances.emulator.load({
      queues: [
        { name: ORDERS, retryConfig: { minBackoff: '3600s', maxBackoff: '3600s' }, tasks },
        { name: CONTROL, state: 'PAUSED', tasks: [] },
      ],
    });
    const [a, b] = [await instance(), await instance()];
    const cutoffMs = Date.now() - 1000;
    // Queued work of one request: a control task per task, due now.
    const controlTasks = tasks.map((task) =>
      controlTaskFor(workOf(task.name, 'twice-1', cutoffMs), TARGET, Date.now()),
    );
    for (const task of controlTasks) {
      const made = await fetch(`${instances.emulator.url}/v2/${CONTROL}/tasks`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ task }),
      });
      expect(made.status).toBe(200);
    }
    const both = await Promise.all(
      controlTasks.map((task) => Promise.all([deliver(a, task, 0), deliver(b, task, 0)])),
    );
    expect(forcedTwiceOrNever(instances.emulator, tasks)).toEqual({ twice: 0, never: 0 });
    for (const pair of both) expect(pair.map((d) => d.status).sort()).toEqual([200, 503]);
    // Cloud Tasks retries each 503 with a higher retry count: the task's fresh read finds it forced.
    const retried = await Promise.all(
      controlTasks.map((task, i) => deliver(both[i]![0].status === 503 ? a : b, task, 1)),
    );
    expect(retried.map((d) => d.status)).toEqual(Array(10).fill(200));
    expect(retried.map((d) => d.body.skipped)).toEqual(Array(10).fill({ 'after-cutoff': 1 }));
    expect(forcedTwiceOrNever(instances.emulator, tasks)).toEqual({ twice: 0, never: 0 });
    // Every lease was deleted once its delivery ended: only the control tasks themselves are left.
    const left = await listTasksFull(instances.emulator.url, CONTROL);
    expect(left.map((t) => t.name).sort()).toEqual(controlTasks.map((t) => t.name).sort());
  });

  it('a lease left behind is acknowledged doing nothing, and status does not count it', async () => {
    instances.emulator.load({ queues: [{ name: CONTROL, state: 'PAUSED', tasks: [] }] });
    const s = await instance();
    const lease = deliveryLeaseTaskFor('some-control-task', '3', TARGET, Date.now());
    const answer = await s.post(Buffer.from(lease.httpRequest!.body as string, 'base64').toString('utf8'), {
      'X-CloudTasks-TaskName': lease.name.split('/').pop()!,
      'X-CloudTasks-QueueName': 'rerun-control',
    });
    expect(answer.status).toBe(204);
    expect(new URL(lease.httpRequest!.url!).searchParams.has('requestId')).toBe(false);
    expect(Date.parse(lease.scheduleTime!)).toBeGreaterThan(Date.now() + 24 * 3_600_000);
  });
});
