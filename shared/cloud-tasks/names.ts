/**
 * Cloud Tasks resource names, parsed and validated by Cloud Tasks' own rules before any URL is built.
 * https://cloud.google.com/tasks/docs/reference/rest/v2/projects.locations.queues.tasks#Task.FIELDS.name
 */
import { sha256Hex } from '../platform/hash.js';

// Project IDs: letters, digits and hyphens, optionally domain-scoped (`example.com:my-project`).
const PROJECT_ID = /^(?:[a-z0-9][a-z0-9.-]{0,61}[a-z0-9]:)?[a-z][a-z0-9-]{0,61}[a-z0-9]$/;
// Location IDs from ListLocations: lowercase letters, digits and hyphens (`us-central1`).
const LOCATION_ID = /^[a-z][a-z0-9-]{0,62}$/;
const QUEUE_ID = /^[A-Za-z0-9-]{1,100}$/;
const TASK_ID = /^[A-Za-z0-9_-]{1,500}$/;
/** What stands between a queue's name and a task ID in a task's name. */
const TASKS_SEGMENT = '/tasks/';

/** The parts of a queue name `projects/P/locations/L/queues/Q`. */
export interface QueueName {
  readonly project: string;
  readonly location: string;
  readonly queue: string;
  /** The full resource name. */
  readonly name: string;
}

/** The parts of a task name `projects/P/locations/L/queues/Q/tasks/T`. */
export interface TaskName extends Omit<QueueName, 'name'> {
  readonly task: string;
  readonly queueName: string;
  readonly name: string;
}

export function isProjectId(id: string): boolean {
  return PROJECT_ID.test(id);
}
export function isLocationId(id: string): boolean {
  return LOCATION_ID.test(id);
}
export function isQueueId(id: string): boolean {
  return QUEUE_ID.test(id);
}
export function isTaskId(id: string): boolean {
  return TASK_ID.test(id);
}

/** Parses a queue name; undefined unless every segment follows Cloud Tasks' rules. */
export function parseQueueName(name: string): QueueName | undefined {
  const parts = name.split('/');
  if (parts.length !== 6) return undefined;
  const [p, project, l, location, q, queue] = parts as [string, string, string, string, string, string];
  if (p !== 'projects' || l !== 'locations' || q !== 'queues') return undefined;
  if (!isProjectId(project) || !isLocationId(location) || !isQueueId(queue)) return undefined;
  return { project, location, queue, name };
}

/** Parses a task name; undefined unless every segment follows Cloud Tasks' rules. */
export function parseTaskName(name: string): TaskName | undefined {
  const parts = name.split('/');
  if (parts.length !== 8 || parts[6] !== 'tasks') return undefined;
  const queue = parseQueueName(parts.slice(0, 6).join('/'));
  const task = parts[7] ?? '';
  if (!queue || !isTaskId(task)) return undefined;
  return nameOfTask(queue, queue.name, task, name);
}

/**
 * The task `id` in `queue`, or in the queue of a task given: built from parts already checked, as
 * parseTaskName would give it. Throws unless the ID follows Cloud Tasks' rules.
 */
export function taskNameIn(queue: QueueName | TaskName, id: string): TaskName {
  if (!isTaskId(id)) throw new Error(`not a Cloud Tasks task ID: ${id}`);
  const queueName = 'queueName' in queue ? queue.queueName : queue.name;
  return nameOfTask(queue, queueName, id, `${queueName}${TASKS_SEGMENT}${id}`);
}

/**
 * A listed task's name, parsed as parseTaskName would parse it when it names a task of `queue`, else
 * undefined; the queue's parts are the ones already checked, shared rather than split again per task.
 */
export function taskNameOfQueue(queue: QueueName, name: string): TaskName | undefined {
  if (!name.startsWith(queue.name) || !name.startsWith(TASKS_SEGMENT, queue.name.length)) return undefined;
  const id = name.slice(queue.name.length + TASKS_SEGMENT.length);
  return isTaskId(id) ? nameOfTask(queue, queue.name, id, name) : undefined;
}

/** A task name's parts, from its queue's parts already checked and its ID. */
function nameOfTask(
  queue: Pick<QueueName, 'project' | 'location' | 'queue'>,
  queueName: string,
  id: string,
  name: string,
): TaskName {
  const { project, location } = queue;
  return { project, location, queue: queue.queue, task: id, queueName, name };
}

/** The last segment of a task name: its ID. */
export function taskIdOf(taskName: string): string {
  return taskName.slice(taskName.lastIndexOf('/') + 1);
}

/**
 * One allowlist entry: a queue name in which `*` may stand for one whole segment
 * (`projects/p/locations/us-central1/queues/*`).
 */
export interface QueuePattern {
  readonly project: string;
  readonly location: string;
  readonly queue: string;
  readonly pattern: string;
}

/** Parses an allowlist entry; undefined if a segment is neither `*` nor valid. */
export function parseQueuePattern(pattern: string): QueuePattern | undefined {
  const parts = pattern.split('/');
  if (parts.length !== 6) return undefined;
  const [p, project, l, location, q, queue] = parts as [string, string, string, string, string, string];
  if (p !== 'projects' || l !== 'locations' || q !== 'queues') return undefined;
  const ok = (value: string, rule: (v: string) => boolean) => value === '*' || rule(value);
  if (!ok(project, isProjectId) || !ok(location, isLocationId) || !ok(queue, isQueueId)) return undefined;
  return { project, location, queue, pattern };
}

/** Whether a parsed queue is allowed by one of the patterns. */
export function isQueueAllowed(queue: QueueName, allowlist: readonly QueuePattern[]): boolean {
  return allowlist.some(
    (entry) =>
      (entry.project === '*' || entry.project === queue.project) &&
      (entry.location === '*' || entry.location === queue.location) &&
      (entry.queue === '*' || entry.queue === queue.queue),
  );
}

/** The suffix of every parking queue's ID (docs/parking.md "Parking queues"). */
const PARKING_SUFFIX = '-parked';
/** Home queue IDs longer than this get a hashed parking queue ID, within the 100 characters of a queue ID. */
const PARKING_PREFIX_LENGTH = 84;

/**
 * The parking queue of a home queue (docs/parking.md "Parking queues"): `<queue>-parked` in the same
 * location, or `<first 84 characters>-<8 hex of the ID's SHA-256>-parked` when that would pass 100.
 */
export function parkingQueueOf(home: QueueName): QueueName {
  const plain = `${home.queue}${PARKING_SUFFIX}`;
  const id = isQueueId(plain)
    ? plain
    : `${home.queue.slice(0, PARKING_PREFIX_LENGTH)}-${sha256Hex(home.queue).slice(0, 8)}${PARKING_SUFFIX}`;
  return parseQueueName(`projects/${home.project}/locations/${home.location}/queues/${id}`)!;
}

/** Whether the queue is a parking queue: never a rerun target of its own, only through its home queue. */
export function isParkingQueue(queue: Pick<QueueName, 'queue'>): boolean {
  return queue.queue.endsWith(PARKING_SUFFIX);
}
