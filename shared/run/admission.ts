/**
 * Admission: how many candidates a run takes on. At most the request's task cap are taken; the rest are
 * `over-cap`. (A task is a candidate once: the plan leaves out a task listed again.)
 */
export type Admitted = 'new' | 'over-cap';

export class Admission {
  #taken = 0;

  constructor(private readonly cap: number) {}

  /** Whether the task may go on to the gate: under the cap. */
  check(): Admitted {
    return this.#taken >= this.cap ? 'over-cap' : 'new';
  }

  /** A task is forced (or would be, in a dry run): it counts against the cap. */
  take(): void {
    this.#taken++;
  }
}
