/**
 * The canary gate (docs/execution.md "Canary"): a few tasks first, chosen at random among the candidates and never
 * one with less than half of its attempts left; the rest wait for the canaries' verdicts, and go on only if
 * every dispatched canary succeeded. A canary still running when its wait ends counts as not succeeded. When
 * no canary was forced and none failed, nothing was learned: the rest are left for the next delivery.
 */
import type { Hold } from './hold.js';
import type { Logger } from '../platform/log.js';
import type { Candidate } from './plan.js';
import type { TaskRow } from './settle.js';
import { hasHalfItsAttemptsLeft, isLastAttempt } from './select.js';

export type Admission = 'go' | 'canary' | 'wait' | 'held' | 'deferred';

type State = 'choosing' | 'passed' | 'failed' | 'undecided';

export class Gate {
  #state: State;
  readonly #canaries: string[] = [];
  /** Each canary's row, once it has one. */
  readonly #rows: Promise<TaskRow>[] = [];
  #waiting: Candidate[] = [];

  constructor(
    private readonly canary: { readonly count: number; readonly waitMs: number } | undefined,
    private readonly deps: {
      readonly log: Logger;
      readonly now: () => number;
      /** Held the moment the canaries did not succeed. */
      readonly hold: Hold;
      readonly random?: () => number;
    },
  ) {
    this.#state = canary ? 'choosing' : 'passed';
  }

  get isChoosing(): boolean {
    return this.#state === 'choosing';
  }

  /** Every canary is chosen: the rest waits for their verdicts. */
  get isFull(): boolean {
    return this.#state === 'choosing' && this.#canaries.length >= (this.canary?.count ?? 0);
  }

  get passed(): boolean {
    return this.#state === 'passed' && this.#canaries.length > 0;
  }

  get failed(): boolean {
    return this.#state === 'failed';
  }

  /** A page's candidates, shuffled while canaries are being chosen (they are chosen at random). */
  order(candidates: Candidate[]): Candidate[] {
    if (this.#state !== 'choosing') return candidates;
    for (let i = candidates.length - 1; i > 0; i--) {
      const j = Math.floor((this.deps.random ?? Math.random)() * (i + 1));
      [candidates[i], candidates[j]] = [candidates[j]!, candidates[i]!];
    }
    return candidates;
  }

  admit(candidate: Candidate): Admission {
    if (this.#state === 'passed') return 'go';
    if (this.#state === 'failed') return 'held';
    if (this.#state === 'undecided') return 'deferred';
    const { listed, queue } = candidate;
    const eligible =
      !this.isFull &&
      hasHalfItsAttemptsLeft(listed, queue.retry) &&
      !isLastAttempt(listed, queue.retry, this.deps.now());
    if (!eligible) {
      this.#waiting.push(candidate);
      return 'wait';
    }
    this.#canaries.push(candidate.name.name);
    return 'canary';
  }

  /** A canary's row, once it has one: its verdict decides. */
  track(row: Promise<TaskRow>): void {
    this.#rows.push(row);
  }

  /** Waits for every canary's verdict and opens or closes the gate. */
  async settle(): Promise<void> {
    if (this.#state !== 'choosing') return;
    const rows = await Promise.all(this.#rows);
    const { log } = this.deps;
    // Nothing came to the gate: nothing to hold.
    if (this.#canaries.length === 0 && this.#waiting.length === 0) {
      this.#state = 'passed';
      return;
    }
    // A canary is forced by RunTask (`dispatched`) or, in redrive, copied (`redriven`): its verdict decides.
    const forced = rows.filter((row) => row.outcome === 'dispatched' || row.outcome === 'redriven');
    const failed = rows.some((row) => row.outcome === 'failed');
    if (this.#canaries.length > 0 && forced.length === 0 && !failed) {
      // Gone, skipped, claimed, queued or deferred: never forced, so they say nothing about the fix.
      this.#state = 'undecided';
      const outcomes = rows.map((row) => row.outcome);
      log.warn(
        { canaries: this.#canaries, outcomes },
        'no canary was forced; the rest are left for the next delivery',
      );
      return;
    }
    const passed = forced.length > 0 && forced.every((row) => row.verdict === 'succeeded');
    this.#state = passed ? 'passed' : 'failed';
    if (!passed) this.deps.hold.hold();
    const fields = { canaries: this.#canaries, verdicts: forced.map((row) => row.verdict ?? 'none') };
    if (passed) log.info(fields, 'canary succeeded; going on');
    else if (this.#canaries.length === 0)
      log.warn(fields, 'no candidate has half of its attempts left to serve as a canary; holding the rest');
    else log.warn(fields, 'canary did not succeed; holding the rest');
  }

  /** The candidates that waited for the canaries. */
  takeWaiting(): Candidate[] {
    const waiting = this.#waiting;
    this.#waiting = [];
    return waiting;
  }

  /** The report's `canary` field, when the request had canaries and a candidate came to the gate. */
  get summary(): { tasks: string[]; passed: boolean } | undefined {
    if (!this.canary || (this.#state === 'passed' && this.#canaries.length === 0)) return undefined;
    return { tasks: this.#canaries, passed: this.passed };
  }
}
