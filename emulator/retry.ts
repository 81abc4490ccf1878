/**
 * Cloud Tasks' retry schedule, from the queue's RetryConfig: the interval starts at minBackoff, doubles
 * maxDoublings times, then grows linearly, capped at maxBackoff; a task is given up only once both
 * maxAttempts and maxRetryDuration are used up.
 * https://cloud.google.com/tasks/docs/reference/rest/v2/projects.locations.queues#RetryConfig
 */

/** A queue's RetryConfig with durations in milliseconds (0 maxRetryDuration = unlimited). */
export interface RetryPolicy {
  maxAttempts: number;
  maxRetryDurationMs: number;
  minBackoffMs: number;
  maxBackoffMs: number;
  maxDoublings: number;
}

/**
 * The delay before the next attempt after `failedAttempts` attempts failed (1 after the first).
 * With minBackoff 10s, maxBackoff 300s, maxDoublings 3: 10s, 20s, 40s, 80s, 160s, 240s, 300s, 300s, ...
 */
export function retryDelayMs(policy: RetryPolicy, failedAttempts: number): number {
  const retry = Math.max(1, failedAttempts);
  const doublings = Math.min(retry - 1, policy.maxDoublings);
  const doubled = policy.minBackoffMs * 2 ** doublings;
  const linearSteps = retry - 1 - doublings;
  return Math.min(policy.maxBackoffMs, doubled * (1 + linearSteps));
}

/**
 * Whether a task that just failed is given up: `attempts` used up maxAttempts (-1 = unlimited) and the
 * time since its first attempt used up maxRetryDuration (0 = no time limit, so attempts alone decide).
 */
export function isRetryExhausted(
  policy: RetryPolicy,
  attempts: number,
  firstAttemptMs: number,
  nowMs: number,
): boolean {
  const attemptsUsed = policy.maxAttempts !== -1 && attempts >= policy.maxAttempts;
  const durationUsed = policy.maxRetryDurationMs === 0 || nowMs - firstAttemptMs >= policy.maxRetryDurationMs;
  return attemptsUsed && durationUsed;
}
