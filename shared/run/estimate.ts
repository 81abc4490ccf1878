/**
 * A dry run's estimate (docs/redrive.md "When to choose it"): how long the matched tasks take to force with RunTask, at the pace that
 * applies (the quota is 60 per minute per project), and with redrive, at the queue's own rate. When RunTask
 * would take longer than the tasks' own backoff still has to run (they would retry by themselves first),
 * the report suggests redrive.
 */
import { rateOf } from './pace.js';
import type { Candidate, QueueRun } from './plan.js';

/** One queue's share of a dry run: the tasks that would be forced and the rates that would pace them. */
export interface QueueLoad {
  readonly tasks: number;
  /** RunTask calls per second for this queue: the lowest of the process's, the request's and the queue's. */
  readonly runRatePerSecond: number;
  /** Copies per second: the lowest of the request's and the queue's rate; undefined = not paced. */
  readonly copyRatePerSecond: number | undefined;
  /** The longest time left before one of these tasks is retried by Cloud Tasks itself, in seconds. */
  readonly backoffLeftSeconds: number;
}

export interface Estimate {
  readonly runSeconds: number;
  readonly redriveSeconds: number;
  /** The longest remaining backoff among the tasks: what doing nothing takes. */
  readonly backoffLeftSeconds: number;
  readonly suggestion?: string;
}

/** Cloud Tasks dispatches at most this many tasks per second per queue. */
const MAX_QUEUE_RATE = 500;

export function estimateOf(
  loads: readonly QueueLoad[],
  options: { readonly mode: 'run' | 'redrive'; readonly armingDelayMs: number },
): Estimate {
  const total = loads.reduce((sum, q) => sum + q.tasks, 0);
  // Queues are forced one after another through the one process-wide limiter.
  const runSeconds = round(loads.reduce((sum, q) => sum + q.tasks / q.runRatePerSecond, 0));
  const copySeconds = loads.reduce(
    (sum, q) => sum + q.tasks / Math.min(q.copyRatePerSecond ?? MAX_QUEUE_RATE, MAX_QUEUE_RATE),
    0,
  );
  const redriveSeconds = round(total > 0 ? copySeconds + options.armingDelayMs / 1000 : 0);
  const backoffLeftSeconds = round(Math.max(0, ...loads.map((q) => q.backoffLeftSeconds)));
  const worthIt = runSeconds > backoffLeftSeconds && runSeconds > 2 * redriveSeconds;
  return {
    runSeconds,
    redriveSeconds,
    backoffLeftSeconds,
    ...(options.mode === 'run' &&
      worthIt && {
        suggestion: `RunTask takes about ${formatSeconds(runSeconds)} for ${total} tasks at the allowed rate, longer than their own backoff (the last retries by itself within ${formatSeconds(backoffLeftSeconds)}); "mode": "redrive" copies them into new tasks that Cloud Tasks dispatches at the queue's own rate, in about ${formatSeconds(redriveSeconds)} (the copies have new names and attempt counts: see docs/redrive.md)`,
      }),
  };
}

/** `2h 47m`, `12m 30s`, `45s`. */
export function formatSeconds(seconds: number): string {
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

function round(seconds: number): number {
  return Math.round(seconds * 10) / 10;
}

/** A dry run's tasks that would be forced, by queue, with the latest of their next attempts. */
export class LoadCollector {
  readonly #byQueue = new Map<QueueRun, { tasks: number; latestDueMs: number }>();

  add(candidate: Candidate): void {
    const load = this.#byQueue.get(candidate.queue) ?? { tasks: 0, latestDueMs: 0 };
    const dueMs = Date.parse(candidate.listed.scheduleTime ?? '') || 0;
    this.#byQueue.set(candidate.queue, {
      tasks: load.tasks + 1,
      latestDueMs: Math.max(load.latestDueMs, dueMs),
    });
  }

  /** Each queue's load at `nowMs`. */
  loads(nowMs: number): QueueLoad[] {
    return [...this.#byQueue].map(([queue, { tasks, latestDueMs }]) => ({
      tasks,
      backoffLeftSeconds: Math.max(0, latestDueMs - nowMs) / 1000,
      runRatePerSecond: rateOf(queue.pacers)!,
      copyRatePerSecond: rateOf(queue.copyPacers),
    }));
  }
}
