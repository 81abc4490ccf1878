/**
 * The verify stage (docs/execution.md "Verdicts"): RunTask answers before the target does, so each dispatched task
 * is read back until its forced attempt completes or the window ends. The forced attempt is recognised by
 * the counts (a responseCount above the fresh read's), not by clocks. Read-backs use GetTask (the general
 * quota), never the RunTask pace. The breaker (breaker.ts) acts on the verdicts as they arrive.
 */
import { toCloudTasksError, type CloudTasksClient, type Task } from '../cloud-tasks/client.js';
import type { Budget } from './budget.js';
import { OUT_OF_TIME } from './budget.js';
import type { TaskName } from '../cloud-tasks/names.js';
import type { Semaphore } from './pace.js';
import { actionFor } from '../cloud-tasks/retry.js';

export const VERDICTS = ['succeeded', 'failed-again', 'running'] as const;
export type Verdict = (typeof VERDICTS)[number];

/** A task's verdict, with the failed attempt's status when it failed again. */
export interface VerdictResult {
  /** Undefined when NOT_FOUND cannot tell success from a last attempt used up (`lastAttempts: true`). */
  readonly verdict: Verdict | undefined;
  readonly status?: string;
}

/** Who awaits a forced task's verdict: told once, by `verdict`, or by `failed` when the read-back threw. */
export interface VerdictListener {
  verdict(result: VerdictResult): void;
  failed(error: unknown): void;
}

/**
 * Reads a forced attempt back for at most `windowMs`, in the background, and tells the listener once.
 * A listener, not a promise: thousands of copies may await their verdicts at once, and a chain of promises
 * per copy costs more than the copy itself (docs/performance.md "Memory").
 */
export type ReadBack = (windowMs: number, listener: VerdictListener) => void;

/** Tells the listener what a verdict read in the background came to. */
export function tellWhenRead(verdict: Promise<VerdictResult>, listener: VerdictListener): void {
  verdict.then(
    (result) => listener.verdict(result),
    (error: unknown) => listener.failed(error),
  );
}

/** Read-backs of one task at most this often, after a first one soon after the dispatch. */
const MAX_READ_INTERVAL_MS = 2_000;
const MIN_READ_INTERVAL_MS = 100;
const FIRST_READ_MS = 500;

/** The read-back interval for a window: about ten reads per window, between 0.1 s and 2 s. */
export function readIntervalMs(windowMs: number): number {
  return Math.min(MAX_READ_INTERVAL_MS, Math.max(MIN_READ_INTERVAL_MS, Math.round(windowMs / 10)));
}

export interface VerifierDeps {
  readonly tasks: CloudTasksClient;
  /** Bounds read-backs in flight across the run. */
  readonly reads: Semaphore;
  readonly budget: Budget;
}

export class Verifier {
  /** GetTask calls made for verdicts (the bench reports the cost per verified task). */
  reads = 0;

  constructor(private readonly deps: VerifierDeps) {}

  /**
   * Reads the task back until its forced attempt completes, NOT_FOUND, or the window ends (never past the
   * budget). The window starts at `dueMs`, when the attempt falls due (a redrive copy's arming delay).
   * `goneMeansSucceeded` is false when the forced attempt may have been its last.
   */
  async verdictOf(
    name: TaskName,
    fresh: Task,
    windowMs: number,
    goneMeansSucceeded: boolean,
    dueMs: number = this.deps.budget.now(),
  ): Promise<VerdictResult> {
    const { budget } = this.deps;
    const startMs = Math.max(budget.now(), dueMs);
    const untilMs = Math.min(startMs + windowMs, budget.deadlineMs);
    const intervalMs = readIntervalMs(windowMs);
    // Most targets answer within a second: read soon once, then every interval.
    let nextReadMs = startMs + Math.min(FIRST_READ_MS, intervalMs);
    while (budget.now() < untilMs) {
      await budget.sleepUntil(Math.min(nextReadMs, untilMs));
      nextReadMs = budget.now() + intervalMs;
      const read = await this.#readOnce(name, fresh, goneMeansSucceeded, untilMs);
      if (read === OUT_OF_TIME) break;
      if (read) return read;
    }
    return { verdict: 'running' };
  }

  /**
   * One read of a task whose window has ended: what it shows, `running` when that tells nothing (a
   * redrive copy that a listing past its window missed once, copy-verdicts.ts).
   */
  async lastRead(name: TaskName, fresh: Task, goneMeansSucceeded: boolean): Promise<VerdictResult> {
    const read = await this.#readOnce(name, fresh, goneMeansSucceeded, this.deps.budget.deadlineMs);
    return read === OUT_OF_TIME || read === undefined ? { verdict: 'running' } : read;
  }

  /**
   * One GetTask within the calls in flight: a verdict when the forced attempt completed or the task is
   * gone; undefined when the read tells nothing (not yet completed, or the read failed).
   */
  async #readOnce(
    name: TaskName,
    fresh: Task,
    goneMeansSucceeded: boolean,
    untilMs: number,
  ): Promise<VerdictResult | undefined | typeof OUT_OF_TIME> {
    const { budget, reads, tasks } = this.deps;
    if (!(await reads.acquire(untilMs, budget.now()))) return OUT_OF_TIME;
    try {
      this.reads++;
      const task = await budget.race(tasks.getTask(name));
      if (task === OUT_OF_TIME) return OUT_OF_TIME;
      if (!hasCompletedSince(task, fresh)) return undefined;
      const status = task.lastAttempt?.responseStatus;
      return { verdict: 'failed-again', ...(status?.message && { status: status.message }) };
    } catch (error) {
      if (actionFor(toCloudTasksError(error)) !== 'gone') return undefined;
      return goneMeansSucceeded
        ? { verdict: 'succeeded' }
        : { verdict: undefined, status: 'gone: succeeded, or its last attempt failed' };
    } finally {
      reads.release();
    }
  }
}

/**
 * Whether an attempt completed since the fresh read (and failed: the task is still there): a higher
 * responseCount, or a higher dispatchCount whose last attempt has ended. An attempt that got no response
 * (a timeout, a refused connection) may not count in responseCount, but it ends all the same.
 */
export function hasCompletedSince(task: Task, fresh: Task): boolean {
  if ((task.responseCount ?? 0) > (fresh.responseCount ?? 0)) return true;
  return (
    (task.dispatchCount ?? 0) > (fresh.dispatchCount ?? 0) && task.lastAttempt?.responseTime !== undefined
  );
}
