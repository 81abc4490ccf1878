/**
 * Figure 4, overhead per RunTask call: against a zero-latency emulator with the quota out of the way, the
 * CPU time of the calling process per call. The callers run in child processes and the emulator (and the
 * task target it dispatches to) in this one, so the emulator's CPU is not counted: nothing is subtracted.
 */
import { startEmulator } from '../emulator/server.js';
import { baseEnv, runChild } from './child.js';
import type { OverheadChildResult, OverheadMode } from './overhead-child.js';
import { pairedRatio, summarize, type Summary } from './stats.js';
import { failedQueue, queueName, startTarget } from './world.js';

export interface OverheadOptions {
  readonly runs: number;
  /** RunTask calls per run. */
  readonly calls: number;
  /** Calls in flight for `client` and `fetch` (RERUN_CONCURRENCY for `rerun`). */
  readonly concurrency: number;
}

export interface OverheadResult {
  /** CPU microseconds per RunTask call. */
  readonly cpuUsPerCall: { client: Summary; fetch: Summary; rerun: Summary };
  readonly clientRatio: Summary;
  readonly rerunRatio: Summary;
  readonly wallMs: { client: Summary; fetch: Summary; rerun: Summary };
  readonly calls: number;
  readonly concurrency: number;
}

const MODES: readonly OverheadMode[] = ['client', 'fetch', 'rerun'];

export async function benchOverhead(
  options: OverheadOptions,
  progress: (line: string) => void,
): Promise<OverheadResult> {
  const target = await startTarget();
  const emulator = await startEmulator({
    port: 0,
    runTaskQuota: { limit: 1_000_000_000, windowMs: 60_000 },
    latencyMs: 0,
  });
  const results = new Map<OverheadMode, OverheadChildResult[]>(MODES.map((mode) => [mode, []]));
  try {
    for (let run = 0; run < options.runs; run++) {
      for (let i = 0; i < MODES.length; i++) {
        const mode = MODES[(run + i) % MODES.length]!;
        const queue = queueName(`overhead-${mode}-${run}`);
        emulator.load(failedQueue(queue, options.calls, target.url));
        const env = baseEnv({
          CLOUD_TASKS_EMULATOR_HOST: emulator.host,
          RERUN_QUEUES: queue,
          RERUN_MAX_RATE: '500',
          RERUN_CONCURRENCY: String(options.concurrency),
          RERUN_MAX_TASKS: String(options.calls),
          RERUN_TIME_BUDGET: '10m',
          RERUN_SERVICE_TIMEOUT: '15m',
          LOG_LEVEL: 'info',
        });
        const args = [mode, queue, String(options.calls), String(options.concurrency)];
        const result = await runChild<OverheadChildResult>('overhead-child.js', args, env, 300_000);
        if (result.calls !== options.calls) throw new Error(`overhead ${mode}: ${result.calls} calls`);
        results.get(mode)!.push(result);
        await emulator.settled();
      }
      progress(`overhead: run ${run + 1}/${options.runs}`);
    }
  } finally {
    await emulator.stop();
    await target.close();
  }
  const perCall = (mode: OverheadMode) => results.get(mode)!.map((r) => r.cpuUs / r.calls);
  const wall = (mode: OverheadMode) => summarize(results.get(mode)!.map((r) => r.wallMs));
  return {
    cpuUsPerCall: {
      client: summarize(perCall('client')),
      fetch: summarize(perCall('fetch')),
      rerun: summarize(perCall('rerun')),
    },
    clientRatio: pairedRatio(perCall('client'), perCall('fetch')),
    rerunRatio: pairedRatio(perCall('rerun'), perCall('fetch')),
    wallMs: { client: wall('client'), fetch: wall('fetch'), rerun: wall('rerun') },
    calls: options.calls,
    concurrency: options.concurrency,
  };
}
