/**
 * A queue paused during a run (docs/selection.md "A queue paused during a run"): the run stops forcing its
 * tasks within QUEUE_RECHECK_MS and one pacing slot, judged by the emulator's own call records.
 */
import { describe, expect, it } from 'vitest';
import { QUEUE_RECHECK_MS } from '../../shared/run/queue-state.js';
import { rerunServersPerTest, type RerunServer } from '../helpers/rerun-server.js';
import { failedTask, queueName } from '../helpers/seeds.js';
import { targetPerTest } from '../helpers/target-server.js';

const ORDERS = queueName('orders');
/** RunTask pace: one slot every 100 ms. */
const RATE = 10;

const target = targetPerTest({ respond: () => 200 });
const servers = rerunServersPerTest();
let server: RerunServer | undefined;

async function runPausedAfter(pauseAfterMs: number, force: boolean) {
  server = await servers.start({ RERUN_QUEUES: ORDERS, RERUN_MAX_RATE: String(RATE) });
  const tasks = Array.from({ length: 40 }, (_, i) => failedTask(ORDERS, `t${i}`, target.url));
  server.emulator.load({ queues: [{ name: ORDERS, tasks }] });
  const s = server;
  let pausedAtMs = 0;
  const pausing = new Promise<void>((resolve) =>
    setTimeout(() => {
      pausedAtMs = performance.timeOrigin + performance.now();
      void fetch(`${s.emulator.url}/v2/${ORDERS}:pause`, { method: 'POST', body: '{}' }).then(() =>
        resolve(),
      );
    }, pauseAfterMs),
  );
  const answer = await s.post({
    kind: 'fix-deployed',
    queues: [ORDERS],
    verify: '0s',
    ...(force && { force }),
  });
  await pausing;
  const runTasks = s.emulator.calls.filter((c) => c.method === 'RunTask');
  return { answer, pausedAtMs, runTasks };
}

describe('a queue paused during a run', () => {
  it('is no longer forced once its state is read again; the rest are skipped as queue-paused', async () => {
    const { answer, pausedAtMs, runTasks } = await runPausedAfter(1000, false);
    expect(answer.status).toBe(200);
    const late = runTasks.filter((c) => c.realStartMs > pausedAtMs + QUEUE_RECHECK_MS + 1000 / RATE);
    expect(late).toEqual([]);
    expect(runTasks.length).toBeGreaterThan(0);
    const paused = answer.body.tasks.filter((t: any) => t.skipReason === 'queue-paused');
    expect(paused.length).toBe(40 - answer.body.counts.dispatched);
    expect(paused.length).toBeGreaterThanOrEqual(5);
  });

  it('with force, every task is still forced', async () => {
    const { answer, runTasks } = await runPausedAfter(1000, true);
    expect(answer.status).toBe(200);
    expect(answer.body.counts.dispatched).toBe(40);
    expect(new Set(runTasks.map((c) => c.name)).size).toBe(40);
  });
});
