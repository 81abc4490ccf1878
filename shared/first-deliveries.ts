/**
 * The cutoffs of HTTP requests that carry none (SPEC 4): the first delivery's time, remembered by the
 * instance for an hour, so a resend of the same body is the same request with the same cutoff.
 */

/** How long an instance remembers a request's first delivery. */
export const FIRST_DELIVERY_MEMORY_MS = 60 * 60_000;
const MAX_REMEMBERED = 10_000;

export class FirstDeliveries {
  /** requestId -> cutoff; Map order is insertion order, so the oldest entry comes first. */
  readonly #cutoffs = new Map<string, { cutoffMs: number; expiresMs: number }>();

  /** The cutoff of the request's first delivery within the hour, else `receivedMs` (now remembered). */
  cutoffFor(requestId: string, receivedMs: number): number {
    const known = this.#cutoffs.get(requestId);
    if (known && known.expiresMs > receivedMs) return known.cutoffMs;
    this.#cutoffs.delete(requestId);
    this.#cutoffs.set(requestId, { cutoffMs: receivedMs, expiresMs: receivedMs + FIRST_DELIVERY_MEMORY_MS });
    for (const [id, entry] of this.#cutoffs) {
      if (this.#cutoffs.size <= MAX_REMEMBERED && entry.expiresMs > receivedMs) break;
      this.#cutoffs.delete(id);
    }
    return receivedMs;
  }
}
