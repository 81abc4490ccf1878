/**
 * The emulator's notion of time: the real clock in normal use, a manual clock in tests so that no test
 * sleeps through real backoffs.
 */

/** A cancellable timer. */
export interface Timer {
  cancel(): void;
}

/** A source of time and timers; the emulator reads every timestamp and schedules every wake-up through it. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Calls `fn` once `ms` milliseconds of this clock's time have passed. */
  setTimeout(fn: () => void, ms: number): Timer;
  /**
   * Lets the clock know about work in progress (a dispatch) that it may want to wait for before moving
   * time on. Optional: the real clock ignores it.
   */
  track?(work: Promise<unknown>): void;
}

// Node's timers overflow above 2^31 - 1 ms (about 24.8 days) and fire at once; longer waits are chained.
const MAX_TIMER_MS = 2 ** 31 - 1;

/** The wall clock: `Date.now()` and Node's timers (unref'd, so they never keep a process alive). */
export class RealClock implements Clock {
  now(): number {
    return Date.now();
  }

  setTimeout(fn: () => void, ms: number): Timer {
    const dueMs = Date.now() + Math.max(0, ms);
    let handle: NodeJS.Timeout | undefined;
    const arm = (): void => {
      const waitMs = Math.min(MAX_TIMER_MS, Math.max(0, dueMs - Date.now()));
      handle = setTimeout(() => {
        if (Date.now() < dueMs) arm();
        else fn();
      }, waitMs);
      handle.unref();
    };
    arm();
    return { cancel: () => clearTimeout(handle) };
  }
}

interface ManualTimer {
  readonly atMs: number;
  readonly seq: number;
  readonly fn: () => void;
}

/** Options of a {@link ManualClock}. */
export interface ManualClockOptions {
  /**
   * How long (real milliseconds) `advance` and `set` wait for tracked work, such as a dispatch whose target
   * never answers, before moving time on anyway. Default 2000.
   */
  settleTimeoutMs?: number;
}

/**
 * A clock that only moves when told to. `advance` fires due timers in time order and, after each, waits
 * for the dispatches they started (real HTTP to a local target) to finish, so a test sees a deterministic
 * sequence of attempts without sleeping through backoffs.
 */
export class ManualClock implements Clock {
  #nowMs: number;
  #seq = 0;
  #timers: ManualTimer[] = [];
  readonly #work = new Set<Promise<unknown>>();
  readonly #settleTimeoutMs: number;

  constructor(startMs: number, options: ManualClockOptions = {}) {
    this.#nowMs = startMs;
    this.#settleTimeoutMs = options.settleTimeoutMs ?? 2000;
  }

  now(): number {
    return this.#nowMs;
  }

  setTimeout(fn: () => void, ms: number): Timer {
    const timer: ManualTimer = { atMs: this.#nowMs + Math.max(0, ms), seq: this.#seq++, fn };
    this.#timers.push(timer);
    return {
      cancel: () => {
        this.#timers = this.#timers.filter((t) => t !== timer);
      },
    };
  }

  track(work: Promise<unknown>): void {
    this.#work.add(work);
    const done = (): void => {
      this.#work.delete(work);
    };
    work.then(done, done);
  }

  /** Moves time forward by `ms`, firing every timer due on the way, in order. */
  async advance(ms: number): Promise<void> {
    await this.set(this.#nowMs + ms);
  }

  /**
   * Moves time to `ms` (never backwards), firing every timer due on the way, in order.
   * @throws RangeError if `ms` is before the current time.
   */
  async set(ms: number): Promise<void> {
    if (ms < this.#nowMs) throw new RangeError(`ManualClock cannot go back from ${this.#nowMs} to ${ms}`);
    for (;;) {
      await this.settle();
      const next = this.#nextDue(ms);
      if (!next) break;
      this.#timers = this.#timers.filter((t) => t !== next);
      this.#nowMs = next.atMs;
      next.fn();
    }
    this.#nowMs = ms;
    await this.settle();
  }

  /** Waits for tracked work to finish (each wait bounded by `settleTimeoutMs` of real time). */
  async settle(): Promise<void> {
    while (this.#work.size > 0) {
      let timeout: NodeJS.Timeout | undefined;
      const timedOut = await Promise.race([
        Promise.allSettled([...this.#work]).then(() => false),
        new Promise<boolean>((resolve) => {
          timeout = setTimeout(() => resolve(true), this.#settleTimeoutMs);
        }),
      ]);
      clearTimeout(timeout);
      if (timedOut) return;
    }
    // Let callbacks queued by the finished work (timers set at "now") run before the caller looks.
    await new Promise<void>((resolve) => setImmediate(resolve));
  }

  #nextDue(limitMs: number): ManualTimer | undefined {
    let best: ManualTimer | undefined;
    for (const t of this.#timers) {
      if (t.atMs > limitMs) continue;
      if (!best || t.atMs < best.atMs || (t.atMs === best.atMs && t.seq < best.seq)) best = t;
    }
    return best;
  }
}
