/**
 * How a redrive makes its calls (docs/redrive.md "Batch calls"): by batch, or one call per task. The move's
 * rules are the same either way; the path says where the first and second reads come from, how creates
 * and deletes are sent, and how many tasks are under way at once.
 */
import type { Budget } from './budget.js';
import { batchWrites, type BatchingClient } from './batch-writes.js';
import type { CloudTasksClient } from '../cloud-tasks/client.js';
import type { CopyDeps } from './copy.js';
import type { ListBudget } from './list-budget.js';
import type { Logger } from '../platform/log.js';
import { Semaphore } from './pace.js';
import { RedriveCalls } from './redrive-calls.js';
import { SecondReads } from './second-reads.js';

/** What the report says of a redrive's calls. */
export type RedriveCallsTaken =
  /** By batch (`tasks:batchCreate`, `tasks:batchDelete`), first reads by listing where it paid. */
  | 'batch'
  /** One call per task: RERUN_REDRIVE_BATCH=false or the request's `"redrive": {"batch": false}`. */
  | 'per-task'
  /** Batch calls were refused (not there, or not allowed), and the run went on one call per task. */
  | 'per-task-fallback';

export interface RedrivePath {
  /** The copy stage's parts that differ by path. */
  readonly copy: Pick<CopyDeps, 'tasks' | 'changes' | 'secondReads' | 'createLeadMs'>;
  /** Tasks under way at once (the mode's concurrency). */
  readonly concurrency: number;
  /** Whether the plan lists the queue's bodies for the first reads. */
  readonly readsBodies: boolean;
  /** What the report says. */
  taken(): RedriveCallsTaken;
}

export interface RedrivePathDeps {
  readonly tasks: CloudTasksClient;
  readonly budget: Budget;
  readonly log: Logger;
  readonly lists: ListBudget;
  /** RERUN_REDRIVE_CONCURRENCY: reads and calls in flight. */
  readonly calls: Semaphore;
  readonly armingDelayMs: number;
}

/**
 * Tasks under way by batch, before their copy exists (each holds its body until then): ahead of the
 * queue's pace by a second at its full 500 tasks a second. A task whose copy exists gives its place up.
 */
const BATCH_TASKS_UNDER_WAY = 200;
/** The longest a create or delete waits for others to join its batch. */
const MAX_BATCH_GATHER_MS = 250;
/**
 * Copies are created this long before their paced slot (each still due an arming delay after it), so that
 * the second reads of a few seconds of the queue's rate share one listing.
 */
const CREATE_LEAD_MS = 5_000;

/** One call per task: GetTask FULL, CreateTask, GetTask BASIC, DeleteTask. */
export function perTaskPath(tasks: CloudTasksClient, concurrency: number): RedrivePath {
  return {
    copy: { tasks },
    concurrency,
    readsBodies: false,
    taken: () => 'per-task',
  };
}

/** By batch, falling back to one call per task when the batch calls are refused. */
export function batchPath(deps: RedrivePathDeps): RedrivePath {
  const { budget, armingDelayMs, calls } = deps;
  const client: BatchingClient = batchWrites({
    ...deps,
    calls,
    gatherMs: {
      // A create also waits no more than a tenth of the time until its copy falls due: sent CREATE_LEAD_MS
      // before its slot, as it is while the run keeps its pace, it may wait the whole 250 ms.
      creates: MAX_BATCH_GATHER_MS,
      // The original must be gone before its copy arms: a delete waits a tenth of the arming delay at most.
      deletes: Math.min(MAX_BATCH_GATHER_MS, armingDelayMs / 10),
    },
  });
  const secondReads = new SecondReads({
    tasks: deps.tasks,
    calls: new RedriveCalls({ tasks: deps.tasks, calls, budget }),
    budget,
    lists: deps.lists,
  });
  return {
    copy: {
      tasks: client,
      // Items wait in a batch unbounded: the batcher bounds the calls in flight.
      changes: new Semaphore(Number.MAX_SAFE_INTEGER),
      secondReads,
      createLeadMs: CREATE_LEAD_MS,
    },
    concurrency: BATCH_TASKS_UNDER_WAY / 4,
    readsBodies: true,
    taken: () => (client.batching ? 'batch' : 'per-task-fallback'),
  };
}
