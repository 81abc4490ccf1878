/**
 * `cloud-tasks-rerun queues`: for each queue, what someone on call looks for first (docs/cli.md "queues"):
 * state and limits, tasks and failing tasks, the largest failure clusters, the oldest failure. Counts come
 * from the v2beta3 queue stats where they answer; the listing is bounded by a stated number of list calls
 * (the project shares 600 a minute), and a queue it does not cover to the end is shown as sampled, one it
 * has no call left for as not read.
 */
import { ClusterCollector, lastAttemptFailed, type ClusterSummary } from '../../shared/run/clusters.js';
import {
  toCloudTasksError,
  type CloudTasksClient,
  type Queue,
  type QueueStats,
  type Task,
} from '../../shared/cloud-tasks/client.js';
import {
  isQueueAllowed,
  parseQueueName,
  type QueueName,
  type QueuePattern,
} from '../../shared/cloud-tasks/names.js';

/** List calls when `--max-list-calls` is not given: 30 of the 600 a minute the project shares. */
export const DEFAULT_LIST_CALLS = 30;
/** Clusters shown per queue. */
const LARGEST = 5;

/** One queue's overview; `--json` prints these as they are. */
export interface QueueOverview {
  queue: string;
  state?: string | undefined;
  rateLimits?: Queue['rateLimits'];
  maxAttempts?: number | undefined;
  /** From v2beta3 `stats`; absent when that did not answer. */
  stats?: {
    tasks: number;
    oldestArrival?: string | undefined;
    executedLastMinute: number;
    concurrentDispatches: number;
    effectiveRate?: number | undefined;
  };
  /** Tasks: the stats' count where they answered, else the tasks listed. */
  tasks: number;
  /** Tasks read by listing, and the list calls that took. */
  listed: number;
  listCalls: number;
  /** The listing stopped at its share of the list calls before the queue's end: the figures below are of a sample. */
  sampled: boolean;
  /** Listed tasks whose last attempt failed. */
  failing: number;
  /** The earliest first attempt of a failing task: how long this has been failing. */
  oldestFailure?: { time: string; task: string } | undefined;
  /** The largest failure clusters of the listed tasks (docs/selection.md "Failure clusters"). */
  clusters: ClusterSummary[];
  /** Why the queue could not be read (then only `queue` is meaningful). */
  error?: string | undefined;
  /** Why the queue was not read though it could be: no list calls were left (then only `queue` is meaningful). */
  notRead?: string | undefined;
}

export interface QueuesOverview {
  /** The list calls allowed in all, and those made (ListQueues for allowlist patterns included). */
  listCallLimit: number;
  listCalls: number;
  queues: QueueOverview[];
}

/** The failing tasks of one listing, folded (pure). */
export class FailureTally {
  failing = 0;
  oldest: { ms: number; task: string } | undefined;

  add(task: Task): void {
    if (!lastAttemptFailed(task)) return;
    this.failing++;
    const ms = Date.parse(task.firstAttempt?.dispatchTime ?? task.lastAttempt?.dispatchTime ?? '');
    if (!Number.isNaN(ms) && (this.oldest === undefined || ms < this.oldest.ms)) {
      this.oldest = { ms, task: task.name };
    }
  }
}

/**
 * The queues to show: those named (each inside the allowlist), else the allowlist's, with `*` queue
 * patterns expanded by ListQueues. Names outside the allowlist are refused before any call.
 */
export function namedQueues(
  names: readonly string[],
  allowlist: readonly QueuePattern[],
): { queues: QueueName[]; patterns: QueuePattern[] } | { refused: string[] } {
  if (names.length > 0) {
    const parsed = names.map((name) => ({ name, queue: parseQueueName(name) }));
    const refused = parsed.filter((p) => !p.queue || !isQueueAllowed(p.queue, allowlist));
    if (refused.length > 0) return { refused: refused.map((p) => p.name) };
    return { queues: parsed.map((p) => p.queue!), patterns: [] };
  }
  const exact = allowlist.map((entry) => parseQueueName(entry.pattern));
  return {
    queues: exact.filter((queue) => queue !== undefined),
    patterns: allowlist.filter((_, i) => exact[i] === undefined),
  };
}

/**
 * Reads the overview of every queue, within `listCallLimit` list calls in all (ListQueues pages included):
 * a queue is read only while a call is left.
 */
export async function readOverview(
  tasks: CloudTasksClient,
  named: { queues: readonly QueueName[]; patterns: readonly QueuePattern[] },
  listCallLimit: number,
): Promise<QueuesOverview> {
  let listCalls = 0;
  const noCallLeft = `no list calls left of the ${listCallLimit} allowed (--max-list-calls)`;
  const queues = new Map(named.queues.map((queue) => [queue.name, queue]));
  const unread: QueueOverview[] = [];
  for (const pattern of named.patterns) {
    if (pattern.project === '*' || pattern.location === '*') {
      unread.push(failed(pattern.pattern, 'cannot list: name the project and location'));
      continue;
    }
    const pages = tasks.listQueues(pattern)[Symbol.asyncIterator]();
    try {
      for (;;) {
        if (listCalls >= listCallLimit) {
          unread.push(
            notRead(
              pattern.pattern,
              `ListQueues stopped, ${noCallLeft}: queues past those listed are not shown`,
            ),
          );
          break;
        }
        // A call only when the last page named a next one.
        const page = await pages.next();
        if (page.done) break;
        listCalls++;
        for (const { name } of page.value) {
          const queue = parseQueueName(name);
          if (queue && isQueueAllowed(queue, [pattern])) queues.set(queue.name, queue);
        }
      }
    } catch (error) {
      unread.push(failed(pattern.pattern, toCloudTasksError(error).message));
    } finally {
      await pages.return?.();
    }
  }
  const overviews: QueueOverview[] = [];
  const all = [...queues.values()];
  for (const [index, queue] of all.entries()) {
    const left = listCallLimit - listCalls;
    if (left <= 0) {
      overviews.push(notRead(queue.name, noCallLeft));
      continue;
    }
    // An even share of what is left, at least one call while one is left.
    const share = Math.max(1, Math.floor(left / (all.length - index)));
    const overview = await readQueue(tasks, queue, share);
    listCalls += overview.listCalls;
    overviews.push(overview);
  }
  return { listCallLimit, listCalls, queues: [...overviews, ...unread] };
}

async function readQueue(
  tasks: CloudTasksClient,
  name: QueueName,
  listCalls: number,
): Promise<QueueOverview> {
  let queue: Queue;
  try {
    queue = await tasks.getQueue(name);
  } catch (error) {
    return failed(name.name, toCloudTasksError(error).message);
  }
  const stats = statsOf(await tasks.getQueueStats(name).catch(() => undefined));
  const tally = new FailureTally();
  const clusters = new ClusterCollector();
  let listed = 0;
  let calls = 0;
  let ended = false;
  const pages = tasks.listTasks(name)[Symbol.asyncIterator]();
  try {
    while (calls < listCalls) {
      // A call only when the last page named a next one.
      const page = await pages.next();
      if (page.done) {
        ended = true;
        break;
      }
      calls++;
      listed += page.value.length;
      for (const task of page.value) {
        tally.add(task);
        clusters.add(task, name.name);
      }
    }
  } catch (error) {
    return { ...failed(name.name, toCloudTasksError(error).message), listCalls: calls };
  } finally {
    await pages.return?.();
  }
  return {
    queue: name.name,
    state: queue.state,
    rateLimits: queue.rateLimits,
    maxAttempts: queue.retryConfig?.maxAttempts,
    ...(stats && { stats }),
    tasks: stats?.tasks ?? listed,
    listed,
    listCalls: calls,
    // Out of calls before the end: a sample, unless the stats say every task was listed.
    sampled: !ended && (stats === undefined || listed < stats.tasks),
    failing: tally.failing,
    oldestFailure: tally.oldest && { time: new Date(tally.oldest.ms).toISOString(), task: tally.oldest.task },
    clusters: clusters.largest(LARGEST),
  };
}

function statsOf(stats: QueueStats | undefined): QueueOverview['stats'] {
  if (stats === undefined) return undefined;
  return {
    tasks: Number(stats.tasksCount ?? 0),
    oldestArrival: stats.oldestEstimatedArrivalTime,
    executedLastMinute: Number(stats.executedLastMinuteCount ?? 0),
    concurrentDispatches: Number(stats.concurrentDispatchesCount ?? 0),
    effectiveRate: stats.effectiveExecutionRate,
  };
}

function failed(queue: string, error: string): QueueOverview {
  return { ...nothingRead(queue), error };
}

function notRead(queue: string, why: string): QueueOverview {
  return { ...nothingRead(queue), notRead: why };
}

function nothingRead(queue: string): QueueOverview {
  return { queue, tasks: 0, listed: 0, listCalls: 0, sampled: false, failing: 0, clusters: [] };
}

/** The overview as text: a block per queue, then the list calls made. */
export function formatOverview(overview: QueuesOverview, nowMs: number): string {
  const blocks = overview.queues.map((q) => {
    const why = q.error ?? q.notRead;
    if (why !== undefined) return `${q.queue}\n  not read: ${why}`;
    const limits = q.rateLimits ?? {};
    const lines = [
      `${q.queue}  ${q.state ?? 'RUNNING'}`,
      `  rate ${limits.maxDispatchesPerSecond ?? '?'}/s, ${limits.maxConcurrentDispatches ?? '?'} concurrent, ${q.maxAttempts === -1 ? 'unlimited' : (q.maxAttempts ?? '?')} attempts`,
      `  tasks ${q.tasks}${q.stats ? '' : ` (listed; no stats)`}, failing ${q.failing}${q.sampled ? ` of ${q.listed} listed (sampled: ${q.listCalls} list calls)` : ''}`,
    ];
    if (q.stats) {
      lines.push(
        `  last minute: ${q.stats.executedLastMinute} executed, ${q.stats.concurrentDispatches} dispatches in flight, effective rate ${q.stats.effectiveRate ?? 0}/s`,
      );
    }
    if (q.oldestFailure) {
      lines.push(
        `  oldest failure ${q.oldestFailure.time} (${ago(nowMs - Date.parse(q.oldestFailure.time))} ago)  ${q.oldestFailure.task}`,
      );
    }
    if (q.clusters.length > 0) {
      lines.push(`  largest clusters${q.sampled ? ' (of the sample)' : ''}:`);
      for (const c of q.clusters.slice(0, LARGEST)) {
        lines.push(`    ${c.id}  ${String(c.count).padStart(6)}  ${c.status}  ${c.target}`);
      }
    }
    return lines.join('\n');
  });
  blocks.push(
    `${overview.listCalls} list calls of at most ${overview.listCallLimit} (the project shares 600 a minute)`,
  );
  return blocks.join('\n\n');
}

function ago(ms: number): string {
  const minutes = Math.max(0, Math.round(ms / 60_000));
  if (minutes < 60) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  return hours < 48 ? `${hours}h${String(minutes % 60).padStart(2, '0')}m` : `${Math.floor(hours / 24)}d`;
}
