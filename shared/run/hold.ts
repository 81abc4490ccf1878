/**
 * Whether the rest of a run is held (a canary did not succeed, or the breaker tripped), and a signal that
 * aborts once it is, or once the run is told to stop, so tasks waiting for their slot stop waiting: held
 * ones are then held, and the others find the budget over and are deferred.
 */
export class Hold {
  readonly #waking = new AbortController();
  #held = false;

  constructor(stop?: AbortSignal) {
    stop?.addEventListener('abort', () => this.#waking.abort(), { once: true });
  }

  /** Holds every task not yet forced. */
  hold(): void {
    this.#held = true;
    this.#waking.abort();
  }

  get isHeld(): boolean {
    return this.#held;
  }

  /** Aborts when the rest is held or the run is told to stop. */
  get signal(): AbortSignal {
    return this.#waking.signal;
  }
}
