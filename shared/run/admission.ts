/**
 * Admission (docs/configuration.md "RERUN_MAX_TASKS"): at most the request's task cap are acted on. A
 * candidate takes a place under the cap before it starts; the place counts for good once the task is acted
 * on, and goes back to the next candidate when the task ends without that. While every place is held by a
 * task that may still give it back, the next candidate waits; once the cap is used, the rest are
 * `over-cap`. (A task is a candidate once: the plan leaves out a task listed again.)
 */
export class Admission {
  /** Places of tasks acted on. */
  #used = 0;
  /** Places of tasks under way, not yet acted on. */
  #held = 0;
  #waiting: (() => void)[] = [];

  constructor(private readonly cap: number) {}

  /** A place under the cap, once one is free; undefined once the cap is used (`over-cap`). */
  async enter(): Promise<Place | undefined> {
    while (this.#used + this.#held >= this.cap) {
      if (this.#used >= this.cap) return undefined;
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
    }
    this.#held++;
    return new Place(this);
  }

  /** A place ends: used (the task was acted on) or given back. */
  end(used: boolean): void {
    this.#held--;
    if (used) this.#used++;
    const waiting = this.#waiting;
    this.#waiting = [];
    for (const wake of waiting) wake();
  }
}

/** One task's place under the cap, ended once: used or given back. */
export class Place {
  #admission: Admission | undefined;

  constructor(admission: Admission) {
    this.#admission = admission;
  }

  /** The task is acted on (forced, moved, queued to the control queue, or would be in a dry run). */
  use(): void {
    this.#end(true);
  }

  /** The task ended without being acted on: its place goes to the next candidate. */
  giveBack(): void {
    this.#end(false);
  }

  #end(used: boolean): void {
    const admission = this.#admission;
    this.#admission = undefined;
    admission?.end(used);
  }
}
