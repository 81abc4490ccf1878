/**
 * v2beta3 GetQueue and ListQueues: the queue as v2beta3 answers it (v2beta3.ts), and `stats`
 * (google.cloud.tasks.v2beta3.QueueStats) only when the read mask names it; a read mask keeps only the fields
 * it names. docs/emulator.md "Queue stats".
 */
import type { QueueRecord } from './model.js';
import { formatTimestamp } from './proto-json.js';

/** google.cloud.tasks.v2beta3.QueueStats as JSON: int64 counts as strings, zero values left out. */
export interface QueueStats {
  tasksCount?: string;
  oldestEstimatedArrivalTime?: string;
  executedLastMinuteCount?: string;
  concurrentDispatchesCount?: string;
  effectiveExecutionRate?: number;
}

/** What the dispatcher saw of the queue (see Dispatcher.activityOf). */
export interface QueueActivity {
  readonly executedLastMinute: number;
  readonly inFlight: number;
}

/**
 * A queue of v2beta3 GetQueue or ListQueues. `readMask` is the query's FieldMask (comma-separated paths,
 * camelCase or snake_case); a path `stats.x` selects the whole `stats`.
 */
export function betaQueueJson(
  queue: QueueRecord,
  json: Record<string, unknown>,
  readMask: string | undefined,
  activity: QueueActivity,
): Record<string, unknown> {
  const full = { ...json };
  const paths = readMask?.split(',').map((path) => camelCase(path.trim().split('.')[0] ?? ''));
  if (paths === undefined) return full;
  if (paths.includes('stats')) full.stats = statsOf(queue, activity);
  return Object.fromEntries(Object.entries(full).filter(([key]) => paths.includes(key)));
}

/**
 * The emulator's figures: every live task counts (Cloud Tasks estimates); the oldest arrival is the
 * earliest schedule time; the effective rate is the queue's maxDispatchesPerSecond while it runs.
 */
function statsOf(queue: QueueRecord, activity: QueueActivity): QueueStats {
  let earliestMs: number | undefined;
  for (const task of queue.tasks.values()) {
    if (earliestMs === undefined || task.scheduleTimeMs < earliestMs) earliestMs = task.scheduleTimeMs;
  }
  const rate = queue.state === 'RUNNING' ? queue.rateLimits.maxDispatchesPerSecond : 0;
  const count = (n: number) => (n > 0 ? String(n) : undefined);
  const stats = {
    tasksCount: count(queue.tasks.size),
    oldestEstimatedArrivalTime: earliestMs === undefined ? undefined : formatTimestamp(earliestMs),
    executedLastMinuteCount: count(activity.executedLastMinute),
    concurrentDispatchesCount: count(activity.inFlight),
    effectiveExecutionRate: rate > 0 ? rate : undefined,
  };
  return Object.fromEntries(Object.entries(stats).filter(([, value]) => value !== undefined));
}

function camelCase(path: string): string {
  return path.replace(/_([a-z])/g, (_, letter: string) => letter.toUpperCase());
}
