/**
 * The one place that decides what to do with a failed Cloud Tasks call (AIP-194:
 * https://google.aip.dev/194). Every other module branches on the returned action.
 */
import type { CanonicalCode } from './codes.js';

/** What a caller does after an error: retry a read, wait for quota, treat the task as gone, stop the queue, or give up. */
export type ErrorAction = 'retry' | 'wait-quota' | 'gone' | 'stop-queue' | 'fail';

/** The facts about a failed call that decide the action. */
export interface CallFailure {
  readonly status: CanonicalCode;
  /** No HTTP answer arrived (reset, timeout): the call may or may not have taken effect. */
  readonly answerLost: boolean;
}

/** Decides the action for a failed call; `answerLost` reads are retried like UNAVAILABLE. */
export function actionFor(failure: CallFailure): ErrorAction {
  if (failure.answerLost) return 'retry';
  switch (failure.status) {
    case 'UNAVAILABLE':
      return 'retry';
    case 'RESOURCE_EXHAUSTED':
      return 'wait-quota';
    case 'NOT_FOUND':
      return 'gone';
    case 'PERMISSION_DENIED':
    case 'UNAUTHENTICATED':
      return 'stop-queue';
    default:
      return 'fail';
  }
}

/**
 * What a task becomes when reading it failed: gone, failed for good, or left for a later delivery. A read
 * has no side effect, so a server error to it (INTERNAL, UNKNOWN, DEADLINE_EXCEEDED), or a read aborted or
 * cancelled (AIP-194: ABORTED is retried at a higher level), says nothing about the task: it is deferred,
 * the delivery is not acknowledged, and the redelivery reads it again. So is a queue whose read failed so.
 */
export function outcomeOfFailedRead(failure: CallFailure): 'gone' | 'failed' | 'deferred' {
  if (isServerError(failure) || failure.status === 'ABORTED' || failure.status === 'CANCELLED')
    return 'deferred';
  switch (actionFor(failure)) {
    case 'gone':
      return 'gone';
    case 'fail':
    case 'stop-queue':
      return 'failed';
    default:
      return 'deferred';
  }
}

/**
 * Whether a call that changes something (RunTask, CreateTask, DeleteTask) may have taken effect although
 * it failed: no answer, a server deadline, or a server-side error. Such a call is never simply resent.
 */
export function isInDoubt(failure: CallFailure): boolean {
  return (
    failure.answerLost ||
    isServerError(failure) ||
    failure.status === 'UNAVAILABLE' ||
    failure.status === 'ABORTED'
  );
}

/** An error on the server's side that says nothing about the resource the call named. */
function isServerError(failure: CallFailure): boolean {
  return (
    failure.status === 'INTERNAL' || failure.status === 'UNKNOWN' || failure.status === 'DEADLINE_EXCEEDED'
  );
}

/** Exponential backoff with full jitter: attempt 0 waits up to baseMs, doubling up to capMs. */
export function backoffDelayMs(
  attempt: number,
  random: () => number = Math.random,
  baseMs = 200,
  capMs = 5_000,
): number {
  return Math.round(random() * Math.min(capMs, baseMs * 2 ** attempt));
}

/** How long to wait for the RunTask quota: RetryInfo's delay, else until the next minute starts. */
export function quotaWaitMs(retryDelayMs: number | undefined, nowMs: number): number {
  return retryDelayMs ?? 60_000 - (nowMs % 60_000);
}

/** Read attempts before a transient error is given up on. */
export const MAX_READ_ATTEMPTS = 5;

/** The longest wait a read's retry takes; a longer RetryInfo or Retry-After gives the read up instead. */
const MAX_READ_WAIT_MS = 5_000;
/** The same for a read refused for quota (a list call's quota is per minute). */
const MAX_QUOTA_READ_WAIT_MS = 10_000;

/**
 * How long to wait before a failed read is sent again, or undefined when it is not: what actionFor retries
 * and a read refused for quota (RESOURCE_EXHAUSTED), up to MAX_READ_ATTEMPTS, after the server's asked-for
 * delay (RetryInfo, else Retry-After) or backoff with jitter (docs/cloud-tasks-calls.md "When a call is
 * sent again").
 */
export function readRetryWaitMs(
  failure: CallFailure & { readonly retryDelayMs?: number | undefined },
  attempt: number,
  random: () => number = Math.random,
): number | undefined {
  const action = actionFor(failure);
  if ((action !== 'retry' && action !== 'wait-quota') || attempt + 1 >= MAX_READ_ATTEMPTS) return undefined;
  const asked = failure.retryDelayMs;
  if (asked === undefined) return backoffDelayMs(attempt, random);
  return asked <= (action === 'retry' ? MAX_READ_WAIT_MS : MAX_QUOTA_READ_WAIT_MS) ? asked : undefined;
}
