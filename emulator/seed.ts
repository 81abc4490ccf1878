/**
 * Seeds: queues and tasks to load into the emulator, in-process or from a JSON file, with tasks in any state
 * (never attempted, failed and waiting, in flight). Times may be RFC 3339 or relative to the clock at load
 * time ("+1h", "-10m", "+30s"), so a demo seed stays valid on any day.
 */
import { readFile } from 'node:fs/promises';
import { ApiError } from './errors.js';
import type { QueueRecord, QueueStateName, TaskRecord } from './model.js';
import { queueSettings } from './model.js';
import { decodeMessage, Queue, Task, type Decoded } from './proto-json.js';
import { attemptOf, type Store } from './store.js';

/** An attempt in a seed (`Task.firstAttempt` / `Task.lastAttempt`). */
export interface SeedAttempt {
  scheduleTime?: string;
  dispatchTime?: string;
  responseTime?: string;
  responseStatus?: { code: number; message?: string };
}

/**
 * A task in a seed: everything of a Task. A task whose lastAttempt has a dispatchTime and no responseTime is
 * in flight: the scheduler leaves it alone until RunTask is called on it.
 */
export interface SeedTask {
  /** Full task name; or give `id`; or neither for a generated ID. */
  name?: string;
  id?: string;
  httpRequest: {
    url: string;
    httpMethod?: string;
    headers?: Record<string, string>;
    /** base64 */
    body?: string;
    oidcToken?: { serviceAccountEmail: string; audience?: string };
    oauthToken?: { serviceAccountEmail: string; scope?: string };
  };
  scheduleTime?: string;
  createTime?: string;
  dispatchDeadline?: string;
  dispatchCount?: number;
  responseCount?: number;
  firstAttempt?: SeedAttempt;
  lastAttempt?: SeedAttempt;
}

/** A queue in a seed, with its tasks. */
export interface SeedQueue {
  name: string;
  state?: QueueStateName;
  rateLimits?: { maxDispatchesPerSecond?: number; maxBurstSize?: number; maxConcurrentDispatches?: number };
  retryConfig?: {
    maxAttempts?: number;
    maxRetryDuration?: string;
    minBackoff?: string;
    maxBackoff?: string;
    maxDoublings?: number;
  };
  /**
   * Queue-level overrides of its HTTP tasks, as the API's `Queue.httpTarget` (enums by name or number, `port`
   * a number or an int64 string), applied at dispatch.
   */
  httpTarget?: SeedHttpTarget;
  tasks?: SeedTask[];
}

/** `Queue.httpTarget` in a seed. */
export interface SeedHttpTarget {
  uriOverride?: {
    scheme?: 'SCHEME_UNSPECIFIED' | 'HTTP' | 'HTTPS' | number;
    host?: string;
    port?: number | string;
    pathOverride?: { path?: string };
    queryOverride?: { queryParams?: string };
    uriOverrideEnforceMode?: 'URI_OVERRIDE_ENFORCE_MODE_UNSPECIFIED' | 'IF_NOT_EXISTS' | 'ALWAYS' | number;
  };
  httpMethod?: string | number;
  headerOverrides?: Array<{ header?: { key?: string; value?: string } }>;
  oauthToken?: { serviceAccountEmail: string; scope: string };
  oidcToken?: { serviceAccountEmail: string; audience: string };
}

/** Queues and tasks to load at start or at any time. */
export interface Seed {
  queues: SeedQueue[];
}

/**
 * Reads a seed JSON file.
 * @throws Error naming the file if it cannot be read or is not `{"queues": [...]}`.
 */
export async function readSeedFile(path: string): Promise<Seed> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(path, 'utf8'));
  } catch (err) {
    throw new Error(`Cannot read seed file ${path}: ${err instanceof Error ? err.message : String(err)}`, {
      cause: err,
    });
  }
  if (typeof parsed !== 'object' || parsed === null || !Array.isArray((parsed as Seed).queues)) {
    throw new Error(`Seed file ${path} must hold {"queues": [...]}`);
  }
  return parsed as Seed;
}

/**
 * Loads a seed into the store: creates missing queues (an existing queue takes the state and the settings
 * the seed names) and adds the tasks. Returns the tasks added, for the scheduler.
 * @throws Error naming the queue or task that Cloud Tasks would not accept.
 */
export function applySeed(store: Store, seed: Seed, nowMs: number): TaskRecord[] {
  const added: TaskRecord[] = [];
  for (const seedQueue of seed.queues) {
    const { tasks = [], ...queueFields } = seedQueue;
    const queue = withContext(`seed queue ${seedQueue.name}`, () => loadQueue(store, queueFields, nowMs));
    for (const [index, seedTask] of tasks.entries()) {
      const label = seedTask.name ?? seedTask.id ?? `#${index}`;
      added.push(
        withContext(`seed task ${label} in ${queue.name}`, () => loadTask(store, queue, seedTask, nowMs)),
      );
    }
  }
  return added;
}

function loadQueue(store: Store, fields: Omit<SeedQueue, 'tasks'>, nowMs: number): QueueRecord {
  const decoded = decodeMessage(fields, Queue, 'queue', { seedNowMs: nowMs });
  const existing = store.queues.get(fields.name);
  if (!existing) {
    const parent = fields.name.split('/').slice(0, 4).join('/');
    return store.createQueue(parent, decoded, nowMs, true);
  }
  const settings = queueSettings(decoded, true);
  if (decoded.rateLimits) existing.rateLimits = settings.rateLimits;
  if (decoded.retryConfig) existing.retryConfig = settings.retryConfig;
  if (settings.httpTarget) existing.httpTarget = settings.httpTarget;
  if (fields.state) existing.state = fields.state;
  return existing;
}

function loadTask(store: Store, queue: QueueRecord, seedTask: SeedTask, nowMs: number): TaskRecord {
  const { id, ...fields } = seedTask;
  const decoded = decodeMessage(fields, Task, 'task', { seedNowMs: nowMs });
  if (decoded.name === undefined && id !== undefined) decoded.name = `${queue.name}/tasks/${id}`;
  const history: Parameters<Store['createTask']>[3] = {};
  if (typeof decoded.createTime === 'number') history.createTimeMs = decoded.createTime;
  if (typeof decoded.dispatchCount === 'number') history.dispatchCount = decoded.dispatchCount;
  if (typeof decoded.responseCount === 'number') history.responseCount = decoded.responseCount;
  const first = attemptOf(decoded.firstAttempt as Decoded | undefined);
  const last = attemptOf(decoded.lastAttempt as Decoded | undefined);
  if (first) history.firstAttempt = first;
  if (last) history.lastAttempt = last;
  return store.createTask(queue, decoded, nowMs, history);
}

function withContext<T>(context: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof ApiError) throw new Error(`${context}: ${err.status}: ${err.message}`, { cause: err });
    throw err;
  }
}
