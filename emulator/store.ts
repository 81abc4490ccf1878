/**
 * Queues and tasks in memory: creation, lookup, removal with a dedup window, and paging. No I/O and no
 * clock: every method that needs the time takes it.
 */
import { randomInt } from 'node:crypto';
import { parseQueueName, parseTaskName } from '../shared/cloud-tasks/names.js';
import { ApiError, invalidPayload, notFound } from './errors.js';
import {
  invalidQueueName,
  invalidTaskId,
  queueNotFound,
  queueSettings,
  taskFields,
  type AttemptRecord,
  type QueueRecord,
  type QueueStateName,
  type TaskRecord,
} from './model.js';
import type { Decoded } from './proto-json.js';

/** Options of a {@link Store}. */
export interface StoreOptions {
  /** How long the name of a finished or deleted task stays reserved. */
  dedupWindowMs: number;
  /** How long the name of a deleted queue cannot be used again. */
  queueReuseWindowMs: number;
  /** Called for every task created (by the API, a batch or a seed). */
  onTaskCreated?: (task: TaskRecord) => void;
}

/** One page of a listing. */
export interface Page<T> {
  items: T[];
  nextPageToken?: string;
}

/** The extra state a seed may give a task (what the API computes itself). */
export type TaskHistory = Partial<
  Pick<TaskRecord, 'createTimeMs' | 'dispatchCount' | 'responseCount' | 'firstAttempt' | 'lastAttempt'>
>;

const MAX_TASK_PAGE = 1000;
const MAX_QUEUE_PAGE = 9800;

/** The emulator's state: every queue with its tasks, and the recently used names. */
export class Store {
  readonly queues = new Map<string, QueueRecord>();
  readonly #taskTombstones = new Map<string, number>();
  readonly #queueTombstones = new Map<string, number>();
  #seq = 0;

  constructor(private readonly options: StoreOptions) {}

  /**
   * Creates a queue from a decoded Queue under `parent`.
   * @throws ApiError INVALID_ARGUMENT (bad name or settings), ALREADY_EXISTS, FAILED_PRECONDITION (name
   * deleted too recently).
   */
  createQueue(parent: string, queue: Decoded, nowMs: number, allowOutputOnly = false): QueueRecord {
    const name = queue.name as string | undefined;
    const parsed = name === undefined ? undefined : parseQueueName(name);
    if (!parsed || `projects/${parsed.project}/locations/${parsed.location}` !== parent)
      throw invalidQueueName();
    if (this.queues.has(name!)) throw new ApiError('ALREADY_EXISTS', 'Queue already exists');
    const deletedUntil = this.#queueTombstones.get(name!);
    if (deletedUntil !== undefined && deletedUntil > nowMs) {
      throw new ApiError(
        'FAILED_PRECONDITION',
        'The queue cannot be created because a queue with this name existed too recently.',
      );
    }
    const state = (queue.state as QueueStateName | 'STATE_UNSPECIFIED' | undefined) ?? 'RUNNING';
    const record: QueueRecord = {
      name: name!,
      project: parsed.project,
      id: parsed.queue,
      state: allowOutputOnly && state !== 'STATE_UNSPECIFIED' ? state : 'RUNNING',
      ...queueSettings(queue, allowOutputOnly),
      tasks: new Map(),
      order: [],
      deletedInOrder: 0,
    };
    this.queues.set(record.name, record);
    return record;
  }

  /**
   * Replaces a queue's settings by those of a decoded Queue (UpdateQueue, after its mask is applied). Output
   * only fields are left alone: `name`, `state`, and `rateLimits.maxBurstSize`, which the queue keeps.
   * @throws ApiError INVALID_ARGUMENT (bad settings); the queue is then unchanged.
   */
  updateQueue(queue: QueueRecord, settings: Decoded): void {
    const rateLimits = { ...((settings.rateLimits ?? {}) as Decoded) };
    rateLimits.maxBurstSize = queue.rateLimits.maxBurstSize;
    const next = queueSettings({ ...settings, rateLimits }, true);
    queue.rateLimits = next.rateLimits;
    queue.retryConfig = next.retryConfig;
    for (const key of ['appEngineRoutingOverride', 'httpTarget', 'stackdriverLoggingConfig'] as const) {
      if (next[key] === undefined) delete queue[key];
    }
    if (next.appEngineRoutingOverride) queue.appEngineRoutingOverride = next.appEngineRoutingOverride;
    if (next.httpTarget) queue.httpTarget = next.httpTarget;
    if (next.stackdriverLoggingConfig) queue.stackdriverLoggingConfig = next.stackdriverLoggingConfig;
  }

  /**
   * The queue of that name.
   * @throws ApiError NOT_FOUND with Cloud Tasks' queue message.
   */
  getQueue(name: string): QueueRecord {
    const queue = this.queues.get(name);
    if (!queue) throw queueNotFound();
    return queue;
  }

  /**
   * Queues under `parent` in lexicographic order, optionally filtered by `state: PAUSED` (the one filter
   * supported).
   * @throws ApiError INVALID_ARGUMENT for an unsupported filter, a bad page size or page token.
   */
  listQueues(
    parent: string,
    filter: string | undefined,
    pageSize: number | undefined,
    pageToken: string | undefined,
  ): Page<QueueRecord> {
    const size = pageSizeOf(pageSize, MAX_QUEUE_PAGE);
    let state: string | undefined;
    if (filter !== undefined && filter.trim() !== '') {
      const match = /^\s*state\s*[:=]\s*"?(RUNNING|PAUSED|DISABLED)"?\s*$/.exec(filter);
      if (!match)
        throw invalidPayload(
          `Unsupported filter "${filter}": the emulator supports only "state: <STATE>".`,
          'filter',
        );
      state = match[1];
    }
    const after = pageToken ? decodeToken(pageToken, `${parent}|${filter ?? ''}`) : '';
    const prefix = `${parent}/queues/`;
    const names = [...this.queues.keys()].filter((n) => n.startsWith(prefix) && n > after).sort();
    const items: QueueRecord[] = [];
    for (const name of names) {
      const queue = this.queues.get(name)!;
      if (state !== undefined && queue.state !== state) continue;
      if (items.length === size) {
        return { items, nextPageToken: encodeToken(`${parent}|${filter ?? ''}`, items.at(-1)!.name) };
      }
      items.push(queue);
    }
    return { items };
  }

  /**
   * Deletes a queue and its tasks; its name cannot be used again for the reuse window.
   * @throws ApiError NOT_FOUND.
   */
  deleteQueue(name: string, nowMs: number): QueueRecord {
    const queue = this.queues.get(name);
    if (!queue) throw notFound();
    for (const task of queue.tasks.values()) task.deleted = true;
    queue.tasks.clear();
    queue.order = [];
    this.queues.delete(name);
    if (this.options.queueReuseWindowMs > 0)
      this.#queueTombstones.set(name, nowMs + this.options.queueReuseWindowMs);
    return queue;
  }

  /**
   * Adds a task to `queue` from a decoded Task: named (the ID must be free, live or recently used) or with a
   * generated numeric ID.
   * @throws ApiError INVALID_ARGUMENT, ALREADY_EXISTS, UNIMPLEMENTED (App Engine tasks).
   */
  createTask(queue: QueueRecord, task: Decoded, nowMs: number, history: TaskHistory = {}): TaskRecord {
    const given = task.name as string | undefined;
    if (given) checkTaskName(given, queue.name);
    const fields = taskFields(task, nowMs);
    const name = given || this.#generateTaskName(queue, nowMs);
    if (queue.tasks.has(name)) throw new ApiError('ALREADY_EXISTS', 'Requested entity already exists');
    if (this.isRecentlyUsed(name, nowMs)) {
      throw new ApiError(
        'ALREADY_EXISTS',
        'The task cannot be created because a task with this name existed too recently. For more information ' +
          'about task de-duplication see https://cloud.google.com/tasks/docs/reference/rest/v2/' +
          'projects.locations.queues.tasks/create#body.request_body.FIELDS.task.',
      );
    }
    const record: TaskRecord = {
      name,
      id: name.slice(name.lastIndexOf('/') + 1),
      queue,
      seq: this.#seq++,
      ...fields,
      createTimeMs: Math.floor((history.createTimeMs ?? nowMs) / 1000) * 1000,
      dispatchCount: history.dispatchCount ?? 0,
      responseCount: history.responseCount ?? 0,
      executionCount: history.responseCount ?? 0,
      deleted: false,
      version: 0,
    };
    if (history.firstAttempt) record.firstAttempt = history.firstAttempt;
    if (history.lastAttempt) {
      record.lastAttempt = history.lastAttempt;
      const code = history.lastAttempt.responseStatus?.message.match(/HTTP status code (\d{3})/)?.[1];
      if (code) record.previousResponse = Number(code);
    }
    queue.tasks.set(name, record);
    queue.order.push(record);
    this.options.onTaskCreated?.(record);
    return record;
  }

  /** The live task of that name, if any. */
  findTask(name: string): TaskRecord | undefined {
    const queueName = name.slice(0, name.lastIndexOf('/tasks/'));
    return this.queues.get(queueName)?.tasks.get(name);
  }

  /**
   * The live task of that name.
   * @throws ApiError NOT_FOUND: Cloud Tasks' queue message when its queue does not exist; its "existed
   * recently" message for a task gone within the dedup window when `explainRecent` is set (GetTask does;
   * RunTask and DeleteTask do not).
   */
  getTask(name: string, nowMs: number, explainRecent = false): TaskRecord {
    const task = this.findTask(name);
    if (task) return task;
    this.getQueue(name.slice(0, name.lastIndexOf('/tasks/')));
    if (explainRecent && this.isRecentlyUsed(name, nowMs)) {
      throw new ApiError(
        'NOT_FOUND',
        'The task no longer exists, though a task with this name existed recently. ' +
          'The task either successfully completed or was deleted.',
      );
    }
    throw notFound();
  }

  /** Removes a task (succeeded, permanently failed or deleted); its name stays reserved for the dedup window. */
  removeTask(task: TaskRecord, nowMs: number): void {
    if (task.deleted) return;
    task.deleted = true;
    const queue = task.queue;
    queue.tasks.delete(task.name);
    queue.deletedInOrder++;
    this.#taskTombstones.set(task.name, nowMs + this.options.dedupWindowMs);
    // Compacting once half the order is dead keeps deletion O(1) amortised and page walks short.
    if (queue.deletedInOrder > 100 && queue.deletedInOrder * 2 > queue.order.length) {
      queue.order = queue.order.filter((t) => !t.deleted);
      queue.deletedInOrder = 0;
    }
  }

  /** Whether the name belonged to a task that finished or was deleted within the dedup window. */
  isRecentlyUsed(name: string, nowMs: number): boolean {
    const until = this.#taskTombstones.get(name);
    if (until === undefined) return false;
    if (until > nowMs) return true;
    this.#taskTombstones.delete(name);
    return false;
  }

  /**
   * One page of a queue's live tasks. The walk follows insertion order from the page token, so a task
   * deleted between pages is simply skipped and none is listed twice; each page costs O(log n + page).
   * @throws ApiError INVALID_ARGUMENT for a page size outside 0..1000 or a token of another listing.
   */
  listTasks(
    queue: QueueRecord,
    pageSize: number | undefined,
    pageToken: string | undefined,
  ): Page<TaskRecord> {
    const size = pageSizeOf(pageSize, MAX_TASK_PAGE);
    const afterSeq = pageToken ? Number(decodeToken(pageToken, queue.name)) : -1;
    if (!Number.isInteger(afterSeq)) throw invalidPageToken();
    const order = queue.order;
    const items: TaskRecord[] = [];
    for (let i = firstAfter(order, afterSeq); i < order.length; i++) {
      const task = order[i]!;
      if (task.deleted) continue;
      if (items.length === size)
        return { items, nextPageToken: encodeToken(queue.name, String(items.at(-1)!.seq)) };
      items.push(task);
    }
    return { items };
  }

  #generateTaskName(queue: QueueRecord, nowMs: number): string {
    for (;;) {
      // Server-generated IDs are long decimal strings that may start with 0.
      const id = String(randomInt(0, 1e9)).padStart(9, '0') + String(randomInt(0, 1e10)).padStart(10, '0');
      const name = `${queue.name}/tasks/${id}`;
      if (!queue.tasks.has(name) && !this.isRecentlyUsed(name, nowMs)) return name;
    }
  }
}

/**
 * Checks a task name given on creation: well formed, a valid ID, and in the queue it is created in.
 * @throws ApiError INVALID_ARGUMENT with Cloud Tasks' messages.
 */
export function checkTaskName(name: string, queueName: string): void {
  const slash = name.lastIndexOf('/tasks/');
  const id = slash === -1 ? undefined : name.slice(slash + '/tasks/'.length);
  const queuePart = slash === -1 ? undefined : name.slice(0, slash);
  if (id === undefined || queuePart === undefined || !parseQueueName(queuePart)) {
    throw invalidPayload(
      'Task name must be formatted: "projects/<PROJECT_ID>/locations/<LOCATION_ID>/queues/<QUEUE_ID>/tasks/<TASK_ID>".',
      'task.name',
    );
  }
  if (!parseTaskName(name)) throw invalidTaskId(id);
  if (queuePart !== queueName) {
    throw new ApiError(
      'INVALID_ARGUMENT',
      `The queue name from request ('${queueName}') must be the same as the queue name in the named task ('${queuePart}').`,
    );
  }
}

/** Makes a task's attempt record from seed or API values. */
export function attemptOf(decoded: Decoded | undefined): AttemptRecord | undefined {
  if (!decoded) return undefined;
  const attempt: AttemptRecord = {};
  if (typeof decoded.scheduleTime === 'number') attempt.scheduleTimeMs = decoded.scheduleTime;
  if (typeof decoded.dispatchTime === 'number') attempt.dispatchTimeMs = decoded.dispatchTime;
  if (typeof decoded.responseTime === 'number') attempt.responseTimeMs = decoded.responseTime;
  const status = decoded.responseStatus as Decoded | undefined;
  if (status)
    attempt.responseStatus = {
      code: (status.code as number | undefined) ?? 0,
      message: (status.message as string | undefined) ?? '',
    };
  return attempt;
}

function pageSizeOf(pageSize: number | undefined, max: number): number {
  if (pageSize === undefined || pageSize === 0) return max;
  if (pageSize < 0 || pageSize > max) {
    throw invalidPayload(
      `Invalid value for page_size: ${pageSize}; it must be between 0 and ${max}.`,
      'page_size',
    );
  }
  return pageSize;
}

function firstAfter(order: readonly TaskRecord[], seq: number): number {
  let lo = 0;
  let hi = order.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (order[mid]!.seq <= seq) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function encodeToken(scope: string, position: string): string {
  return Buffer.from(JSON.stringify([scope, position])).toString('base64url');
}

function decodeToken(token: string, scope: string): string {
  try {
    const parsed: unknown = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
    if (Array.isArray(parsed) && parsed[0] === scope && typeof parsed[1] === 'string') return parsed[1];
  } catch {
    // fall through: not one of ours
  }
  throw invalidPageToken();
}

function invalidPageToken(): ApiError {
  return invalidPayload('Invalid page_token: it does not belong to this listing.', 'page_token');
}
