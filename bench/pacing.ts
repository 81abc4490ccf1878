import { randomUUID } from 'node:crypto';
/**
 * Figure 1, pacing: the real core, in this process, reruns N failed tasks against an emulator whose RunTask
 * quota is the real one (60 per minute) compressed in time, with RERUN_MAX_RATE at that quota. From the
 * emulator's own call record: achieved rate over the allowed rate, and the RESOURCE_EXHAUSTED (429) answers.
 */
import { startEmulator } from '../emulator/server.js';
import { parseRerunEvent } from '../shared/triggers/events.js';
import { createRuntime, rerun } from '../shared/platform/runtime.js';
import { summarize, type Summary } from './stats.js';
import { failedQueue, queueName, startTarget } from './world.js';

export interface PacingOptions {
  readonly runs: number;
  /** Tasks per run: with `ratePerSecond` this sets the length of a run. */
  readonly tasks: number;
  /** The scaled quota, in RunTask calls per second (RERUN_MAX_RATE is set to the same). */
  readonly ratePerSecond: number;
  /** Quota window: the real one is 60 s; compressed so a run spans several windows. */
  readonly windowMs: number;
  /** Latency the emulator adds to every call (the real RunTask answers in tens of milliseconds). */
  readonly latencyMs: number;
  /**
   * Requests served at once by the one process, each on its own queue of `tasks / requests` tasks: they
   * share the process-wide limiter (docs/execution.md "Pacing"), so together they must still keep to the quota.
   */
  readonly requests: number;
}

export interface PacingResult {
  readonly utilization: Summary;
  readonly achievedPerSecond: Summary;
  readonly answers429: Summary;
  /** GetTask calls spent on verdicts per verified task (verification is on, as by default). */
  readonly readsPerVerifiedTask: Summary;
  readonly quota: { limit: number; windowMs: number; ratePerSecond: number };
  readonly tasks: number;
  readonly requests: number;
}

/** Runs the pacing bench; each run gets a fresh emulator (a fresh quota window) and a fresh runtime. */
export async function benchPacing(options: PacingOptions): Promise<PacingResult> {
  const limit = Math.round((options.ratePerSecond * options.windowMs) / 1000);
  const target = await startTarget();
  const utilization: number[] = [];
  const achieved: number[] = [];
  const rejected: number[] = [];
  const readsPerVerdict: number[] = [];
  try {
    for (let run = 0; run < options.runs; run++) {
      const perRequest = Math.floor(options.tasks / options.requests);
      const queues = Array.from({ length: options.requests }, (_, i) => queueName(`pacing-${run}-${i}`));
      const emulator = await startEmulator({
        port: 0,
        runTaskQuota: { limit, windowMs: options.windowMs },
        latencyMs: options.latencyMs,
        seed: { queues: queues.flatMap((queue) => failedQueue(queue, perRequest, target.url).queues) },
      });
      try {
        const runtime = createRuntime(
          {
            RERUN_QUEUES: queues.join(','),
            RERUN_MAX_RATE: String(options.ratePerSecond),
            RERUN_MAX_TASKS: String(perRequest),
            RERUN_TIME_BUDGET: '10m',
            RERUN_SERVICE_TIMEOUT: '15m',
            CLOUD_TASKS_EMULATOR_HOST: emulator.host,
            LOG_LEVEL: 'info',
          },
          { logDestination: { write: () => undefined } },
        );
        const reports = await Promise.all(
          queues.map(async (queue) => {
            const parsed = parseRerunEvent(
              { kind: 'fix-deployed', queues: [queue] },
              { receivedMs: Date.now(), requestId: randomUUID() },
            );
            if (!parsed.success) throw parsed.error;
            const result = await rerun(runtime, parsed.data);
            if (!result.ok) throw new Error(`pacing: refused ${result.message}`);
            return result.report;
          }),
        );
        const dispatched = reports.reduce((sum, report) => sum + report.counts.dispatched, 0);
        if (dispatched !== perRequest * options.requests) {
          throw new Error(`pacing: ${dispatched} of ${perRequest * options.requests} tasks dispatched`);
        }
        const runs = emulator.calls.filter((call) => call.method === 'RunTask');
        const starts = runs.map((call) => call.realStartMs).sort((a, b) => a - b);
        const spanS = (starts.at(-1)! - starts[0]!) / 1000;
        const rate = (starts.length - 1) / spanS;
        achieved.push(rate);
        utilization.push(rate / options.ratePerSecond);
        rejected.push(runs.filter((call) => call.status === 429).length);
        // Every forced task costs one fresh read; the rest of the GetTask calls are the read-backs.
        const reads = emulator.calls.filter((call) => call.method === 'GetTask').length - dispatched;
        const verified = reports.reduce(
          (sum, report) => sum + report.counts.verdicts.succeeded + report.counts.verdicts.failedAgain,
          0,
        );
        readsPerVerdict.push(reads / Math.max(1, verified));
      } finally {
        await emulator.stop();
      }
    }
  } finally {
    await target.close();
  }
  return {
    utilization: summarize(utilization),
    achievedPerSecond: summarize(achieved),
    answers429: summarize(rejected),
    readsPerVerifiedTask: summarize(readsPerVerdict),
    quota: { limit, windowMs: options.windowMs, ratePerSecond: options.ratePerSecond },
    tasks: options.tasks,
    requests: options.requests,
  };
}
