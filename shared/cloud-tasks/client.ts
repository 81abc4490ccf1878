/**
 * A small Cloud Tasks v2 REST client on google-auth-library: only the calls rerun makes.
 * https://cloud.google.com/tasks/docs/reference/rest
 */
import type { AuthClient } from 'google-auth-library';
import { batchCreateJson } from './batch-json.js';
import { bodyBytesOf, parseTaskPage, type BodyBytes } from './body-bytes.js';
import { CANONICAL_CODES, type CanonicalCode } from './codes.js';
import type { QueueName, TaskName } from './names.js';
import { createGoogleApi, googleApiErrorOf, sendWithRetries } from '../platform/google-api.js';
import { ServerClock } from '../platform/server-clock.js';
import { readRetryWaitMs } from './retry.js';
import { messageWithoutContent } from './task-content.js';

/** google.cloud.tasks.v2.Attempt, as JSON. */
export interface Attempt {
  scheduleTime?: string;
  dispatchTime?: string;
  responseTime?: string;
  responseStatus?: { code?: number; message?: string };
}

/** The fields of google.cloud.tasks.v2.Task that rerun reads (BASIC view; FULL adds headers and body). */
export interface Task {
  name: string;
  httpRequest?: HttpRequest;
  appEngineHttpRequest?: AppEngineHttpRequest;
  scheduleTime?: string;
  createTime?: string;
  /** A proto Duration, `"600s"`. */
  dispatchDeadline?: string;
  dispatchCount?: number;
  responseCount?: number;
  firstAttempt?: Attempt;
  lastAttempt?: Attempt;
  /** Which view the answer holds (output only): by name, or by number where enums are written as numbers. */
  view?: TaskView | 'VIEW_UNSPECIFIED' | number;
}

/** google.cloud.tasks.v2.HttpRequest; headers and body only in the FULL view. */
export interface HttpRequest {
  url?: string;
  httpMethod?: string;
  headers?: Record<string, string>;
  /** base64; as it came, in a FULL listing (body-bytes.ts) */
  body?: string | BodyBytes;
  oidcToken?: { serviceAccountEmail?: string; audience?: string };
  oauthToken?: { serviceAccountEmail?: string; scope?: string };
}

/** google.cloud.tasks.v2.AppEngineHttpRequest; headers and body only in the FULL view. */
export interface AppEngineHttpRequest {
  relativeUri?: string;
  httpMethod?: string;
  appEngineRouting?: Record<string, string>;
  headers?: Record<string, string>;
  /** base64; as it came, in a FULL listing (body-bytes.ts) */
  body?: string | BodyBytes;
}

/** The fields of google.cloud.tasks.v2.Queue that rerun reads. */
export interface Queue {
  name: string;
  state?: 'RUNNING' | 'PAUSED' | 'DISABLED' | 'STATE_UNSPECIFIED';
  rateLimits?: { maxDispatchesPerSecond?: number; maxConcurrentDispatches?: number };
  /** Queue-level overrides of its HTTP tasks' target (docs/parking.md "Unparking"). */
  httpTarget?: { uriOverride?: { uriOverrideEnforceMode?: string } };
  retryConfig?: {
    /** -1 = unlimited; Cloud Tasks' default is 100. */
    maxAttempts?: number;
    /** A proto Duration; "0s" or absent = unlimited. */
    maxRetryDuration?: string;
    /** Proto Durations: the first backoff and the cap (docs/parking.md "At risk"). */
    minBackoff?: string;
    maxBackoff?: string;
    maxDoublings?: number;
  };
}

/** google.cloud.tasks.v2beta3.QueueStats as JSON: Cloud Tasks' estimates; int64 counts are strings. */
export interface QueueStats {
  tasksCount?: string;
  oldestEstimatedArrivalTime?: string;
  executedLastMinuteCount?: string;
  concurrentDispatchesCount?: string;
  effectiveExecutionRate?: number;
}

/** A task to create: a control task (claims, queued mode) or a redrive copy. */
export interface NewTask {
  name: string;
  httpRequest?: HttpRequest;
  appEngineHttpRequest?: AppEngineHttpRequest;
  /** RFC 3339; absent = now. */
  scheduleTime?: string;
  /** A proto Duration, `"1800s"`. */
  dispatchDeadline?: string;
}

/**
 * A batch call's google.longrunning.Operation (v2 `tasks:batchCreate`, `tasks:batchDelete`): its metadata
 * names the items that failed, by their index in the request.
 */
export interface BatchOperation {
  name?: string;
  done?: boolean;
  metadata?: {
    state?: string;
    /** The request's index, as a string, to the status that item failed with. */
    failedRequests?: Record<string, { code?: number; message?: string }>;
  };
  error?: { code?: number; message?: string };
}

/** The most tasks one `tasks:batchCreate` may carry, and names one `tasks:batchDelete` may carry. */
export const MAX_BATCH_CREATE = 100;
export const MAX_BATCH_DELETE = 1_000;

/** The task views of the API: BASIC leaves out headers and bodies; FULL needs `cloudtasks.tasks.fullView`. */
export type TaskView = 'BASIC' | 'FULL';

/** A failed Cloud Tasks call: the canonical status decides what happens next (see retry.ts). */
export class CloudTasksError extends Error {
  override readonly name = 'CloudTasksError';
  constructor(
    message: string,
    readonly status: CanonicalCode,
    readonly options: {
      httpStatus?: number;
      answerLost?: boolean;
      retryDelayMs?: number;
      cause?: unknown;
    } = {},
  ) {
    super(message, { cause: options.cause });
  }
  get answerLost(): boolean {
    return this.options.answerLost ?? false;
  }
  get retryDelayMs(): number | undefined {
    return this.options.retryDelayMs;
  }
}

/** The calls rerun makes. Names are parsed (validated) before they reach a URL. */
export interface CloudTasksClient {
  getQueue(queue: QueueName): Promise<Queue>;
  /** The queue's stats, from v2beta3 (v2 has none); undefined when the answer carries none. */
  getQueueStats(queue: QueueName): Promise<QueueStats | undefined>;
  listQueues(parent: { project: string; location: string }): AsyncIterable<Queue[]>;
  /**
   * Pages of tasks, in no promised order: BASIC (partial response: no headers), 1000 a page, or FULL with
   * bodies (kept as bytes: body-bytes.ts) and headers (redrive's first read of a queue whose matched
   * tasks are most of it), 500 a page.
   */
  listTasks(queue: QueueName, view?: TaskView): AsyncIterable<Task[]>;
  /** Pages of tasks with only name and URL (control queues: the URL carries the requestId). */
  listTaskUrls(queue: QueueName): AsyncIterable<Task[]>;
  /**
   * Pages of tasks with only name, attempt counts and last attempt: many tasks read again by one listing
   * (redrive's second reads and verdicts), about 60% of the bytes of a BASIC page to parse.
   */
  listTaskAttempts(queue: QueueName): AsyncIterable<Task[]>;
  /** One task, BASIC (partial response: no headers) unless FULL is asked for (redrive's copy). */
  getTask(task: TaskName, view?: TaskView): Promise<Task>;
  /** Forces one dispatch now; never retried here (a resend can dispatch twice). */
  runTask(task: TaskName): Promise<Task>;
  /** Never retried here: ALREADY_EXISTS after a lost answer is the caller's to interpret. */
  createTask(queue: QueueName, task: NewTask): Promise<Task>;
  /** Never retried here: NOT_FOUND after a lost answer is the caller's to interpret. */
  deleteTask(task: TaskName): Promise<void>;
  /** Up to 100 creates in one queue, not atomic (`tasks:batchCreate`); never retried here. */
  batchCreateTasks(queue: QueueName, tasks: readonly NewTask[]): Promise<BatchOperation>;
  /** Up to 1000 deletes in one queue, not atomic (`tasks:batchDelete`); never retried here. */
  batchDeleteTasks(queue: QueueName, tasks: readonly TaskName[]): Promise<BatchOperation>;
  /** A batch call's operation, read again (operations.get). */
  getOperation(name: string): Promise<BatchOperation>;
  /** The permissions of `permissions` the caller holds on the queue (queues.testIamPermissions). */
  testQueuePermissions(queue: QueueName, permissions: readonly string[]): Promise<string[]>;
  /** Cloud Tasks' own time, as its answers tell it (docs/selection.md "Two clocks"). */
  readonly serverClock?: ServerClock;
}

export interface CloudTasksClientOptions {
  /** `host:port` of a local emulator: plain HTTP and no credentials. */
  emulatorHost?: string | undefined;
  /** Credentials; default Application Default Credentials with the cloud-platform scope. */
  authClient?: AuthClient;
  /** Timeout of every request (the API's own server deadline is 15 s). */
  timeoutMs?: number;
}

const SCOPE = 'https://www.googleapis.com/auth/cloud-platform';

/** Tasks a page of a BASIC listing: the API's most. */
export const TASK_PAGE_SIZE = 1000;
/**
 * Tasks a page of a FULL listing: a page's bodies are held until its tasks are copied, so smaller pages
 * keep a redrive's memory down at a few list calls more.
 */
export const FULL_TASK_PAGE_SIZE = 500;
/**
 * Tasks the first page of a FULL listing asks for: a task may carry up to 1 MB, so the first page, which
 * shows how large the queue's bodies are, is kept small (docs/redrive.md "Batch calls").
 */
export const FIRST_FULL_TASK_PAGE_SIZE = 50;
/**
 * The bytes of bodies a FULL page may hold. A redrive whose first page shows larger bodies lists the queue
 * without them and reads each task on its own; every page after the first asks for no more tasks than
 * this holds at the size of the last page's largest body (`fullPageSizeAfter`).
 */
export const MAX_FULL_PAGE_BODY_BYTES = 16 * 1024 * 1024;

/**
 * Tasks the next page of a FULL listing asks for: as many as MAX_FULL_PAGE_BODY_BYTES holds at the size of
 * the largest body on `page`, at most FULL_TASK_PAGE_SIZE and at least one. A queue whose bodies grow
 * from page to page gets smaller pages, so no answer holds hundreds of megabytes (docs/redrive.md "Bodies
 * held").
 */
export function fullPageSizeAfter(page: readonly Task[]): number {
  const largest = page.reduce((most, task) => Math.max(most, bodyBytesOf(task)), 0);
  const fits = Math.floor(MAX_FULL_PAGE_BODY_BYTES / Math.max(1, largest));
  return Math.max(1, Math.min(FULL_TASK_PAGE_SIZE, fits));
}

/**
 * Partial responses (the `fields` system parameter): only what selection reads, so task headers, which
 * the BASIC view still carries, never even reach the function.
 */
const TASK_FIELDS =
  'name,scheduleTime,createTime,dispatchDeadline,dispatchCount,responseCount,firstAttempt,lastAttempt,httpRequest/url,appEngineHttpRequest/relativeUri';
const TASK_PAGE_FIELDS = `tasks(${TASK_FIELDS}),nextPageToken`;
/** A batch operation without its response: the created tasks are not read back. */
const BATCH_FIELDS = { fields: 'name,done,metadata,error' };

/** Creates the client; credentials are looked up on first use, not at creation. */
export function createCloudTasksClient(options: CloudTasksClientOptions = {}): CloudTasksClient {
  const base = options.emulatorHost
    ? `http://${options.emulatorHost}/v2/`
    : 'https://cloudtasks.googleapis.com/v2/';
  const serverClock = new ServerClock();
  const api = createGoogleApi({
    baseUrl: base,
    service: 'Cloud Tasks',
    scope: SCOPE,
    local: options.emulatorHost !== undefined && options.emulatorHost !== '',
    authClient: options.authClient,
    timeoutMs: options.timeoutMs ?? 20_000,
    serverClock,
  });

  /** One call; `onTasks` for a call on tasks that exist rather than on a queue (`toCloudTasksError`). */
  async function call<T>(
    method: 'GET' | 'POST' | 'DELETE',
    path: string,
    params?: object,
    data?: object | Buffer,
    readAnswer?: (chunks: readonly Buffer[]) => unknown,
    onTasks = false,
  ): Promise<T> {
    try {
      return await api.call<T>({ method, path, params, data, readAnswer });
    } catch (error) {
      throw toCloudTasksError(error, onTasks);
    }
  }

  /**
   * Reads are safe to repeat: what retry.ts says to retry is sent again after RetryInfo's (or
   * Retry-After's) delay, else backoff with jitter; a longer asked-for wait is left to the caller.
   */
  function read<T>(
    path: string,
    params?: object,
    readAnswer?: (chunks: readonly Buffer[]) => unknown,
    onTasks = false,
  ): Promise<T> {
    return sendWithRetries(
      () => call<T>('GET', path, params, undefined, readAnswer, onTasks),
      (error, attempt) => (error instanceof CloudTasksError ? readRetryWaitMs(error, attempt) : undefined),
    );
  }

  /**
   * Every page; with `sizes`, the first asks for `sizes.first` tasks and each after it for what
   * `sizes.after` makes of the page before (a page token may be sent with another page size).
   */
  async function* pages<T>(
    path: string,
    key: string,
    params: Record<string, string | number>,
    readAnswer?: (chunks: readonly Buffer[]) => unknown,
    sizes?: { readonly first: number; readonly after: (page: readonly T[]) => number },
  ): AsyncIterable<T[]> {
    let pageToken: string | undefined;
    let pageSize = sizes?.first;
    do {
      const answer = await read<Record<string, unknown> & { nextPageToken?: string }>(
        path,
        { ...params, ...(pageSize !== undefined && { pageSize }), ...(pageToken && { pageToken }) },
        readAnswer,
      );
      const page = (answer[key] as T[] | undefined) ?? [];
      pageToken = answer.nextPageToken || undefined;
      if (sizes && pageToken) pageSize = sizes.after(page);
      yield page;
    } while (pageToken);
  }

  return {
    serverClock,
    getQueue: (queue) => read<Queue>(queue.name),
    getQueueStats: async (queue) =>
      (await read<{ stats?: QueueStats }>(`/v2beta3/${queue.name}`, { readMask: 'stats' })).stats,
    listQueues: (parent) =>
      pages<Queue>(`projects/${parent.project}/locations/${parent.location}/queues`, 'queues', {
        pageSize: 1000,
      }),
    listTasks: (queue, view = 'BASIC') =>
      view === 'FULL'
        ? inFullView(
            pages<Task>(`${queue.name}/tasks`, 'tasks', { responseView: 'FULL' }, parseTaskPage, {
              first: FIRST_FULL_TASK_PAGE_SIZE,
              after: fullPageSizeAfter,
            }),
          )
        : pages<Task>(`${queue.name}/tasks`, 'tasks', {
            pageSize: TASK_PAGE_SIZE,
            responseView: 'BASIC',
            fields: TASK_PAGE_FIELDS,
          }),
    listTaskUrls: (queue) =>
      pages<Task>(`${queue.name}/tasks`, 'tasks', {
        pageSize: TASK_PAGE_SIZE,
        responseView: 'BASIC',
        fields: 'tasks(name,httpRequest/url),nextPageToken',
      }),
    listTaskAttempts: (queue) =>
      pages<Task>(`${queue.name}/tasks`, 'tasks', {
        pageSize: TASK_PAGE_SIZE,
        responseView: 'BASIC',
        fields: 'tasks(name,dispatchCount,responseCount,lastAttempt),nextPageToken',
      }),
    getTask: (task, view = 'BASIC') =>
      view === 'FULL'
        ? read<Task>(task.name, { responseView: 'FULL' }, undefined, true).then(fullView)
        : read<Task>(task.name, { responseView: 'BASIC', fields: TASK_FIELDS }, undefined, true),
    runTask: (task) =>
      call<Task>(
        'POST',
        `${task.name}:run`,
        { fields: TASK_FIELDS },
        { responseView: 'BASIC' },
        undefined,
        true,
      ),
    createTask: async (queue, task) => {
      try {
        return await call<Task>(
          'POST',
          `${queue.name}/tasks`,
          { fields: 'name' },
          { task, responseView: 'BASIC' },
        );
      } catch (error) {
        throw withoutContentOf(task, error);
      }
    },
    deleteTask: async (task) => {
      await call<unknown>('DELETE', task.name, undefined, undefined, undefined, true);
    },
    batchCreateTasks: (queue, tasks) =>
      call<BatchOperation>(
        'POST',
        `${queue.name}/tasks:batchCreate`,
        BATCH_FIELDS,
        batchCreateJson(queue.name, tasks),
      ),
    batchDeleteTasks: (queue, tasks) =>
      call<BatchOperation>(
        'POST',
        `${queue.name}/tasks:batchDelete`,
        BATCH_FIELDS,
        { names: tasks.map((task) => task.name) },
        undefined,
        true,
      ),
    getOperation: (name) => read<BatchOperation>(name, BATCH_FIELDS),
    testQueuePermissions: async (queue, permissions) => {
      const answer = await call<{ permissions?: string[] }>(
        'POST',
        `${queue.name}:testIamPermissions`,
        undefined,
        {
          permissions,
        },
      );
      return answer.permissions ?? [];
    },
  };
}

/**
 * A failed create's error, its message without the task's content (task-content.ts). Its cause, which
 * holds the message as it came, is dropped with it.
 */
export function withoutContentOf(task: NewTask, error: unknown): CloudTasksError {
  const failure = toCloudTasksError(error);
  const message = messageWithoutContent(task, failure.message);
  if (message === failure.message) return failure;
  return new CloudTasksError(message, failure.status, { ...failure.options, cause: undefined });
}

/** google.cloud.tasks.v2.Task.View's BASIC, by name and by number. */
const BASIC_VIEW: readonly unknown[] = ['BASIC', 1];

/**
 * A task read in the FULL view, refused when the answer says it holds the BASIC view: copied without its
 * body and headers, a task would be lost (docs/redrive.md "Per task").
 */
function fullView(task: Task): Task {
  if (!BASIC_VIEW.includes(task.view)) return task;
  throw new CloudTasksError(
    `FAILED_PRECONDITION: ${task.name} was asked for in the FULL view and came back in the BASIC view, without its body and headers`,
    'FAILED_PRECONDITION',
  );
}

/** A FULL listing's pages, each task in the FULL view (`fullView`). */
async function* inFullView(pages: AsyncIterable<Task[]>): AsyncIterable<Task[]> {
  for await (const page of pages) yield page.map(fullView);
}

/**
 * The canonical status of an answer whose error JSON names none (a proxy's, a stand-in's): a method the
 * server does not have (405, as well as 501) is UNIMPLEMENTED (docs/cloud-tasks-calls.md "An error without
 * its status").
 */
const HTTP_TO_CANONICAL: Record<number, CanonicalCode> = {
  400: 'INVALID_ARGUMENT',
  401: 'UNAUTHENTICATED',
  403: 'PERMISSION_DENIED',
  404: 'NOT_FOUND',
  405: 'UNIMPLEMENTED',
  409: 'ABORTED',
  429: 'RESOURCE_EXHAUSTED',
  499: 'CANCELLED',
  500: 'INTERNAL',
  501: 'UNIMPLEMENTED',
  503: 'UNAVAILABLE',
  504: 'DEADLINE_EXCEEDED',
};

/**
 * An HTTP status as its canonical one: a 409 whose message says the entity exists, or that a task with
 * the name existed too recently (a reserved name), is ALREADY_EXISTS.
 */
function canonicalOfHttp(httpStatus: number, message: string | undefined): CanonicalCode {
  if (httpStatus === 409 && /already exists|existed too recently/i.test(message ?? ''))
    return 'ALREADY_EXISTS';
  return HTTP_TO_CANONICAL[httpStatus] ?? (httpStatus >= 500 ? 'INTERNAL' : 'UNKNOWN');
}

/**
 * The message of Cloud Tasks' NOT_FOUND for a queue that is not there, or not yet, or not again (one just
 * made, or waking after 30 days idle, answers it for a few minutes): "Queue does not exist. If you just
 * created the queue, wait at least a minute for the queue to initialize."
 */
const QUEUE_NOT_FOUND = /\bqueue does not exist\b/i;

/**
 * Maps any failure of a call to a CloudTasksError; Google's error JSON gives the canonical status. A call
 * that was never sent (no credentials) and, for a call `onTasks` (GetTask, RunTask, DeleteTask, the batch
 * delete), a NOT_FOUND about the queue are UNAVAILABLE with an answer (not lost): the call did nothing, and
 * it says nothing about the tasks (docs/cloud-tasks-calls.md "Credentials" and "A queue not found").
 */
export function toCloudTasksError(error: unknown, onTasks = false): CloudTasksError {
  if (error instanceof CloudTasksError) return error;
  const failure = googleApiErrorOf(error, 'Cloud Tasks');
  const { httpStatus, retryDelayMs, timedOut, apiMessage } = failure.facts;
  if (failure.facts.noCredentials) {
    return new CloudTasksError(`UNAVAILABLE: ${failure.message}`, 'UNAVAILABLE', { cause: error });
  }
  if (httpStatus !== undefined) {
    const named = failure.facts.status;
    const answered = CANONICAL_CODES.includes(named as CanonicalCode)
      ? (named as CanonicalCode)
      : canonicalOfHttp(httpStatus, apiMessage);
    const status =
      onTasks && answered === 'NOT_FOUND' && QUEUE_NOT_FOUND.test(apiMessage ?? '')
        ? 'UNAVAILABLE'
        : answered;
    return new CloudTasksError(`${status}: ${apiMessage ?? `HTTP ${httpStatus}`}`, status, {
      httpStatus,
      ...(retryDelayMs !== undefined && { retryDelayMs }),
      cause: error,
    });
  }
  // No HTTP answer: a reset, a refused connection, a timeout, an answer that is not the API's. The call
  // may or may not have happened.
  const status = timedOut ? 'DEADLINE_EXCEEDED' : 'UNAVAILABLE';
  return new CloudTasksError(`${status}: ${failure.message}`, status, { answerLost: true, cause: error });
}
