/**
 * Redrive's creates and deletes by batch (docs/redrive.md "Batch calls"): the same Cloud Tasks client, whose
 * createTask and deleteTask gather the calls made within a few milliseconds on one queue into one
 * `tasks:batchCreate` (at most 100) or `tasks:batchDelete` (at most 1000). Each caller gets its own item's
 * answer, as if it had made the single call, so the move's rules (move.ts) stay as they are:
 * - an item that failed fails with its own status (ALREADY_EXISTS, NOT_FOUND, PERMISSION_DENIED...);
 * - an operation that ended FAILED or CANCELLED, a batch whose answer was lost, or one still running when
 *   the budget ends, leaves every item's fate unknown: each fails as an answer lost, and the move reads its
 *   task again or sends the named create again (ALREADY_EXISTS if it landed);
 * - no requestId is sent: a batch sent again with one would get its first operation back, FAILED again;
 *   named creates and deletes are safe to send again without one;
 * - a Cloud Tasks without the batch methods (UNIMPLEMENTED, or NOT_FOUND for the method), or a caller
 *   without their permission, turns batching off for the rest of the run, and each item is sent on its own.
 */
import {
  CloudTasksError,
  toCloudTasksError,
  type BatchOperation,
  type CloudTasksClient,
  type NewTask,
  type Task,
} from '../cloud-tasks/client.js';
import { CANONICAL_CODES, type CanonicalCode } from '../cloud-tasks/codes.js';
import { parseQueueName, type QueueName, type TaskName } from '../cloud-tasks/names.js';
import type { Logger } from '../platform/log.js';
import { OUT_OF_TIME, type Budget } from './budget.js';

export const MAX_BATCH_CREATE = 100;
export const MAX_BATCH_DELETE = 1_000;
/** How long the first call of a batch waits for others to join it. */
const GATHER_MS = 20;
/** Reads of a running operation, this far apart. */
const POLL_MS = 200;

const OPERATION_NAME = /^projects\/[^/]+\/locations\/[^/]+\/operations\/[^/]+$/;

interface Item<T> {
  readonly payload: T;
  readonly name: string;
  readonly resolve: () => void;
  readonly reject: (error: CloudTasksError) => void;
}

interface Gathering<T> {
  readonly items: Item<T>[];
  readonly timer: NodeJS.Timeout;
}

export interface BatchWritesDeps {
  readonly tasks: CloudTasksClient;
  readonly budget: Budget;
  readonly log: Logger;
}

/** The client, with createTask and deleteTask by batch; every other call is the client's own. */
export function batchWrites(deps: BatchWritesDeps): CloudTasksClient & { readonly batchCalls: () => number } {
  const { tasks, budget, log } = deps;
  let batching = true;
  let batchCalls = 0;
  const creates = new Map<string, Gathering<NewTask>>();
  const deletes = new Map<string, Gathering<TaskName>>();

  /** Batching is off for the rest of the run (said once). */
  function stopBatching(failure: CloudTasksError): void {
    if (!batching) return;
    batching = false;
    log.warn(
      { status: failure.status, error: failure.message },
      'batch calls unavailable: one call per task',
    );
  }

  function gather<T>(
    gatherings: Map<string, Gathering<T>>,
    max: number,
    queue: QueueName,
    item: Item<T>,
    send: (queue: QueueName, items: Item<T>[]) => Promise<void>,
  ): void {
    let gathering = gatherings.get(queue.name);
    if (!gathering) {
      const items: Item<T>[] = [];
      const timer = setTimeout(() => flush(), GATHER_MS);
      gathering = { items, timer };
      gatherings.set(queue.name, gathering);
    }
    const flush = (): void => {
      const current = gatherings.get(queue.name);
      if (!current) return;
      clearTimeout(current.timer);
      gatherings.delete(queue.name);
      void send(queue, current.items);
    };
    gathering.items.push(item);
    if (gathering.items.length >= max) flush();
  }

  /**
   * Sends one batch and settles each item from the operation. `single` sends one item on its own (batching
   * turned off).
   */
  async function sendBatch<T>(
    items: Item<T>[],
    call: () => Promise<BatchOperation>,
    single: (item: Item<T>) => Promise<void>,
  ): Promise<void> {
    if (!batching) return void (await Promise.all(items.map((item) => settleSingle(item, single))));
    let operation: BatchOperation;
    try {
      batchCalls++;
      operation = await call();
    } catch (error) {
      const failure = toCloudTasksError(error);
      if (isMethodUnavailable(failure)) {
        // Nothing was applied: the batch method is not there, or not allowed.
        stopBatching(failure);
        return void (await Promise.all(items.map((item) => settleSingle(item, single))));
      }
      for (const item of items) item.reject(failure);
      return;
    }
    try {
      operation = await untilDone(operation);
    } catch (error) {
      // The batch was accepted: its items may have been applied, whatever stopped the reading.
      const failure = toCloudTasksError(error);
      if (failure.status === 'PERMISSION_DENIED') stopBatching(failure);
      for (const item of items)
        item.reject(unknownFate(`the batch operation could not be read: ${failure.message}`));
      return;
    }
    settleFrom(operation, items);
  }

  async function untilDone(operation: BatchOperation): Promise<BatchOperation> {
    let current = operation;
    while (!current.done) {
      const name = current.name ?? '';
      if (!OPERATION_NAME.test(name) || budget.isOver())
        throw unknownFate('the batch operation did not end in time');
      await budget.sleepUntil(budget.now() + POLL_MS);
      const read = await budget.race(tasks.getOperation(name));
      if (read === OUT_OF_TIME) throw unknownFate('the batch operation did not end in time');
      current = read;
    }
    return current;
  }

  return {
    ...tasks,
    batchCalls: () => batchCalls,
    createTask: (queue, task) =>
      new Promise<Task>((resolve, reject) => {
        const item: Item<NewTask> = {
          payload: task,
          name: task.name,
          resolve: () => resolve({ name: task.name }),
          reject,
        };
        gather(creates, MAX_BATCH_CREATE, queue, item, (q, items) =>
          sendBatch(
            items,
            () =>
              tasks.batchCreateTasks(
                q,
                items.map((i) => i.payload),
              ),
            async (single) => void (await tasks.createTask(q, single.payload)),
          ),
        );
      }),
    deleteTask: (name) =>
      new Promise<void>((resolve, reject) => {
        const queue = parseQueueName(name.queueName)!;
        const item: Item<TaskName> = { payload: name, name: name.name, resolve, reject };
        gather(deletes, MAX_BATCH_DELETE, queue, item, (q, items) =>
          sendBatch(
            items,
            () =>
              tasks.batchDeleteTasks(
                q,
                items.map((i) => i.payload),
              ),
            (single) => tasks.deleteTask(single.payload),
          ),
        );
      }),
  };
}

async function settleSingle<T>(item: Item<T>, single: (item: Item<T>) => Promise<void>): Promise<void> {
  try {
    await single(item);
    item.resolve();
  } catch (error) {
    item.reject(toCloudTasksError(error));
  }
}

/** Each item from a finished operation: its own failure, or done; FAILED or CANCELLED: unknown. */
function settleFrom<T>(operation: BatchOperation, items: readonly Item<T>[]): void {
  const state = operation.metadata?.state;
  if (state === 'FAILED' || state === 'CANCELLED') {
    const reason = `the batch operation ended ${state}: ${operation.error?.message ?? 'no detail'}`;
    for (const item of items) item.reject(unknownFate(reason));
    return;
  }
  const failed = operation.metadata?.failedRequests ?? {};
  items.forEach((item, index) => {
    const status = failed[String(index)];
    if (status === undefined) return item.resolve();
    const code: CanonicalCode = CANONICAL_CODES[status.code ?? 2] ?? 'UNKNOWN';
    item.reject(new CloudTasksError(`${code}: ${status.message ?? 'failed in a batch'}`, code));
  });
}

/** A batch whose items may or may not have been applied: each is an answer lost. */
function unknownFate(message: string): CloudTasksError {
  return new CloudTasksError(`UNAVAILABLE: ${message}`, 'UNAVAILABLE', { answerLost: true });
}

/** Whether a batch call failed because the batch method itself is not there or not allowed. */
function isMethodUnavailable(failure: CloudTasksError): boolean {
  if (failure.answerLost) return false;
  return (
    failure.status === 'UNIMPLEMENTED' ||
    failure.status === 'PERMISSION_DENIED' ||
    failure.status === 'NOT_FOUND'
  );
}
