/**
 * Admission: which candidates a run takes on. A task listed twice (on two pages, or before and after the
 * canaries) is taken once, and at most the request's task cap are taken; the rest are `over-cap`.
 */
export type Admitted = 'new' | 'seen' | 'over-cap';

export class Admission {
  /** Tasks already taken or held: a task listed again is no new work. */
  readonly #seen = new Set<string>();
  #taken = 0;

  constructor(private readonly cap: number) {}

  /** Whether the task may go on to the gate: not seen before, and under the cap. */
  check(task: string): Admitted {
    if (this.#seen.has(task)) return 'seen';
    return this.#taken >= this.cap ? 'over-cap' : 'new';
  }

  /** The task is forced (or would be, in a dry run): it counts against the cap. */
  take(task: string): void {
    this.#seen.add(task);
    this.#taken++;
  }

  /** The task is held: seen, but not counted against the cap. */
  hold(task: string): void {
    this.#seen.add(task);
  }
}
