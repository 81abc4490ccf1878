/**
 * The breaker (docs/architecture.md "Stages"): it counts the verdicts as they arrive and trips once enough
 * are in and too many of them failed again; `running` is no verdict. Tripped, it logs once, and the run
 * holds the rest (hold.ts).
 */
import type { Logger } from '../platform/log.js';
import type { Verdict } from './verify.js';

/** The breaker's settings: off when the request turned it off. */
export interface BreakerSettings {
  readonly maxFailedAgain: number;
  readonly minVerdicts: number;
}

export class Breaker {
  #succeeded = 0;
  #failedAgain = 0;
  #tripped = false;

  constructor(
    private readonly settings: BreakerSettings | undefined,
    private readonly log: Logger,
  ) {}

  /** Counts a verdict; true when this verdict trips the breaker (logged once, at WARN). */
  record(verdict: Verdict | undefined): boolean {
    if (verdict === 'succeeded') this.#succeeded++;
    else if (verdict === 'failed-again') this.#failedAgain++;
    else return false;
    if (this.#tripped || !this.settings) return false;
    const verdicts = this.#succeeded + this.#failedAgain;
    this.#tripped =
      verdicts >= this.settings.minVerdicts && this.#failedAgain / verdicts > this.settings.maxFailedAgain;
    if (this.#tripped) {
      this.log.warn(
        { succeeded: this.#succeeded, failedAgain: this.#failedAgain, breaker: this.settings },
        'breaker tripped: too many reruns failed again; the rest are held. Fix the cause and send the request again (tasks already rerun are past the cutoff), or send it with "breaker": false',
      );
    }
    return this.#tripped;
  }

  get isTripped(): boolean {
    return this.#tripped;
  }
}
