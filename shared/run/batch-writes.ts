/**
 * Redrive's creates and deletes by batch (docs/redrive.md "Batch calls"): the same Cloud Tasks client, whose
 * createTask and deleteTask gather the calls made on one queue within a short wait (a create's also bounded
 * by when its task falls due) into one `tasks:batchCreate` (at most 100, and at most 8 MiB of request) or
 * `tasks:batchDelete` (at most 1000). Each caller gets its own item's answer, as if it had made the single
 * call, so the move's rules (move.ts) stay as they are:
 * - an item that failed fails with its own status (ALREADY_EXISTS, NOT_FOUND, PERMISSION_DENIED...);
 * - a batch whose answer was lost, or one still running when the budget ends, leaves every item's fate
 *   unknown: each fails as an answer lost, and the move reads its task again or sends the named create again
 *   (ALREADY_EXISTS if it landed); so does an operation that ended FAILED or CANCELLED, or that carries an
 *   error, for each item its metadata does not name;
 * - no requestId is sent: a batch sent again with one would get its first operation back, FAILED again;
 *   named creates and deletes are safe to send again without one;
 * - a Cloud Tasks without the batch methods (UNIMPLEMENTED, or NOT_FOUND for the method), or a caller
 *   without their permission, turns batching off for the rest of the run, and each item is sent on its own;
 *   a NOT_FOUND is taken as the method's only when the queue can still be read: a queue deleted meanwhile
 *   fails its items as NOT_FOUND and leaves batching on for the run's other queues;
 * - a batch refused whole as INVALID_ARGUMENT applied nothing: its items are sent on their own, so an item
 *   the service will not take fails alone, with its own status, and the others go on. Batching stays on.
 */
import {
  CloudTasksError,
  toCloudTasksError,
  withoutContentOf,
  type BatchOperation,
  type CloudTasksClient,
  type NewTask,
  MAX_BATCH_CREATE,
  MAX_BATCH_DELETE,
} from '../cloud-tasks/client.js';
import { createRequestBytes, MAX_BATCH_CREATE_BYTES } from '../cloud-tasks/batch-json.js';
import { CANONICAL_CODES, type CanonicalCode } from '../cloud-tasks/codes.js';
import { parseQueueName, type QueueName, type TaskName } from '../cloud-tasks/names.js';
import type { Logger } from '../platform/log.js';
import { OUT_OF_TIME, type Budget } from './budget.js';
import { Semaphore } from './pace.js';

/** How long the first call of a batch waits for others to join it, unless told otherwise. */
const GATHER_MS = 20;
/** Reads of a running operation, this far apart. */
const POLL_MS = 200;

/**
 * An operation name safe to read, as it becomes a URL path (docs/redrive.md "Batch calls"): any relative
 * resource name whose segments hold only a name's characters, none empty, `.` or `..`, and no `:` in the
 * first, which would read as a URL scheme.
 */
const OPERATION_NAME = /^[A-Za-z0-9_-]+(\/(?!\.{1,2}(\/|$))[A-Za-z0-9._~:-]+)*$/;

/** A failure as an item is told it, cleaned of the content of the payloads it is about (all, by default). */
type Told<T> = (failure: CloudTasksError, about?: readonly T[]) => CloudTasksError;

/** One caller's item in a batch, and how to answer it. */
interface Item<T> {
  readonly payload: T;
  readonly resolve: () => void;
  readonly reject: (error: CloudTasksError) => void;
}

/**
 * One kind of batch call: its limits (items, and bytes of the request), how long an item may wait for
 * others, the batch call, and the single call it stands for.
 */
interface BatchKind<T> {
  readonly max: number;
  readonly maxBytes: number;
  readonly bytesOf: (payload: T) => number;
  readonly waitMsOf: (payload: T, nowMs: number) => number;
  readonly batch: (queue: QueueName, payloads: T[]) => Promise<BatchOperation>;
  readonly single: (queue: QueueName, payload: T) => Promise<unknown>;
  /** A failure about `payloads` as an item is told it: without their content (creates). */
  readonly withoutContent?: (payloads: readonly T[], failure: CloudTasksError) => CloudTasksError;
}

/**
 * The longest a create, and a delete, waits for others to join its batch. A create also waits no more
 * than a tenth of the time left until its task falls due (its `scheduleTime`; none: due now).
 */
export interface GatherMs {
  readonly creates: number;
  readonly deletes: number;
}

export interface BatchWritesDeps {
  readonly tasks: CloudTasksClient;
  readonly budget: Budget;
  readonly log: Logger;
  /** How long a create or a delete waits for others to join its batch (default 20 ms for both kinds). */
  readonly gatherMs?: GatherMs | undefined;
  /** Bounds the batch calls in flight (and the single calls, once batching is off). */
  readonly calls?: Semaphore | undefined;
}

/** The client with createTask and deleteTask by batch, and whether it still batches. */
export type BatchingClient = CloudTasksClient & { readonly batching: boolean };

/** The client, with createTask and deleteTask by batch; every other call is the client's own. */
export function batchWrites(deps: BatchWritesDeps): BatchingClient {
  const { tasks, budget, log } = deps;
  const gatherMs = deps.gatherMs ?? { creates: GATHER_MS, deletes: GATHER_MS };
  const calls = deps.calls ?? new Semaphore(Number.MAX_SAFE_INTEGER);
  let batching = true;
  let saidRefusedWhole = false;

  /** Batching is off for the rest of the run (said once). */
  function stopBatching(failure: CloudTasksError): void {
    if (!batching) return;
    batching = false;
    log.warn(
      { status: failure.status, error: failure.message },
      'batch calls unavailable: one call per task',
    );
  }

  /**
   * A batch was refused whole: its items go on their own (said once). Its status only: a message about
   * an invalid request may quote a value from it.
   */
  function refusedWhole(failure: CloudTasksError): void {
    if (saidRefusedWhole) return;
    saidRefusedWhole = true;
    log.warn({ status: failure.status }, 'a batch refused whole: its items sent one by one');
  }

  /**
   * Sends `payload` with the others sent to the queue while it waits, up to the kind's limits: it waits no
   * longer than the kind allows it (`waitMsOf`), and the batch goes when one of its items may wait no more,
   * or when it is full. An item that would take the request past its bytes goes in the next batch.
   */
  function batched<T>(kind: BatchKind<T>): (queue: QueueName, payload: T) => Promise<void> {
    const gatherings = new Map<
      string,
      { items: Item<T>[]; bytes: number; timer: NodeJS.Timeout; sendAtMs: number }
    >();
    const flush = (queue: QueueName): void => {
      const gathering = gatherings.get(queue.name);
      if (!gathering) return;
      clearTimeout(gathering.timer);
      gatherings.delete(queue.name);
      void sendBatch(kind, queue, gathering.items);
    };
    return (queue, payload) =>
      new Promise<void>((resolve, reject) => {
        const nowMs = budget.now();
        const sendAtMs = nowMs + Math.max(0, kind.waitMsOf(payload, nowMs));
        const bytes = kind.bytesOf(payload);
        let gathering = gatherings.get(queue.name);
        if (gathering && gathering.bytes + bytes > kind.maxBytes) {
          flush(queue);
          gathering = undefined;
        }
        if (!gathering || sendAtMs < gathering.sendAtMs) {
          if (gathering) clearTimeout(gathering.timer);
          const timer = setTimeout(() => flush(queue), sendAtMs - nowMs);
          gathering = { items: gathering?.items ?? [], bytes: gathering?.bytes ?? 0, timer, sendAtMs };
          gatherings.set(queue.name, gathering);
        }
        gathering.items.push({ payload, resolve, reject });
        gathering.bytes += bytes;
        if (gathering.items.length >= kind.max) flush(queue);
      });
  }

  /** Sends one batch and settles each item from its operation, or each on its own once batching is off. */
  async function sendBatch<T>(kind: BatchKind<T>, queue: QueueName, items: Item<T>[]): Promise<void> {
    const eachAlone = () =>
      Promise.all(items.map((item) => settleSingle(item, (p) => calls.with(() => kind.single(queue, p)))));
    if (!batching) return void (await eachAlone());
    let operation: BatchOperation;
    const payloads = items.map((item) => item.payload);
    // A failure about the batch may quote any of its items; an item's own, that item.
    const told: Told<T> = (failure, about = payloads) => kind.withoutContent?.(about, failure) ?? failure;
    try {
      operation = await calls.with(() => kind.batch(queue, payloads));
    } catch (error) {
      const failure = toCloudTasksError(error);
      if (isRefusedWhole(failure)) {
        // Nothing was applied; one item may be what the service will not take.
        refusedWhole(failure);
        return void (await eachAlone());
      }
      const toItems = told(failure);
      if (!isMethodUnavailable(toItems)) return items.forEach((item) => item.reject(toItems));
      // Nothing was applied. A NOT_FOUND may be about the queue rather than the method.
      const refused = toItems.status === 'NOT_FOUND' ? await whatWasNotFound(queue) : 'method';
      if (refused === 'queue') return items.forEach((item) => item.reject(toItems));
      if (refused === 'method') stopBatching(toItems);
      return void (await eachAlone());
    }
    try {
      operation = await untilDone(operation);
    } catch (error) {
      // The batch was accepted: its items may have been applied, whatever stopped the reading.
      const failure = toCloudTasksError(error);
      if (failure.status === 'PERMISSION_DENIED') stopBatching(failure);
      const unknown = unknownFate(`the batch operation could not be read: ${failure.message}`);
      return items.forEach((item) => item.reject(unknown));
    }
    settleFrom(operation, items, told);
  }

  /**
   * What a batch call's NOT_FOUND was about: the queue when the queue itself is not found (it was deleted:
   * every item fails as its single call would), the method when the queue is there (an API surface without
   * the batch methods), unknown when the queue cannot be read now (the items go on their own, batching stays
   * on).
   */
  async function whatWasNotFound(queue: QueueName): Promise<'queue' | 'method' | 'unknown'> {
    try {
      await calls.with(() => tasks.getQueue(queue));
      return 'method';
    } catch (error) {
      return toCloudTasksError(error).status === 'NOT_FOUND' ? 'queue' : 'unknown';
    }
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

  const create = batched<NewTask>({
    max: MAX_BATCH_CREATE,
    maxBytes: MAX_BATCH_CREATE_BYTES,
    bytesOf: createRequestBytes,
    waitMsOf: (task, nowMs) => {
      // A task with no scheduleTime is due now.
      const dueMs = Date.parse(task.scheduleTime ?? '');
      return Number.isNaN(dueMs) ? 0 : Math.min(gatherMs.creates, (dueMs - nowMs) / 10);
    },
    batch: (queue, payloads) => tasks.batchCreateTasks(queue, payloads),
    single: (queue, payload) => tasks.createTask(queue, payload),
    withoutContent: (payloads, failure) =>
      payloads.reduce((told, task) => withoutContentOf(task, told), failure),
  });
  const remove = batched<TaskName>({
    max: MAX_BATCH_DELETE,
    // 1000 names are far below any request limit.
    maxBytes: Number.POSITIVE_INFINITY,
    bytesOf: () => 0,
    waitMsOf: () => gatherMs.deletes,
    batch: (queue, payloads) => tasks.batchDeleteTasks(queue, payloads),
    single: (_, payload) => tasks.deleteTask(payload),
  });
  return {
    ...tasks,
    get batching() {
      return batching;
    },
    createTask: async (queue, task) => {
      await create(queue, task);
      return { name: task.name };
    },
    deleteTask: (name) => remove(parseQueueName(name.queueName)!, name),
  };
}

async function settleSingle<T>(item: Item<T>, single: (payload: T) => Promise<unknown>): Promise<void> {
  try {
    await single(item.payload);
    item.resolve();
  } catch (error) {
    item.reject(toCloudTasksError(error));
  }
}

/**
 * Each item from a finished operation: its own failure, or done. An operation that ended FAILED or
 * CANCELLED did not finish, and one that carries an error did not apply every item (a batch delete of which
 * none succeeded carries one): an item its metadata does not name may have been applied or not, so it is
 * unknown, never taken as done. Each failure is `told` as it reaches an item: the operation's own is about
 * the whole batch, an item's about that item.
 */
function settleFrom<T>(operation: BatchOperation, items: readonly Item<T>[], told: Told<T>): void {
  const state = operation.metadata?.state;
  const unfinished = state === 'FAILED' || state === 'CANCELLED';
  const failed = operation.metadata?.failedRequests ?? {};
  const unnamed =
    (unfinished || operation.error !== undefined) &&
    told(
      unknownFate(
        `the batch operation ended ${unfinished ? state : 'with an error'}: ${operation.error?.message ?? 'no detail'}`,
      ),
    );
  items.forEach((item, index) => {
    const status = failed[String(index)];
    if (status === undefined) return unnamed ? item.reject(unnamed) : item.resolve();
    const code: CanonicalCode = CANONICAL_CODES[status.code ?? 2] ?? 'UNKNOWN';
    item.reject(
      told(new CloudTasksError(`${code}: ${status.message ?? 'failed in a batch'}`, code), [item.payload]),
    );
  });
}

/** A batch whose items may or may not have been applied: each is an answer lost. */
function unknownFate(message: string): CloudTasksError {
  return new CloudTasksError(`UNAVAILABLE: ${message}`, 'UNAVAILABLE', { answerLost: true });
}

/** Whether the batch request was refused as a whole, as not valid: nothing in it was applied. */
function isRefusedWhole(failure: CloudTasksError): boolean {
  return !failure.answerLost && failure.status === 'INVALID_ARGUMENT';
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
