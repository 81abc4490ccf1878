/**
 * A run's time budget (docs/execution.md "Time budget"): every wait of a run (pacing, quota, backoff, canary, read-back) ends at its
 * deadline, so the answer comes within RERUN_TIME_BUDGET.
 */
import { setTimeout as sleep } from 'node:timers/promises';

/** What a call raced against the deadline gives when the deadline came first. */
export const OUT_OF_TIME = Symbol('out of time');

/** The longest delay a Node timer takes (a longer one fires at once). */
const MAX_TIMER_MS = 2 ** 31 - 1;

export class Budget {
  readonly startMs: number;
  readonly deadlineMs: number;

  /**
   * @param budgetMs Infinity (or past a timer's range, 24 days): no deadline (a command line on a terminal).
   * @param stop aborted when the run is to stop early (Ctrl-C): no new task starts, started ones finish.
   */
  constructor(
    budgetMs: number,
    readonly now: () => number = Date.now,
    private readonly stop?: AbortSignal,
  ) {
    this.startMs = now();
    this.deadlineMs = budgetMs > MAX_TIMER_MS ? Number.POSITIVE_INFINITY : this.startMs + budgetMs;
  }

  /** Milliseconds left, never below 0. */
  leftMs(): number {
    return Math.max(0, this.deadlineMs - this.now());
  }

  /** Whether no new task may start: the deadline passed, or the run was told to stop. */
  isOver(): boolean {
    return this.stop?.aborted === true || this.now() >= this.deadlineMs;
  }

  /** Sleeps until `untilMs`, or the deadline, or `signal` aborting, whichever comes first. */
  sleepUntil(untilMs: number, signal?: AbortSignal): Promise<void> {
    const ms = Math.min(untilMs, this.deadlineMs) - this.now();
    if (ms <= 0 || signal?.aborted) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(wake, ms);
      const forget = signal && wakeOnAbort(signal, wake);
      function wake(): void {
        clearTimeout(timer);
        forget?.();
        resolve();
      }
    });
  }

  /**
   * The call's result, or OUT_OF_TIME when the deadline comes first (the call goes on unobserved: only
   * reads and calls whose late effect the next delivery's fresh read sees are raced).
   */
  async race<T>(call: Promise<T>): Promise<T | typeof OUT_OF_TIME> {
    const left = this.leftMs();
    // Past a timer's range (no budget): the call's own timeout bounds it.
    if (left > MAX_TIMER_MS) return call;
    if (left <= 0) {
      call.catch(() => undefined);
      return OUT_OF_TIME;
    }
    const controller = new AbortController();
    const timer: Promise<typeof OUT_OF_TIME> = sleep(left, undefined, { signal: controller.signal }).then(
      () => OUT_OF_TIME,
      () => OUT_OF_TIME,
    );
    try {
      const winner = await Promise.race([call, timer]);
      if (winner === OUT_OF_TIME) call.catch(() => undefined);
      return winner;
    } finally {
      controller.abort();
    }
  }
}

/**
 * The sleepers of each signal, woken by one listener of its own: thousands of tasks sleep until their slot
 * on the run's hold signal at once, and an abort listener each costs more than the sleep.
 */
const sleepersOf = new WeakMap<AbortSignal, Set<() => void>>();

/** Calls `wake` once `signal` aborts; the function returned forgets it. */
function wakeOnAbort(signal: AbortSignal, wake: () => void): () => void {
  const sleepers = sleepersOf.get(signal) ?? sleepersListeningTo(signal);
  sleepers.add(wake);
  return () => sleepers.delete(wake);
}

function sleepersListeningTo(signal: AbortSignal): Set<() => void> {
  const sleepers = new Set<() => void>();
  signal.addEventListener('abort', () => sleepers.forEach((wake) => wake()), { once: true });
  sleepersOf.set(signal, sleepers);
  return sleepers;
}
