/**
 * Queue and Task resources as the v2 REST API answers them: camelCase, RFC 3339 timestamps, Durations as
 * strings, zero values left out (proto3 JSON), enums by name, or by number when the client asked for
 * `$alt=json;enum-encoding=int` (Google's own client does).
 */
import { formatDuration } from './errors.js';
import { httpTargetJson } from './http-target.js';
import type { AttemptRecord, QueueRecord, TaskRecord } from './model.js';
import { formatTimestamp, HTTP_METHODS, QUEUE_STATES, TASK_VIEWS } from './proto-json.js';

/** A task view: BASIC leaves `httpRequest.body` out, FULL has it. */
export type TaskView = 'BASIC' | 'FULL';

/** `Task.lastAttempt` / `Task.firstAttempt` as JSON. */
export interface Attempt {
  scheduleTime?: string;
  dispatchTime?: string;
  responseTime?: string;
  responseStatus?: { code: number; message: string };
}

/** A Task resource as JSON. */
export interface Task {
  name: string;
  httpRequest: {
    url: string;
    httpMethod: string | number;
    headers: Record<string, string>;
    body?: string;
    oauthToken?: { serviceAccountEmail: string; scope?: string };
    oidcToken?: { serviceAccountEmail: string; audience?: string };
  };
  scheduleTime: string;
  createTime: string;
  dispatchDeadline: string;
  dispatchCount?: number;
  responseCount?: number;
  firstAttempt?: Attempt;
  lastAttempt?: Attempt;
  view: TaskView | number;
}

/** A Queue resource as JSON. */
export interface Queue {
  name: string;
  rateLimits: { maxDispatchesPerSecond: number; maxBurstSize: number; maxConcurrentDispatches: number };
  retryConfig: {
    maxAttempts: number;
    maxRetryDuration?: string;
    minBackoff: string;
    maxBackoff: string;
    maxDoublings?: number;
  };
  state: string | number;
  appEngineRoutingOverride?: Record<string, unknown>;
  /** Queue-level overrides of HTTP tasks: `uriOverride`, `httpMethod`, `headerOverrides`, a token. */
  httpTarget?: Record<string, unknown>;
  stackdriverLoggingConfig?: Record<string, unknown>;
}

/** A task as JSON in the given view. */
export function taskJson(task: TaskRecord, view: TaskView, numericEnums = false): Task {
  const http = task.httpRequest;
  const httpRequest: Task['httpRequest'] = {
    url: http.url,
    httpMethod: numericEnums ? HTTP_METHODS.indexOf(http.httpMethod) : http.httpMethod,
    headers: http.headers,
  };
  if (view === 'FULL' && http.body !== undefined) httpRequest.body = http.body;
  if (http.oauthToken) httpRequest.oauthToken = http.oauthToken;
  if (http.oidcToken) httpRequest.oidcToken = http.oidcToken;
  // Built in one go, in Google's field order; listing 100k tasks serialises this a lot.
  return {
    name: task.name,
    httpRequest,
    scheduleTime: formatTimestamp(task.scheduleTimeMs),
    createTime: formatTimestamp(task.createTimeMs),
    dispatchDeadline: formatDuration(task.dispatchDeadlineMs),
    ...(task.dispatchCount ? { dispatchCount: task.dispatchCount } : {}),
    ...(task.responseCount ? { responseCount: task.responseCount } : {}),
    ...(task.firstAttempt ? { firstAttempt: attemptJson(task.firstAttempt) } : {}),
    ...(task.lastAttempt ? { lastAttempt: attemptJson(task.lastAttempt) } : {}),
    view: numericEnums ? TASK_VIEWS.indexOf(view) : view,
  };
}

function attemptJson(attempt: AttemptRecord): Attempt {
  const json: Attempt = {};
  if (attempt.scheduleTimeMs !== undefined) json.scheduleTime = formatTimestamp(attempt.scheduleTimeMs);
  if (attempt.dispatchTimeMs !== undefined) json.dispatchTime = formatTimestamp(attempt.dispatchTimeMs);
  if (attempt.responseTimeMs !== undefined) json.responseTime = formatTimestamp(attempt.responseTimeMs);
  if (attempt.responseStatus) json.responseStatus = attempt.responseStatus;
  return json;
}

/** A queue as JSON. */
export function queueJson(queue: QueueRecord, numericEnums = false): Queue {
  const retry = queue.retryConfig;
  const json: Queue = {
    name: queue.name,
    rateLimits: { ...queue.rateLimits },
    retryConfig: {
      maxAttempts: retry.maxAttempts,
      ...(retry.maxRetryDurationMs ? { maxRetryDuration: formatDuration(retry.maxRetryDurationMs) } : {}),
      minBackoff: formatDuration(retry.minBackoffMs),
      maxBackoff: formatDuration(retry.maxBackoffMs),
      ...(retry.maxDoublings ? { maxDoublings: retry.maxDoublings } : {}),
    },
    state: numericEnums ? QUEUE_STATES.indexOf(queue.state) : queue.state,
  };
  if (queue.appEngineRoutingOverride) json.appEngineRoutingOverride = queue.appEngineRoutingOverride;
  if (queue.httpTarget) json.httpTarget = httpTargetJson(queue.httpTarget, numericEnums);
  if (queue.stackdriverLoggingConfig) json.stackdriverLoggingConfig = queue.stackdriverLoggingConfig;
  return json;
}
