/**
 * Verdicts (docs/execution.md "Verdicts"): what really became of each forced task, read back from the emulator,
 * with a real target that succeeds, fails or never answers per task; and the breaker that stops a run into
 * a target that is still broken.
 */
import { describe, expect, it } from 'vitest';
import { rerunServersPerTest, type RerunServer } from '../helpers/rerun-server.js';
import { failedTask, queueName } from '../helpers/seeds.js';
import { targetPerTest } from '../helpers/target-server.js';

const ORDERS = queueName('orders');

/** The target answers by the task ID's prefix: ok-* 200, bad-* 503, hang-* never. */
const target = targetPerTest({
  respond: ({ path }) => {
    const id = path.split('/').pop() ?? '';
    if (id.startsWith('ok')) return 200;
    if (id.startsWith('bad')) return 503;
    return new Promise<number>(() => undefined);
  },
});
const servers = rerunServersPerTest();
let server: RerunServer | undefined;

type Json = Record<string, any>;

async function start(ids: string[], env: Record<string, string> = {}, queue: Json = {}) {
  server = await servers.start({ RERUN_QUEUES: ORDERS, RERUN_MAX_RATE: '50', ...env });
  server.emulator.load({
    queues: [{ name: ORDERS, ...queue, tasks: ids.map((id) => failedTask(ORDERS, id, target.url)) }],
  });
  return server;
}

function rowsById(report: Json): Record<string, Json> {
  return Object.fromEntries(report.tasks.map((row: Json) => [row.task.split('/').pop(), row]));
}

describe('verdicts', () => {
  it('says which tasks recovered, failed again (with the status) or are still running', async () => {
    const s = await start(['ok-1', 'ok-2', 'bad-1', 'hang-1']);
    const { body } = await s.post({ kind: 'fix-deployed', verify: '2s' });
    const rows = rowsById(body);
    expect(rows['ok-1']).toMatchObject({ outcome: 'dispatched', verdict: 'succeeded' });
    expect(rows['ok-2']).toMatchObject({ outcome: 'dispatched', verdict: 'succeeded' });
    expect(rows['bad-1']).toMatchObject({ outcome: 'dispatched', verdict: 'failed-again' });
    expect(rows['bad-1']!.status).toMatch(/HTTP status code 503/);
    expect(rows['hang-1']).toMatchObject({ outcome: 'dispatched', verdict: 'running' });
    expect(body.counts.verdicts).toEqual({ succeeded: 2, failedAgain: 1, running: 1 });
    // One line per task with its verdict; a failed-again task is a warning.
    const line = s.logs.lines().find((l) => l.message === 'task dispatched' && l.verdict === 'failed-again');
    expect(line).toMatchObject({ severity: 'WARNING', queue: ORDERS });
    expect((s.logs.lines().find((l) => l.message === 'rerun finished') as Json).counts.verdicts).toEqual(
      body.counts.verdicts,
    );
    // Verification reads tasks back with GetTask: never one RunTask more than was dispatched.
    expect(s.emulator.calls.filter((c) => c.method === 'RunTask')).toHaveLength(4);
  });

  it.each(['run', 'redrive'])(
    'a target that refuses the connection (no response counted) fails again (%s)',
    async (mode) => {
      server = await servers.start({ RERUN_QUEUES: ORDERS, RERUN_MAX_RATE: '50' }, {}, undefined, {
        redriveArmingDelayMs: 1_000,
      });
      const down = (id: string) => ({
        ...failedTask(ORDERS, id, target.url),
        httpRequest: { url: `http://127.0.0.1:9/work/${id}`, httpMethod: 'POST' as const },
      });
      server.emulator.load({ queues: [{ name: ORDERS, tasks: [down('down-1'), down('down-2')] }] });
      const { body } = await server.post({ kind: 'fix-deployed', mode, verify: '4s', breaker: false });
      expect(body.counts.verdicts).toEqual({ succeeded: 0, failedAgain: 2, running: 0 });
    },
  );

  it('is off with verify 0s: dispatched, no verdict, no read-back', async () => {
    const s = await start(['ok-1']);
    const { body } = await s.post({ kind: 'fix-deployed', verify: '0s' });
    expect(body.tasks[0]).toEqual(expect.not.objectContaining({ verdict: expect.anything() }));
    // The fresh read is the only GetTask.
    expect(s.emulator.calls.filter((c) => c.method === 'GetTask')).toHaveLength(1);
  });

  it('ends the verification window at the time budget', async () => {
    const s = await start(['hang-1', 'hang-2'], { RERUN_TIME_BUDGET: '1500ms' });
    const started = Date.now();
    const { body } = await s.post({ kind: 'fix-deployed', verify: '30s' });
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(body.counts.verdicts).toEqual({ succeeded: 0, failedAgain: 0, running: 2 });
  });

  it('still gives one verdict per task when read-backs meet 503s and resets', async () => {
    const ids = ['ok-1', 'ok-2', 'ok-3', 'bad-1', 'bad-2', 'bad-3'];
    const s = await start(ids);
    s.emulator.injectFault({ method: 'GetTask', kind: 503, rate: 0.3 });
    s.emulator.injectFault({ method: 'GetTask', kind: 'reset', rate: 0.2 });
    const { body } = await s.post({ kind: 'fix-deployed', verify: '4s', breaker: false });
    const dispatched = body.tasks.filter((row: Json) => row.outcome === 'dispatched');
    for (const row of dispatched) expect(['succeeded', 'failed-again', 'running']).toContain(row.verdict);
    const { succeeded, failedAgain, running } = body.counts.verdicts;
    expect(succeeded + failedAgain + running).toBe(dispatched.length);
    expect(s.emulator.calls.filter((c) => c.method === 'RunTask')).toHaveLength(body.counts.dispatched);
  });
});

describe('the breaker', () => {
  it('holds the rest once most verdicts failed again, with one warning that says how to go on', async () => {
    const ids = Array.from({ length: 16 }, (_, i) => `bad-${i}`);
    const s = await start(ids, { RERUN_MAX_RATE: '4' });
    const { body } = await s.post({ kind: 'fix-deployed', verify: '5s' });
    expect(body.counts.verdicts.failedAgain).toBeGreaterThanOrEqual(5);
    expect(body.counts.held).toBeGreaterThan(0);
    expect(body.counts.dispatched + body.counts.held).toBe(16);
    const warnings = s.logs.lines().filter((l) => String(l.message).startsWith('breaker tripped'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.message).toMatch(/"breaker": false/);
    // Held tasks were never forced.
    expect(s.emulator.calls.filter((c) => c.method === 'RunTask')).toHaveLength(body.counts.dispatched);
  });

  it('does not trip when most reruns recover, and is off with breaker: false', async () => {
    const mostly = ['ok-1', 'ok-2', 'ok-3', 'ok-4', 'ok-5', 'ok-6', 'bad-1', 'bad-2'];
    const s = await start(mostly, { RERUN_MAX_RATE: '8' });
    const first = await s.post({ kind: 'fix-deployed', verify: '3s' });
    expect(first.body.counts.held).toBe(0);
    expect(first.body.counts.verdicts).toMatchObject({ succeeded: 6, failedAgain: 2 });

    s.emulator.load({
      queues: [
        {
          name: ORDERS,
          tasks: Array.from({ length: 12 }, (_, i) => failedTask(ORDERS, `bad-off-${i}`, target.url)),
        },
      ],
    });
    // At 4 per second the fifth verdict is in long before the twelfth RunTask (as in the test above,
    // where the breaker holds the rest): with the breaker off, all twelve are forced.
    const off = await s.post({
      kind: 'fix-deployed',
      verify: '3s',
      maxRate: 4,
      breaker: false,
      requestId: 'off',
      match: { taskIdGlob: 'bad-off-*' },
    });
    expect(off.body.counts).toMatchObject({ held: 0, dispatched: 12 });
    expect(off.body.counts.verdicts.failedAgain).toBeGreaterThanOrEqual(5);
  });
});

describe('queue concurrency', () => {
  it('never runs more forced attempts at once than the queue allows', async () => {
    const ids = ['hang-1', 'hang-2', 'hang-3', 'hang-4'];
    const s = await start(ids, { RERUN_TIME_BUDGET: '5s' }, { rateLimits: { maxConcurrentDispatches: 2 } });
    const { body } = await s.post({ kind: 'fix-deployed', verify: '1s' });
    expect(body.counts.dispatched).toBe(4);
    const starts = s.emulator.calls
      .filter((c) => c.method === 'RunTask')
      .map((c) => c.realStartMs)
      .sort((a, b) => a - b);
    // The third forced attempt waits until one of the first two has had its verification window.
    expect(starts[2]! - starts[0]!).toBeGreaterThanOrEqual(900);
  });

  it("holds two requests at once on one queue to the queue's bound together, not each", async () => {
    const s = await start(
      ['hang-1', 'hang-2', 'hang-3', 'hang-4'],
      { RERUN_TIME_BUDGET: '5s' },
      {
        rateLimits: { maxConcurrentDispatches: 2 },
      },
    );
    const request = (taskIds: string[]) => s.post({ kind: 'fix-deployed', verify: '1s', match: { taskIds } });
    const answers = await Promise.all([request(['hang-1', 'hang-2']), request(['hang-3', 'hang-4'])]);
    expect(answers.map(({ body }) => body.counts.dispatched)).toEqual([2, 2]);
    const starts = s.emulator.calls
      .filter((c) => c.method === 'RunTask')
      .map((c) => c.realStartMs)
      .sort((a, b) => a - b);
    expect(starts[2]! - starts[0]!).toBeGreaterThanOrEqual(900);
  });

  it('forces a queue that serialises its work (maxConcurrentDispatches 1) only with force', async () => {
    const s = await start(['ok-1'], {}, { rateLimits: { maxConcurrentDispatches: 1 } });
    const first = await s.post({ kind: 'fix-deployed' });
    expect(first.body.skipped).toEqual({ 'queue-serial': 1 });
    const forced = await s.post({ kind: 'fix-deployed', force: true });
    expect(forced.body.counts.dispatched).toBe(1);
  });
});
