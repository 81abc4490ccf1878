/**
 * A queue paused while its tasks wait out a RunTask quota push-back (docs/selection.md "A queue paused during
 * a run", docs/execution.md "Pacing"): the checks hold right before each RunTask, so a task that passed them
 * at its slot and then waited for the quota is not forced on the paused queue.
 */
import { describe, expect, it } from 'vitest';
import { QUEUE_RECHECK_MS } from '../../shared/run/queue-state.js';
import { rerunServersPerTest } from '../helpers/rerun-server.js';
import { failedTask, queueName } from '../helpers/seeds.js';
import { targetPerTest } from '../helpers/target-server.js';

const ORDERS = queueName('orders');
/** RunTask pace: one slot every 100 ms. */
const RATE = 10;
const PAUSE_AFTER_MS = 1_000;

const target = targetPerTest({ respond: () => 200 });
const servers = rerunServersPerTest();

describe('a queue paused while the RunTask quota is pushed back', () => {
  it('takes no RunTask call more than QUEUE_RECHECK_MS and one slot after the pause', async () => {
    // Three RunTask calls per 4 s: the fourth is refused and pushes every waiting task back past the pause.
    const server = await servers.start(
      { RERUN_QUEUES: ORDERS, RERUN_MAX_RATE: String(RATE) },
      { runTaskQuota: { limit: 3, windowMs: 4_000 } },
    );
    const tasks = Array.from({ length: 30 }, (_, i) => failedTask(ORDERS, `t${i}`, target.url));
    server.emulator.load({ queues: [{ name: ORDERS, tasks }] });
    let pausedAtMs = 0;
    const pausing = new Promise<void>((resolve) =>
      setTimeout(() => {
        pausedAtMs = performance.timeOrigin + performance.now();
        void fetch(`${server.emulator.url}/v2/${ORDERS}:pause`, { method: 'POST', body: '{}' }).then(() =>
          resolve(),
        );
      }, PAUSE_AFTER_MS),
    );
    const answer = await server.post({ kind: 'fix-deployed', queues: [ORDERS], verify: '0s' });
    await pausing;
    expect(answer.status, JSON.stringify(server.logs.lines().filter((l: any) => l.level >= 50))).toBe(200);
    const runTasks = server.emulator.calls.filter((c) => c.method === 'RunTask');
    expect(runTasks.some((c) => c.status === 429)).toBe(true);
    const late = runTasks.filter((c) => c.realStartMs > pausedAtMs + QUEUE_RECHECK_MS + 1000 / RATE);
    expect(late).toEqual([]);
    const paused = answer.body.tasks.filter((t: any) => t.skipReason === 'queue-paused');
    expect(paused.length).toBeGreaterThanOrEqual(20);
  });
});
