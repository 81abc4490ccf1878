/**
 * Pure selection: does a task match the request (docs/selection.md "Match"), and do the safety rules (docs/selection.md "Safety rules") let it run?
 * Time is a parameter; nothing here touches the clock, the environment or the network.
 */
import type { Attempt, Queue, Task } from '../cloud-tasks/client.js';
import { parseProtoDurationMs } from '../platform/duration.js';
import { CANONICAL_CODES, httpStatusOf } from '../cloud-tasks/codes.js';
import type { Match } from '../triggers/events.js';
import { failureSignatureOf } from './clusters.js';
import { taskIdOf } from '../cloud-tasks/names.js';

/** Why a matched task was not run. */
export type SkipReason =
  | 'never-attempted'
  | 'not-failed'
  | 'in-flight'
  | 'after-cutoff'
  | 'due-soon'
  | 'queue-paused'
  | 'queue-disabled'
  | 'queue-permission-denied'
  | 'queue-serial'
  | 'last-attempt'
  | 'claimed'
  | 'cancelled'
  | 'no-longer-matches'
  | 'cannot-act-as'
  | 'over-cap'
  | 'park-limit'
  | 'possibly-done';

/** The verdict on one listed task. */
export type Selection =
  | { readonly kind: 'unmatched' }
  | { readonly kind: 'skip'; readonly reason: SkipReason }
  | { readonly kind: 'candidate' };

/** What the safety rules need to know about the request and the task's queue. */
export interface SelectionRules {
  readonly match: Match;
  /** Only tasks whose failure signature is in one of these clusters; undefined: any. */
  readonly clusters?: readonly string[] | undefined;
  readonly cutoffMs: number;
  readonly minBackoffLeftMs: number;
  /** False on a PAUSED queue forced with `force`: nothing falls due by itself there. */
  readonly dueSoonApplies: boolean;
  /** The queue's RetryConfig; the last-attempt rule applies unless `allowLastAttempt`. */
  readonly retry: RetryLimits;
  readonly allowLastAttempt: boolean;
  readonly nowMs: number;
}

/** The queue's RetryConfig, as the last-attempt rule reads it. */
export interface RetryLimits {
  /** -1 = unlimited. */
  readonly maxAttempts: number;
  /** 0 = unlimited. */
  readonly maxRetryDurationMs: number;
}

/** Cloud Tasks' default maxAttempts when a queue's RetryConfig leaves it out. */
const DEFAULT_MAX_ATTEMPTS = 100;
/** An HTTP task's dispatch deadline when it sets none. */
const DEFAULT_DISPATCH_DEADLINE_MS = 10 * 60_000;

/** The queue's retry limits; what it leaves out takes Cloud Tasks' defaults. */
export function retryLimitsOf(queue: Queue): RetryLimits {
  return {
    maxAttempts: queue.retryConfig?.maxAttempts ?? DEFAULT_MAX_ATTEMPTS,
    maxRetryDurationMs: parseProtoDurationMs(queue.retryConfig?.maxRetryDuration) ?? 0,
  };
}

/**
 * Whether a failed forced attempt could make Cloud Tasks give the task up (docs/selection.md "Safety rules", `last-attempt`): both limits used up,
 * `dispatchCount + 1 >= maxAttempts` and the retry duration over by the end of the forced attempt. A task
 * without a known first attempt is taken as old (the safe side).
 */
export function isLastAttempt(task: Task, retry: RetryLimits, nowMs: number): boolean {
  if (retry.maxAttempts === -1 || (task.dispatchCount ?? 0) + 1 < retry.maxAttempts) return false;
  if (retry.maxRetryDurationMs === 0) return true;
  const firstMs = timeMs(task.firstAttempt?.dispatchTime) ?? Number.NEGATIVE_INFINITY;
  return firstMs + retry.maxRetryDurationMs < nowMs + dispatchDeadlineMsOf(task);
}

/** The longest an attempt of the task may run before it fails: its `dispatchDeadline`, or the default. */
export function dispatchDeadlineMsOf(task: Task): number {
  return parseProtoDurationMs(task.dispatchDeadline) ?? DEFAULT_DISPATCH_DEADLINE_MS;
}

/** Whether the task has at least half of its attempts left: only such tasks serve as canaries. */
export function hasHalfItsAttemptsLeft(task: Task, retry: RetryLimits): boolean {
  if (retry.maxAttempts === -1) return true;
  return retry.maxAttempts - (task.dispatchCount ?? 0) >= retry.maxAttempts / 2;
}

const UNMATCHED: Selection = { kind: 'unmatched' };
const CANDIDATE: Selection = { kind: 'candidate' };
const skip = (reason: SkipReason): Selection => ({ kind: 'skip', reason });

/** Whether the task's last attempt was dispatched and has no answer yet: it may be running now. */
export function hasAttemptUnderWay(task: Task): boolean {
  return task.lastAttempt?.dispatchTime !== undefined && task.lastAttempt.responseTime === undefined;
}

/** Applies the match, then the per-task safety rules, in that order. */
export function selectTask(task: Task, rules: SelectionRules): Selection {
  if (!matchesTask(task, rules.match) || !inClusters(task, rules.clusters)) return UNMATCHED;
  const last = task.lastAttempt;
  const dispatchMs = timeMs(last?.dispatchTime);
  if (!last || dispatchMs === undefined) return skip('never-attempted');
  if (last.responseTime === undefined) return skip('in-flight');
  if ((last.responseStatus?.code ?? 0) === 0) return skip('not-failed');
  if (dispatchMs >= rules.cutoffMs) return skip('after-cutoff');
  const nextMs = timeMs(task.scheduleTime);
  if (rules.dueSoonApplies && nextMs !== undefined && nextMs - rules.nowMs < rules.minBackoffLeftMs)
    return skip('due-soon');
  if (!rules.allowLastAttempt && isLastAttempt(task, rules.retry, rules.nowMs)) return skip('last-attempt');
  return CANDIDATE;
}

/**
 * The queue-level rules: PAUSED queues only with force, DISABLED never, and a queue that serialises its
 * work (`maxConcurrentDispatches: 1`) only with force when the mode bypasses that limit (RunTask does;
 * redrive's copies are dispatched by Cloud Tasks itself, within it).
 */
export function queueSkipReason(
  queue: Queue,
  force: boolean,
  bypassesDispatchLimit = true,
): SkipReason | undefined {
  if (queue.state === 'DISABLED') return 'queue-disabled';
  if (force) return undefined;
  if (queue.state === 'PAUSED') return 'queue-paused';
  if (queue.rateLimits?.maxConcurrentDispatches === 1 && bypassesDispatchLimit) return 'queue-serial';
  return undefined;
}

/** Whether the task's failure is in one of the clusters, when the request names any. */
export function inClusters(task: Task, clusters: readonly string[] | undefined): boolean {
  if (clusters === undefined) return true;
  const signature = failureSignatureOf(task);
  return signature !== undefined && clusters.includes(signature.id);
}

/** Whether every field given in the match holds for the task. */
export function matchesTask(task: Task, match: Match): boolean {
  const id = taskIdOf(task.name);
  if (match.taskIds && !match.taskIds.includes(id)) return false;
  if (match.taskIdGlob !== undefined && !globMatch(match.taskIdGlob, id)) return false;
  if (match.urlPrefix !== undefined) {
    const url = task.httpRequest?.url ?? task.appEngineHttpRequest?.relativeUri;
    if (url === undefined || !url.startsWith(match.urlPrefix)) return false;
  }
  const attempts = task.dispatchCount ?? 0;
  if (match.minAttempts !== undefined && attempts < match.minAttempts) return false;
  if (match.maxAttempts !== undefined && attempts > match.maxAttempts) return false;
  if (match.responseCodes && !matchesResponseCode(task.lastAttempt, match.responseCodes)) return false;
  if (match.failedSince !== undefined || match.failedUntil !== undefined) {
    const responseMs = timeMs(task.lastAttempt?.responseTime);
    if (responseMs === undefined) return false;
    if (match.failedSince !== undefined && responseMs < match.failedSince) return false;
    if (match.failedUntil !== undefined && responseMs > match.failedUntil) return false;
  }
  const createdMs = timeMs(task.createTime);
  if (match.createdBefore !== undefined && !(createdMs !== undefined && createdMs < match.createdBefore))
    return false;
  if (match.createdAfter !== undefined && !(createdMs !== undefined && createdMs > match.createdAfter))
    return false;
  return true;
}

function matchesResponseCode(
  attempt: Attempt | undefined,
  codes: NonNullable<Match['responseCodes']>,
): boolean {
  const status = attempt?.responseTime === undefined ? undefined : attempt.responseStatus;
  if (!status) return false;
  const name = CANONICAL_CODES[status.code ?? 0];
  const http = httpStatusOf(status);
  return codes.some((code) => (typeof code === 'number' ? code === http : code === name));
}

/**
 * Glob match on a task ID: `*` any run of characters, `?` one character. Linear-time two-pointer
 * matching with one backtrack point, so no pattern can blow up (no user regex: no ReDoS).
 */
export function globMatch(pattern: string, text: string): boolean {
  let p = 0;
  let t = 0;
  let starP = -1;
  let starT = 0;
  while (t < text.length) {
    if (p < pattern.length && (pattern[p] === '?' || pattern[p] === text[t])) {
      p++;
      t++;
    } else if (p < pattern.length && pattern[p] === '*') {
      starP = p++;
      starT = t;
    } else if (starP >= 0) {
      p = starP + 1;
      t = ++starT;
    } else {
      return false;
    }
  }
  while (pattern[p] === '*') p++;
  return p === pattern.length;
}

function timeMs(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? undefined : ms;
}
