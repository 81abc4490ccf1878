/**
 * A queue whose rate is lowered during a run (docs/execution.md "Pacing"): the run reads the queue's state
 * again within QUEUE_RECHECK_MS, and its RunTask calls go at the new rate from then on, judged by the
 * emulator's own call records.
 */
import { describe, expect, it } from 'vitest';
import { QUEUE_RECHECK_MS } from '../../shared/run/queue-state.js';
import { rerunServersPerTest } from '../helpers/rerun-server.js';
import { failedTask, queueName } from '../helpers/seeds.js';
import { targetPerTest } from '../helpers/target-server.js';

const ORDERS = queueName('orders');
const CHANGE_AFTER_MS = 1_000;
/** The queue's rate once lowered: one call every 2 s. */
const LOWERED_RATE = 0.5;

const target = targetPerTest({ respond: () => 200 });
const servers = rerunServersPerTest();

describe('a queue whose rate is lowered during a run', () => {
  it('is forced at the new rate once its state is read again', async () => {
    const server = await servers.start({
      RERUN_QUEUES: ORDERS,
      RERUN_MAX_RATE: '100',
      // The budget ends the run: the rest of the tasks would take a minute at the lowered rate.
      RERUN_TIME_BUDGET: '8s',
    });
    const tasks = Array.from({ length: 40 }, (_, i) => failedTask(ORDERS, `t${i}`, target.url));
    const rateLimits = { maxDispatchesPerSecond: 10, maxConcurrentDispatches: 50 };
    server.emulator.load({ queues: [{ name: ORDERS, rateLimits, tasks }] });
    let changedAtMs = 0;
    const changing = new Promise<number>((resolve) =>
      setTimeout(() => {
        changedAtMs = performance.timeOrigin + performance.now();
        const url = `${server.emulator.url}/v2/${ORDERS}?updateMask=rateLimits.maxDispatchesPerSecond`;
        const body = JSON.stringify({ rateLimits: { maxDispatchesPerSecond: LOWERED_RATE } });
        void fetch(url, { method: 'PATCH', body }).then((r) => resolve(r.status));
      }, CHANGE_AFTER_MS),
    );
    const answer = await server.post({ kind: 'fix-deployed', queues: [ORDERS], verify: '0s' });
    expect(await changing).toBe(200);
    expect(answer.status).toBe(200);
    const calls = server.emulator.calls
      .filter((c) => c.method === 'RunTask')
      .map((c) => c.realStartMs)
      .filter((ms) => ms > changedAtMs + QUEUE_RECHECK_MS + 100);
    expect(calls.length).toBeGreaterThanOrEqual(2);
    const gaps = calls.slice(1).map((ms, i) => ms - calls[i]!);
    expect(Math.min(...gaps)).toBeGreaterThanOrEqual(1000 / LOWERED_RATE);
  });
});
