/**
 * A local Cloud Tasks v2 (and v2beta3) REST emulator on node:http, listening on 127.0.0.1 only: the API, real dispatch,
 * the RunTask quota, and knobs for tests and benchmarks (latency, faults, permissions, call and dispatch
 * records, a controllable clock, seeds).
 */
import { Retention, TASK_RETENTION_MS } from './retention.js';
import { readBody } from './read-body.js';
import { applyFieldMask, parseFieldMask, type FieldMask } from './field-mask.js';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { CloudTasksApi, quotaError, type Route } from './api.js';
import { RealClock, type Clock } from './clock.js';
import { Dispatcher, type DispatchRecord } from './dispatcher.js';
import { ApiError, invalidPayload } from './errors.js';
import { Faults, type ApiMethod, type Fault } from './faults.js';
import { Iam, METHOD_PERMISSIONS, permissionDenied, type PermissionGrant } from './iam.js';
import { SlidingWindowQuota } from './quota.js';
import { taskJson, type Task } from './resources.js';
import { applySeed, type Seed } from './seed.js';
import { Store } from './store.js';

export type { ApiMethod, Fault } from './faults.js';
export type { PermissionGrant } from './iam.js';
export type { DispatchRecord } from './dispatcher.js';
export type { Queue, Task, TaskView } from './resources.js';
export type { Seed, SeedQueue, SeedTask, SeedAttempt, SeedHttpTarget } from './seed.js';
export { readSeedFile } from './seed.js';
export { ManualClock, RealClock, type Clock } from './clock.js';

/** Options of {@link startEmulator}. */
export interface EmulatorOptions {
  /** 0 = an ephemeral port (the default in-process; the CLI defaults to 8123). */
  port?: number;
  /** RunTask calls allowed per project in a sliding window; default 60 per 60 000 ms. */
  runTaskQuota?: { limit: number; windowMs: number };
  /**
   * Default true: 429 answers carry a google.rpc.RetryInfo detail (time until a slot frees); false: only
   * ErrorInfo (reason RATE_LIMIT_EXCEEDED), as a real quota error may come.
   */
  quotaRetryInfo?: boolean;
  /** Real milliseconds added before every API answer (default 0). */
  latencyMs?: number;
  /** Default the real clock; tests pass `new ManualClock(startMs)`. */
  clock?: Clock;
  /** Queues and tasks to load at start. */
  seed?: Seed;
  /**
   * How long the name of a finished or deleted task stays reserved (default 1 h, the proto's "about an
   * hour"; the current API text says it can take up to 24 h, 9 days for queue.yaml queues).
   */
  dedupWindowMs?: number;
  /**
   * How long after its creation a task is deleted, whatever its state (default 31 days, as Cloud Tasks;
   * `Infinity` keeps tasks for ever). Anything but a positive number makes startEmulator throw a RangeError.
   */
  taskRetentionMs?: number;
  /**
   * The Cloud Tasks permissions the caller holds, for every queue or by queue name (`'*'` for the rest);
   * default every permission. A call without its permission answers PERMISSION_DENIED.
   */
  permissions?: PermissionGrant;
  /**
   * The service accounts the caller may act as (default any): CreateTask of a task whose OIDC or OAuth
   * token names another answers PERMISSION_DENIED (`iam.serviceAccounts.actAs`).
   */
  actAs?: readonly string[];
  /** How long a deleted queue's name cannot be used again (default 7 days, as Cloud Tasks documents). */
  queueReuseWindowMs?: number;
  /** Receives one line per API call and dispatch; default silent. */
  log?: (line: string) => void;
  /** Random source for fault rates (default Math.random). */
  random?: () => number;
}

/** One API call. */
export interface CallRecord {
  method: ApiMethod;
  /** The resource name or parent. */
  name: string;
  /** Emulator clock. */
  startMs: number;
  endMs: number;
  /** Real time (performance.timeOrigin + performance.now()), for pacing assertions. */
  realStartMs: number;
  realEndMs: number;
  /** HTTP status answered; 0 if the connection was reset. */
  status: number;
  /** The injected fault that hit this call. */
  fault?: string;
}

/** A running emulator. */
export interface Emulator {
  /** `http://127.0.0.1:PORT` */
  readonly url: string;
  /** `127.0.0.1:PORT`, the value for CLOUD_TASKS_EMULATOR_HOST. */
  readonly host: string;
  /** Every API call, in arrival order. */
  readonly calls: readonly CallRecord[];
  /** Every HTTP dispatch to a task's target. */
  readonly dispatches: readonly DispatchRecord[];
  readonly clock: Clock;
  /**
   * Adds a fault; faults stack, and each is consumed per matching call.
   * @throws Error naming the field of a fault that is not valid.
   */
  injectFault(fault: Fault): void;
  clearFaults(): void;
  setLatency(ms: number): void;
  /** Replaces the permissions the caller holds (undefined = every permission). */
  setPermissions(grant: PermissionGrant | undefined): void;
  /** Replaces the service accounts the caller may act as (undefined = any). */
  setActAs(accounts: readonly string[] | undefined): void;
  /** Adds queues and tasks at any time. */
  load(seed: Seed): void;
  /** The live task as the API would return it in FULL view; undefined once gone. */
  task(name: string): Task | undefined;
  /** Resolves once no dispatch is in flight (their targets answered or timed out). */
  settled(): Promise<void>;
  /** Closes the server and stops timers and dispatches. */
  stop(): Promise<void>;
}

const MAX_BODY_BYTES = 10 * 1024 * 1024;

/**
 * Starts an emulator on 127.0.0.1.
 * @throws Error if the port is taken or the seed is not valid.
 */
export async function startEmulator(options: EmulatorOptions = {}): Promise<Emulator> {
  const clock = options.clock ?? new RealClock();
  const log = options.log ?? (() => undefined);
  const ttls = {
    taskTtlMs: options.taskRetentionMs ?? TASK_RETENTION_MS,
    tombstoneTtlMs: options.dedupWindowMs ?? 3_600_000,
  };
  const retention = new Retention({ clock, store: () => store, retentionMs: ttls.taskTtlMs, log });
  const store: Store = new Store({
    dedupWindowMs: ttls.tombstoneTtlMs,
    queueReuseWindowMs: options.queueReuseWindowMs ?? 7 * 24 * 3_600_000,
    onTaskCreated: (task) => retention.track(task),
  });
  const dispatcher = new Dispatcher({ clock, store, log });
  const quota = options.runTaskQuota ?? { limit: 60, windowMs: 60_000 };
  const runTaskQuota = new SlidingWindowQuota(quota.limit, quota.windowMs);
  const quotaRetryInfo = options.quotaRetryInfo ?? true;
  const iam = new Iam({ permissions: options.permissions, actAs: options.actAs });
  const api = new CloudTasksApi({ store, dispatcher, clock, runTaskQuota, quotaRetryInfo, iam, ttls });
  const faults = new Faults(options.random);
  const calls: CallRecord[] = [];
  let latencyMs = options.latencyMs ?? 0;

  const load = (seed: Seed): void => {
    for (const task of applySeed(store, seed, clock.now())) dispatcher.schedule(task);
  };
  if (options.seed) load(options.seed);

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const realStartMs = realNow();
    const startMs = clock.now();
    const url = new URL(req.url ?? '/', 'http://emulator');
    const route = api.route(req.method ?? 'GET', url.pathname);
    const call: CallRecord = {
      method: route.method,
      name: route.name,
      startMs,
      endMs: startMs,
      realStartMs,
      realEndMs: realStartMs,
      status: 0,
    };
    calls.push(call);
    const finish = (status: number): void => {
      call.status = status;
      call.endMs = clock.now();
      call.realEndMs = realNow();
      log(
        `${route.method} ${route.name} -> ${status || 'reset'}${call.fault ? ` (fault ${call.fault})` : ''}`,
      );
    };
    const fault = faults.take(route.method, route.name);
    // A call answered with an error or reset does no work, so it uses up no batch fault.
    const noWork =
      fault !== undefined && ((typeof fault.kind === 'number' && !fault.afterWork) || fault.kind === 'reset');
    const batchFaults = noWork ? [] : faults.takeBatch(route.method, route.name);
    const hit = [...(fault ? [fault] : []), ...batchFaults].map((f) => String(f.kind));
    if (hit.length > 0) call.fault = hit.join(',');
    const raw = await readBody(req, MAX_BODY_BYTES);
    if (latencyMs > 0) await sleep(latencyMs);
    if (fault?.kind === 'delay') await sleep(fault.delayMs ?? 0);
    if (fault?.kind === 'reset') {
      req.socket.destroy();
      return finish(0);
    }
    if (fault?.kind === 'late-landing') {
      req.socket.destroy();
      finish(0);
      await sleep(fault.delayMs ?? 0);
      answerOf(route, req, url, raw, batchFaults, log);
      return;
    }
    if (typeof fault?.kind === 'number' && fault.afterWork) answerOf(route, req, url, raw, batchFaults, log);
    const answer =
      typeof fault?.kind === 'number'
        ? errorAnswer(faultError(fault.kind, route, quota.limit, quotaRetryInfo))
        : answerOf(route, req, url, raw, batchFaults, log);
    if (fault?.kind === 'lost-response') {
      req.socket.destroy();
      return finish(0);
    }
    send(res, answer.status, answer.json, clock);
    finish(answer.status);
  };

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      log(`emulator error: ${String(err)}`);
      if (!res.headersSent) send(res, 500, new ApiError('INTERNAL', 'Internal error.').toBody(), clock);
      else res.destroy();
    });
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? 0, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    retention.stop();
    await dispatcher.stop(); // the seed may have started dispatches
    throw err;
  }
  const { port } = server.address() as AddressInfo;
  const host = `127.0.0.1:${port}`;

  return {
    url: `http://${host}`,
    host,
    calls,
    dispatches: dispatcher.dispatches,
    clock,
    injectFault: (fault) => faults.add(fault),
    clearFaults: () => faults.clear(),
    setLatency: (ms) => {
      latencyMs = ms;
    },
    setPermissions: (grant) => iam.setPermissions(grant),
    setActAs: (accounts) => iam.setActAs(accounts),
    load,
    task: (name) => {
      const task = store.findTask(name);
      return task ? taskJson(task, 'FULL') : undefined;
    },
    settled: () => dispatcher.settled(),
    stop: async () => {
      api.stop();
      retention.stop();
      await dispatcher.stop();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

interface Answer {
  status: number;
  json: object;
}

function answerOf(
  route: Route,
  req: http.IncomingMessage,
  url: URL,
  raw: Buffer | undefined,
  batchFaults: readonly Fault[],
  log: (line: string) => void,
): Answer {
  try {
    if (raw === undefined) {
      throw invalidPayload(`Request payload size exceeds the limit: ${MAX_BODY_BYTES} bytes.`);
    }
    const hasBody = req.method !== 'GET' && req.method !== 'DELETE';
    const body = hasBody ? parseJson(raw) : undefined;
    const json = route.handle({ query: url.searchParams, body, batchFaults });
    const fields = url.searchParams.get('fields');
    return { status: 200, json: fields ? (applyFieldMask(json, fieldMaskOf(fields)) as object) : json };
  } catch (err) {
    if (err instanceof ApiError) return errorAnswer(err);
    log(
      `emulator error in ${route.method}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`,
    );
    return errorAnswer(new ApiError('INTERNAL', 'Internal error.'));
  }
}

function errorAnswer(err: ApiError): Answer {
  return { status: err.httpStatus, json: err.toBody() };
}

function fieldMaskOf(fields: string): FieldMask {
  try {
    return parseFieldMask(fields);
  } catch (err) {
    throw new ApiError('INVALID_ARGUMENT', `Invalid field selection ${fields}: ${(err as Error).message}`);
  }
}

function parseJson(raw: Buffer): unknown {
  if (raw.length === 0) return {};
  try {
    return JSON.parse(raw.toString('utf8'));
  } catch {
    throw invalidPayload('Invalid JSON payload received. Unexpected token.');
  }
}

function faultError(
  kind: 400 | 404 | 429 | 500 | 501 | 503 | 403,
  route: Route,
  runTaskLimit: number,
  withRetryInfo: boolean,
): ApiError {
  if (kind === 429) {
    const retryAfterMs = withRetryInfo ? 1000 : undefined;
    const project = route.project ?? '';
    if (route.method === 'RunTask') return quotaError('force-run', project, runTaskLimit, retryAfterMs);
    const isList = route.method === 'ListTasks' || route.method === 'ListQueues';
    return isList
      ? quotaError('list', project, 600, retryAfterMs)
      : quotaError('requests', project, 6_000_000, retryAfterMs);
  }
  if (kind === 503) return new ApiError('UNAVAILABLE', 'The service is currently unavailable.');
  if (kind === 500) return new ApiError('INTERNAL', 'Internal error encountered.');
  if (kind === 400) return new ApiError('INVALID_ARGUMENT', 'The page token is not valid or has expired.');
  if (kind === 404) return new ApiError('NOT_FOUND', 'Method not found.');
  if (kind === 501) return new ApiError('UNIMPLEMENTED', 'Method not implemented.');
  return permissionDenied(METHOD_PERMISSIONS[route.method] ?? 'cloudtasks.queues.get', route.name);
}

/** An answer, dated by the emulator's clock as Google's front end dates its own (to the second). */
function send(res: http.ServerResponse, status: number, json: object, clock: Clock): void {
  const body = JSON.stringify(json);
  res.writeHead(status, {
    Date: new Date(clock.now()).toUTCString(),
    'Content-Type': 'application/json; charset=UTF-8',
    'Content-Length': Buffer.byteLength(body),
  });
  res.end(body);
}

function realNow(): number {
  return performance.timeOrigin + performance.now();
}
