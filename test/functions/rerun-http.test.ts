import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { targetPerTest } from '../helpers/target-server.js';
import { rerunServersPerTest, type RerunServer } from '../helpers/rerun-server.js';
import { claimIdOf } from '../../shared/control/control-tasks.js';
import { failedTask, inFlightTask, laterTask, PROJECT, queueName } from '../helpers/seeds.js';

const ORDERS = queueName('orders');
const BILLING = queueName('billing');
const CONTROL = queueName('rerun-control');

const target = targetPerTest({ respond: () => 500 });
const servers = rerunServersPerTest();
let server: RerunServer | undefined;

function runTaskCalls(s: RerunServer): string[] {
  return s.emulator.calls.filter((c) => c.method === 'RunTask').map((c) => c.name);
}

function outcomes(report: {
  tasks: { task: string; outcome: string; skipReason?: string }[];
}): Record<string, string> {
  return Object.fromEntries(
    report.tasks.map((row) => [
      row.task.split('/').pop(),
      row.skipReason ? `${row.outcome}:${row.skipReason}` : row.outcome,
    ]),
  );
}

async function serverWith(
  env: Record<string, string>,
  queues: { name: string; state?: string; tasks: object[] }[],
  runtimeOptions: { lostAnswerHoldMs?: number } = {},
) {
  server = await servers.start(
    { RERUN_QUEUES: [ORDERS, BILLING].join(','), ...env },
    {},
    undefined,
    runtimeOptions,
  );
  server.emulator.load({ queues } as never);
  return server;
}

describe('rerunHttp: safety rules', () => {
  it('forces only failed tasks dispatched before the cutoff and not due soon', async () => {
    const s = await serverWith({}, [
      {
        name: ORDERS,
        tasks: [
          failedTask(ORDERS, 'failed-1', target.url),
          failedTask(ORDERS, 'failed-2', target.url, { httpStatus: 503 }),
          laterTask(ORDERS, 'never-attempted', target.url),
          inFlightTask(ORDERS, 'in-flight', target.url),
          failedTask(ORDERS, 'after-cutoff', target.url, { dispatchedMs: -60_000 }),
          failedTask(ORDERS, 'due-soon', target.url, { nextMs: 10_000 }),
        ],
      },
    ]);
    const deployedAt = new Date(Date.now() - 5 * 60_000).toISOString();
    const { status, body } = await s.post({ kind: 'fix-deployed', queues: [ORDERS], deployedAt });
    expect(status).toBe(200);
    expect(outcomes(body)).toEqual({
      'failed-1': 'dispatched',
      'failed-2': 'dispatched',
      'never-attempted': 'skipped:never-attempted',
      'in-flight': 'skipped:in-flight',
      'after-cutoff': 'skipped:after-cutoff',
      'due-soon': 'skipped:due-soon',
    });
    expect(runTaskCalls(s).sort()).toEqual([`${ORDERS}/tasks/failed-1`, `${ORDERS}/tasks/failed-2`]);
    expect(body.counts).toMatchObject({ matched: 6, dispatched: 2, skipped: 4 });
    expect(body.skipped).toEqual({ 'never-attempted': 1, 'in-flight': 1, 'after-cutoff': 1, 'due-soon': 1 });
    expect(body.cutoff).toBe(deployedAt);
    expect(body.queues).toEqual([
      expect.objectContaining({ queue: ORDERS, state: 'RUNNING', scanned: 6, matched: 6, complete: true }),
    ]);
  });

  it('skips a paused queue unless forced, and a disabled queue always', async () => {
    const s = await serverWith({}, [
      { name: ORDERS, state: 'PAUSED', tasks: [failedTask(ORDERS, 'a', target.url)] },
      { name: BILLING, state: 'DISABLED', tasks: [failedTask(BILLING, 'b', target.url)] },
    ]);
    const first = await s.post({ kind: 'fix-deployed' });
    expect(outcomes(first.body)).toEqual({ a: 'skipped:queue-paused', b: 'skipped:queue-disabled' });
    expect(runTaskCalls(s)).toEqual([]);

    const forced = await s.post({ kind: 'fix-deployed', force: true });
    expect(outcomes(forced.body)).toEqual({ a: 'dispatched', b: 'skipped:queue-disabled' });
    expect(runTaskCalls(s)).toEqual([`${ORDERS}/tasks/a`]);
  });

  it('refuses a queue outside the allowlist with 403 and calls nothing', async () => {
    const s = await serverWith({ RERUN_QUEUES: ORDERS }, [
      { name: BILLING, tasks: [failedTask(BILLING, 'b', target.url)] },
    ]);
    const { status, body } = await s.post({ kind: 'fix-deployed', queues: [ORDERS, BILLING] });
    expect(status).toBe(403);
    expect(body.error).toMatchObject({ code: 403, status: 'PERMISSION_DENIED' });
    expect(body.error.message).toContain(BILLING);
    const tasks = await s.post({ kind: 'tasks', tasks: [`${BILLING}/tasks/b`] });
    expect(tasks.status).toBe(403);
    expect(s.emulator.calls).toEqual([]);
  });

  it('expands a * queue segment of the allowlist by listing the location', async () => {
    const other = 'projects/other-project/locations/us-central1/queues/orders';
    const s = await serverWith({ RERUN_QUEUES: 'projects/test-project/locations/us-central1/queues/*' }, [
      { name: ORDERS, tasks: [failedTask(ORDERS, 'a', target.url)] },
      { name: BILLING, tasks: [failedTask(BILLING, 'b', target.url)] },
      { name: other, tasks: [failedTask(other, 'c', target.url)] },
    ]);
    const { body } = await s.post({ kind: 'fix-deployed', dryRun: true });
    expect(outcomes(body)).toEqual({ a: 'dispatched', b: 'dispatched' });
    expect((await s.post({ kind: 'sweep', queues: [other] })).status).toBe(403);
  });

  it('never lists or touches the control queue, even where a * segment of the allowlist covers it', async () => {
    const CONTROL = queueName('rerun-control');
    const s = await serverWith(
      {
        RERUN_QUEUES: 'projects/test-project/locations/us-central1/queues/*',
        RERUN_CONTROL_QUEUE: CONTROL,
        RERUN_SELF_URL: 'https://rerun-http.example.run.app/',
        RERUN_INVOKER_SA: 'rerun-invoker@test-project.iam.gserviceaccount.com',
      },
      [
        { name: ORDERS, tasks: [failedTask(ORDERS, 'a', target.url)] },
        { name: CONTROL, tasks: [failedTask(CONTROL, 'claim', target.url)] },
      ],
    );
    const { body } = await s.post({ kind: 'fix-deployed', dryRun: true });
    expect(outcomes(body)).toEqual({ a: 'dispatched' });
    expect(body.queues.map((q: { queue: string }) => q.queue)).toEqual([ORDERS]);
    expect((await s.post({ kind: 'sweep', queues: [CONTROL] })).status).toBe(403);
    expect((await s.post({ kind: 'tasks', tasks: [`${CONTROL}/tasks/claim`] })).status).toBe(403);
    expect(s.emulator.calls.filter((call) => call.name.startsWith(CONTROL))).toEqual([]);
  });

  it('rejects name injection with 400 before any call', async () => {
    const s = await serverWith({}, []);
    for (const name of [
      `${ORDERS}/tasks/../../billing/tasks/x`,
      `${ORDERS}/tasks/a?x=1`,
      `${ORDERS}/tasks/a%2Fb`,
      `${ORDERS}/tasks/a#b`,
    ]) {
      const { status, body } = await s.post({ kind: 'tasks', tasks: [name] });
      expect(status).toBe(400);
      expect(body.error.details[0].fieldViolations[0].field).toBe('tasks[0]');
    }
    const queue = await s.post({ kind: 'sweep', queues: [`${ORDERS}/../billing`] });
    expect(queue.status).toBe(400);
    expect(s.emulator.calls).toEqual([]);
  });

  it('caps RunTask calls at maxTasks, and never above RERUN_MAX_TASKS', async () => {
    const tasks = Array.from({ length: 6 }, (_, i) => failedTask(ORDERS, `t${i}`, target.url));
    const s = await serverWith({ RERUN_MAX_TASKS: '3' }, [{ name: ORDERS, tasks }]);
    const small = await s.post({ kind: 'fix-deployed', maxTasks: 2, dryRun: true });
    expect(small.body.counts).toMatchObject({ dispatched: 2, skipped: 4 });
    expect(small.body.skipped).toEqual({ 'over-cap': 4 });
    const big = await s.post({ kind: 'fix-deployed', maxTasks: 50 });
    expect(big.body.counts).toMatchObject({ dispatched: 3, skipped: 3 });
    expect(runTaskCalls(s)).toHaveLength(3);
  });

  it('returns at most 1000 task rows, and complete counts', async () => {
    const tasks = Array.from({ length: 1100 }, (_, i) => failedTask(ORDERS, `t${i}`, target.url));
    const s = await serverWith({}, [{ name: ORDERS, tasks }]);
    const { body } = await s.post({ kind: 'fix-deployed', dryRun: true });
    expect(body.tasks).toHaveLength(1000);
    expect(body.truncated).toBe(true);
    expect(body.counts).toMatchObject({ matched: 1100, dispatched: 1000, skipped: 100 });
  });

  it('makes no RunTask call on a dry run', async () => {
    const s = await serverWith({}, [
      { name: ORDERS, tasks: [failedTask(ORDERS, 'a', target.url), failedTask(ORDERS, 'b', target.url)] },
    ]);
    const { body } = await s.post({ kind: 'fix-deployed', dryRun: true });
    expect(body).toMatchObject({ dryRun: true, counts: { matched: 2, dispatched: 2 } });
    expect(runTaskCalls(s)).toEqual([]);
    expect(s.logs.lines().filter((l) => l.message === 'task would be dispatched (dry run)')).toHaveLength(2);
  });

  it('runs nothing twice when the same request is replayed', async () => {
    const s = await serverWith({}, [
      { name: ORDERS, tasks: [failedTask(ORDERS, 'a', target.url), failedTask(ORDERS, 'b', target.url)] },
    ]);
    const first = await s.post({ kind: 'fix-deployed' });
    expect(first.body.counts.dispatched).toBe(2);
    const replay = await s.post({ kind: 'fix-deployed', deployedAt: first.body.cutoff });
    expect(replay.body.counts.dispatched).toBe(0);
    expect(Object.keys(replay.body.skipped).every((r) => r === 'after-cutoff' || r === 'in-flight')).toBe(
      true,
    );
    expect(runTaskCalls(s)).toHaveLength(2);
  });

  it('re-checks the rules for explicit task names; a task that no longer exists is gone', async () => {
    const s = await serverWith({}, [
      { name: ORDERS, tasks: [failedTask(ORDERS, 'a', target.url), inFlightTask(ORDERS, 'b', target.url)] },
    ]);
    const { body } = await s.post({
      kind: 'tasks',
      tasks: [`${ORDERS}/tasks/a`, `${ORDERS}/tasks/b`, `${ORDERS}/tasks/missing`],
    });
    expect(outcomes(body)).toEqual({ a: 'dispatched', b: 'skipped:in-flight', missing: 'gone' });
    expect(runTaskCalls(s)).toEqual([`${ORDERS}/tasks/a`]);
  });
});

describe('rerunHttp: bad requests', () => {
  it.each<[string, () => Promise<{ status: number; body: any }>, number, RegExp]>([
    ['invalid JSON', () => server!.post('{"kind":'), 400, /not valid JSON/],
    ['a wrong type', () => server!.post({ kind: 'fix-deployed', dryRun: 'yes' }), 400, /dryRun/],
    ['an unknown kind', () => server!.post({ kind: 'purge' }), 400, /kind/],
    ['an unknown field', () => server!.post({ kind: 'sweep', queue: ORDERS }), 400, /queue/],
    ['a body over 1 MiB', () => server!.post({ kind: 'sweep', reason: 'x'.repeat(1_100_000) }), 413, /1 MiB/],
    [
      'a wrong content type',
      () => server!.post('kind=sweep', { 'Content-Type': 'application/x-www-form-urlencoded' }),
      415,
      /application\/json/,
    ],
    [
      'a wrong method',
      async () => {
        const response = await fetch(server!.url, { method: 'GET' });
        return { status: response.status, body: await response.json() };
      },
      405,
      /GET/,
    ],
  ])('%s gets %i in Google shape, and no call', async (_, send, status, message) => {
    server = await servers.start({ RERUN_QUEUES: ORDERS });
    const response = await send();
    expect(response.status).toBe(status);
    expect(response.body.error).toMatchObject({ code: status, status: expect.any(String) });
    expect(response.body.error.message).toMatch(message);
    expect(server.emulator.calls).toEqual([]);
  });

  it('names every offending field in the details', async () => {
    server = await servers.start({ RERUN_QUEUES: ORDERS });
    const { body } = await server.post({
      kind: 'fix-deployed',
      maxTasks: -1,
      match: { responseCodes: ['NOPE'] },
    });
    expect(body.error.details[0]['@type']).toBe('type.googleapis.com/google.rpc.BadRequest');
    expect(body.error.details[0].fieldViolations.map((v: { field: string }) => v.field).sort()).toEqual([
      'match.responseCodes[0]',
      'maxTasks',
    ]);
  });
});

describe('rerunHttp: pacing', () => {
  it('never exceeds the rate, and the quota never answers 429 at the quota', async () => {
    const tasks = Array.from({ length: 70 }, (_, i) => failedTask(ORDERS, `t${i}`, target.url));
    server = await servers.start(
      { RERUN_QUEUES: ORDERS, RERUN_MAX_RATE: '20', RERUN_CONCURRENCY: '4' },
      // The real quota is 60 per 60 s; compressed to 3 s, the 1% spacing margin is 30 ms of jitter room.
      { runTaskQuota: { limit: 60, windowMs: 3000 } },
    );
    server.emulator.load({ queues: [{ name: ORDERS, tasks }] });
    const { body } = await server.post({ kind: 'fix-deployed', breaker: false });
    expect(body.counts.dispatched).toBe(70);
    const runs = server.emulator.calls.filter((c) => c.method === 'RunTask');
    expect(runs.filter((c) => c.status === 429)).toEqual([]);
    const starts = runs.map((c) => c.realStartMs).sort((a, b) => a - b);
    for (let i = 0; i + 60 < starts.length; i++)
      expect(starts[i + 60]! - starts[i]!).toBeGreaterThanOrEqual(3000);
  });

  it('slows to the queue rate and the request rate, and bounds calls in flight', async () => {
    const tasks = Array.from({ length: 12 }, (_, i) => failedTask(ORDERS, `t${i}`, target.url));
    server = await servers.start(
      { RERUN_QUEUES: ORDERS, RERUN_MAX_RATE: '200', RERUN_CONCURRENCY: '2' },
      { latencyMs: 40 },
    );
    server.emulator.load({
      queues: [{ name: ORDERS, rateLimits: { maxDispatchesPerSecond: 50 }, tasks }],
    });
    const { body } = await server.post({ kind: 'fix-deployed', maxRate: 25 });
    expect(body.queues[0].rate).toBe(25);
    const runs = server.emulator.calls.filter((c) => c.method === 'RunTask');
    const starts = runs.map((c) => c.realStartMs).sort((a, b) => a - b);
    // 25 per second: slots 40 ms apart, so four gaps take 160 ms (the queue's 50/s would take 80 ms);
    // arrival times jitter by a timer's lateness either way.
    for (let i = 0; i + 4 < starts.length; i++)
      expect(starts[i + 4]! - starts[i]!).toBeGreaterThanOrEqual(120);
    expect((starts.at(-1)! - starts[0]!) / (starts.length - 1)).toBeGreaterThanOrEqual(39);
    const peak = Math.max(
      ...runs.map(
        (r) => runs.filter((o) => o.realStartMs <= r.realStartMs && o.realEndMs > r.realStartMs).length,
      ),
    );
    expect(peak).toBeLessThanOrEqual(2);
  });
});

describe('rerunHttp: errors of the calls', () => {
  it('resends an answered 503, never a lost answer: a reset is deferred to the next delivery', async () => {
    // No in-doubt hold here: the reset never reached the emulator, and the test resends at once.
    const s = await serverWith(
      {},
      [{ name: ORDERS, tasks: ['a', 'b', 'c'].map((id) => failedTask(ORDERS, id, target.url)) }],
      { lostAnswerHoldMs: 0 },
    );
    s.emulator.injectFault({ method: 'RunTask', kind: 503, tasks: [`${ORDERS}/tasks/a`], times: 2 });
    s.emulator.injectFault({ method: 'RunTask', kind: 'reset', tasks: [`${ORDERS}/tasks/b`], times: 1 });
    s.emulator.injectFault({
      method: 'RunTask',
      kind: 'lost-response',
      tasks: [`${ORDERS}/tasks/c`],
      times: 1,
    });
    s.emulator.injectFault({ method: 'ListTasks', kind: 503, times: 1 });
    const { body } = await s.post({ kind: 'fix-deployed' });
    // b's RunTask got no answer and its read-back shows no attempt: it may still reach Cloud Tasks, so
    // it is not resent; the report says to go on.
    expect(outcomes(body)).toEqual({ a: 'dispatched', b: 'deferred', c: 'dispatched' });
    expect(body.continueWith).toMatchObject({ requestId: body.requestId, deferred: 1 });
    const again = await s.post({ kind: 'fix-deployed' });
    expect(again.body.requestId).toBe(body.requestId);
    expect(again.body.cutoff).toBe(body.cutoff);
    expect(outcomes(again.body)).toMatchObject({ b: 'dispatched' });
    for (const id of ['a', 'b', 'c']) {
      expect(
        s.emulator.dispatches.filter((d) => d.trigger === 'run' && d.task === `${ORDERS}/tasks/${id}`),
      ).toHaveLength(1);
    }
    // c's answer was lost after it ran: it was read back, not sent again.
    expect(runTaskCalls(s).filter((n) => n.endsWith('/c'))).toHaveLength(1);
  });

  it('waits for the quota when RunTask answers RESOURCE_EXHAUSTED', async () => {
    const s = await serverWith({}, [{ name: ORDERS, tasks: [failedTask(ORDERS, 'a', target.url)] }]);
    s.emulator.injectFault({ method: 'RunTask', kind: 429, times: 1 });
    const { body } = await s.post({ kind: 'fix-deployed' });
    expect(outcomes(body)).toEqual({ a: 'dispatched' });
    const runs = s.emulator.calls.filter((c) => c.method === 'RunTask');
    expect(runs.map((c) => c.status)).toEqual([429, 200]);
    expect(s.logs.lines().some((l) => l.message === 'RunTask quota exhausted; waiting')).toBe(true);
  });

  it('reads the task again after a quota wait: one that finished meanwhile is gone, not forced', async () => {
    const s = await serverWith({}, [{ name: ORDERS, tasks: [failedTask(ORDERS, 'a', target.url)] }]);
    s.emulator.injectFault({ method: 'RunTask', kind: 429, times: 1 });
    const answer = s.post({ kind: 'fix-deployed' });
    const refused = () => s.emulator.calls.some((c) => c.method === 'RunTask' && c.status === 429);
    for (const until = Date.now() + 10_000; !refused() && Date.now() < until;) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    // The task succeeds by itself while the run waits for the quota.
    expect((await fetch(`${s.emulator.url}/v2/${ORDERS}/tasks/a`, { method: 'DELETE' })).status).toBe(200);
    const { body } = await answer;
    expect(outcomes(body)).toEqual({ a: 'gone' });
    expect(s.emulator.calls.filter((c) => c.method === 'RunTask').map((c) => c.status)).toEqual([429]);
  });

  it('defers what the quota leaves no time for', async () => {
    const s = await serverWith({ RERUN_TIME_BUDGET: '1s' }, [
      { name: ORDERS, tasks: [failedTask(ORDERS, 'a', target.url)] },
    ]);
    s.emulator.injectFault({ method: 'RunTask', kind: 429, times: 1 });
    const { body } = await s.post({ kind: 'fix-deployed' });
    expect(outcomes(body)).toEqual({ a: 'deferred' });
    expect(body.continueWith).toMatchObject({ cutoff: body.cutoff, deferred: 1 });
  });

  it('reports a task that finished between listing and RunTask as gone', async () => {
    target.setRespond(() => 200);
    const s = await serverWith({ RERUN_MAX_RATE: '1' }, [
      {
        name: ORDERS,
        tasks: [failedTask(ORDERS, 'a', target.url), failedTask(ORDERS, 'b', target.url, { nextMs: 200 })],
      },
    ]);
    // b's own retry comes 200 ms in and succeeds; rerun's fresh read of b, right before its paced RunTask a
    // second in, finds it gone: no RunTask is sent for it.
    const { body } = await s.post({ kind: 'fix-deployed', minBackoffLeft: '0s' });
    expect(outcomes(body)).toEqual({ a: 'dispatched', b: 'gone' });
    expect(runTaskCalls(s)).toEqual([`${ORDERS}/tasks/a`]);
    expect(
      s.emulator.calls.filter((c) => c.method === 'GetTask' && c.name.endsWith('/b')).map((c) => c.status),
    ).toContain(404);
  });

  it('stops a queue at the first PERMISSION_DENIED', async () => {
    const tasks = ['a', 'b', 'c', 'd'].map((id) => failedTask(ORDERS, id, target.url));
    const s = await serverWith({ RERUN_CONCURRENCY: '1' }, [{ name: ORDERS, tasks }]);
    s.emulator.injectFault({ method: 'RunTask', kind: 403 });
    const { body } = await s.post({ kind: 'fix-deployed' });
    expect(body.counts).toMatchObject({ failed: 1, skipped: 3 });
    expect(body.skipped).toEqual({ 'queue-permission-denied': 3 });
    expect(runTaskCalls(s)).toHaveLength(1);
  });

  it('answers 503 when Cloud Tasks is unreachable before anything ran', async () => {
    server = await servers.start({ RERUN_QUEUES: ORDERS, CLOUD_TASKS_EMULATOR_HOST: '127.0.0.1:9' });
    const { status, body } = await server.post({ kind: 'fix-deployed' });
    expect(status).toBe(503);
    expect(body.error).toMatchObject({ code: 503, status: 'UNAVAILABLE' });
    expect(body.error.message).toMatch(/safe to call again/);
  });
});

describe('rerunHttp: budget, canary, queued mode', () => {
  it('defers what does not fit the time budget, and says how to continue', async () => {
    const tasks = Array.from({ length: 10 }, (_, i) => failedTask(ORDERS, `t${i}`, target.url));
    const s = await serverWith({ RERUN_MAX_RATE: '5', RERUN_TIME_BUDGET: '700ms' }, [
      { name: ORDERS, tasks },
    ]);
    const { body } = await s.post({ kind: 'fix-deployed' });
    expect(body.counts.dispatched).toBeGreaterThanOrEqual(2);
    expect(body.counts.dispatched + body.counts.deferred).toBe(10);
    expect(body.continueWith.deferred).toBe(body.counts.deferred);
    const replay = await s.post({ kind: 'fix-deployed', deployedAt: body.cutoff });
    expect(replay.body.counts.dispatched + body.counts.dispatched).toBeLessThanOrEqual(10);
    expect(new Set(runTaskCalls(s)).size).toBe(runTaskCalls(s).length);
  });

  it('holds the rest when the canaries fail again', async () => {
    const tasks = Array.from({ length: 5 }, (_, i) => failedTask(ORDERS, `t${i}`, target.url));
    const s = await serverWith({}, [{ name: ORDERS, tasks }]);
    const { body } = await s.post({ kind: 'fix-deployed', canary: { count: 2, wait: '300ms' } });
    expect(body.counts).toMatchObject({ dispatched: 2, held: 3 });
    expect(body.canary).toMatchObject({ passed: false });
    expect(runTaskCalls(s)).toHaveLength(2);
  });

  it('goes on when the canaries succeed', async () => {
    target.setRespond(() => 200);
    const tasks = Array.from({ length: 5 }, (_, i) => failedTask(ORDERS, `t${i}`, target.url));
    const s = await serverWith({}, [{ name: ORDERS, tasks }]);
    const { body } = await s.post({ kind: 'fix-deployed', canary: { count: 2, wait: '300ms' } });
    expect(body.counts).toMatchObject({ dispatched: 5, held: 0 });
    expect(body.canary).toMatchObject({ passed: true });
  });

  it('queues control tasks when the batch does not fit, once per task across replays', async () => {
    const CONTROL = queueName('rerun-control');
    const tasks = Array.from({ length: 8 }, (_, i) => failedTask(ORDERS, `t${i}`, target.url));
    const s = await serverWith(
      {
        // 8 tasks at 2/s need 4 s: a 1.5 s budget forces some inline and queues the rest, and leaves
        // each control task's own run room on a loaded machine.
        RERUN_MAX_RATE: '2',
        RERUN_TIME_BUDGET: '1500ms',
        RERUN_CONTROL_QUEUE: CONTROL,
        RERUN_SELF_URL: 'https://rerun-http.example.run.app/',
        RERUN_INVOKER_SA: 'rerun-invoker@test-project.iam.gserviceaccount.com',
      },
      [
        { name: ORDERS, tasks },
        { name: CONTROL, state: 'PAUSED', tasks: [] },
      ],
    );
    const event = { kind: 'fix-deployed', breaker: false, verify: '2s', lastAttempts: true };
    const first = await s.post(event);
    expect(first.body.counts.queued).toBeGreaterThan(0);
    expect(first.body.counts.dispatched + first.body.counts.queued).toBe(8);
    // The request's work: every control task but the one holding its first cutoff (which names no request).
    const listControl = async () =>
      (
        (
          (await (await fetch(`${s.emulator.url}/v2/${CONTROL}/tasks?responseView=FULL`)).json()) as {
            tasks?: {
              name: string;
              httpRequest: { url: string; body: string; oidcToken: { serviceAccountEmail: string } };
            }[];
          }
        ).tasks ?? []
      ).filter((task) => task.httpRequest.url.includes('requestId='));
    // The claims of the tasks forced inline were deleted once they had an outcome: only queued work is left.
    const listed = await listControl();
    expect(listed).toHaveLength(first.body.counts.queued);
    const queuedNames = first.body.tasks
      .filter((t: { outcome: string }) => t.outcome === 'queued')
      .map((t: { task: string }) => t.task);
    for (const task of listed) {
      expect(task.name).toMatch(/\/tasks\/[0-9a-f]{64}$/);
      expect(task.httpRequest).toMatchObject({
        // The run that wrote it, then its request.
        url: `https://rerun-http.example.run.app/?writtenBy=${first.body.runId}&requestId=${first.body.requestId}`,
        oidcToken: { serviceAccountEmail: 'rerun-invoker@test-project.iam.gserviceaccount.com' },
      });
      const body = JSON.parse(Buffer.from(task.httpRequest.body, 'base64').toString());
      expect(body).toMatchObject({
        kind: 'tasks',
        cutoff: first.body.cutoff,
        requestId: first.body.requestId,
        mode: 'run',
        // The request's own options travel with each task: the control task decides as the request would.
        force: false,
        lastAttempts: true,
        verify: '2000ms',
        minBackoffLeft: '30000ms',
      });
      expect(queuedNames).toContain(body.tasks[0]);
    }

    // A resend of the same body is the same request (same requestId, same cutoff): what it cannot fit is
    // refused by Cloud Tasks under the same names, so nothing is queued twice.
    const replay = await s.post(event);
    expect(replay.body.requestId).toBe(first.body.requestId);
    expect(replay.body.cutoff).toBe(first.body.cutoff);
    expect(await listControl()).toHaveLength(listed.length - replay.body.counts.dispatched);

    // Cloud Tasks then delivers each control task to rerunHttp, naming itself: every task runs once in all.
    for (const task of await listControl()) {
      const delivered = await s.post(Buffer.from(task.httpRequest.body, 'base64').toString(), {
        'X-CloudTasks-TaskName': task.name.split('/').pop()!,
        'X-CloudTasks-QueueName': 'rerun-control',
      });
      expect(delivered.status).toBe(200);
      // Each control task verifies its own task within its own budget (verify 2s, as the request asked): the
      // target here still fails.
      expect(delivered.body.tasks).toMatchObject([{ outcome: 'dispatched', verdict: 'failed-again' }]);
    }
    const perTask = new Map<string, number>();
    for (const name of runTaskCalls(s)) perTask.set(name, (perTask.get(name) ?? 0) + 1);
    expect([...perTask.values()].every((count) => count === 1)).toBe(true);
    expect(perTask.size).toBe(8);
  });
});

describe('rerunHttp: control tasks', () => {
  /** A server with a paused control queue (the test delivers its tasks), and the claim of task `a`. */
  async function controlled(env: Record<string, string>, runtimeOptions: { lostAnswerHoldMs?: number } = {}) {
    const s = await serverWith(
      {
        RERUN_CONTROL_QUEUE: CONTROL,
        RERUN_SELF_URL: 'http://127.0.0.1:9/rerun',
        RERUN_INVOKER_SA: `rerun-invoker@${PROJECT}.iam.gserviceaccount.com`,
        ...env,
      },
      [
        { name: ORDERS, tasks: [failedTask(ORDERS, 'a', target.url)] },
        { name: CONTROL, state: 'PAUSED', tasks: [] },
      ],
      runtimeOptions,
    );
    const task = `${ORDERS}/tasks/a`;
    const cutoff = new Date();
    const event = { kind: 'tasks', tasks: [task], cutoff: cutoff.toISOString(), requestId: 'deploy-1' };
    // The control task that delivers this task's claim, as a claim names it.
    const fromCloudTasks = {
      'X-CloudTasks-TaskName': claimIdOf({ task, requestId: 'deploy-1', cutoffMs: cutoff.getTime() }),
      'X-CloudTasks-QueueName': 'rerun-control',
    };
    return { s, deliver: () => s.post(event, fromCloudTasks) };
  }

  it("answers 503 to Cloud Tasks while a control task's work is left undone, so it is retried", async () => {
    const { s, deliver } = await controlled({ RERUN_TIME_BUDGET: '1s' });
    s.emulator.injectFault({ method: 'RunTask', kind: 429, times: 1 });
    const sentMs = Date.now();
    const deferred = await deliver();
    expect(deferred.status).toBe(503);
    expect(deferred.body.error.details[0]).toMatchObject({ reason: 'RERUN_INCOMPLETE' });
    // The retry, once the quota is back, runs it and is acknowledged. It comes once the 429's RetryInfo
    // (1 s) has passed, as Cloud Tasks' retry of the control task would: sent sooner, it would find the
    // process's RunTask pacer pushed back to the very end of its own 1 s budget, and a timer firing a few
    // milliseconds late on a busy machine would defer it.
    await sleep(Math.max(0, sentMs + 1_000 - Date.now()));
    const retried = await deliver();
    expect(retried.status).toBe(200);
    expect(retried.body.counts.dispatched).toBe(1);
  });

  it('answers a control task whose RunTask lost its answer only once the in-doubt hold is over', async () => {
    const { s, deliver } = await controlled({}, { lostAnswerHoldMs: 1_500 });
    // The RunTask lands 300 ms after its answer was lost.
    s.emulator.injectFault({ method: 'RunTask', kind: 'late-landing', delayMs: 300, times: 1 });
    const sentMs = Date.now();
    const deferred = await deliver();
    expect(deferred.status).toBe(503);
    expect(Date.now() - sentMs).toBeGreaterThanOrEqual(1_500);
    // Delivered again (on any instance), it reads the task fresh and finds the late attempt.
    const retried = await deliver();
    expect(retried.status).toBe(200);
    expect(runTaskCalls(s)).toEqual([`${ORDERS}/tasks/a`]);
  });
});

describe('rerunHttp: logs', () => {
  it("marks a dry run's outcome lines and summary dryRun, so the metrics leave them out", async () => {
    const s = await serverWith({}, [{ name: ORDERS, tasks: [failedTask(ORDERS, 'a', target.url)] }]);
    await s.post({ kind: 'fix-deployed', dryRun: true });
    await s.post({ kind: 'fix-deployed', breaker: false, verify: '0s' });
    const lines = s.logs
      .lines()
      .filter((l) => String(l.message).startsWith('task ') || l.message === 'rerun finished');
    const [dry, real] = [lines.slice(0, 2), lines.slice(2)];
    expect(dry.map((l) => [l.message, l.dryRun])).toEqual([
      ['task would be dispatched (dry run)', true],
      ['rerun finished', true],
    ]);
    expect(real.map((l) => [l.message, l.dryRun])).toEqual([
      ['task dispatched', undefined],
      ['rerun finished', undefined],
    ]);
  });

  it('logs one line per outcome, a summary equal to the report, and never a body or an auth header', async () => {
    const secret = { headers: { Authorization: 'Bearer very-secret-token' }, body: 'card=4111111111111111' };
    const s = await serverWith({}, [
      {
        name: ORDERS,
        tasks: [
          failedTask(ORDERS, 'a', target.url, secret),
          laterTask(ORDERS, 'b', target.url),
          failedTask(ORDERS, 'c', target.url, secret),
        ],
      },
    ]);
    const { body } = await s.post(
      { kind: 'fix-deployed', reason: 'PR 4242' },
      { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' },
    );
    const lines = s.logs.lines().filter((l) => l.runId === body.runId);
    const perTask = lines.filter((l) => typeof l.task === 'string' && typeof l.outcome === 'string');
    expect(perTask.map((l) => l.task).sort()).toEqual(body.tasks.map((t: { task: string }) => t.task).sort());
    const summary = lines.find((l) => l.message === 'rerun finished');
    expect(summary?.counts).toEqual(body.counts);
    for (const line of lines) {
      expect(line).toMatchObject({
        severity: expect.any(String),
        message: expect.any(String),
        reason: 'PR 4242',
      });
      expect(line['logging.googleapis.com/trace']).toBe(
        'projects/test-project/traces/0af7651916cd43dd8448eb211c80319c',
      );
    }
    const everything = s.logs.text() + JSON.stringify(body);
    expect(everything).not.toContain('very-secret-token');
    expect(everything).not.toContain('4111111111111111');
    expect(everything).not.toContain(Buffer.from(secret.body).toString('base64'));
    // BASIC view: the run never asked for bodies.
    expect(s.emulator.calls.filter((c) => c.method === 'ListTasks')).not.toHaveLength(0);
  });
});
