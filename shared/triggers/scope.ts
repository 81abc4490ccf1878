/**
 * What a request may touch: the allowlist check, done before any call is made. The control
 * queue and the parking queues are never rerun targets, even where an allowlist pattern covers them.
 */
import type { RerunRequest } from './events.js';
import {
  isParkingQueue,
  isQueueAllowed,
  parseQueueName,
  parseTaskName,
  type QueueName,
  type QueuePattern,
  type TaskName,
} from '../cloud-tasks/names.js';

/** The queues (and, for `tasks` requests, the tasks) a request covers, all inside the allowlist. */
export interface Scope {
  readonly queues: readonly QueueName[];
  /** Allowlist entries with a `*` queue segment, to expand by listing the location's queues. */
  readonly patterns: readonly QueuePattern[];
  /** For `tasks` requests: the named tasks, grouped by queue name. */
  readonly tasksByQueue: ReadonlyMap<string, readonly TaskName[]> | undefined;
  /** The control queue's name: left out when the patterns are expanded. */
  readonly controlQueue: string | undefined;
}

/**
 * Resolves a request against the allowlist. Returns the names outside it (nothing may be called then),
 * or the scope. Names were validated when the event was parsed; they are parsed again here so that
 * only parsed names ever reach a URL.
 */
export function resolveScope(
  request: RerunRequest,
  allowlist: readonly QueuePattern[],
  controlQueue?: QueueName,
): { ok: true; scope: Scope } | { ok: false; refused: string[] } {
  // A parking queue is reached only through its home queue (docs/parking.md "Parking queues").
  const allowed = (queue: QueueName) =>
    queue.name !== controlQueue?.name && !isParkingQueue(queue) && isQueueAllowed(queue, allowlist);
  const base = { patterns: [], tasksByQueue: undefined, controlQueue: controlQueue?.name };
  if (request.tasks) {
    const tasksByQueue = new Map<string, TaskName[]>();
    const queues = new Map<string, QueueName>();
    const refused: string[] = [];
    for (const name of request.tasks) {
      const task = parseTaskName(name);
      const queue = task && parseQueueName(task.queueName);
      if (!task || !queue || !allowed(queue)) {
        refused.push(name);
        continue;
      }
      queues.set(queue.name, queue);
      const list = tasksByQueue.get(queue.name) ?? [];
      if (!list.some((t) => t.name === task.name)) list.push(task);
      tasksByQueue.set(queue.name, list);
    }
    if (refused.length > 0) return { ok: false, refused };
    return { ok: true, scope: { ...base, queues: [...queues.values()], tasksByQueue } };
  }
  if (request.queues) {
    const parsed = request.queues.map((name) => ({ name, queue: parseQueueName(name) }));
    const refused = parsed.filter((p) => !p.queue || !allowed(p.queue)).map((p) => p.name);
    if (refused.length > 0) return { ok: false, refused };
    const unique = new Map(parsed.map((p) => [p.name, p.queue!]));
    return { ok: true, scope: { ...base, queues: [...unique.values()] } };
  }
  const queues: QueueName[] = [];
  const patterns: QueuePattern[] = [];
  for (const entry of allowlist) {
    const queue = parseQueueName(entry.pattern);
    if (queue) queues.push(queue);
    else patterns.push(entry);
  }
  return { ok: true, scope: { ...base, queues, patterns } };
}
