/**
 * Pacing for RunTask: evenly spaced slots at a rate, and a bound on calls in flight.
 *
 * Hand-written rather than a library (p-throttle, bottleneck): a run needs one slot common to several
 * limiters (the process-wide quota, the queue's own rate, the request's rate), refused when it would fall
 * past the time budget, and pushed back when Cloud Tasks answers RESOURCE_EXHAUSTED. That is a few
 * lines here and awkward to express through a library's queue.
 */

/** Slots spread a little wider than the rate, so late timers and network jitter never overshoot a quota window. */
const SPACING_MARGIN = 1.01;

/**
 * Hands out evenly spaced slots at `ratePerSecond`. The rate may change (the queue's own, read again during a
 * run: docs/execution.md "Pacing"): the next slot and call come one new interval after the last ones.
 */
export class Pacer {
  #lastSlotMs = Number.NEGATIVE_INFINITY;
  #lastCallMs = Number.NEGATIVE_INFINITY;
  #pushedBackMs = 0;
  #ratePerSecond = 0;
  #intervalMs = 0;

  constructor(ratePerSecond: number) {
    this.setRate(ratePerSecond);
  }

  get ratePerSecond(): number {
    return this.#ratePerSecond;
  }

  get intervalMs(): number {
    return this.#intervalMs;
  }

  /** Changes the rate from the next slot and call on. */
  setRate(ratePerSecond: number): void {
    this.#ratePerSecond = ratePerSecond;
    this.#intervalMs = (1000 / ratePerSecond) * SPACING_MARGIN;
  }

  /** The earliest instant this pacer allows a call at or after `nowMs`. */
  earliestMs(nowMs: number): number {
    return Math.max(nowMs, this.#lastSlotMs + this.#intervalMs, this.#pushedBackMs);
  }

  /** Marks the slot at `slotMs` as used. */
  take(slotMs: number): void {
    this.#lastSlotMs = Math.max(this.#lastSlotMs, slotMs);
  }

  /** No slot before `untilMs` (the quota is exhausted until then). */
  pushBack(untilMs: number): void {
    this.#pushedBackMs = Math.max(this.#pushedBackMs, untilMs);
  }

  /** The earliest instant the next call itself may go out: calls stay spaced even when slots ran late. */
  earliestCallMs(nowMs: number): number {
    return Math.max(nowMs, this.#lastCallMs + this.#intervalMs, this.#pushedBackMs);
  }

  /** Marks a call as going out at `callMs`. */
  called(callMs: number): void {
    this.#lastCallMs = Math.max(this.#lastCallMs, callMs);
  }
}

/** The rate the pacers allow together: the lowest of theirs; undefined when there is none. */
export function rateOf(pacers: readonly Pacer[]): number | undefined {
  return pacers.length > 0 ? Math.min(...pacers.map((p) => p.ratePerSecond)) : undefined;
}

/** The earliest instant at or after `nowMs` that every pacer allows. */
export function earliestSlotMs(pacers: readonly Pacer[], nowMs: number): number {
  return pacers.reduce((slot, pacer) => pacer.earliestMs(slot), nowMs);
}

/** Whether every pacer allows a slot by `deadlineMs` (nothing reserved). */
export function hasSlot(pacers: readonly Pacer[], nowMs: number, deadlineMs: number): boolean {
  return earliestSlotMs(pacers, nowMs) <= deadlineMs;
}

/**
 * Reserves the earliest instant every pacer allows, unless it falls after `deadlineMs`; returns the
 * slot, or undefined (nothing reserved).
 */
export function reserveSlot(pacers: readonly Pacer[], nowMs: number, deadlineMs: number): number | undefined {
  const slotMs = earliestSlotMs(pacers, nowMs);
  if (slotMs > deadlineMs) return undefined;
  for (const pacer of pacers) pacer.take(slotMs);
  return slotMs;
}

/**
 * Reserves the instant the call itself goes out, at or after its slot: a slot reserved ahead is kept, but
 * work between slot and call (a fresh read) that ran late never bunches calls into one quota window.
 * Undefined (nothing reserved) when that instant falls after `deadlineMs`.
 */
export function reserveCall(pacers: readonly Pacer[], nowMs: number, deadlineMs: number): number | undefined {
  const callMs = pacers.reduce((at, pacer) => pacer.earliestCallMs(at), nowMs);
  if (callMs > deadlineMs) return undefined;
  for (const pacer of pacers) pacer.called(callMs);
  return callMs;
}

/**
 * A counting semaphore: at most `limit` units held at once (one per holder, or a holder's bytes), waiters
 * served in order. A holder asking for more than the whole limit gets it once nothing else is held.
 */
export class Semaphore {
  private active = 0;
  private readonly waiters: { readonly units: number; readonly wake: () => void }[] = [];

  constructor(private limitNow: number) {}

  get limit(): number {
    return this.limitNow;
  }

  /** Changes the limit: a lower one lets no one in until enough is released; the holders keep their units. */
  setLimit(limit: number): void {
    this.limitNow = limit;
    this.#wakeWaiters();
  }

  /** Whether more units are held than the limit allows (it was lowered meanwhile). */
  get overLimit(): boolean {
    return this.active > this.limitNow;
  }

  /**
   * Resolves once `units` are free; the caller must release them exactly once afterwards (in parts if it
   * likes). Resolves false (nothing held) when `untilMs` passes first.
   */
  acquire(untilMs = Number.POSITIVE_INFINITY, nowMs: number = Date.now(), units = 1): Promise<boolean> {
    if (this.waiters.length === 0 && this.#fits(units)) {
      this.active += units;
      return Promise.resolve(true);
    }
    if (untilMs <= nowMs) return Promise.resolve(false);
    return new Promise((resolve) => {
      const waiter = {
        units,
        wake: (): void => {
          clearTimeout(timer);
          resolve(true);
        },
      };
      const timer =
        untilMs === Number.POSITIVE_INFINITY
          ? undefined
          : setTimeout(() => {
              const index = this.waiters.indexOf(waiter);
              if (index >= 0) this.waiters.splice(index, 1);
              resolve(false);
              // A large waiter that gave up may have held back smaller ones behind it.
              this.#wakeWaiters();
            }, untilMs - nowMs);
      this.waiters.push(waiter);
    });
  }

  release(units = 1): void {
    this.active -= units;
    this.#wakeWaiters();
  }

  /**
   * A holder of one unit gives it up and waits for it behind the waiters, as a holder over a lowered limit
   * does. Resolves false when `untilMs` passes first: the unit is held again all the same, for the holder
   * to release once.
   */
  async requeue(untilMs: number, nowMs: number): Promise<boolean> {
    this.release();
    if (await this.acquire(untilMs, nowMs)) return true;
    this.active += 1;
    return false;
  }

  /** Runs `work` holding a place. */
  async with<T>(work: () => Promise<T>): Promise<T> {
    await this.acquire();
    try {
      return await work();
    } finally {
      this.release();
    }
  }

  #fits(units: number): boolean {
    return this.active === 0 || this.active + units <= this.limitNow;
  }

  /** Hands the free units to the waiters in order, while the first one fits. */
  #wakeWaiters(): void {
    for (
      let first = this.waiters[0];
      first !== undefined && this.#fits(first.units);
      first = this.waiters[0]
    ) {
      this.waiters.shift();
      this.active += first.units;
      first.wake();
    }
  }
}

/**
 * Forced attempts still running, per queue and process-wide (docs/execution.md "Queue concurrency"): every request
 * of the process that forces a queue shares one bound, the queue's maxConcurrentDispatches. A limit read
 * again changes that one bound, so runs that read the old and the new limit never exceed the new one together.
 */
export class QueueAttempts {
  readonly #byQueue = new Map<string, Semaphore>();

  /** The bound of `queue`, its limit set to `limit`. */
  of(queue: string, limit: number): Semaphore {
    const known = this.#byQueue.get(queue);
    if (known) {
      known.setLimit(limit);
      return known;
    }
    const bound = new Semaphore(limit);
    this.#byQueue.set(queue, bound);
    return bound;
  }
}
