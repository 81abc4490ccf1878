/**
 * The task cap (docs/configuration.md "RERUN_MAX_TASKS"): only tasks acted on count against it, against a
 * real emulator behind a real rerunHttp.
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
