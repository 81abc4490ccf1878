/**
 * The promise (docs/execution.md "Exactly once"), judged by the emulator's own dispatch records: a matched task is forced at most
 * once per request however the request is delivered (overlapping deliveries, two instances, resends), nothing
 * is dropped or acknowledged while work is left undone, and no forced attempt is a task's last.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startEmulator, type Emulator } from '../../emulator/server.js';
import { createCloudTasksClient } from '../../shared/cloud-tasks/client.js';
import { forcedTwiceOrNever } from '../helpers/forced.js';
import { startRerunServer, type RerunServer } from '../helpers/rerun-server.js';
import { failedTask, PROJECT, queueName } from '../helpers/seeds.js';
import { startTarget, type Target } from '../helpers/target-server.js';

const ORDERS = queueName('orders');
const BILLING = queueName('billing');
const CONTROL = queueName('rerun-control');

let target: Target;
const servers: RerunServer[] = [];
let sharedEmulator: Emulator | undefined;

beforeEach(async () => {
  target = await startTarget({ respond: () => 200 });
});
afterEach(async () => {
  for (const server of servers.splice(0)) await server.close();
  await sharedEmulator?.stop();
  sharedEmulator = undefined;
  await target.stop();
});

type Json = Record<string, any>;

function tasksOf(queue: string, count: number, prefix = 't') {
  return Array.from({ length: count }, (_, i) => failedTask(queue, `${prefix}${i}`, target.url));
}

async function server(
  env: Record<string, string> = {},
  emulator?: Emulator,
  runtimeOptions: Parameters<typeof startRerunServer>[3] = {},
): Promise<RerunServer> {
  const s = await startRerunServer(
    { RERUN_QUEUES: [ORDERS, BILLING].join(','), RERUN_MAX_RATE: '100', ...env },
    { runTaskQuota: { limit: 60_000, windowMs: 60_000 } },
    emulator,
    runtimeOptions,
  );
  servers.push(s);
  return s;
}

/** The counts of a report add up: every matched task has exactly one outcome. */
function expectCountsAddUp(report: Json): void {
  const { matched, verdicts: _verdicts, ...outcomes } = report.counts as Record<string, number>;
  expect(Object.values(outcomes).reduce((a, b) => a + b, 0)).toBe(matched);
}

let messageIds = 0;

/** A Pub/Sub push envelope, as a push subscription POSTs it. */
function pushEnvelope(event: unknown, messageId = String(42_000_000 + ++messageIds)) {
  return {
    message: {
      data: Buffer.from(JSON.stringify(event)).toString('base64'),
      messageId,
      publishTime: new Date().toISOString(),
    },
    subscription: `projects/${PROJECT}/subscriptions/rerun-push`,
  };
}

describe('exactly once: overlapping deliveries', () => {
  it('the same event sent twice at once to one instance forces each task once', async () => {
    const s = await server();
    const tasks = tasksOf(ORDERS, 60);
    s.emulator.load({ queues: [{ name: ORDERS, tasks }] });
    const event = { kind: 'fix-deployed', deployedAt: new Date().toISOString(), queues: [ORDERS] };
    const [a, b] = await Promise.all([s.post(event), s.post(event)]);
    expect(a.body.requestId).toBe(b.body.requestId);
    expect(forcedTwiceOrNever(s.emulator, tasks)).toEqual({ twice: 0, never: 0 });
    expect(a.body.counts.dispatched + b.body.counts.dispatched).toBe(60);
    for (const report of [a.body, b.body]) expectCountsAddUp(report);
  });

  it("a delivery that finds every task claimed uses up none of the process's RunTask slots", async () => {
    // 1 call per second, a 4 s budget: the first delivery takes the slots at 0, 1 and 2 s.
    const s = await server({ RERUN_MAX_RATE: '1', RERUN_TIME_BUDGET: '4s' });
    const tasks = tasksOf(ORDERS, 3);
    s.emulator.load({
      queues: [
        { name: ORDERS, tasks },
        { name: BILLING, tasks: tasksOf(BILLING, 1, 'b') },
      ],
    });
    const event = {
      kind: 'fix-deployed',
      deployedAt: new Date().toISOString(),
      queues: [ORDERS],
      verify: '0s',
    };
    const first = s.post(event);
    while (s.emulator.calls.filter((c) => c.method === 'RunTask').length === 0) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    // The second delivery finds all three claimed; had it reserved slots for them, the next request's
    // first slot would fall after its own budget.
    const second = await s.post(event);
    expect(second.body.counts.dispatched).toBe(0);
    expect(second.body.skipped.claimed).toBeGreaterThanOrEqual(2);
    const other = await s.post({ kind: 'fix-deployed', queues: [BILLING], verify: '0s' });
    expect(other.body.counts).toMatchObject({ dispatched: 1, deferred: 0 });
    expect((await first).body.counts.dispatched).toBe(3);
  });

  it('the same event at once to two instances sharing a control queue forces each task once', async () => {
    sharedEmulator = await startEmulator({ port: 0, runTaskQuota: { limit: 60_000, windowMs: 60_000 } });
    const tasks = tasksOf(ORDERS, 60);
    sharedEmulator.load({
      queues: [
        { name: ORDERS, tasks },
        { name: CONTROL, tasks: [] },
      ],
    });
    const control = {
      RERUN_CONTROL_QUEUE: CONTROL,
      RERUN_SELF_URL: 'http://127.0.0.1:9/rerun',
      RERUN_INVOKER_SA: `rerun-invoker@${PROJECT}.iam.gserviceaccount.com`,
    };
    const [one, two] = [await server(control, sharedEmulator), await server(control, sharedEmulator)];
    const event = { kind: 'fix-deployed', deployedAt: new Date().toISOString(), requestId: 'deploy-42' };
    const [a, b] = await Promise.all([one.post(event), two.post(event)]);
    expect(forcedTwiceOrNever(sharedEmulator, tasks)).toEqual({ twice: 0, never: 0 });
    expect(a.body.counts.dispatched + b.body.counts.dispatched).toBe(60);
    expect((a.body.skipped.claimed ?? 0) + (b.body.skipped.claimed ?? 0)).toBeGreaterThan(0);
    // Every claim was deleted once its task had an outcome: nothing is left to fire later.
    const left = (await (await fetch(`${sharedEmulator.url}/v2/${CONTROL}/tasks`)).json()) as Json;
    expect(left.tasks ?? []).toEqual([]);
  });

  it('one Pub/Sub message pushed twice at once forces each task once', async () => {
    const s = await server();
    const tasks = tasksOf(ORDERS, 60);
    s.emulator.load({ queues: [{ name: ORDERS, tasks }] });
    const envelope = pushEnvelope({ kind: 'fix-deployed', queues: [ORDERS] });
    const [a, b] = await Promise.all([s.post(envelope), s.post(envelope)]);
    expect([a.status, b.status]).toEqual([200, 200]);
    expect(a.body.requestId).toBe(envelope.message.messageId);
    expect(forcedTwiceOrNever(s.emulator, tasks)).toEqual({ twice: 0, never: 0 });
  });

  it('a pipeline that gives up after a timeout and resends the same body forces each task once', async () => {
    const s = await server({ RERUN_MAX_RATE: '60' });
    const tasks = tasksOf(ORDERS, 45);
    s.emulator.load({ queues: [{ name: ORDERS, tasks }] });
    const body = JSON.stringify({ kind: 'fix-deployed', queues: [ORDERS] });
    const first = fetch(s.url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body,
      signal: AbortSignal.timeout(500),
    }).catch((error: unknown) => error);
    expect(await first).toBeInstanceOf(Error);
    const resend = await s.post(body);
    expect(resend.status).toBe(200);
    // The first delivery still runs on the server; wait for it before judging.
    await expect.poll(() => forcedTwiceOrNever(s.emulator, tasks).never, { timeout: 10_000 }).toBe(0);
    expect(forcedTwiceOrNever(s.emulator, tasks).twice).toBe(0);
  });

  it.each([
    ['without deployedAt', {}],
    // Clamped to the time received: the resend, received later, would clamp to a later cutoff.
    ['with a deployedAt in the future', { deployedAt: new Date(Date.now() + 10 * 60_000).toISOString() }],
  ])('the same body %s, resent later, is the same request with the same cutoff', async (_, extra) => {
    const s = await server();
    const tasks = tasksOf(ORDERS, 30);
    s.emulator.load({ queues: [{ name: ORDERS, tasks }] });
    const event = { kind: 'fix-deployed', queues: [ORDERS], ...extra };
    const first = await s.post(event);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const again = await s.post(event);
    expect(again.body.requestId).toBe(first.body.requestId);
    expect(again.body.cutoff).toBe(first.body.cutoff);
    expect(again.body.counts.dispatched).toBe(0);
    expect(forcedTwiceOrNever(s.emulator, tasks)).toEqual({ twice: 0, never: 0 });
    // A different requestId is a new request: its own cutoff, now.
    const other = await s.post({ ...event, requestId: 'another-request' });
    expect(Date.parse(other.body.cutoff)).toBeGreaterThan(Date.parse(first.body.cutoff));
  });
});

describe('a RunTask whose answer was lost is never resent', () => {
  it('one that reaches Cloud Tasks after the client gave up is forced once, across redeliveries', async () => {
    sharedEmulator = await startEmulator({ port: 0, runTaskQuota: { limit: 60_000, windowMs: 60_000 } });
    const late = failedTask(ORDERS, 'late', target.url);
    sharedEmulator.load({
      queues: [{ name: ORDERS, tasks: [late, failedTask(ORDERS, 'on-time', target.url)] }],
    });
    // The client gives up after 300 ms; the emulator holds late's RunTask 800 ms, then dispatches it.
    const tasks = createCloudTasksClient({ emulatorHost: sharedEmulator.host, timeoutMs: 300 });
    const s = await server({}, sharedEmulator, { tasks, lostAnswerHoldMs: 1_500 });
    sharedEmulator.injectFault({
      method: 'RunTask',
      kind: 'delay',
      delayMs: 800,
      resources: [late.name],
      times: 1,
    });
    const envelope = pushEnvelope({ kind: 'fix-deployed', queues: [ORDERS] });
    const first = await s.post(envelope);
    expect(first.status).toBe(503);
    expect(first.body.error.message).toMatch(/1 tasks deferred/);
    // A redelivery within the doubt window leaves it alone: the late call may still land.
    const soon = await s.post(envelope);
    expect(soon.status).toBe(503);
    await new Promise((resolve) => setTimeout(resolve, 1_600));
    // After it, the fresh read sees the late attempt: nothing to do, acknowledged.
    const later = await s.post(envelope);
    expect(later.status).toBe(200);
    expect(forcedTwiceOrNever(sharedEmulator, [late])).toEqual({ twice: 0, never: 0 });
    expect(sharedEmulator.calls.filter((c) => c.method === 'RunTask' && c.name === late.name)).toHaveLength(
      1,
    );
  });
});

describe('nothing dropped: work left undone is never acknowledged', () => {
  it('a queue whose GetQueue answers 503 while another works is incomplete: not acknowledged', async () => {
    const s = await server();
    const orders = tasksOf(ORDERS, 10, 'o');
    const billing = tasksOf(BILLING, 10, 'b');
    s.emulator.load({
      queues: [
        { name: ORDERS, tasks: orders },
        { name: BILLING, tasks: billing },
      ],
    });
    s.emulator.injectFault({ method: 'GetQueue', kind: 503, resources: [BILLING] });
    const envelope = pushEnvelope({ kind: 'fix-deployed' });
    const first = await s.post(envelope);
    expect(first.status).toBe(503);
    expect(forcedTwiceOrNever(s.emulator, orders).never).toBe(0);
    s.emulator.clearFaults();
    const redelivery = await s.post(envelope);
    expect(redelivery.status).toBe(200);
    expect(redelivery.body.counts.dispatched).toBe(10);
    expect(forcedTwiceOrNever(s.emulator, [...orders, ...billing])).toEqual({ twice: 0, never: 0 });
  });

  it.each([
    ['a 500', 500],
    ['an expired page token (INVALID_ARGUMENT)', 400],
  ] as const)(
    'a listing that breaks off on page 2 with %s is undone: a push is not acknowledged; the redelivery forces each task once',
    async (_, kind) => {
      const s = await server();
      // Page 1 (1,000 tasks) holds tasks that never ran, so nothing there matches; the failed ones are on page 2.
      const idle = Array.from({ length: 1000 }, (_, i) => ({
        name: `${ORDERS}/tasks/a${String(i).padStart(4, '0')}`,
        httpRequest: { url: target.url },
      }));
      const failed = tasksOf(ORDERS, 20, 'z');
      s.emulator.load({ queues: [{ name: ORDERS, tasks: [...idle, ...failed] }] });
      s.emulator.injectFault({ method: 'ListTasks', kind, resources: [ORDERS], after: 1, times: 1 });
      const envelope = pushEnvelope({ kind: 'fix-deployed', queues: [ORDERS], verify: '0s' });
      const first = await s.post(envelope);
      expect(first.status).toBe(503);
      expect(first.body.error.message).toMatch(/1 queues incomplete/);
      const redelivery = await s.post(envelope);
      expect(redelivery.status).toBe(200);
      expect(forcedTwiceOrNever(s.emulator, failed)).toEqual({ twice: 0, never: 0 });
    },
  );

  it('one 500 to a fresh read defers the task: not acknowledged, and the redelivery forces it once', async () => {
    const s = await server();
    const tasks = tasksOf(ORDERS, 5);
    const hit = tasks[2]!;
    s.emulator.load({ queues: [{ name: ORDERS, tasks }] });
    // A read has no side effect: INTERNAL to it says nothing about the task (docs/cloud-tasks-calls.md).
    s.emulator.injectFault({ method: 'GetTask', kind: 500, resources: [hit.name], times: 1 });
    const envelope = pushEnvelope({ kind: 'fix-deployed', queues: [ORDERS], verify: '0s' });
    const first = await s.post(envelope);
    expect(first.status).toBe(503);
    expect(first.body.error.message).toMatch(/1 tasks deferred/);
    expect(forcedTwiceOrNever(s.emulator, [hit]).never).toBe(1);
    const redelivery = await s.post(envelope);
    expect(redelivery.status).toBe(200);
    expect(redelivery.body.counts.failed).toBe(0);
    expect(forcedTwiceOrNever(s.emulator, tasks)).toEqual({ twice: 0, never: 0 });
  });

  it('an outage mid-run defers the rest: not acknowledged, and the redelivery finishes each task once', async () => {
    const s = await server({ RERUN_MAX_RATE: '50' });
    const tasks = tasksOf(ORDERS, 60);
    s.emulator.load({ queues: [{ name: ORDERS, tasks }] });
    const envelope = pushEnvelope({ kind: 'fix-deployed', queues: [ORDERS], verify: '0s' });
    const delivery = s.post(envelope);
    await expect.poll(() => s.emulator.dispatches.length, { interval: 20 }).toBeGreaterThan(15);
    for (const method of ['GetTask', 'RunTask', 'ListTasks', 'GetQueue'] as const) {
      s.emulator.injectFault({ method, kind: 503 });
    }
    const first = await delivery;
    expect(first.status).toBe(503);
    s.emulator.clearFaults();
    const redelivery = await s.post(envelope);
    expect(redelivery.status).toBe(200);
    expectCountsAddUp(redelivery.body);
    expect(redelivery.body.counts.failed).toBe(0);
    expect(forcedTwiceOrNever(s.emulator, tasks)).toEqual({ twice: 0, never: 0 });
  });

  it.each([1, 2, 3])(
    'a fault mix (seed %i): counts add up, nothing failed or twice, redeliveries until acknowledged finish it',
    async (seed) => {
      sharedEmulator = await startEmulator({
        port: 0,
        runTaskQuota: { limit: 60_000, windowMs: 60_000 },
        random: mulberry32(seed),
      });
      const tasks = tasksOf(ORDERS, 60);
      sharedEmulator.load({ queues: [{ name: ORDERS, tasks }] });
      // The emulator's resets never reach it, so no in-doubt hold is needed between these redeliveries.
      const s = await server({ RERUN_MAX_RATE: '100' }, sharedEmulator, { lostAnswerHoldMs: 0 });
      for (const method of ['GetTask', 'RunTask', 'ListTasks'] as const) {
        sharedEmulator.injectFault({ method, kind: 503, rate: 0.2 });
        sharedEmulator.injectFault({ method, kind: 429, rate: 0.1 });
        sharedEmulator.injectFault({ method, kind: 'reset', rate: 0.05 });
      }
      sharedEmulator.injectFault({ method: 'RunTask', kind: 'lost-response', rate: 0.05 });
      const envelope = pushEnvelope({ kind: 'fix-deployed', queues: [ORDERS], verify: '0s' });
      let answer = await s.post(envelope);
      for (let delivery = 1; answer.status !== 200 && delivery < 8; delivery++) {
        if (answer.body?.counts) expectCountsAddUp(answer.body);
        answer = await s.post(envelope);
      }
      sharedEmulator.clearFaults();
      if (answer.status !== 200) answer = await s.post(envelope);
      expect(answer.status).toBe(200);
      expect(answer.body.counts.failed).toBe(0);
      expect(forcedTwiceOrNever(sharedEmulator, tasks)).toEqual({ twice: 0, never: 0 });
    },
    // Up to eight deliveries against a faulty emulator: slow on a loaded 2-core machine.
    90_000,
  );
});

describe('never the last attempt, and every wait within the budget', () => {
  it('skips tasks whose forced attempt would be their last (maxAttempts 5, 4 used): none is deleted', async () => {
    target.setRespond(() => 503);
    const s = await server();
    const lastChance = Array.from({ length: 5 }, (_, i) =>
      failedTask(ORDERS, `last${i}`, target.url, { attempts: 4 }),
    );
    const roomy = failedTask(ORDERS, 'roomy', target.url, { attempts: 1 });
    s.emulator.load({
      queues: [{ name: ORDERS, retryConfig: { maxAttempts: 5 }, tasks: [...lastChance, roomy] }],
    });
    const { body } = await s.post({ kind: 'fix-deployed', verify: '2s' });
    expect(body.skipped['last-attempt']).toBe(5);
    expect(body.tasks.find((t: Json) => t.task.endsWith('/roomy'))).toMatchObject({
      outcome: 'dispatched',
      verdict: 'failed-again',
    });
    const left = (await (await fetch(`${s.emulator.url}/v2/${ORDERS}/tasks`)).json()) as Json;
    expect(left.tasks).toHaveLength(6);
    // Asked for explicitly, they are forced.
    const forced = await s.post({ kind: 'fix-deployed', lastAttempts: true, requestId: 'i-know' });
    expect(forced.body.counts.dispatched).toBe(5);
  });

  it('a canary wait longer than the budget ends at the budget', async () => {
    target.setRespond(() => new Promise(() => undefined));
    const s = await server({ RERUN_TIME_BUDGET: '2s' });
    s.emulator.load({ queues: [{ name: ORDERS, tasks: tasksOf(ORDERS, 6) }] });
    const started = Date.now();
    const { body } = await s.post({ kind: 'fix-deployed', canary: { count: 2, wait: '25s' } });
    expect(Date.now() - started).toBeLessThan(4_000);
    expect(body.canary.passed).toBe(false);
    expect(body.counts.held).toBe(4);
  });
});

describe('rerunHttp takes what Pub/Sub delivers, with rerunPubsub acknowledgement rules', () => {
  it('a push envelope and a binary CloudEvent run like rerunPubsub; a poison message gets 204', async () => {
    const s = await server();
    const tasks = tasksOf(ORDERS, 3);
    s.emulator.load({ queues: [{ name: ORDERS, tasks }] });
    const push = await s.post(pushEnvelope({ kind: 'fix-deployed', queues: [ORDERS] }));
    expect(push.status).toBe(200);
    expect(push.body.counts.dispatched).toBe(3);
    const envelope = pushEnvelope({ kind: 'fix-deployed', queues: [ORDERS] });
    const binary = await s.post(envelope, {
      'ce-id': envelope.message.messageId,
      'ce-specversion': '1.0',
      'ce-type': 'google.cloud.pubsub.topic.v1.messagePublished',
      'ce-source': `//pubsub.googleapis.com/projects/${PROJECT}/topics/rerun`,
    });
    expect(binary.status).toBe(200);
    expect(binary.body.requestId).toBe(envelope.message.messageId);
    const poison = await s.post({ ...pushEnvelope({}), message: { data: '%%%', messageId: '1' } });
    expect(poison.status).toBe(204);
    const outside = await s.post(pushEnvelope({ kind: 'fix-deployed', queues: [queueName('secret')] }));
    expect(outside.status).toBe(204);
    // An allowlisted queue that no longer exists: permanent, logged at ERROR, acknowledged with 204.
    const missing = await s.post(pushEnvelope({ kind: 'fix-deployed', queues: [BILLING] }));
    expect(missing.status).toBe(204);
    expect(s.logs.lines().find((l) => l.message === 'queue failed')).toMatchObject({
      severity: 'ERROR',
      queue: BILLING,
    });
    const error = s.logs.lines().find((l) => l.message === 'message rejected; acknowledged without a rerun');
    expect(error).toMatchObject({ severity: 'ERROR', messageId: '1' });
    expect(forcedTwiceOrNever(s.emulator, tasks)).toEqual({ twice: 0, never: 0 });
  });
});

/** A small seeded PRNG, so each fault mix is reproducible. */
function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
