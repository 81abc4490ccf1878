/**
 * Queued mode (SPEC 6): what does not fit in the time budget is handed to the control queue, one control
 * task per task, due now; Cloud Tasks then paces, retries and outlives function timeouts. The control
 * task's name is the task's claim name, so no delivery of the request enqueues anything twice, and a claim
 * already made by another delivery counts as queued.
 */
import { toCloudTasksError, type CloudTasksClient } from '../cloud-tasks/client.js';
import { controlTaskFor, type ControlTarget, type ControlWork } from '../control/control-tasks.js';
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
    const controlTask = controlTaskFor({ ...this.work, task }, this.control, this.now());
    try {
      await this.calls.with(() => this.tasks.createTask(this.control.queue, controlTask));
      return { outcome: 'queued' };
    } catch (error) {
      const failure = toCloudTasksError(error);
      // ALREADY_EXISTS: this request's claim or control task for the task exists, and carries it out.
      if (failure.status === 'ALREADY_EXISTS') return { outcome: 'queued' };
      return { outcome: 'deferred', error: failure.message };
    }
  }
}
