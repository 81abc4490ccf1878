/**
 * A run's list calls (docs/redrive.md "List budget"). ListTasks shares a quota of 600 calls a minute with
 * the whole project, so a run keeps to a share of it: its selection's listing is counted, and the
 * listings that only save calls (redrive's second reads and verdicts) are made only within the budget.
 * Also the one rule of when a listing pays (when the tasks waiting to be read outnumber the queue's pages
 * twice over), and the one way such a listing is made (`listPaid`).
 */
import { TASK_PAGE_SIZE, type CloudTasksClient, type Task } from '../cloud-tasks/client.js';
import type { QueueName } from '../cloud-tasks/names.js';
import { OUT_OF_TIME, type Budget } from './budget.js';

/** List calls a minute a run may make, all its queues together: half the project's quota. */
export const LIST_CALLS_PER_MINUTE = 300;
/** A listing reads the tasks waiting in a queue once they outnumber its pages this many times. */
const READS_PER_PAGE_TO_LIST = 2;
/** The budget lets this many calls go ahead of their share at once (a queue's listing of 10,000 tasks). */
export const LIST_BURST_CALLS = 20;

/** Whether one listing of a queue of `queueSize` tasks is cheaper than reading `waiting` tasks one by one. */
export function listingPays(waiting: number, queueSize: number): boolean {
  return waiting >= READS_PER_PAGE_TO_LIST * pagesOf(queueSize);
}

/** List calls to list a queue of `queueSize` tasks. */
export function pagesOf(queueSize: number): number {
  return Math.max(1, Math.ceil(queueSize / TASK_PAGE_SIZE));
}

export class ListBudget {
  /** List calls the budget has counted. */
  calls = 0;
  /** When the calls made so far fit the budget. */
  #paidUntilMs = Number.NEGATIVE_INFINITY;
  readonly #msPerCall: number;

  constructor(
    private readonly now: () => number,
    perMinute: number = LIST_CALLS_PER_MINUTE,
    /** Calls that may go ahead of their share at once. */
    readonly burst: number = LIST_BURST_CALLS,
  ) {
    this.#msPerCall = 60_000 / perMinute;
  }

  /** Counts a list call the run must make (its selection's listing). */
  count(calls = 1): void {
    this.calls += calls;
    this.#paidUntilMs = Math.max(this.#paidUntilMs, this.now()) + calls * this.#msPerCall;
  }

  /**
   * When the calls made so far are paid for, but for the burst, leaving room for `spare` more (a listing
   * that can wait leaves room for one that cannot: verdicts leave it to second reads).
   */
  fitsAtMs(spare = 0): number {
    return this.#paidUntilMs + (spare - this.burst) * this.#msPerCall;
  }

  /** Whether `calls` more list calls may start now (they are then counted: make them). */
  tryTake(calls: number, spare = 0): boolean {
    if (this.fitsAtMs(spare) > this.now()) return false;
    this.count(calls);
    return true;
  }
}

/**
 * One listing of the queue's attempts (`listTaskAttempts`) that only saves calls, `paid` of its calls already taken from the budget
 * (the pages past them are counted as they come): each page goes to `see`. The pages listed, or undefined
 * when the listing failed or ran out of time: it then tells nothing.
 */
export async function listPaid(
  deps: { readonly tasks: CloudTasksClient; readonly budget: Budget; readonly lists: ListBudget },
  queue: QueueName,
  paid: number,
  see: (page: readonly Task[]) => void,
): Promise<number | undefined> {
  const { tasks, budget, lists } = deps;
  const pages = tasks.listTaskAttempts(queue)[Symbol.asyncIterator]();
  let listed = 0;
  try {
    for (;;) {
      const page = await budget.race(pages.next());
      if (page === OUT_OF_TIME) return undefined;
      if (page.done) return listed;
      if (++listed > paid) lists.count();
      see(page.value);
    }
  } catch {
    return undefined;
  } finally {
    void pages.return?.();
  }
}
