/**
 * Redrive by batch (docs/redrive.md "Batch calls"): copies created with tasks:batchCreate and originals
 * deleted with tasks:batchDelete, each item answered as its single call would be. Judged by the emulator's
 * call records and by the target: every task runs once, with its body and headers intact.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Fault } from '../../emulator/server.js';
import { cancelRecordNameOf, claimIdOf } from '../../shared/control/control-tasks.js';
import { parseQueueName } from '../../shared/cloud-tasks/names.js';
import { startRerunServer, type RerunServer } from '../helpers/rerun-server.js';
import { CONTROL, CONTROL_ENV, controlQueue, failedTask, laterTask, queueName } from '../helpers/seeds.js';
import { startTarget, type Target } from '../helpers/target-server.js';

const ORDERS = queueName('orders');
const SECRET_HEADER = 'sk-batch-secret-header';
const SECRET_BODY = 'card=4111-batch-secret-body';
const ARMING_MS = 500;
const COUNT = 40;

let target: Target;
let server: RerunServer;

beforeEach(async () => {
  target = await startTarget({ respond: () => 200 });
});
afterEach(async () => {
  await server.close();
  await target.stop();
});

async function redrive(faults: Fault[] = [], env: Record<string, string> = {}) {
  server = await startRerunServer({ RERUN_QUEUES: ORDERS, ...env }, {}, undefined, {
    redriveArmingDelayMs: ARMING_MS,
  });
  const tasks = Array.from({ length: COUNT }, (_, i) =>
    failedTask(ORDERS, `t${i}`, target.url, {
      headers: { 'X-Api-Key': SECRET_HEADER },
      body: `${SECRET_BODY}-${i}`,
    }),
  );
  server.emulator.load({
    queues: [
      { name: ORDERS, rateLimits: { maxDispatchesPerSecond: 500 }, tasks },
      // Paused: a control task written here (with CONTROL_ENV) is never delivered within a test.
      { ...controlQueue(CONTROL), state: 'PAUSED' as const },
    ],
  });
  for (const fault of faults) server.emulator.injectFault(fault);
  const answer = await server.post({
    kind: 'fix-deployed',
    mode: 'redrive',
    verify: '0s',
    requestId: 'batch-1',
  });
  server.emulator.clearFaults();
  // Every copy falls due and is answered; nothing of the queue is left.
  const until = Date.now() + 15_000;
  while (Date.now() < until && target.requests.length < COUNT) await new Promise((r) => setTimeout(r, 50));
  await new Promise((r) => setTimeout(r, ARMING_MS + 300));
  await server.emulator.settled();
  return answer;
}

/** rerun with a control queue: claims and recovery tasks are written there, by batch. */
/** Whether an injected fault of that kind hit a call of that method (about that queue). */
const hit = (method: string, kind: string, queue = ORDERS) =>
  calls(method, queue).some((c) => c.fault?.includes(kind) === true);

const calls = (method: string, queue = ORDERS) =>
  server.emulator.calls.filter((c) => c.method === method && c.name === queue);

/** How often the target received each task (by the id in its URL), and each body. */
function runs() {
  const byTask = new Map<string, number>();
  for (const request of target.requests) {
    const id = request.path.split('/').pop()!;
    byTask.set(id, (byTask.get(id) ?? 0) + 1);
  }
  return byTask;
}

function expectEachRanOnce() {
  const byTask = runs();
  expect(byTask.size).toBe(COUNT);
  expect([...byTask.values()].every((n) => n === 1)).toBe(true);
}

describe('redrive by batch', () => {
  it('copies every task with its body and headers in batches, deletes every original in batches, runs each once', async () => {
    const answer = await redrive();
    expect(answer.status).toBe(200);
    expect(answer.body.counts.redriven).toBe(COUNT);
    expectEachRanOnce();
    expect(answer.body.redriveCalls).toBe('batch');
    expect(calls('CreateTask')).toEqual([]);
    expect(calls('DeleteTask')).toEqual([]);
    // First reads from the plan's FULL listing, second reads from one listing after the copies exist.
    expect(server.emulator.calls.filter((c) => c.method === 'GetTask')).toEqual([]);
    expect(calls('ListTasks').length).toBeLessThanOrEqual(4);
    expect(calls('BatchCreateTasks').length).toBeGreaterThan(0);
    expect(calls('BatchCreateTasks').length).toBeLessThanOrEqual(COUNT / 2);
    expect(calls('BatchDeleteTasks').length).toBeLessThanOrEqual(COUNT / 2);
    for (const request of target.requests) {
      const i = request.path.split('/').pop()!.slice(1);
      expect(request.body).toBe(`${SECRET_BODY}-${i}`);
      expect(request.headers['x-api-key']).toBe(SECRET_HEADER);
      expect(request.headers['x-rerun-original-task']).toBe(`${ORDERS}/tasks/t${i}`);
    }
    const text = JSON.stringify(answer.body) + JSON.stringify(server.logs.lines());
    expect(text).not.toContain(SECRET_HEADER);
    expect(text).not.toContain(SECRET_BODY);
  });

  it('with a control queue, the claims and the recovery tasks go there by batch too: no call per task', async () => {
    const answer = await redrive([], CONTROL_ENV);
    expect(answer.body.counts.redriven).toBe(COUNT);
    expectEachRanOnce();
    // The one single create in the control queue is the request's shared cutoff, written once per request.
    expect(calls('CreateTask', CONTROL)).toHaveLength(1);
    expect(calls('DeleteTask', CONTROL)).toEqual([]);
    // A claim and a recovery task per task, created by batch and deleted by batch.
    expect(calls('BatchCreateTasks', CONTROL).length).toBeGreaterThanOrEqual(2);
    expect(calls('BatchCreateTasks', CONTROL).length).toBeLessThanOrEqual(COUNT / 4);
    expect(calls('BatchDeleteTasks', CONTROL).length).toBeGreaterThanOrEqual(1);
    expect(calls('BatchDeleteTasks', CONTROL).length).toBeLessThanOrEqual(COUNT / 4);
    // Every claim and recovery task is gone once its move is settled. (The request's cancel record is read
    // once, and is not there: docs/claims.md "Cancelled requests".)
    const record = cancelRecordNameOf(parseQueueName(CONTROL)!, 'batch-1').name;
    expect(server.emulator.calls.filter((c) => c.status >= 400 && c.name !== record)).toEqual([]);
  });

  it('items that fail in a batch follow the single-call rules: sent again, each task once', async () => {
    const answer = await redrive([
      { method: 'BatchCreateTasks', kind: 'fail-items', items: [0, 2], code: 'UNAVAILABLE', times: 1 },
      { method: 'BatchDeleteTasks', kind: 'fail-items', items: [1], code: 'UNAVAILABLE', times: 1 },
    ]);
    expect(answer.body.counts.redriven).toBe(COUNT);
    expectEachRanOnce();
    expect(hit('BatchCreateTasks', 'fail-items')).toBe(true);
    expect(hit('BatchDeleteTasks', 'fail-items')).toBe(true);
  });

  it('an operation that ends FAILED after applying some items: none lost, none twice', async () => {
    const answer = await redrive([
      { method: 'BatchCreateTasks', kind: 'operation-failed', applied: 3, times: 1 },
    ]);
    expect(answer.body.counts.redriven).toBe(COUNT);
    expectEachRanOnce();
    expect(hit('BatchCreateTasks', 'operation-failed')).toBe(true);
  });

  it('a batch create whose answer was lost, and a batch delete whose answer was lost: none lost, none twice', async () => {
    const answer = await redrive([
      { method: 'BatchCreateTasks', kind: 'lost-response', times: 1 },
      { method: 'BatchDeleteTasks', kind: 'lost-response', times: 1 },
    ]);
    expect(answer.body.counts.redriven + answer.body.counts.deferred).toBe(COUNT);
    expectEachRanOnce();
    expect(hit('BatchCreateTasks', 'lost-response')).toBe(true);
    expect(hit('BatchDeleteTasks', 'lost-response')).toBe(true);
  });

  it("with a control queue, a batch of claims whose answer was lost: read back as this run's, every task redriven now, once", async () => {
    const answer = await redrive(
      [{ method: 'BatchCreateTasks', kind: 'lost-response', resources: [CONTROL], times: 1 }],
      CONTROL_ENV,
    );
    expect(hit('BatchCreateTasks', 'lost-response', CONTROL)).toBe(true);
    expect(answer.body.skipped.claimed ?? 0).toBe(0);
    expect(answer.body.counts.redriven).toBe(COUNT);
    expectEachRanOnce();
  });

  it.each([
    ['refused', 403],
    ['not there ("Method not found.")', 404],
  ] as const)(
    'falls back to one call per task when the batch method is %s, and says so once',
    async (_, kind) => {
      const answer = await redrive([{ method: 'BatchCreateTasks', kind }]);
      expect(answer.body.counts.redriven).toBe(COUNT);
      expectEachRanOnce();
      // Batches already on their way when the first refusal came back are refused too; none is sent after it
      // (a few ms pass between the emulator answering and the client reading the answer).
      const batches = calls('BatchCreateTasks');
      const firstRefusalMs = Math.min(...batches.map((c) => c.realEndMs));
      expect(batches.length).toBeGreaterThanOrEqual(1);
      expect(batches.every((c) => c.status === kind && c.realStartMs <= firstRefusalMs + 100)).toBe(true);
      expect(calls('CreateTask').length).toBeGreaterThanOrEqual(COUNT);
      const warned = server.logs
        .lines()
        .filter((l) => l.message === 'batch calls unavailable: one call per task');
      expect(warned).toHaveLength(1);
      expect(answer.body.redriveCalls).toBe('per-task-fallback');
    },
  );

  it('RERUN_REDRIVE_BATCH=false sends one call per task', async () => {
    const answer = await redrive([], { RERUN_REDRIVE_BATCH: 'false' });
    expect(answer.body.counts.redriven).toBe(COUNT);
    expectEachRanOnce();
    expect(calls('BatchCreateTasks')).toEqual([]);
    expect(calls('BatchDeleteTasks')).toEqual([]);
    expect(calls('CreateTask')).toHaveLength(COUNT);
    expect(answer.body.redriveCalls).toBe('per-task');
  });

  it('"redrive": {"batch": false} in the request sends one call per task', async () => {
    server = await startRerunServer({ RERUN_QUEUES: ORDERS }, {}, undefined, {
      redriveArmingDelayMs: ARMING_MS,
    });
    const tasks = Array.from({ length: 5 }, (_, i) => failedTask(ORDERS, `t${i}`, target.url));
    server.emulator.load({ queues: [{ name: ORDERS, tasks }] });
    const answer = await server.post({
      kind: 'fix-deployed',
      mode: 'redrive',
      verify: '0s',
      redrive: { batch: false },
    });
    expect(answer.body).toMatchObject({ redriveCalls: 'per-task', counts: { redriven: 5 } });
    expect(calls('BatchCreateTasks')).toEqual([]);
    expect(calls('CreateTask')).toHaveLength(5);
  });

  it('reads each candidate on its own when they are few among many tasks: the listing goes on without bodies', async () => {
    server = await startRerunServer({ RERUN_QUEUES: ORDERS, RERUN_MAX_TASKS: '5000' }, {}, undefined, {
      redriveArmingDelayMs: ARMING_MS,
    });
    const failed = Array.from({ length: 6 }, (_, i) => failedTask(ORDERS, `t${i}`, target.url));
    const healthy = Array.from({ length: 1_500 }, (_, i) => laterTask(ORDERS, `ok${i}`, target.url));
    server.emulator.load({ queues: [{ name: ORDERS, tasks: [...failed, ...healthy] }] });
    const answer = await server.post({
      kind: 'fix-deployed',
      mode: 'redrive',
      verify: '0s',
      match: { taskIdGlob: 't*' },
    });
    expect(answer.body.counts).toMatchObject({ matched: 6, redriven: 6 });
    expect(answer.body.queues[0].scanned).toBe(1_506);
    // One FULL page, then the BASIC listing again from the start (two pages); a FULL GetTask per candidate.
    expect(calls('ListTasks')).toHaveLength(1 + 2);
    const reads = server.emulator.calls.filter((c) => c.method === 'GetTask' && c.name.includes('/tasks/t'));
    expect(reads.length).toBeGreaterThanOrEqual(6);
  });

  it('redrives tasks with large bodies intact: listed without them past a small first page, created in batches under 10 MiB', async () => {
    server = await startRerunServer({ RERUN_QUEUES: ORDERS }, {}, undefined, {
      redriveArmingDelayMs: ARMING_MS,
    });
    // 70 bodies of 150 KB: 500 a page would be 100 MB in one answer, and 14 MB in one batch of creates.
    const bodyOf = (i: number) => `${i}:${'x'.repeat(150_000)}`;
    const tasks = Array.from({ length: 70 }, (_, i) =>
      failedTask(ORDERS, `big${i}`, target.url, { body: bodyOf(i) }),
    );
    server.emulator.load({ queues: [{ name: ORDERS, rateLimits: { maxDispatchesPerSecond: 500 }, tasks }] });
    const answer = await server.post({ kind: 'fix-deployed', mode: 'redrive', verify: '0s' });
    expect(answer.body.counts).toMatchObject({ matched: 70, redriven: 70, failed: 0 });
    // Never more than 10 MiB in one request (the emulator refuses more, as Google's front end does).
    expect(server.emulator.calls.filter((c) => c.status === 400)).toEqual([]);
    expect(calls('BatchCreateTasks').length).toBeGreaterThanOrEqual(2);
    await expect.poll(() => target.requests.length, { timeout: 10_000, interval: 50 }).toBe(70);
    for (const request of target.requests) {
      const id = Number(request.path.split('/').pop()!.slice('big'.length));
      expect(request.body).toBe(bodyOf(id));
    }
  });

  it('an original forced by someone else, or falling due, after its copy exists: the copy is withdrawn, the task runs once', async () => {
    const arming = 2_000;
    server = await startRerunServer({ RERUN_QUEUES: ORDERS }, {}, undefined, {
      redriveArmingDelayMs: arming,
    });
    const tasks = [
      ...Array.from({ length: 20 }, (_, i) => failedTask(ORDERS, `t${i}`, target.url)),
      // Its next attempt falls due while the run waits for the second reads (a quarter of the arming delay).
      failedTask(ORDERS, 'due', target.url, { nextMs: 500 }),
    ];
    server.emulator.load({ queues: [{ name: ORDERS, rateLimits: { maxDispatchesPerSecond: 500 }, tasks }] });
    const answer = server.post({ kind: 'fix-deployed', mode: 'redrive', verify: '0s', minBackoffLeft: '0s' });
    await expect
      .poll(() => calls('BatchCreateTasks').length, { timeout: 5_000, interval: 5 })
      .toBeGreaterThan(0);
    const forced = await fetch(`http://${server.emulator.host}/v2/${ORDERS}/tasks/t0:run`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    expect(forced.status).toBe(200);
    const { body } = await answer;
    const rowOf = (id: string) =>
      body.tasks.find((t: { task: string }) => t.task === `${ORDERS}/tasks/${id}`);
    // The attempt succeeded, so the second read finds the original gone (or still running: deferred).
    expect(['gone', 'deferred']).toContain(rowOf('t0').outcome);
    expect(['gone', 'deferred']).toContain(rowOf('due').outcome);
    expect(body.counts.redriven).toBe(19);
    await new Promise((r) => setTimeout(r, arming + 500));
    await server.emulator.settled();
    const byTask = runs();
    expect(byTask.get('t0')).toBe(1);
    expect(byTask.get('due')).toBe(1);
    expect(byTask.size).toBe(21);
    expect([...byTask.values()].every((n) => n === 1)).toBe(true);
  });

  it('with a control queue, a task whose claim another delivery gave up is read afresh, not taken from the listing', async () => {
    server = await startRerunServer({ RERUN_QUEUES: ORDERS, ...CONTROL_ENV }, {}, undefined, {
      redriveArmingDelayMs: ARMING_MS,
    });
    const tasks = Array.from({ length: COUNT }, (_, i) => failedTask(ORDERS, `t${i}`, target.url));
    server.emulator.load({
      queues: [
        { name: ORDERS, rateLimits: { maxDispatchesPerSecond: 500 }, tasks },
        { ...controlQueue(CONTROL), state: 'PAUSED' as const },
      ],
    });
    const cutoff = new Date(Date.now() - 1_000).toISOString();
    // An earlier delivery of this request claimed t0 to t4 and gave them up: their first claim names are used.
    const released = tasks.slice(0, 5).map((t) => t.name);
    for (const task of released) {
      const name = `${CONTROL}/tasks/${claimIdOf({ task, requestId: 'batch-2', cutoffMs: Date.parse(cutoff) })}`;
      const base = `http://${server.emulator.host}/v2`;
      const created = await fetch(`${base}/${CONTROL}/tasks`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ task: { name, httpRequest: { url: 'https://rerun-http.example.run.app/' } } }),
      });
      expect(created.status).toBe(200);
      expect((await fetch(`${base}/${name}`, { method: 'DELETE' })).status).toBe(200);
    }
    const { body } = await server.post({
      kind: 'fix-deployed',
      mode: 'redrive',
      verify: '0s',
      requestId: 'batch-2',
      deployedAt: cutoff,
    });
    expect(body.counts.redriven).toBe(COUNT);
    // What the run listed of them may predate that delivery's move: each is read on its own, the others not.
    const readAlone = new Set(server.emulator.calls.filter((c) => c.method === 'GetTask').map((c) => c.name));
    expect(released.every((name) => readAlone.has(name))).toBe(true);
    expect(tasks.slice(5).some((t) => readAlone.has(t.name))).toBe(false);
    const until = Date.now() + 15_000;
    while (Date.now() < until && target.requests.length < COUNT) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, ARMING_MS + 300));
    await server.emulator.settled();
    expectEachRanOnce();
  });

  it('works on several queues at once', async () => {
    const other = queueName('invoices');
    server = await startRerunServer({ RERUN_QUEUES: `${ORDERS},${other}` }, {}, undefined, {
      redriveArmingDelayMs: ARMING_MS,
    });
    // 150 tasks at 20 a second: each queue's slots span 7.5 s, and a copy is made at most 5 s before its
    // slot, so each queue's last copies are made 2.5 s after its first, at its own rate.
    const queueOf = (name: string) => ({
      name,
      rateLimits: { maxDispatchesPerSecond: 20 },
      tasks: Array.from({ length: 150 }, (_, i) => failedTask(name, `t${i}`, target.url)),
    });
    server.emulator.load({ queues: [queueOf(ORDERS), queueOf(other)] });
    const answer = await server.post({ kind: 'fix-deployed', mode: 'redrive', verify: '0s' });
    expect(answer.body.counts.redriven).toBe(300);
    const creates = (queue: string) =>
      server.emulator.calls.filter((c) => c.method === 'BatchCreateTasks' && c.name === queue);
    const [first, second] = [creates(ORDERS), creates(other)].sort(
      (a, b) => a[0]!.realStartMs - b[0]!.realStartMs,
    );
    // The second queue's copies start before the first queue's are all made.
    expect(second![0]!.realStartMs).toBeLessThan(first!.at(-1)!.realStartMs);
  });
});
