/**
 * The RunTask quota: at most `limit` calls per `windowMs` per project, over a sliding window (Cloud Tasks
 * allows 60 force-run requests per minute per project).
 * https://cloud.google.com/tasks/docs/quotas
 */

/** The answer of {@link SlidingWindowQuota.take}. */
export type QuotaDecision = { ok: true } | { ok: false; retryAfterMs: number };

/** A per-key sliding-window call counter. */
export class SlidingWindowQuota {
  readonly #calls = new Map<string, number[]>();

  constructor(
    readonly limit: number,
    readonly windowMs: number,
  ) {}

  /** Counts one call for `key` at `nowMs` if a slot is free; otherwise says when the oldest slot frees. */
  take(key: string, nowMs: number): QuotaDecision {
    let calls = this.#calls.get(key);
    if (!calls) this.#calls.set(key, (calls = []));
    const windowStart = nowMs - this.windowMs;
    let expired = 0;
    while (expired < calls.length && calls[expired]! <= windowStart) expired++;
    if (expired > 0) calls.splice(0, expired);
    if (calls.length >= this.limit) {
      const oldest = calls[calls.length - this.limit]!;
      return { ok: false, retryAfterMs: Math.max(1, oldest + this.windowMs - nowMs) };
    }
    calls.push(nowMs);
    return { ok: true };
  }
}
