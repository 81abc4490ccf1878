/**
 * Parking's pure rules (docs/parking.md): which failed tasks are at risk of being dropped by Cloud Tasks
 * before the next sweep, which queues a periodic sweep cannot protect, and what a parked copy and a copy
 * brought home look like. Time is a parameter; nothing here touches the clock or the network.
 */
import { sha256Hex } from '../platform/hash.js';
import type { HttpRequest, NewTask, Queue, Task } from '../cloud-tasks/client.js';
import { parseQueueName, taskNameIn, type QueueName, type TaskName } from '../cloud-tasks/names.js';
import { parseProtoDurationMs } from '../platform/duration.js';
import { firstTaskOf, headerOf, newTaskFrom, ORIGINAL_TASK_HEADER } from './copy.js';
import { dispatchDeadlineMsOf, retryLimitsOf, type RetryLimits } from './select.js';

/** Cloud Tasks deletes every task this long after its creation, whatever its state. */
export const TASK_RETENTION_MS = 31 * 24 * 3_600_000;

/** The queue's whole RetryConfig: the limits, and the backoffs between attempts. */
export interface RetryPolicy extends RetryLimits {
  readonly minBackoffMs: number;
  readonly maxBackoffMs: number;
  readonly maxDoublings: number;
}

/** Cloud Tasks' defaults for what a RetryConfig leaves out. */
const DEFAULT_MIN_BACKOFF_MS = 100;
const DEFAULT_MAX_BACKOFF_MS = 3_600_000;
const DEFAULT_MAX_DOUBLINGS = 16;
/** A schedule this many attempts long is taken as ending in a drop (the safe side). */
const MAX_STEPS = 10_000;

export function retryPolicyOf(queue: Queue): RetryPolicy {
  const retry = queue.retryConfig;
  return {
    ...retryLimitsOf(queue),
    minBackoffMs: parseProtoDurationMs(retry?.minBackoff) ?? DEFAULT_MIN_BACKOFF_MS,
    maxBackoffMs: parseProtoDurationMs(retry?.maxBackoff) ?? DEFAULT_MAX_BACKOFF_MS,
    maxDoublings: retry?.maxDoublings ?? DEFAULT_MAX_DOUBLINGS,
  };
}

/**
 * The wait after a task's `failures`-th failed attempt: minBackoff, doubled maxDoublings times, then
 * growing by the last doubled step, capped at maxBackoff (10s, 20s, 40s, 80s, 160s, 240s, 300s with 10s,
 * 300s and 3 doublings).
 */
export function backoffMs(policy: RetryPolicy, failures: number): number {
  const step = Math.max(0, failures - 1);
  const doublings = Math.min(step, policy.maxDoublings);
  const wait = policy.minBackoffMs * 2 ** doublings * (step - doublings + 1);
  return Math.min(wait, policy.maxBackoffMs);
}

/**
 * Whether Cloud Tasks gives a task up after its `attempts`-th attempt fails at `failedMs`: both limits used
 * up.
 */
function givenUpAfter(policy: RetryPolicy, attempts: number, firstMs: number, failedMs: number): boolean {
  if (policy.maxAttempts === -1 || attempts < policy.maxAttempts) return false;
  return policy.maxRetryDurationMs === 0 || failedMs - firstMs >= policy.maxRetryDurationMs;
}

/**
 * Whether a failed task may be dropped by `untilMs` if every attempt from now fails (docs/parking.md "At
 * risk"): one of its coming attempts may be the one that drops it, or its 31 days end. A task without a
 * known first attempt or creation time is taken as old (the safe side).
 */
export function isAtRisk(task: Task, policy: RetryPolicy, nowMs: number, untilMs: number): boolean {
  const createdMs = timeMs(task.createTime) ?? Number.NEGATIVE_INFINITY;
  if (createdMs + TASK_RETENTION_MS <= untilMs) return true;
  const firstMs = timeMs(task.firstAttempt?.dispatchTime) ?? Number.NEGATIVE_INFINITY;
  // An attempt started before the next sweep may fail as late as its dispatch deadline: the sweep sees it
  // under way and cannot park it.
  const deadlineMs = dispatchDeadlineMsOf(task);
  let attempts = task.dispatchCount ?? 0;
  let atMs = Math.max(timeMs(task.scheduleTime) ?? nowMs, nowMs);
  for (let step = 0; step < MAX_STEPS && atMs <= untilMs; step++) {
    attempts++;
    if (givenUpAfter(policy, attempts, firstMs, atMs + deadlineMs)) return true;
    atMs += backoffMs(policy, attempts);
  }
  return atMs <= untilMs;
}

/**
 * The shortest time from a task's first failed attempt to its drop, when every attempt fails: a periodic
 * sweep sees every failed task before it is dropped only when this is at least the sweep's period
 * (docs/parking.md "Where parking cannot work"). Infinity when only the 31 days drop a task.
 */
export function shortestLifeMs(policy: RetryPolicy): number {
  if (policy.maxAttempts === -1) return TASK_RETENTION_MS;
  let atMs = 0;
  for (let attempts = 1; attempts <= MAX_STEPS; attempts++) {
    if (givenUpAfter(policy, attempts, 0, atMs)) return atMs;
    atMs += backoffMs(policy, attempts);
  }
  return atMs;
}

/** The headers a parked copy carries (docs/parking.md "The parked copy"). */
export const PARK_HEADER = {
  originalQueue: 'X-Rerun-Original-Queue',
  parkCount: 'X-Rerun-Park-Count',
  parkedAt: 'X-Rerun-Parked-At',
  possiblyDone: 'X-Rerun-Possibly-Done',
  created: 'X-Rerun-Created',
  dispatchCount: 'X-Rerun-Dispatch-Count',
  responseCount: 'X-Rerun-Response-Count',
  firstAttempt: 'X-Rerun-First-Attempt',
  lastAttempt: 'X-Rerun-Last-Attempt',
  lastResponse: 'X-Rerun-Last-Response',
  lastStatusCode: 'X-Rerun-Last-Status-Code',
  lastStatusMessage: 'X-Rerun-Last-Status-Message',
  oidcAccount: 'X-Rerun-Oidc-Account',
  oidcAudience: 'X-Rerun-Oidc-Audience',
  oauthAccount: 'X-Rerun-Oauth-Account',
  oauthScope: 'X-Rerun-Oauth-Scope',
} as const;

/** The longest last-status message a parked copy keeps. */
const MAX_STATUS_MESSAGE = 200;

/** How often a task has been parked, from its header (0 when never). */
export function parkCountOf(task: Task): number {
  const count = Number(headerOf(task, PARK_HEADER.parkCount) ?? 0);
  return Number.isInteger(count) && count > 0 ? count : 0;
}

/** The parked copy's name: the same for every run that parks this task, so a replay moves nothing twice. */
export function parkedNameOf(task: TaskName, parking: QueueName): TaskName {
  return taskNameIn(parking, sha256Hex(`park\n${task.name}`));
}

/** The name a parked task is marked under when its last attempt may have run during the move. */
export function possiblyDoneNameOf(parked: TaskName): TaskName {
  return taskNameIn(parked, sha256Hex(`possibly-done\n${parked.name}`));
}

/** The home copy's name: derived from the parked task alone, so two unparks cannot both bring it home. */
export function homeNameOf(parked: TaskName, home: QueueName): TaskName {
  return taskNameIn(home, sha256Hex(`unpark\n${parked.name}`));
}

/**
 * The parked copy of `original` from `home`: every stored field, without its token (a parked copy is never
 * dispatched); the token's account and audience, the last attempt's status and the attempt counts and
 * times in headers.
 */
export function parkedCopyOf(
  original: Task,
  name: TaskName,
  home: QueueName,
  nowMs: number,
  possiblyDone: boolean,
): NewTask {
  const { httpRequest } = original;
  const status = original.lastAttempt?.responseStatus;
  const record: Record<string, string | undefined> = {
    [ORIGINAL_TASK_HEADER]: firstTaskOf(original),
    [PARK_HEADER.originalQueue]: home.name,
    [PARK_HEADER.parkCount]: String(parkCountOf(original) + 1),
    [PARK_HEADER.parkedAt]: new Date(nowMs).toISOString(),
    [PARK_HEADER.possiblyDone]: possiblyDone ? 'true' : undefined,
    [PARK_HEADER.created]: original.createTime,
    [PARK_HEADER.dispatchCount]: String(original.dispatchCount ?? 0),
    [PARK_HEADER.responseCount]: String(original.responseCount ?? 0),
    [PARK_HEADER.firstAttempt]: original.firstAttempt?.dispatchTime,
    [PARK_HEADER.lastAttempt]: original.lastAttempt?.dispatchTime,
    [PARK_HEADER.lastResponse]: original.lastAttempt?.responseTime,
    [PARK_HEADER.lastStatusCode]: status && String(status.code ?? 0),
    [PARK_HEADER.lastStatusMessage]: status?.message && printable(status.message),
    [PARK_HEADER.oidcAccount]: httpRequest?.oidcToken?.serviceAccountEmail,
    [PARK_HEADER.oidcAudience]: httpRequest?.oidcToken?.audience,
    [PARK_HEADER.oauthAccount]: httpRequest?.oauthToken?.serviceAccountEmail,
    [PARK_HEADER.oauthScope]: httpRequest?.oauthToken?.scope,
  };
  const recorded = Object.fromEntries(
    Object.entries(record).filter((entry): entry is [string, string] => entry[1] !== undefined),
  );
  return newTaskFrom(original, name, nowMs, {
    headers: (own) => ({
      ...withoutHeaders(own, [...Object.values(PARK_HEADER), ORIGINAL_TASK_HEADER]),
      ...recorded,
    }),
    http: ({ oidcToken: _oidc, oauthToken: _oauth, ...request }) => request,
  });
}

/** How far this process's clock may lag Cloud Tasks' before an original's quiet time is trusted. */
const CLOCK_MARGIN_MS = 60_000;

/**
 * Until when `original` can neither run on its own schedule nor reach its 31 days (RFC 3339): the earlier
 * of its scheduleTime and its createTime plus 31 days. Undefined when not known.
 */
export function quietUntilOf(original: Task): string | undefined {
  const dueMs = timeMs(original.scheduleTime) ?? Number.NaN;
  const expiresMs = (timeMs(original.createTime) ?? Number.NaN) + TASK_RETENTION_MS;
  const quietMs = Math.min(dueMs, expiresMs);
  return Number.isNaN(quietMs) ? undefined : new Date(quietMs).toISOString();
}

/**
 * Whether an original found gone at `nowMs` may have vanished by itself (run and succeeded, or been
 * dropped), so that its parked copy may have been done: yes unless it was still quiet, with a margin for
 * clocks (docs/parking.md "The move"). Gone while quiet, it was deleted by a move.
 */
export function mayHaveVanishedByItself(quietUntil: string | undefined, nowMs: number): boolean {
  const quietMs = timeMs(quietUntil);
  return quietMs === undefined || nowMs + CLOCK_MARGIN_MS >= quietMs;
}

/** A parked copy again, marked as possibly done (its original's last attempt may have run meanwhile). */
export function possiblyDoneCopyOf(parked: Task, name: TaskName, nowMs: number): NewTask {
  return newTaskFrom(parked, name, nowMs, {
    headers: (own) => ({ ...own, [PARK_HEADER.possiblyDone]: 'true' }),
  });
}

/** What a parked copy records of its original (docs/parking.md "Seeing them"). */
export interface ParkedRecord {
  /** The home queue; undefined when the header is missing or not a queue name. */
  readonly home: QueueName | undefined;
  readonly parkCount: number;
  readonly parkedAt: string | undefined;
  readonly possiblyDone: boolean;
  /** The account whose token the task carried, when it carried one. */
  readonly tokenAccount: string | undefined;
  /** The original as selection reads it: its recorded attempts, counts and times. */
  readonly recorded: Task;
}

/** Reads a parked copy's record (FULL view: the record is in its headers). */
export function parkedRecordOf(parked: Task): ParkedRecord {
  const header = (name: string): string | undefined => headerOf(parked, name);
  const count = (name: string): number | undefined => {
    const value = Number(header(name));
    return Number.isInteger(value) && value >= 0 ? value : undefined;
  };
  const code = count(PARK_HEADER.lastStatusCode);
  const message = header(PARK_HEADER.lastStatusMessage);
  const lastDispatch = header(PARK_HEADER.lastAttempt);
  const firstDispatch = header(PARK_HEADER.firstAttempt);
  const { httpRequest, appEngineHttpRequest } = parked;
  const dispatchCount = count(PARK_HEADER.dispatchCount);
  const responseCount = count(PARK_HEADER.responseCount);
  const created = header(PARK_HEADER.created);
  const lastResponse = header(PARK_HEADER.lastResponse);
  const recorded: Task = {
    name: parked.name,
    ...(httpRequest?.url !== undefined && { httpRequest: { url: httpRequest.url } }),
    ...(appEngineHttpRequest?.relativeUri !== undefined && {
      appEngineHttpRequest: { relativeUri: appEngineHttpRequest.relativeUri },
    }),
    ...(created !== undefined && { createTime: created }),
    ...(dispatchCount !== undefined && { dispatchCount }),
    ...(responseCount !== undefined && { responseCount }),
    ...(firstDispatch !== undefined && { firstAttempt: { dispatchTime: firstDispatch } }),
    ...(lastDispatch !== undefined && {
      lastAttempt: {
        dispatchTime: lastDispatch,
        ...(lastResponse !== undefined && { responseTime: lastResponse }),
        ...(code !== undefined && { responseStatus: { code, ...(message !== undefined && { message }) } }),
      },
    }),
  };
  return {
    home: parseQueueName(header(PARK_HEADER.originalQueue) ?? ''),
    parkCount: parkCountOf(parked),
    parkedAt: header(PARK_HEADER.parkedAt),
    possiblyDone: header(PARK_HEADER.possiblyDone) === 'true',
    tokenAccount: header(PARK_HEADER.oidcAccount) ?? header(PARK_HEADER.oauthAccount),
    recorded,
  };
}

/**
 * The copy a parked task goes home as: its request with the token put back, the parking headers taken
 * off (the first task's name and the park count stay), due at `dueMs`.
 */
export function homeCopyOf(parked: Task, name: TaskName, dueMs: number): NewTask {
  const header = (key: string): string | undefined => headerOf(parked, key);
  const dropped = Object.values(PARK_HEADER).filter((key) => key !== PARK_HEADER.parkCount);
  const oidc = header(PARK_HEADER.oidcAccount);
  const oauth = header(PARK_HEADER.oauthAccount);
  const audience = header(PARK_HEADER.oidcAudience);
  const scope = header(PARK_HEADER.oauthScope);
  const token: Pick<HttpRequest, 'oidcToken' | 'oauthToken'> = {
    ...(oidc !== undefined && {
      oidcToken: { serviceAccountEmail: oidc, ...(audience !== undefined && { audience }) },
    }),
    ...(oauth !== undefined && {
      oauthToken: { serviceAccountEmail: oauth, ...(scope !== undefined && { scope }) },
    }),
  };
  return newTaskFrom(parked, name, dueMs, {
    headers: (own) => withoutHeaders(own, dropped),
    http: (request) => ({ ...request, ...token }),
  });
}

function withoutHeaders(
  headers: Record<string, string> | undefined,
  names: readonly string[],
): Record<string, string> {
  const drop = new Set(names.map((name) => name.toLowerCase()));
  return Object.fromEntries(Object.entries(headers ?? {}).filter(([key]) => !drop.has(key.toLowerCase())));
}

/** A status message as a header value: printable ASCII, at most MAX_STATUS_MESSAGE characters. */
function printable(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, '?').slice(0, MAX_STATUS_MESSAGE);
}

function timeMs(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? undefined : ms;
}
