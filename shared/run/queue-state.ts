/**
 * The queue's state as the run goes: someone who pauses (or disables) a queue during a run means stop
 * (docs/selection.md "A queue paused during a run"). The state read when the queue was opened is read again
 * at most every QUEUE_RECHECK_MS, just before a task is acted on; the rule that turns a state into a skip is
 * select.ts's queueSkipReason, the same one the plan applies when it opens the queue. Each read also hands the
 * queue's rate and limits to the run (docs/execution.md "Pacing").
 */
import type { CloudTasksClient, Queue } from '../cloud-tasks/client.js';
import type { QueueName } from '../cloud-tasks/names.js';
import { queueSkipReason, type SkipReason } from './select.js';

/** How old the queue's state may be when a task of the queue is acted on. */
export const QUEUE_RECHECK_MS = 2_000;

export interface QueueStateDeps {
  readonly tasks: Pick<CloudTasksClient, 'getQueue'>;
  readonly now: () => number;
}

/** One queue's state for one run: its skip reason, never older than QUEUE_RECHECK_MS. */
export class QueueState {
  #readMs: number;
  #reason: SkipReason | undefined;
  /** The read under way, shared by every task that asks meanwhile. */
  #reading: Promise<SkipReason | undefined> | undefined;
  #stoppedBy: SkipReason | undefined;

  constructor(
    private readonly deps: QueueStateDeps,
    private readonly queue: QueueName,
    private readonly rule: { readonly force: boolean; readonly bypassesDispatchLimit: boolean },
    opened: Queue,
    /** Told each state read again: the run applies the queue's rate, concurrency and state from it. */
    private readonly onRead: (queue: Queue) => void = () => undefined,
  ) {
    this.#readMs = deps.now();
    this.#reason = this.#reasonOf(opened);
  }

  /**
   * Set at the first PERMISSION_DENIED on a call that acts on a task: every later task of the queue would
   * fail the same, and is skipped with this reason.
   */
  stop(reason: SkipReason): void {
    this.#stoppedBy ??= reason;
  }

  get stoppedBy(): SkipReason | undefined {
    return this.#stoppedBy;
  }

  /**
   * The reason every task of the queue is skipped now, if any. A state that cannot be read keeps the last
   * one: the act that follows meets the same error and handles it by its own rules.
   */
  async skipReason(): Promise<SkipReason | undefined> {
    if (this.deps.now() - this.#readMs < QUEUE_RECHECK_MS) return this.#reason;
    this.#reading ??= this.#read().finally(() => (this.#reading = undefined));
    return this.#reading;
  }

  async #read(): Promise<SkipReason | undefined> {
    try {
      const queue = await this.deps.tasks.getQueue(this.queue);
      this.#reason = this.#reasonOf(queue);
      this.onRead(queue);
    } catch {
      // Kept as it was; see skipReason.
    }
    this.#readMs = this.deps.now();
    return this.#reason;
  }

  #reasonOf(queue: Queue): SkipReason | undefined {
    return queueSkipReason(queue, this.rule.force, this.rule.bypassesDispatchLimit);
  }
}
