/**
 * Real dispatch: sends each task to its URL when its scheduleTime comes, within the queue's rate limits
 * (token bucket: maxDispatchesPerSecond, maxBurstSize) and maxConcurrentDispatches, never while the queue is
 * PAUSED or DISABLED; cancels an attempt at its dispatchDeadline; deletes the task on a 2xx and otherwise
 * records the attempt and reschedules it by the queue's RetryConfig.
 * https://cloud.google.com/tasks/docs/creating-http-target-tasks
 */
import http from 'node:http';
import https from 'node:https';
import type { Clock, Timer } from './clock.js';
import { codeNumber, statusForHttp } from './errors.js';
import { MinHeap } from './heap.js';
import { outgoingRequest, type OutgoingRequest } from './http-target.js';
import type { AttemptRecord, QueueRecord, TaskRecord } from './model.js';
import { isRetryExhausted, retryDelayMs } from './retry.js';
import type { Store } from './store.js';

/** One HTTP dispatch to a task's target. */
export interface DispatchRecord {
  task: string;
  /** The URL the request went to: the task's own, or the queue's `httpTarget.uriOverride` of it. */
  url: string;
  /** The HTTP method sent (the queue's `httpTarget.httpMethod` when it sets one). */
  method: string;
  trigger: 'schedule' | 'run';
  /** Emulator clock time of the dispatch. */
  atMs: number;
  /** The headers sent. */
  headers: Record<string, string>;
  /** The target's HTTP status, once it answered. */
  status?: number;
}

type Outcome =
  | { kind: 'response'; status: number }
  | { kind: 'timeout' }
  | { kind: 'error'; message: string }
  | { kind: 'stopped' };

interface Entry {
  atMs: number;
  seq: number;
  task: TaskRecord;
  version: number;
}

interface QueueSchedule {
  readonly heap: MinHeap<Entry>;
  timer: Timer | undefined;
  timerAtMs: number | undefined;
  tokens: number;
  refilledAtMs: number;
  inFlight: number;
}

/** What a {@link Dispatcher} works with. */
export interface DispatcherOptions {
  clock: Clock;
  store: Store;
  log: (line: string) => void;
}

// Headers Cloud Tasks computes itself or drops from the task's own.
const COMPUTED_HEADERS = new Set(['host', 'content-length', 'user-agent']);
const DROPPED_PREFIXES = ['x-cloudtasks-', 'x-google-', 'x-appengine-'];

/** Schedules and performs dispatches for every queue of a {@link Store}. */
export class Dispatcher {
  /** Every dispatch, in order. */
  readonly dispatches: DispatchRecord[] = [];
  readonly #clock: Clock;
  readonly #store: Store;
  readonly #log: (line: string) => void;
  readonly #schedules = new Map<QueueRecord, QueueSchedule>();
  readonly #inFlight = new Set<Promise<void>>();
  readonly #stoppers = new Set<() => void>();
  readonly #agents = {
    http: new http.Agent({ keepAlive: true }),
    https: new https.Agent({ keepAlive: true }),
  };
  #seq = 0;
  #stopped = false;

  constructor(options: DispatcherOptions) {
    this.#clock = options.clock;
    this.#store = options.store;
    this.#log = options.log;
  }

  /** (Re)schedules a task at its scheduleTime, unless an attempt of it awaits a response. */
  schedule(task: TaskRecord): void {
    task.version++;
    if (task.deleted || isAwaitingResponse(task)) return;
    const schedule = this.#scheduleOf(task.queue);
    schedule.heap.push({ atMs: task.scheduleTimeMs, seq: this.#seq++, task, version: task.version });
    this.#pump(task.queue);
  }

  /** Looks at a queue again after its state changed (resumed). */
  queueChanged(queue: QueueRecord): void {
    this.#pump(queue);
  }

  /** Forgets a deleted queue's schedule. */
  queueDeleted(queue: QueueRecord): void {
    const schedule = this.#schedules.get(queue);
    schedule?.timer?.cancel();
    this.#schedules.delete(queue);
  }

  /**
   * Dispatches a task now, whatever the queue's state, rate limits or the task's running attempts
   * (RunTask). Returns once the attempt is recorded, before the target answers.
   */
  run(task: TaskRecord): void {
    this.#start(task, 'run', this.#clock.now());
  }

  /** Resolves once no dispatch is in flight. */
  async settled(): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
  }

  /**
   * A queue's dispatches as v2beta3 `QueueStats` counts them: those answered in the minute before `nowMs`
   * (by dispatch time), and those in flight.
   */
  activityOf(queue: QueueRecord, nowMs: number): { executedLastMinute: number; inFlight: number } {
    const prefix = `${queue.name}/tasks/`;
    const executedLastMinute = this.dispatches.filter(
      (d) => d.status !== undefined && d.atMs > nowMs - 60_000 && d.task.startsWith(prefix),
    ).length;
    return { executedLastMinute, inFlight: this.#schedules.get(queue)?.inFlight ?? 0 };
  }

  /** Stops scheduling, abandons dispatches in flight and closes kept-alive connections. */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const schedule of this.#schedules.values()) schedule.timer?.cancel();
    for (const stop of this.#stoppers) stop();
    await this.settled();
    this.#agents.http.destroy();
    this.#agents.https.destroy();
  }

  #scheduleOf(queue: QueueRecord): QueueSchedule {
    let schedule = this.#schedules.get(queue);
    if (!schedule) {
      schedule = {
        heap: new MinHeap<Entry>((a, b) => a.atMs < b.atMs || (a.atMs === b.atMs && a.seq < b.seq)),
        timer: undefined,
        timerAtMs: undefined,
        tokens: queue.rateLimits.maxBurstSize,
        refilledAtMs: this.#clock.now(),
        inFlight: 0,
      };
      this.#schedules.set(queue, schedule);
    }
    return schedule;
  }

  // Dispatches every due task the queue's state and limits allow, then sets one timer for the next one.
  #pump(queue: QueueRecord): void {
    const schedule = this.#schedules.get(queue);
    if (!schedule || this.#stopped || queue.state !== 'RUNNING') return;
    const now = this.#clock.now();
    const { maxDispatchesPerSecond, maxBurstSize, maxConcurrentDispatches } = queue.rateLimits;
    for (;;) {
      const entry = schedule.heap.peek();
      if (!entry) return;
      const task = entry.task;
      if (entry.version !== task.version || task.deleted || isAwaitingResponse(task)) {
        schedule.heap.pop();
        continue;
      }
      if (entry.atMs > now) return this.#wake(queue, schedule, entry.atMs);
      if (schedule.inFlight >= maxConcurrentDispatches) return; // a finishing dispatch pumps again
      schedule.tokens = Math.min(
        maxBurstSize,
        schedule.tokens + ((now - schedule.refilledAtMs) * maxDispatchesPerSecond) / 1000,
      );
      schedule.refilledAtMs = now;
      if (schedule.tokens < 1) {
        const waitMs = Math.ceil(((1 - schedule.tokens) * 1000) / maxDispatchesPerSecond);
        return this.#wake(queue, schedule, now + waitMs);
      }
      schedule.tokens -= 1;
      schedule.heap.pop();
      this.#start(task, 'schedule', now);
    }
  }

  #wake(queue: QueueRecord, schedule: QueueSchedule, atMs: number): void {
    if (schedule.timer && schedule.timerAtMs !== undefined && schedule.timerAtMs <= atMs) return;
    schedule.timer?.cancel();
    schedule.timerAtMs = atMs;
    schedule.timer = this.#clock.setTimeout(() => {
      schedule.timer = undefined;
      schedule.timerAtMs = undefined;
      this.#pump(queue);
    }, atMs - this.#clock.now());
  }

  #start(task: TaskRecord, trigger: DispatchRecord['trigger'], nowMs: number): void {
    const attempt: AttemptRecord = {
      scheduleTimeMs: trigger === 'run' ? nowMs : task.scheduleTimeMs,
      dispatchTimeMs: nowMs,
    };
    // The queue's httpTarget as it is now: an UpdateQueue redirects tasks already waiting.
    const request = outgoingRequest(task.httpRequest, task.queue.httpTarget);
    const headers = dispatchHeaders(task, request, attempt.scheduleTimeMs!);
    task.dispatchCount++;
    task.firstAttempt ??= { dispatchTimeMs: nowMs };
    task.lastAttempt = attempt;
    task.version++;
    this.#scheduleOf(task.queue).inFlight++;
    const record: DispatchRecord = {
      task: task.name,
      url: request.url,
      method: request.httpMethod,
      trigger,
      atMs: nowMs,
      headers,
    };
    this.dispatches.push(record);
    this.#log(`dispatch ${trigger} ${task.name} -> ${record.url}`);
    const work = this.#attempt(task, attempt, record, request);
    this.#inFlight.add(work);
    this.#clock.track?.(work);
    void work.finally(() => this.#inFlight.delete(work));
  }

  async #attempt(
    task: TaskRecord,
    attempt: AttemptRecord,
    record: DispatchRecord,
    request: OutgoingRequest,
  ): Promise<void> {
    const outcome = await this.#send(task, request, record.headers);
    try {
      this.#finish(task, attempt, record, outcome);
    } catch (err) {
      this.#log(`dispatch bookkeeping failed for ${task.name}: ${String(err)}`);
    }
  }

  #send(task: TaskRecord, outgoing: OutgoingRequest, headers: Record<string, string>): Promise<Outcome> {
    return new Promise<Outcome>((resolve) => {
      const controller = new AbortController();
      let reason: 'timeout' | 'stopped' | undefined;
      const abort = (why: 'timeout' | 'stopped') => {
        reason ??= why;
        controller.abort();
      };
      const stopper = () => abort('stopped');
      this.#stoppers.add(stopper);
      const deadline = this.#clock.setTimeout(() => abort('timeout'), task.dispatchDeadlineMs);
      const done = (outcome: Outcome) => {
        deadline.cancel();
        this.#stoppers.delete(stopper);
        resolve(outcome);
      };
      let url: URL;
      try {
        url = new URL(outgoing.url);
      } catch {
        return done({ kind: 'error', message: 'invalid URL' });
      }
      const secure = url.protocol === 'https:';
      const body = outgoing.body ? Buffer.from(outgoing.body, 'base64') : undefined;
      const request = (secure ? https : http).request(url, {
        method: outgoing.httpMethod,
        headers: body ? { ...headers, 'Content-Length': String(body.length) } : headers,
        agent: secure ? this.#agents.https : this.#agents.http,
        signal: controller.signal,
      });
      request.on('response', (response) => {
        response.resume(); // drain the body; the status is all Cloud Tasks keeps
        response.on('error', () => undefined);
        done({ kind: 'response', status: response.statusCode ?? 0 });
      });
      request.on('error', (err: NodeJS.ErrnoException) => {
        done(reason ? { kind: reason } : { kind: 'error', message: err.code ?? err.message });
      });
      request.end(body);
    });
  }

  #finish(task: TaskRecord, attempt: AttemptRecord, record: DispatchRecord, outcome: Outcome): void {
    const schedule = this.#schedules.get(task.queue);
    if (schedule) schedule.inFlight--;
    if (outcome.kind === 'stopped') return;
    const now = this.#clock.now();
    if (outcome.kind === 'response') record.status = outcome.status;
    const result =
      outcome.kind === 'response' ? outcome.status : outcome.kind === 'error' ? outcome.message : 'deadline';
    this.#log(`dispatch ${task.name} -> ${result}`);
    if (task.deleted) return this.#pump(task.queue);
    if (outcome.kind === 'response' && outcome.status >= 200 && outcome.status < 300) {
      this.#store.removeTask(task, now);
      return this.#pump(task.queue);
    }
    if (outcome.kind === 'response') {
      task.responseCount++;
      if (outcome.status < 500) task.executionCount++;
      task.previousResponse = outcome.status;
    }
    // An older attempt answering after a newer one (RunTask on a running task) does not decide the next step.
    if (task.lastAttempt === attempt) {
      attempt.responseTimeMs = now;
      attempt.responseStatus = attemptStatus(outcome);
      const policy = task.queue.retryConfig;
      if (isRetryExhausted(policy, task.dispatchCount, task.firstAttempt?.dispatchTimeMs ?? now, now)) {
        this.#log(`task ${task.name} failed permanently after ${task.dispatchCount} attempts`);
        this.#store.removeTask(task, now);
      } else {
        // RunTask: "the time of the call plus the retry delay"; a scheduled attempt: from its failure.
        const from = record.trigger === 'run' ? attempt.dispatchTimeMs! : now;
        task.scheduleTimeMs = from + retryDelayMs(policy, task.dispatchCount);
        this.schedule(task);
      }
    }
    this.#pump(task.queue);
  }
}

/** Whether the task's last attempt was dispatched and has no response yet (running, or seeded that way). */
export function isAwaitingResponse(task: TaskRecord): boolean {
  return task.lastAttempt?.dispatchTimeMs !== undefined && task.lastAttempt.responseTimeMs === undefined;
}

/**
 * The headers Cloud Tasks sends with an attempt: the task's own (with the queue's header overrides) plus its
 * X-CloudTasks-* and User-Agent, and the token's Authorization.
 */
function dispatchHeaders(task: TaskRecord, request: OutgoingRequest, etaMs: number): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [key, value] of Object.entries(request.headers)) {
    const lower = key.toLowerCase();
    if (COMPUTED_HEADERS.has(lower) || DROPPED_PREFIXES.some((p) => lower.startsWith(p))) continue;
    headers[key] = value;
  }
  headers['User-Agent'] = 'Google-Cloud-Tasks';
  headers['X-CloudTasks-QueueName'] = task.queue.id;
  headers['X-CloudTasks-TaskName'] = task.id;
  headers['X-CloudTasks-TaskRetryCount'] = String(task.dispatchCount);
  headers['X-CloudTasks-TaskExecutionCount'] = String(task.executionCount);
  headers['X-CloudTasks-TaskETA'] = (etaMs / 1000).toFixed(6);
  if (task.previousResponse !== undefined) {
    headers['X-CloudTasks-TaskPreviousResponse'] = String(task.previousResponse);
    headers['X-CloudTasks-TaskRetryReason'] = '';
  }
  const { oidcToken, oauthToken } = request;
  if (oidcToken || oauthToken) {
    // The token replaces any Authorization header of the task's own.
    for (const key of Object.keys(headers)) if (key.toLowerCase() === 'authorization') delete headers[key];
  }
  if (oidcToken) {
    const audience = oidcToken.audience ?? request.url;
    headers.Authorization = `Bearer ${unsignedIdToken(oidcToken.serviceAccountEmail, audience)}`;
  }
  return headers;
}

// Not a real token: an unsigned JWT carrying the claims a target may read (email, aud). Targets that verify
// signatures must skip verification against the emulator.
function unsignedIdToken(email: string, audience: string): string {
  const part = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const nowSec = Math.floor(Date.now() / 1000);
  const claims = {
    iss: 'https://accounts.google.com',
    aud: audience,
    email,
    sub: email,
    iat: nowSec,
    exp: nowSec + 3600,
  };
  return `${part({ alg: 'none', typ: 'JWT' })}.${part(claims)}.`;
}

function attemptStatus(outcome: Exclude<Outcome, { kind: 'stopped' }>): { code: number; message: string } {
  const status =
    outcome.kind === 'response'
      ? statusForHttp(outcome.status)
      : outcome.kind === 'timeout'
        ? 'DEADLINE_EXCEEDED'
        : 'UNAVAILABLE';
  const code = codeNumber(status);
  const detail =
    outcome.kind === 'response'
      ? `HTTP status code ${outcome.status}`
      : outcome.kind === 'timeout'
        ? 'HTTP status code 504'
        : `the target could not be reached (${outcome.message})`;
  return { code, message: `${status}(${code}): ${detail}` };
}
