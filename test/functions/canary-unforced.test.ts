/**
 * A canary never forced decides nothing (docs/execution.md "Canary"), against a real emulator behind a real
 * rerunHttp.
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
