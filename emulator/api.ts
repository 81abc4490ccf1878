/**
 * The Cloud Tasks v2 REST methods, also under v2beta3 paths (docs/emulator.md "v2beta3"): maps a request
 * path to its method and resource name, decodes the request as Google's front end does, validates names by
 * Cloud Tasks' rules, checks the caller's permissions, and answers from the store.
 * https://cloud.google.com/tasks/docs/reference/rest
 */
import { isLocationId, isProjectId, parseQueueName, parseTaskName } from '../shared/cloud-tasks/names.js';
import { BatchMethods } from './batch.js';
import type { Clock } from './clock.js';
import type { Dispatcher } from './dispatcher.js';
import { ApiError, errorInfo, help, invalidPayload, retryInfo } from './errors.js';
import type { ApiMethod, Fault } from './faults.js';
import { FULL_VIEW_PERMISSION, METHOD_PERMISSIONS, type Iam } from './iam.js';
import { invalidQueueName, invalidTaskId, type QueueRecord, type TaskRecord } from './model.js';
import type { ApiVersion } from './operations.js';
import {
  BetaCreateTaskBody,
  BetaGetQueueQuery,
  BetaListQueuesQuery,
  BetaQueue,
  CreateTaskBody,
  decodeMessage,
  decodeQuery,
  GetTaskQuery,
  ListQueuesQuery,
  ListTasksQuery,
  NameOnlyQuery,
  Queue,
  QueueActionBody,
  RunTaskBody,
  TestIamPermissionsBody,
  UpdateQueueQuery,
  type Decoded,
} from './proto-json.js';
import { applyUpdateMask, parseUpdateMask, queueDecoded } from './queue-update.js';
import type { SlidingWindowQuota } from './quota.js';
import { betaQueueJson } from './queue-stats.js';
import { queueJson, taskJson, type TaskView } from './resources.js';
import type { Store } from './store.js';
import { betaQueue, maskFromBeta, queueFromBeta, type Ttls } from './v2beta3.js';

/** A parsed API request. */
export interface ApiRequest {
  readonly query: URLSearchParams;
  /** The parsed JSON body (`{}` when empty); undefined for GET and DELETE. */
  readonly body: unknown;
  /** The batch-kind faults that hit this call (BatchCreateTasks, BatchDeleteTasks). */
  readonly batchFaults?: readonly Fault[];
}

/** A successful answer: HTTP 200 with this JSON. */
export type ApiAnswer = object;

/** A request path resolved to its method. */
export interface Route {
  readonly method: ApiMethod;
  /** The resource name or parent the call is about. */
  readonly name: string;
  /** The project the call is charged to, when the path names one. */
  readonly project?: string;
  readonly handle: (request: ApiRequest) => ApiAnswer;
}

/** What the methods work with. */
export interface ApiOptions {
  store: Store;
  dispatcher: Dispatcher;
  clock: Clock;
  runTaskQuota: SlidingWindowQuota;
  quotaRetryInfo: boolean;
  iam: Iam;
  /** What a v2beta3 queue answers as its `taskTtl` and `tombstoneTtl`. */
  ttls: Ttls;
}

/** The v2 methods, under v2 and v2beta3 paths, over a store and a dispatcher. */
export class CloudTasksApi {
  readonly #batch: BatchMethods;

  constructor(private readonly deps: ApiOptions) {
    this.#batch = new BatchMethods({
      store: deps.store,
      clock: deps.clock,
      createOne: (queue, request, nowMs) => {
        const { record, view } = this.#createOne(queue, request, nowMs);
        return taskJson(record, view);
      },
      deleteOne: (name, nowMs) => this.#deleteOne(name, nowMs),
    });
  }

  /** Stops the timers of batch operations kept running. */
  stop(): void {
    this.#batch.stop();
  }

  /**
   * Resolves `POST /v2/projects/p/locations/l/queues/q/tasks/t:run` and the like to a method. A path of no
   * known shape resolves to 'Unknown', whose handler answers NOT_FOUND (or UNIMPLEMENTED for methods of the
   * API the emulator leaves out).
   */
  route(httpMethod: string, path: string): Route {
    const resolved = resolvePath(path);
    if (!resolved) return unknownRoute(path, 'NOT_FOUND');
    const { segments, verb, version } = resolved;
    const shape = shapeOf(segments);
    // Collection paths (`.../queues`, `.../tasks`) are about their parent.
    const collection = shape === 'location/queues' || shape === 'queue/tasks';
    const name = collection ? segments.slice(0, -1).join('/') : resolved.name;
    const project = segments[1];
    // Permissions are held on queues (the project for methods on a location or an operation).
    const queue =
      segments.length >= 6 && segments[4] === 'queues' ? segments.slice(0, 6).join('/') : undefined;
    const key = `${httpMethod} ${shape}${verb === undefined ? '' : `:${verb}`}`;
    const on = (method: ApiMethod, work: (request: ApiRequest) => ApiAnswer): Route => {
      const handle = (request: ApiRequest): ApiAnswer => {
        this.deps.iam.require(METHOD_PERMISSIONS[method], name, queue);
        return work(request);
      };
      return project === undefined ? { method, name, handle } : { method, name, project, handle };
    };
    const batchCall = (request: ApiRequest) => ({
      name,
      version,
      body: request.body,
      numericEnums: wantsNumericEnums(request),
      faults: request.batchFaults ?? [],
    });
    switch (key) {
      case 'POST queue/tasks:batchCreate':
        return on('BatchCreateTasks', (r) => this.#batch.create(batchCall(r)));
      case 'POST queue/tasks:batchDelete':
        return on('BatchDeleteTasks', (r) => this.#batch.delete(batchCall(r)));
      case 'GET operation':
        return on('GetOperation', (r) => {
          decodeQuery(r.query, NameOnlyQuery);
          return this.#batch.getOperation(batchCall(r));
        });
      case 'GET location/queues':
        return on('ListQueues', (r) => this.#listQueues(name, r, version));
      case 'POST location/queues':
        return on('CreateQueue', (r) => this.#createQueue(name, r, version));
      case 'GET queue':
        return on('GetQueue', (r) => this.#getQueue(name, r, version));
      case 'PATCH queue':
        return on('UpdateQueue', (r) => this.#updateQueue(name, r, version));
      case 'DELETE queue':
        return on('DeleteQueue', (r) => this.#deleteQueue(name, r));
      case 'POST queue:pause':
        return on('PauseQueue', (r) => this.#setQueueState(name, r, 'PAUSED', version));
      case 'POST queue:resume':
        return on('ResumeQueue', (r) => this.#setQueueState(name, r, 'RUNNING', version));
      case 'POST queue:testIamPermissions':
        return on('TestIamPermissions', (r) => this.#testIamPermissions(name, r));
      case 'GET queue/tasks':
        return on('ListTasks', (r) => this.#listTasks(name, r));
      case 'POST queue/tasks':
        return on('CreateTask', (r) => this.#createTask(name, r, version));
      case 'GET task':
        return on('GetTask', (r) => this.#getTask(name, r));
      case 'DELETE task':
        return on('DeleteTask', (r) => this.#deleteTask(name, r));
      case 'POST task:run':
        return on('RunTask', (r) => this.#runTask(name, project ?? '', r));
      default:
        return unknownRoute(name, shape === 'other' ? 'NOT_FOUND' : 'UNIMPLEMENTED');
    }
  }

  #listQueues(parent: string, request: ApiRequest, version: ApiVersion): ApiAnswer {
    const query = decodeQuery(request.query, version === 'v2' ? ListQueuesQuery : BetaListQueuesQuery);
    checkParent(parent);
    const page = this.deps.store.listQueues(
      parent,
      query.filter as string | undefined,
      query.pageSize as number | undefined,
      query.pageToken as string | undefined,
    );
    const readMask = query.readMask as string | undefined;
    return pageJson(
      'queues',
      page.items.map((q) => this.#queueAnswer(q, request, version, readMask)),
      page.nextPageToken,
    );
  }

  #createQueue(parent: string, request: ApiRequest, version: ApiVersion): ApiAnswer {
    decodeQuery(request.query, NameOnlyQuery);
    const queue = this.#queueOf(request, version);
    checkParent(parent);
    this.#checkActAs(queue.httpTarget as Decoded | undefined);
    const record = this.deps.store.createQueue(parent, queue, this.deps.clock.now());
    return this.#queueAnswer(record, request, version);
  }

  // The request's Queue as v2's.
  #queueOf(request: ApiRequest, version: ApiVersion): Decoded {
    if (version === 'v2') return decodeMessage(queueBody(request), Queue, 'queue');
    return queueFromBeta(decodeMessage(queueBody(request), BetaQueue, 'queue'), this.deps.ttls);
  }

  // A queue as the path's version answers it; under v2beta3, with `stats` when the read mask asks.
  #queueAnswer(queue: QueueRecord, request: ApiRequest, version: ApiVersion, readMask?: string): ApiAnswer {
    const numeric = wantsNumericEnums(request);
    const json = queueJson(queue, numeric);
    if (version === 'v2') return json;
    const beta = betaQueue(json, this.deps.ttls, numeric);
    if (readMask === undefined) return beta;
    const activity = this.deps.dispatcher.activityOf(queue, this.deps.clock.now());
    return betaQueueJson(queue, beta, readMask, activity);
  }

  // `PATCH v2/{queue.name}`, body the Queue, `updateMask` in the query. "This method creates the queue if it
  // does not exist and updates the queue if it does exist." The name in the path wins over one in the body.
  #updateQueue(name: string, request: ApiRequest, version: ApiVersion): ApiAnswer {
    const query = decodeQuery(request.query, UpdateQueueQuery);
    const given = this.#queueOf(request, version);
    checkQueueName(name);
    const updateMask = query.updateMask as string | undefined;
    const mask =
      version === 'v2' ? parseUpdateMask(updateMask) : maskFromBeta(parseUpdateMask(updateMask, BetaQueue));
    if (!mask || mask.some((path) => path[0] === 'httpTarget')) {
      this.#checkActAs(given.httpTarget as Decoded | undefined);
    }
    const now = this.deps.clock.now();
    const existing = this.deps.store.queues.get(name);
    if (!existing) {
      const settings = applyUpdateMask({}, given, mask);
      const parent = name.split('/').slice(0, 4).join('/');
      const created = this.deps.store.createQueue(parent, { ...settings, name }, now);
      return this.#queueAnswer(created, request, version);
    }
    this.deps.store.updateQueue(existing, applyUpdateMask(queueDecoded(existing), given, mask));
    this.deps.dispatcher.queueChanged(existing);
    return this.#queueAnswer(existing, request, version);
  }

  // docs/emulator.md "Queue stats": v2beta3's read mask may ask for the `stats` v2 does not have.
  #getQueue(name: string, request: ApiRequest, version: ApiVersion): ApiAnswer {
    const query = decodeQuery(request.query, version === 'v2' ? NameOnlyQuery : BetaGetQueueQuery);
    checkQueueName(name);
    const readMask = query.readMask as string | undefined;
    return this.#queueAnswer(this.deps.store.getQueue(name), request, version, readMask);
  }

  #deleteQueue(name: string, request: ApiRequest): ApiAnswer {
    decodeQuery(request.query, NameOnlyQuery);
    checkQueueName(name);
    const queue = this.deps.store.deleteQueue(name, this.deps.clock.now());
    this.deps.dispatcher.queueDeleted(queue);
    return {};
  }

  #setQueueState(
    name: string,
    request: ApiRequest,
    state: 'RUNNING' | 'PAUSED',
    version: ApiVersion,
  ): ApiAnswer {
    decodeQuery(request.query, NameOnlyQuery);
    decodeMessage(request.body, QueueActionBody, '');
    checkQueueName(name);
    const queue = this.deps.store.getQueue(name);
    if (queue.state === 'DISABLED') {
      throw new ApiError('FAILED_PRECONDITION', 'The queue is disabled; it cannot be paused or resumed.');
    }
    queue.state = state;
    if (state === 'RUNNING') this.deps.dispatcher.queueChanged(queue);
    return this.#queueAnswer(queue, request, version);
  }

  #listTasks(parent: string, request: ApiRequest): ApiAnswer {
    const query = decodeQuery(request.query, ListTasksQuery);
    checkQueueName(parent);
    const queue = this.deps.store.getQueue(parent);
    const page = this.deps.store.listTasks(
      queue,
      query.pageSize as number | undefined,
      query.pageToken as string | undefined,
    );
    const view = this.#viewOf(query, parent);
    const numeric = wantsNumericEnums(request);
    return pageJson(
      'tasks',
      page.items.map((t) => taskJson(t, view, numeric)),
      page.nextPageToken,
    );
  }

  #createTask(parent: string, request: ApiRequest, version: ApiVersion): ApiAnswer {
    decodeQuery(request.query, NameOnlyQuery);
    const body = decodeMessage(request.body, version === 'v2' ? CreateTaskBody : BetaCreateTaskBody, '');
    checkQueueName(parent);
    const { record, view } = this.#createOne(parent, body, this.deps.clock.now());
    return taskJson(record, view, wantsNumericEnums(request));
  }

  // One CreateTaskRequest, of CreateTask or BatchCreateTasks.
  #createOne(parent: string, body: Decoded, now: number): { record: TaskRecord; view: TaskView } {
    const task = body.task as Decoded | undefined;
    if (!task) throw invalidPayload('Task is required.', 'task');
    const view = this.#viewOf(body, parent);
    this.#checkActAs(task.httpRequest as Decoded | undefined);
    const queue = this.deps.store.getQueue(parent);
    // "If schedule_time is not set or is in the past then Cloud Tasks will set it to the current time."
    if (typeof task.scheduleTime === 'number' && task.scheduleTime < now) task.scheduleTime = now;
    const record = this.deps.store.createTask(queue, task, now);
    this.deps.dispatcher.schedule(record);
    return { record, view };
  }

  // A task's httpRequest, or a queue's httpTarget: a token in it makes Cloud Tasks mint tokens as its account.
  #checkActAs(http: Decoded | undefined): void {
    for (const token of [http?.oidcToken, http?.oauthToken] as Array<Decoded | undefined>) {
      const email = token?.serviceAccountEmail;
      if (typeof email === 'string' && email !== '') this.deps.iam.requireActAs(email);
    }
  }

  #getTask(name: string, request: ApiRequest): ApiAnswer {
    const query = decodeQuery(request.query, GetTaskQuery);
    checkTaskName(name);
    const view = this.#viewOf(query, queueOfTask(name));
    const task = this.deps.store.getTask(name, this.deps.clock.now(), true);
    return taskJson(task, view, wantsNumericEnums(request));
  }

  #deleteTask(name: string, request: ApiRequest): ApiAnswer {
    decodeQuery(request.query, NameOnlyQuery);
    checkTaskName(name);
    this.#deleteOne(name, this.deps.clock.now());
    return {};
  }

  #deleteOne(name: string, now: number): void {
    this.deps.store.removeTask(this.deps.store.getTask(name, now), now);
  }

  #runTask(name: string, project: string, request: ApiRequest): ApiAnswer {
    decodeQuery(request.query, NameOnlyQuery);
    const body = decodeMessage(request.body, RunTaskBody, '');
    checkTaskName(name);
    const view = this.#viewOf(body, queueOfTask(name));
    const now = this.deps.clock.now();
    const decision = this.deps.runTaskQuota.take(project, now);
    if (!decision.ok) throw this.#quotaExceeded(project, decision.retryAfterMs);
    const task = this.deps.store.getTask(name, now);
    this.deps.dispatcher.run(task);
    return taskJson(task, view, wantsNumericEnums(request));
  }

  // The real API answers the held subset, and an empty one for a queue that does not exist.
  #testIamPermissions(name: string, request: ApiRequest): ApiAnswer {
    decodeQuery(request.query, NameOnlyQuery);
    const body = decodeMessage(request.body, TestIamPermissionsBody, '');
    checkQueueName(name);
    const asked = (body.permissions as string[] | undefined) ?? [];
    const exists = this.deps.store.queues.has(name);
    const held = exists ? asked.filter((p) => this.deps.iam.holds(p, name)) : [];
    return held.length > 0 ? { permissions: held } : {};
  }

  // The view asked for; FULL needs cloudtasks.tasks.fullView on the queue.
  #viewOf(decoded: Decoded, queue: string): TaskView {
    if (decoded.responseView !== 'FULL') return 'BASIC';
    this.deps.iam.require(FULL_VIEW_PERMISSION, queue, queue);
    return 'FULL';
  }

  #quotaExceeded(project: string, retryAfterMs: number): ApiError {
    const { limit } = this.deps.runTaskQuota;
    return quotaError('force-run', project, limit, this.deps.quotaRetryInfo ? retryAfterMs : undefined);
  }
}

/** The quota a 429 is about: RunTask's own, list calls, or all API requests. */
export type QuotaKind = 'force-run' | 'list' | 'requests';

const QUOTAS: Record<QuotaKind, { metric: string; display: string; limit: string }> = {
  'force-run': {
    metric: 'force_run_requests',
    display: 'Force-run requests',
    limit: 'ForceRunRequestsPerMinutePerProject',
  },
  list: { metric: 'list_requests', display: 'List requests', limit: 'ListRequestsPerMinutePerProject' },
  requests: { metric: 'api_requests', display: 'API requests', limit: 'ApiRequestsPerMinutePerProject' },
};

/**
 * The RESOURCE_EXHAUSTED a project past a quota gets: ErrorInfo RATE_LIMIT_EXCEEDED, a Help link and, when
 * `retryAfterMs` is given, RetryInfo.
 */
export function quotaError(kind: QuotaKind, project: string, limit: number, retryAfterMs?: number): ApiError {
  const quota = QUOTAS[kind];
  const details = [
    errorInfo('RATE_LIMIT_EXCEEDED', {
      service: 'cloudtasks.googleapis.com',
      consumer: `projects/${project}`,
      quota_metric: `cloudtasks.googleapis.com/${quota.metric}`,
      quota_limit: quota.limit,
      quota_limit_value: String(limit),
      quota_location: 'global',
    }),
    help('Request a higher quota limit.', 'https://cloud.google.com/docs/quotas/help/request_increase'),
  ];
  if (retryAfterMs !== undefined) details.push(retryInfo(retryAfterMs));
  return new ApiError(
    'RESOURCE_EXHAUSTED',
    `Quota exceeded for quota metric '${quota.display}' and limit '${quota.display} per minute' of service ` +
      `'cloudtasks.googleapis.com' for consumer 'project:${project}'.`,
    details,
  );
}

type Shape = 'location/queues' | 'queue' | 'queue/tasks' | 'task' | 'location' | 'operation' | 'other';

interface ResolvedPath {
  segments: string[];
  verb?: string;
  name: string;
  version: ApiVersion;
}

function resolvePath(path: string): ResolvedPath | undefined {
  const version = (['v2', 'v2beta3'] as const).find((v) => path.startsWith(`/${v}/`));
  if (!version) return undefined;
  let rest = path.slice(version.length + 2);
  let verb: string | undefined;
  const colon = rest.indexOf(':', rest.lastIndexOf('/') + 1);
  if (colon !== -1) {
    verb = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
  }
  let segments: string[];
  try {
    segments = rest.split('/').map((s) => decodeURIComponent(s));
  } catch {
    return undefined;
  }
  const name = segments.join('/');
  return verb === undefined ? { segments, name, version } : { segments, verb, name, version };
}

function shapeOf(s: readonly string[]): Shape {
  if (s[0] !== 'projects' || s[2] !== 'locations') return 'other';
  if (s.length === 4) return 'location';
  if (s[4] === 'operations') return s.length === 6 ? 'operation' : 'other';
  if (s[4] !== 'queues') return 'other';
  if (s.length === 5) return 'location/queues';
  if (s.length === 6) return 'queue';
  if (s[6] !== 'tasks') return 'other';
  if (s.length === 7) return 'queue/tasks';
  if (s.length === 8) return 'task';
  return 'other';
}

function unknownRoute(name: string, status: 'NOT_FOUND' | 'UNIMPLEMENTED'): Route {
  return {
    method: 'Unknown',
    name,
    handle: () => {
      throw status === 'NOT_FOUND'
        ? new ApiError('NOT_FOUND', `The requested URL /v2/${name} was not found on this server.`)
        : new ApiError('UNIMPLEMENTED', 'This method is not implemented by the Cloud Tasks emulator.');
    },
  };
}

function checkParent(parent: string): void {
  const [, project = '', , location = ''] = parent.split('/');
  if (!isProjectId(project) || !isLocationId(location)) {
    throw new ApiError(
      'INVALID_ARGUMENT',
      'Parent must be formatted: "projects/<PROJECT_ID>/locations/<LOCATION_ID>".',
    );
  }
}

function checkQueueName(name: string): void {
  if (!parseQueueName(name)) throw invalidQueueName();
}

function checkTaskName(name: string): void {
  if (parseTaskName(name)) return;
  const slash = name.lastIndexOf('/tasks/');
  checkQueueName(name.slice(0, slash));
  throw invalidTaskId(name.slice(slash + '/tasks/'.length));
}

function queueOfTask(name: string): string {
  return name.slice(0, name.lastIndexOf('/tasks/'));
}

// The body of CreateQueue and UpdateQueue is the Queue (`body: "queue"`). When nothing of it is left outside
// the path, Google's client (google-gax transcoding) sends the JSON string `""`: an empty Queue.
function queueBody(request: ApiRequest): unknown {
  return request.body === '' ? {} : request.body;
}

function wantsNumericEnums(request: ApiRequest): boolean {
  const alt = request.query.get('$alt') ?? request.query.get('alt');
  return alt !== null && alt.includes('enum-encoding=int');
}

function pageJson(key: string, items: object[], nextPageToken: string | undefined): ApiAnswer {
  const json: Record<string, unknown> = {};
  if (items.length > 0) json[key] = items;
  if (nextPageToken) json.nextPageToken = nextPageToken;
  return json;
}
