/**
 * Queued mode (docs/claims.md "Where a claim lives"): what does not fit in the time budget is handed to the control queue, one control
 * task per task, due at its paced slot; Cloud Tasks then delivers and retries it, and outlives function
 * timeouts. The control task's name is the task's claim name, so no delivery of the request enqueues
 * anything twice, and a live claim made by another delivery counts as queued (docs/claims.md "Queued work").
 */
import type { CloudTasksClient } from '../cloud-tasks/client.js';
import { createControlTask } from '../control/claim-names.js';
import type { ControlTarget, ControlWork } from '../control/control-tasks.js';
import { earliestSlotMs, type Pacer, type Semaphore } from './pace.js';

export type EnqueueResult =
  | { readonly outcome: 'queued' }
  | { readonly outcome: 'deferred'; readonly error: string }
  | { readonly outcome: 'skipped'; readonly skipReason: 'cancelled' };

export class Enqueuer {
  /** Each of the run's pacers, and the last slot the run's queued work took at its rate. */
  readonly #lastQueuedMs = new Map<Pacer, number>();

  constructor(
    private readonly tasks: CloudTasksClient,
    private readonly control: ControlTarget,
    private readonly work: Omit<ControlWork, 'task'>,
    /** Bounds creates in flight (RERUN_REDRIVE_CONCURRENCY). */
    private readonly calls: Semaphore,
    private readonly now: () => number,
  ) {}

  /** Hands `task` to the control queue, due at its slot among `pacers` (the run's for its queue). */
  async enqueue(task: string, pacers: readonly Pacer[]): Promise<EnqueueResult> {
    const work = { ...this.work, task };
    const created = await createControlTask(this.tasks, this.control, work, this.#dueMs(pacers), (call) =>
      this.calls.with(call),
    );
    // Exists: this request's claim or control task for the task is live, and carries it out.
    // Cancelled: nothing is queued (docs/claims.md "Cancelled requests").
    if (created.kind === 'cancelled') return { outcome: 'skipped', skipReason: 'cancelled' };
    if (created.kind !== 'failed') return { outcome: 'queued' };
    return { outcome: 'deferred', error: created.error.message };
  }

  /**
   * When a queued task falls due (docs/execution.md "Pacing"): after the run's own slots, spaced at every
   * rate its pacers keep, so the control queue delivers queued work no faster than the run would force it.
   */
  #dueMs(pacers: readonly Pacer[]): number {
    const dueMs = pacers.reduce(
      (atMs, pacer) =>
        Math.max(atMs, (this.#lastQueuedMs.get(pacer) ?? Number.NEGATIVE_INFINITY) + pacer.intervalMs),
      earliestSlotMs(pacers, this.now()),
    );
    for (const pacer of pacers) this.#lastQueuedMs.set(pacer, dueMs);
    return dueMs;
  }
}
