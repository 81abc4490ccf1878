/**
 * Cloud Tasks' own time, as far as its answers tell it (docs/selection.md "Two clocks"). Every answer
 * carries a Date header: the server's time, to the second, when it answered, which was before the answer
 * arrived here. So the server's clock reads at least that header plus the local time since the answer
 * arrived: a lower bound that a rule comparing a time Cloud Tasks wrote (an attempt's dispatchTime) with
 * a time of ours can rely on whatever the local clock's error.
 */

/**
 * What a Date header cannot resolve: it gives whole seconds, so a bound taken from a few answers may lag
 * the server's time by up to this much, even with clocks that agree.
 */
export const DATE_RESOLUTION_MS = 1_000;

/** A bound older than this is measured again: a local clock may be stepped (NTP) under a long run. */
const BOUND_KEPT_MS = 60_000;

export class ServerClock {
  /** The largest (header − local time of arrival) seen lately: the server reads at least local + this. */
  #offsetMs: number | undefined;
  #measuredMs = 0;

  constructor(private readonly localNow: () => number = Date.now) {}

  /** Takes in one answer's Date header (an HTTP date; anything else is ignored). */
  observe(dateHeader: unknown): void {
    if (typeof dateHeader !== 'string') return;
    const dateMs = Date.parse(dateHeader);
    if (Number.isNaN(dateMs)) return;
    const nowMs = this.localNow();
    const offsetMs = dateMs - nowMs;
    if (
      this.#offsetMs === undefined ||
      offsetMs > this.#offsetMs ||
      nowMs - this.#measuredMs > BOUND_KEPT_MS
    ) {
      this.#offsetMs = offsetMs;
      this.#measuredMs = nowMs;
    }
  }

  /**
   * How long from now, by the local clock, until the server's clock surely reads `ms` or later: 0 when it
   * already does, undefined before any answer came.
   */
  msUntil(ms: number): number | undefined {
    if (this.#offsetMs === undefined) return undefined;
    return Math.max(0, ms - (this.localNow() + this.#offsetMs));
  }
}
