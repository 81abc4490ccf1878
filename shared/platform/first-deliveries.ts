/**
 * The cutoff of each request's first delivery, remembered by the instance for an hour (SPEC 4, 6): a resend
 * of an HTTP body without a cutoff, or with one clamped to the time received, is the same request with the
 * same cutoff.
 */

/** How long an instance remembers a request's first delivery. */
export const FIRST_DELIVERY_MEMORY_MS = 60 * 60_000;
const MAX_REMEMBERED = 10_000;

export class FirstDeliveries {
  /** requestId -> cutoff; Map order is insertion order, so the oldest entry comes first. */
  readonly #cutoffs = new Map<string, { cutoffMs: number; expiresMs: number }>();

  /**
   * The cutoff of the request's first delivery within the hour, else `cutoffMs` (now remembered).
   * `nowMs` is when this delivery was received.
   */
  cutoffFor(requestId: string, cutoffMs: number, nowMs: number = Date.now()): number {
    const known = this.#cutoffs.get(requestId);
    if (known && known.expiresMs > nowMs) return known.cutoffMs;
    this.#cutoffs.delete(requestId);
    this.#cutoffs.set(requestId, { cutoffMs, expiresMs: nowMs + FIRST_DELIVERY_MEMORY_MS });
    for (const [id, entry] of this.#cutoffs) {
      if (this.#cutoffs.size <= MAX_REMEMBERED && entry.expiresMs > nowMs) break;
      this.#cutoffs.delete(id);
    }
    return cutoffMs;
  }
}
