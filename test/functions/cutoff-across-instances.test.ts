/**
 * Every delivery of a request reaches the same cutoff, whichever instance it reaches (docs/events.md
 * "Cutoff"): a Pub/Sub message's clamp comes from its publishTime, and an HTTP request's first cutoff is
 * shared through the control queue. Judged by the emulator's own dispatch records.
 */
import { describe, expect, it } from 'vitest';
import { firstCutoffTaskId } from '../../shared/platform/first-deliveries.js';
import { forcedTwiceOrNever } from '../helpers/forced.js';
import type { RerunServer } from '../helpers/rerun-server.js';
import { failedTask, PROJECT, queueName } from '../helpers/seeds.js';
import { instancesPerTest } from '../helpers/instances.js';

const ORDERS = queueName('orders');
const CONTROL = queueName('rerun-control');
const MINUTE = 60_000;

const instances = instancesPerTest();

const CONTROL_ENV = {
  RERUN_CONTROL_QUEUE: CONTROL,
  RERUN_SELF_URL: 'http://127.0.0.1:9/rerun',
  RERUN_INVOKER_SA: `rerun-invoker@${PROJECT}.iam.gserviceaccount.com`,
};

/** A new instance: its own process state (claims, memory of first deliveries), the shared emulator. */
async function instance(env: Record<string, string> = {}): Promise<RerunServer> {
  return instances.start({ RERUN_QUEUES: ORDERS, RERUN_MAX_RATE: '200', ...env });
}

function seed(count: number, withControlQueue = false) {
  const tasks = Array.from({ length: count }, (_, i) => failedTask(ORDERS, `t${i}`, instances.target.url));
  instances.emulator.load({
    queues: [
      { name: ORDERS, retryConfig: { minBackoff: '3600s', maxBackoff: '3600s' }, tasks },
      ...(withControlQueue ? [{ name: CONTROL, tasks: [] }] : []),
    ],
  });
  return tasks;
}

function forcedOnce(tasks: readonly { name: string }[]): number {
  const forced = new Set(instances.emulator.dispatches.filter((d) => d.trigger === 'run').map((d) => d.task));
  return tasks.filter((task) => forced.has(task.name)).length;
}

describe('a Pub/Sub message whose deployedAt is ahead of the clock', () => {
  it('redelivered to a new instance reaches the same cutoff: each task forced once', async () => {
    const tasks = seed(20);
    // The publisher's clock runs 2 minutes ahead; Pub/Sub stamps publishTime with its own.
    const event = {
      kind: 'fix-deployed',
      queues: [ORDERS],
      deployedAt: new Date(Date.now() + 2 * MINUTE),
      verify: '0s',
    };
    const envelope = {
      message: {
        data: Buffer.from(JSON.stringify(event)).toString('base64'),
        messageId: '7700001',
        publishTime: new Date(Date.now() - 1_000).toISOString(),
      },
      subscription: `projects/${PROJECT}/subscriptions/rerun-push`,
    };
    const first = await (await instance()).post(envelope);
    expect(first.status).toBe(200);
    expect(first.body.cutoffClamped).toBe(true);
    // The first instance is gone (restarted); its redelivery reaches a new one, a moment later.
    await new Promise((resolve) => setTimeout(resolve, 50));
    const again = await (await instance()).post(envelope);
    expect(again.status).toBe(200);
    expect({ once: forcedOnce(tasks), twice: forcedTwiceOrNever(instances.emulator, tasks).twice }).toEqual({
      once: 20,
      twice: 0,
    });
    expect(again.body.cutoff).toBe(first.body.cutoff);
    expect(again.body.cutoff).toBe(envelope.message.publishTime);
  });
});

describe('an HTTP request whose cutoff depends on when it was received, on two instances', () => {
  it.each([
    ['a deployedAt in the future', { deployedAt: new Date(Date.now() + 2 * MINUTE).toISOString() }],
    ['no cutoff', {}],
  ])('with a control queue, the same body with %s forces each task once', async (_, extra) => {
    const tasks = seed(30, true);
    const event = { kind: 'fix-deployed', queues: [ORDERS], verify: '0s', ...extra };
    const first = await (await instance(CONTROL_ENV)).post(event);
    expect(first.status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const again = await (await instance(CONTROL_ENV)).post(event);
    expect(again.status).toBe(200);
    expect(again.body.requestId).toBe(first.body.requestId);
    expect({ once: forcedOnce(tasks), twice: forcedTwiceOrNever(instances.emulator, tasks).twice }).toEqual({
      once: 30,
      twice: 0,
    });
    expect(again.body.cutoff).toBe(first.body.cutoff);
    // The first cutoff waits in the control queue for the hour an instance remembers it, and more.
    const record = instances.emulator.task(`${CONTROL}/tasks/${firstCutoffTaskId(first.body.requestId)}`);
    expect(Date.parse(record?.scheduleTime ?? '')).toBeGreaterThan(Date.now() + 60 * MINUTE);
  });

  it("the first cutoff's control task, once due, is a no-op answered 2xx", async () => {
    seed(3, true);
    const s = await instance(CONTROL_ENV);
    const first = await s.post({ kind: 'fix-deployed', queues: [ORDERS], requestId: 'deploy-7' });
    const record = instances.emulator.task(`${CONTROL}/tasks/${firstCutoffTaskId('deploy-7')}`);
    expect(record).toBeDefined();
    const before = instances.emulator.calls.length;
    // Delivered as Cloud Tasks delivers it: its own headers and body, and the X-CloudTasks-* headers.
    const { body = '', headers = {} } = record?.httpRequest ?? {};
    const answer = await s.post(Buffer.from(body, 'base64').toString(), {
      ...headers,
      'X-CloudTasks-QueueName': 'rerun-control',
      'X-CloudTasks-TaskName': firstCutoffTaskId('deploy-7'),
    });
    expect(answer.status).toBe(204);
    expect(instances.emulator.calls.length).toBe(before);
    expect(first.body.counts.dispatched).toBe(3);
  });

  it('the limit without a control queue: a resend to a new instance is a new request, with its own cutoff', async () => {
    const tasks = seed(10);
    const event = { kind: 'fix-deployed', queues: [ORDERS], verify: '0s' };
    const first = await (await instance()).post(event);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const again = await (await instance()).post(event);
    expect(again.body.requestId).toBe(first.body.requestId);
    expect(Date.parse(again.body.cutoff)).toBeGreaterThan(Date.parse(first.body.cutoff));
    // docs/events.md "Cutoff", limits: what failed again since the first delivery is forced again.
    expect(forcedTwiceOrNever(instances.emulator, tasks).twice).toBe(10);
  });

  it("a first cutoff's control task that fell due (its name still reserved) makes the resend a new request", async () => {
    seed(2, true);
    const event = { kind: 'fix-deployed', queues: [ORDERS], requestId: 'deploy-8', verify: '0s' };
    const first = await (await instance(CONTROL_ENV)).post(event);
    const record = `${CONTROL}/tasks/${firstCutoffTaskId('deploy-8')}`;
    // Delivered and gone: Cloud Tasks keeps the name reserved for a while.
    expect((await fetch(`${instances.emulator.url}/v2/${record}`, { method: 'DELETE' })).status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const again = await (await instance(CONTROL_ENV)).post(event);
    expect(again.status).toBe(200);
    expect(Date.parse(again.body.cutoff)).toBeGreaterThan(Date.parse(first.body.cutoff));
    const creates = instances.emulator.calls.filter((c) => c.method === 'CreateTask' && c.name === CONTROL);
    expect(creates.map((c) => c.status)).toContain(409);
  });

  it('a control queue that cannot be written: 503 before anything is called, safe to send again', async () => {
    const tasks = seed(5, true);
    const s = await instance(CONTROL_ENV);
    instances.emulator.injectFault({ method: 'CreateTask', kind: 503, resources: [CONTROL] });
    const refused = await s.post({ kind: 'fix-deployed', queues: [ORDERS], verify: '0s' });
    expect(refused.status).toBe(503);
    expect(refused.body.error.message).toContain(CONTROL);
    expect(instances.emulator.calls.filter((c) => c.method === 'RunTask')).toHaveLength(0);
    instances.emulator.clearFaults();
    const sent = await s.post({ kind: 'fix-deployed', queues: [ORDERS], verify: '0s' });
    expect(sent.status).toBe(200);
    expect(forcedOnce(tasks)).toBe(5);
  });
});
