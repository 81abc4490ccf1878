/**
 * Tasks never acted on decide nothing, against a real emulator behind a real rerunHttp: they do not count
 * against the task cap (docs/configuration.md "RERUN_MAX_TASKS"), and a canary never forced leaves the rest
 * for the next delivery (docs/execution.md "Canary").
 */
import { describe, expect, it } from 'vitest';
import { targetPerTest } from '../helpers/target-server.js';
import { rerunServersPerTest } from '../helpers/rerun-server.js';
import { failedTask, queueName } from '../helpers/seeds.js';
import { runOutcomeOf } from '../../shared/run/settle.js';

const ORDERS = queueName('orders');

const target = targetPerTest({ respond: () => 200 });
const servers = rerunServersPerTest();

async function serverWith(count: number) {
  const server = await servers.start({ RERUN_QUEUES: ORDERS });
  const tasks = Array.from({ length: count }, (_, i) => failedTask(ORDERS, `t${i}`, target.url));
  server.emulator.load({ queues: [{ name: ORDERS, tasks }] });
  return server;
}

const runTasks = (s: Awaited<ReturnType<typeof serverWith>>) =>
  s.emulator.calls.filter((c) => c.method === 'RunTask');

describe('the task cap', () => {
  it('counts only tasks forced: a task found gone at its fresh read gives its place back', async () => {
    const s = await serverWith(4);
    // The first two fresh reads find their task gone (its own retry succeeded meanwhile).
    s.emulator.injectFault({ method: 'GetTask', kind: 404, times: 2 });
    const { status, body } = await s.post({ kind: 'fix-deployed', maxTasks: 2, verify: '0s' });
    expect(status).toBe(200);
    expect(body.counts).toMatchObject({ matched: 4, gone: 2, dispatched: 2, skipped: 0 });
    expect(body.skipped).toEqual({});
    expect(s.emulator.calls.filter((c) => c.method === 'RunTask')).toHaveLength(2);
    expect(body.continueWith).toBeUndefined();
    expect(runOutcomeOf(body)).toBe('recovered');
  });

  it('in a redrive, counts only tasks moved: a task another run holds gives its place back', async () => {
    const s = await serverWith(4);
    // Another run of this process is forcing the first two listed.
    for (const id of ['t0', 't1'])
      expect(s.runtime.claims.tryClaim(`${ORDERS}/tasks/${id}`, 0)).toBe('claimed');
    const { body } = await s.post({
      kind: 'fix-deployed',
      mode: 'redrive',
      redrive: { batch: false },
      maxTasks: 2,
      verify: '0s',
    });
    expect(body.counts).toMatchObject({ matched: 4, redriven: 2, skipped: 2 });
    expect(body.skipped).toEqual({ claimed: 2 });
    expect(
      s.emulator.calls.filter((c) => c.method === 'CreateTask' && c.name.startsWith(ORDERS)),
    ).toHaveLength(2);
    expect(body.continueWith).toBeUndefined();
  });

  it('stays hard: never more forced than the cap, the rest over-cap', async () => {
    const s = await serverWith(6);
    const { body } = await s.post({ kind: 'fix-deployed', maxTasks: 2, verify: '0s' });
    expect(body.counts).toMatchObject({ matched: 6, dispatched: 2, skipped: 4 });
    expect(body.skipped).toEqual({ 'over-cap': 4 });
    expect(s.emulator.calls.filter((c) => c.method === 'RunTask')).toHaveLength(2);
    expect(body.continueWith).toBeUndefined();
  });
});

describe('a canary never forced', () => {
  it('leaves the rest undone, not held; the next delivery chooses its canary again', async () => {
    const s = await serverWith(4);
    // The canary's fresh read finds it gone (its own retry succeeded meanwhile).
    s.emulator.injectFault({ method: 'GetTask', kind: 404, times: 1 });
    const event = { kind: 'fix-deployed', canary: { count: 1, wait: '2s' } };
    const { status, body } = await s.post(event);
    expect(status).toBe(200);
    expect(body.counts).toMatchObject({ matched: 4, gone: 1, held: 0, deferred: 3 });
    expect(body.canary).toMatchObject({ passed: false });
    expect(body.canary.tasks).toHaveLength(1);
    expect(runTasks(s)).toHaveLength(0);
    expect(body.continueWith).toMatchObject({ requestId: body.requestId, deferred: 3 });
    expect(runOutcomeOf(body)).toBe('incomplete');
    expect(s.logs.lines().some((l) => l.message === 'canary did not succeed; holding the rest')).toBe(false);

    // The same request again: a canary is forced this time, succeeds, and the rest go on.
    const again = await s.post(event);
    expect(again.body.requestId).toBe(body.requestId);
    expect(again.body.canary).toMatchObject({ passed: true });
    expect(again.body.counts).toMatchObject({ matched: 4, dispatched: 4, held: 0, deferred: 0 });
    expect(again.body.continueWith).toBeUndefined();
    expect(runTasks(s)).toHaveLength(4);
  });

  it('a request that matches nothing has no canary to judge: no warning, no canary in its report', async () => {
    const s = await serverWith(0);
    const { status, body } = await s.post({ kind: 'fix-deployed', canary: { count: 2, wait: '2s' } });
    expect(status).toBe(200);
    expect(body.counts).toMatchObject({ matched: 0, held: 0 });
    expect(body).not.toHaveProperty('canary');
    expect(runOutcomeOf(body)).toBe('recovered');
    expect(s.logs.lines().filter((l) => l.level === 'warn' || Number(l.level) >= 40)).toEqual([]);
  });
});
