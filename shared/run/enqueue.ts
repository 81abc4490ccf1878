/**
 * Queued mode (docs/claims.md "Where a claim lives"): what does not fit in the time budget is handed to the control queue, one control
 * task per task, due now; Cloud Tasks then paces, retries and outlives function timeouts. The control
 * task's name is the task's claim name, so no delivery of the request enqueues anything twice, and a live
 * claim made by another delivery counts as queued (docs/claims.md "Queued work").
 */
import type { CloudTasksClient } from '../cloud-tasks/client.js';
import { createControlTask } from '../control/claim-names.js';
import type { ControlTarget, ControlWork } from '../control/control-tasks.js';
import type { Semaphore } from './pace.js';

export type EnqueueResult =
  { readonly outcome: 'queued' } | { readonly outcome: 'deferred'; readonly error: string };

export class Enqueuer {
  constructor(
    private readonly tasks: CloudTasksClient,
    private readonly control: ControlTarget,
    private readonly work: Omit<ControlWork, 'task'>,
    /** Bounds creates in flight (RERUN_REDRIVE_CONCURRENCY). */
    private readonly calls: Semaphore,
    private readonly now: () => number,
  ) {}

  async enqueue(task: string): Promise<EnqueueResult> {
    const work = { ...this.work, task };
    const created = await createControlTask(this.tasks, this.control, work, this.now(), (call) =>
      this.calls.with(call),
    );
    // Exists: this request's claim or control task for the task is live, and carries it out.
    if (created.kind !== 'failed') return { outcome: 'queued' };
    return { outcome: 'deferred', error: created.error.message };
  }
}
