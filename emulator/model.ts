/**
 * The emulator's records of queues and tasks, their documented defaults, and the checks Cloud Tasks makes
 * on a queue or task before it accepts it.
 * https://cloud.google.com/tasks/docs/reference/rest/v2/projects.locations.queues
 * https://cloud.google.com/tasks/docs/reference/rest/v2/projects.locations.queues.tasks
 */
import { invalidPayload, ApiError, help } from './errors.js';
import { httpTargetOf, type HttpTargetRecord } from './http-target.js';
import type { Decoded } from './proto-json.js';
import type { RetryPolicy } from './retry.js';

/** A queue's state. */
export type QueueStateName = 'RUNNING' | 'PAUSED' | 'DISABLED';

/** A queue's RateLimits. */
export interface RateLimitsRecord {
  maxDispatchesPerSecond: number;
  maxBurstSize: number;
  maxConcurrentDispatches: number;
}

/** A queue as the emulator keeps it, with its tasks. */
export interface QueueRecord {
  readonly name: string;
  readonly project: string;
  readonly id: string;
  state: QueueStateName;
  rateLimits: RateLimitsRecord;
  retryConfig: RetryPolicy;
  appEngineRoutingOverride?: Decoded;
  /** Queue-level overrides of its HTTP tasks, applied at dispatch (emulator/http-target.ts). */
  httpTarget?: HttpTargetRecord;
  stackdriverLoggingConfig?: Decoded;
  /** Live tasks by name. */
  readonly tasks: Map<string, TaskRecord>;
  /** Every task ever added, in `seq` order; removed ones are marked `deleted` and compacted away now and then. */
  order: TaskRecord[];
  deletedInOrder: number;
}

/** An attempt (`Task.firstAttempt`, `Task.lastAttempt`). */
export interface AttemptRecord {
  scheduleTimeMs?: number;
  dispatchTimeMs?: number;
  responseTimeMs?: number;
  responseStatus?: { code: number; message: string };
}

/** A task's HttpRequest; `body` is base64. */
export interface HttpRequestRecord {
  url: string;
  httpMethod: string;
  headers: Record<string, string>;
  body?: string;
  oauthToken?: { serviceAccountEmail: string; scope?: string };
  oidcToken?: { serviceAccountEmail: string; audience?: string };
}

/** A task as the emulator keeps it. */
export interface TaskRecord {
  readonly name: string;
  readonly id: string;
  readonly queue: QueueRecord;
  /** Insertion number, the order ListTasks walks. */
  readonly seq: number;
  httpRequest: HttpRequestRecord;
  scheduleTimeMs: number;
  createTimeMs: number;
  dispatchDeadlineMs: number;
  dispatchCount: number;
  responseCount: number;
  /** Responses other than 5xx: the X-CloudTasks-TaskExecutionCount header. */
  executionCount: number;
  /** The HTTP status of the previous response: the X-CloudTasks-TaskPreviousResponse header. */
  previousResponse?: number;
  firstAttempt?: AttemptRecord;
  lastAttempt?: AttemptRecord;
  deleted: boolean;
  /** Bumped whenever the task is (re)scheduled, so stale scheduler entries are skipped. */
  version: number;
}

/** Defaults of a new queue, as `gcloud tasks queues describe` shows them. */
export const QUEUE_DEFAULTS: { rateLimits: RateLimitsRecord; retryConfig: RetryPolicy } = {
  rateLimits: { maxDispatchesPerSecond: 500, maxBurstSize: 100, maxConcurrentDispatches: 1000 },
  retryConfig: {
    maxAttempts: 100,
    maxRetryDurationMs: 0,
    minBackoffMs: 100,
    maxBackoffMs: 3_600_000,
    maxDoublings: 16,
  },
};

/** Default, minimum and maximum dispatchDeadline of an HTTP task. */
export const DISPATCH_DEADLINE = { defaultMs: 600_000, minMs: 15_000, maxMs: 1_800_000 };
/** How far ahead a task may be scheduled. */
export const MAX_SCHEDULE_AHEAD_MS = 30 * 24 * 3_600_000;
/** The HTTP methods that carry a body. */
export const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH']);

/** What a Queue sets besides its name and state. */
export type QueueSettings = Pick<
  QueueRecord,
  'rateLimits' | 'retryConfig' | 'appEngineRoutingOverride' | 'httpTarget' | 'stackdriverLoggingConfig'
>;

/**
 * The queue settings from a decoded Queue (0 or absent = the default, as in proto3).
 * `allowOutputOnly` lets a seed set maxBurstSize, which the API computes itself.
 * @throws ApiError INVALID_ARGUMENT for values out of the documented ranges.
 */
export function queueSettings(queue: Decoded, allowOutputOnly = false): QueueSettings {
  const rate = (queue.rateLimits ?? {}) as Decoded;
  const retry = (queue.retryConfig ?? {}) as Decoded;
  const defaults = QUEUE_DEFAULTS;
  const rateLimits: RateLimitsRecord = {
    maxDispatchesPerSecond:
      unlessZero(rate.maxDispatchesPerSecond) ?? defaults.rateLimits.maxDispatchesPerSecond,
    maxBurstSize:
      (allowOutputOnly ? unlessZero(rate.maxBurstSize) : undefined) ?? defaults.rateLimits.maxBurstSize,
    maxConcurrentDispatches:
      unlessZero(rate.maxConcurrentDispatches) ?? defaults.rateLimits.maxConcurrentDispatches,
  };
  const retryConfig: RetryPolicy = {
    maxAttempts: unlessZero(retry.maxAttempts) ?? defaults.retryConfig.maxAttempts,
    maxRetryDurationMs:
      (retry.maxRetryDuration as number | undefined) ?? defaults.retryConfig.maxRetryDurationMs,
    minBackoffMs: (retry.minBackoff as number | undefined) ?? defaults.retryConfig.minBackoffMs,
    maxBackoffMs: (retry.maxBackoff as number | undefined) ?? defaults.retryConfig.maxBackoffMs,
    maxDoublings: unlessZero(retry.maxDoublings) ?? defaults.retryConfig.maxDoublings,
  };
  check(
    rateLimits.maxDispatchesPerSecond > 0 && rateLimits.maxDispatchesPerSecond <= 500,
    'queue.rate_limits.max_dispatches_per_second',
    'must be in the range (0, 500]',
  );
  check(
    rateLimits.maxConcurrentDispatches >= 1 && rateLimits.maxConcurrentDispatches <= 5000,
    'queue.rate_limits.max_concurrent_dispatches',
    'must be in the range [1, 5000]',
  );
  check(
    retryConfig.maxAttempts >= -1,
    'queue.retry_config.max_attempts',
    'must be -1 (unlimited) or positive',
  );
  check(retryConfig.maxRetryDurationMs >= 0, 'queue.retry_config.max_retry_duration', 'must not be negative');
  check(retryConfig.minBackoffMs >= 0, 'queue.retry_config.min_backoff', 'must not be negative');
  check(
    retryConfig.maxBackoffMs >= retryConfig.minBackoffMs,
    'queue.retry_config.max_backoff',
    'must not be less than min_backoff',
  );
  check(retryConfig.maxDoublings >= 0, 'queue.retry_config.max_doublings', 'must not be negative');
  const settings: QueueSettings = { rateLimits, retryConfig };
  if (queue.appEngineRoutingOverride)
    settings.appEngineRoutingOverride = queue.appEngineRoutingOverride as Decoded;
  if (queue.httpTarget) settings.httpTarget = httpTargetOf(queue.httpTarget as Decoded);
  if (queue.stackdriverLoggingConfig)
    settings.stackdriverLoggingConfig = queue.stackdriverLoggingConfig as Decoded;
  return settings;
}

/** The fields of a new task from a decoded Task, after Cloud Tasks' checks. */
export interface TaskFields {
  httpRequest: HttpRequestRecord;
  scheduleTimeMs: number;
  dispatchDeadlineMs: number;
}

/**
 * Checks a decoded Task's payload and times and returns what a new task keeps. Output-only fields are
 * ignored here (a seed copies them separately).
 * @throws ApiError INVALID_ARGUMENT for a missing or malformed payload; UNIMPLEMENTED for App Engine and pull
 * tasks, and a task-level retry_config.
 */
export function taskFields(task: Decoded, nowMs: number): TaskFields {
  // A v2beta3 Task may also carry pullMessage and a retryConfig of its own (docs/emulator.md "v2beta3").
  if (task.appEngineHttpRequest !== undefined || task.pullMessage !== undefined) {
    throw new ApiError('UNIMPLEMENTED', 'The emulator supports HTTP target tasks only (httpRequest).');
  }
  if (task.retryConfig !== undefined) {
    throw new ApiError('UNIMPLEMENTED', "The emulator has no task-level retry_config: the queue's applies.");
  }
  const http = task.httpRequest as Decoded | undefined;
  if (!http) throw invalidPayload('Task.http_request is required.', 'task.http_request');
  const url = http.url as string | undefined;
  check(url !== undefined && url !== '', 'task.http_request.url', 'is required');
  check(
    /^https?:\/\/[^/\s]+/i.test(url!) && url!.length <= 2083,
    'task.http_request.url',
    'must be an absolute http:// or https:// URL of at most 2083 characters',
  );
  const rawMethod = (http.httpMethod as string | undefined) ?? 'POST';
  const httpMethod = rawMethod === 'HTTP_METHOD_UNSPECIFIED' ? 'POST' : rawMethod;
  const body = http.body as string | undefined;
  if (body !== undefined && body !== '') {
    check(
      BODY_METHODS.has(httpMethod),
      'task.http_request.body',
      'can only be set for POST, PUT and PATCH requests',
    );
  }
  check(
    !(http.oauthToken && http.oidcToken),
    'task.http_request',
    'can have only one of oauth_token and oidc_token',
  );
  for (const token of ['oauthToken', 'oidcToken'] as const) {
    const email = (http[token] as Decoded | undefined)?.serviceAccountEmail;
    if (http[token])
      check(
        typeof email === 'string' && email !== '',
        `task.http_request.${token === 'oauthToken' ? 'oauth_token' : 'oidc_token'}.service_account_email`,
        'is required',
      );
  }
  const headers: Record<string, string> = {};
  for (const [key, value] of Object.entries((http.headers ?? {}) as Record<string, string>)) {
    if (key.toLowerCase() !== 'user-agent') headers[key] = value;
  }
  headers['User-Agent'] = 'Google-Cloud-Tasks';
  const httpRequest: HttpRequestRecord = { url: url!, httpMethod, headers };
  if (body) httpRequest.body = body;
  if (http.oauthToken)
    httpRequest.oauthToken = http.oauthToken as NonNullable<HttpRequestRecord['oauthToken']>;
  if (http.oidcToken) httpRequest.oidcToken = http.oidcToken as NonNullable<HttpRequestRecord['oidcToken']>;

  const scheduleTimeMs = (task.scheduleTime as number | undefined) ?? nowMs;
  check(
    scheduleTimeMs <= nowMs + MAX_SCHEDULE_AHEAD_MS,
    'task.schedule_time',
    'must be at most 30 days in the future',
  );
  const dispatchDeadlineMs = (task.dispatchDeadline as number | undefined) ?? DISPATCH_DEADLINE.defaultMs;
  check(
    dispatchDeadlineMs >= DISPATCH_DEADLINE.minMs && dispatchDeadlineMs <= DISPATCH_DEADLINE.maxMs,
    'task.dispatch_deadline',
    'must be between 15 seconds and 30 minutes',
  );
  return { httpRequest, scheduleTimeMs, dispatchDeadlineMs };
}

/** The INVALID_ARGUMENT Cloud Tasks answers for a task ID outside `[A-Za-z0-9_-]{1,500}`. */
export function invalidTaskId(id: string): ApiError {
  return new ApiError(
    'INVALID_ARGUMENT',
    `Task ID "${id}" can contain only letters ([A-Za-z]), numbers ([0-9]), hyphens (-), or underscores (_). ` +
      'Task ID must between 1 and 500 characters.',
    [
      help(
        'Definition of task ID',
        'https://cloud.google.com/tasks/docs/reference/rest/v2/projects.locations.queues.tasks#Task.FIELDS.name',
      ),
    ],
  );
}

/** The INVALID_ARGUMENT Cloud Tasks answers for a malformed queue name. */
export function invalidQueueName(): ApiError {
  return new ApiError(
    'INVALID_ARGUMENT',
    'Queue name must be formatted: "projects/<PROJECT_ID>/locations/<LOCATION_ID>/queues/<QUEUE_ID>".',
    [
      help(
        'Definition of queue name',
        'https://cloud.google.com/tasks/docs/reference/rest/v2/projects.locations.queues#Queue.FIELDS.name',
      ),
    ],
  );
}

/** The NOT_FOUND Cloud Tasks answers for a queue that does not exist. */
export function queueNotFound(): ApiError {
  return new ApiError(
    'NOT_FOUND',
    'Queue does not exist. If you just created the queue, wait at least a minute for the queue to initialize.',
  );
}

function check(ok: boolean, field: string, rule: string): void {
  if (!ok) throw invalidPayload(`Invalid value for ${field}: it ${rule}.`, field);
}

// proto3 cannot tell 0 from unset: Cloud Tasks picks the default for both.
function unlessZero(value: unknown): number | undefined {
  return typeof value === 'number' && value !== 0 ? value : undefined;
}
