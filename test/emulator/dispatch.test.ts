/**
 * Dispatch end to end, on a manual clock, against a real local target: attempts, backoff schedule, headers,
 * deletion on success, permanent failure, rate and concurrency limits, pause, dispatchDeadline.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock, startEmulator, type Emulator, type SeedQueue } from '../../emulator/server.js';
import { startTarget, type Target } from '../helpers/target-server.js';
import { queueName, rest, taskName } from './helpers.js';

const T0 = Date.parse('2026-11-22T10:00:00Z');
const ORDERS = queueName('orders');

let target: Target;
let emulator: Emulator;
let clock: ManualClock;

async function start(queue: Omit<SeedQueue, 'name'> = {}, settleTimeoutMs?: number): Promise<void> {
  clock = new ManualClock(T0, settleTimeoutMs === undefined ? {} : { settleTimeoutMs });
  emulator = await startEmulator({ clock, seed: { queues: [{ name: ORDERS, ...queue }] } });
}

/** Creates a task through the REST API; due now unless told otherwise. */
async function createTask(id: string, extra: Record<string, unknown> = {}): Promise<void> {
  const { status, body } = await rest(emulator, 'POST', `${ORDERS}/tasks`, {
    task: { name: taskName('orders', id), httpRequest: { url: `${target.url}/work/${id}` }, ...extra },
  });
  expect(status, JSON.stringify(body)).toBe(200);
}

/** Answers from a script of statuses, then 200. */
function script(...statuses: number[]): () => number {
  let call = 0;
  return () => statuses[call++] ?? 200;
}

beforeEach(async () => {
  target = await startTarget();
});
afterEach(async () => {
  await emulator.stop();
  await target.stop();
});

describe('retries', () => {
  it('dispatches when due, backs off by RetryConfig, sends Cloud Tasks headers, deletes on success', async () => {
    await start({ retryConfig: { minBackoff: '10s', maxBackoff: '300s', maxDoublings: 3, maxAttempts: 10 } });
    target.setRespond(script(500, 503, 404));
    await createTask('retry-me', { scheduleTime: new Date(T0 + 5_000).toISOString() });

    await clock.advance(4_999);
    expect(target.requests).toHaveLength(0);
    await clock.advance(1);
    expect(target.requests).toHaveLength(1);

    const afterFirst = emulator.task(taskName('orders', 'retry-me'))!;
    expect(afterFirst).toMatchObject({
      scheduleTime: '2026-11-22T10:00:15Z',
      dispatchCount: 1,
      responseCount: 1,
      firstAttempt: { dispatchTime: '2026-11-22T10:00:05Z' },
      lastAttempt: {
        scheduleTime: '2026-11-22T10:00:05Z',
        dispatchTime: '2026-11-22T10:00:05Z',
        responseTime: '2026-11-22T10:00:05Z',
        responseStatus: { code: 13, message: 'INTERNAL(13): HTTP status code 500' },
      },
      view: 'FULL',
    });

    await clock.advance(9_999);
    expect(target.requests).toHaveLength(1);
    await clock.advance(1); // 10s after the first failure
    expect(emulator.task(taskName('orders', 'retry-me'))?.lastAttempt?.responseStatus).toEqual({
      code: 14,
      message: 'UNAVAILABLE(14): HTTP status code 503',
    });
    await clock.advance(20_000); // then 20s
    await clock.advance(40_000); // then 40s: this one succeeds
    expect(target.requests).toHaveLength(4);
    expect(emulator.dispatches.map((d) => d.atMs - T0)).toEqual([5_000, 15_000, 35_000, 75_000]);
    expect(emulator.dispatches.map((d) => d.status)).toEqual([500, 503, 404, 200]);

    const headers = target.requests.map((r) => r.headers);
    expect(headers[0]).toMatchObject({
      'user-agent': 'Google-Cloud-Tasks',
      'x-cloudtasks-queuename': 'orders',
      'x-cloudtasks-taskname': 'retry-me',
      'x-cloudtasks-taskretrycount': '0',
      'x-cloudtasks-taskexecutioncount': '0',
      'x-cloudtasks-tasketa': ((T0 + 5_000) / 1000).toFixed(6),
    });
    expect(headers[0]!['x-cloudtasks-taskpreviousresponse']).toBeUndefined();
    expect(headers[1]).toMatchObject({
      'x-cloudtasks-taskretrycount': '1',
      'x-cloudtasks-taskpreviousresponse': '500',
    });
    expect(headers[1]!['x-cloudtasks-tasketa']).toBe(((T0 + 15_000) / 1000).toFixed(6));
    // 5xx answers are not counted as executions; the 404 is.
    expect(headers.map((h) => h['x-cloudtasks-taskexecutioncount'])).toEqual(['0', '0', '0', '1']);
    expect(target.requests[0]).toMatchObject({ method: 'POST', path: '/work/retry-me' });

    // Success deleted the task; its name stays reserved for the dedup window (1 h).
    expect(emulator.task(taskName('orders', 'retry-me'))).toBeUndefined();
    const get = await rest(emulator, 'GET', taskName('orders', 'retry-me'));
    expect(get.status).toBe(404);
    expect(get.body.error.message).toContain('existed recently');
    const again = await rest(emulator, 'POST', `${ORDERS}/tasks`, {
      task: { name: taskName('orders', 'retry-me'), httpRequest: { url: target.url } },
    });
    expect(again.body.error.status).toBe('ALREADY_EXISTS');
    await clock.advance(3_600_000);
    target.setRespond(() => 200);
    await createTask('retry-me', { scheduleTime: new Date(clock.now() + 60_000).toISOString() });
  });

  it('grows linearly after maxDoublings and caps at maxBackoff', async () => {
    await start({ retryConfig: { minBackoff: '10s', maxBackoff: '300s', maxDoublings: 3, maxAttempts: 9 } });
    target.setRespond(() => 500);
    await createTask('always-fails');
    await clock.advance(2 * 3_600_000);
    const gaps = emulator.dispatches.slice(1).map((d, i) => (d.atMs - emulator.dispatches[i]!.atMs) / 1000);
    expect(gaps).toEqual([10, 20, 40, 80, 160, 240, 300, 300]);
  });

  it('deletes a task once maxAttempts is used up (permanent failure)', async () => {
    await start({ retryConfig: { minBackoff: '1s', maxBackoff: '1s', maxAttempts: 3 } });
    target.setRespond(() => 500);
    await createTask('doomed');
    await clock.advance(60_000);
    expect(target.requests).toHaveLength(3);
    expect(emulator.task(taskName('orders', 'doomed'))).toBeUndefined();
    const run = await rest(emulator, 'POST', `${taskName('orders', 'doomed')}:run`, {});
    expect(run.body).toEqual({
      error: { code: 404, message: 'Requested entity was not found.', status: 'NOT_FOUND', details: [] },
    });
  });

  it('keeps retrying past maxAttempts until maxRetryDuration is also used up', async () => {
    await start({
      retryConfig: { minBackoff: '10s', maxBackoff: '10s', maxAttempts: 2, maxRetryDuration: '60s' },
    });
    target.setRespond(() => 500);
    await createTask('stubborn');
    await clock.advance(10 * 60_000);
    expect(emulator.dispatches.map((d) => (d.atMs - T0) / 1000)).toEqual([0, 10, 20, 30, 40, 50, 60]);
    expect(emulator.task(taskName('orders', 'stubborn'))).toBeUndefined();
  });

  it('never gives up with maxAttempts -1 and no maxRetryDuration', async () => {
    await start({ retryConfig: { minBackoff: '1s', maxBackoff: '1s', maxAttempts: -1 } });
    target.setRespond(() => 500);
    await createTask('forever');
    await clock.advance(150_000);
    expect(target.requests.length).toBeGreaterThan(100);
    expect(emulator.task(taskName('orders', 'forever'))?.dispatchCount).toBe(target.requests.length);
  });

  it('delivers the method, body and headers of the task', async () => {
    await start();
    await createTask('payload', {
      httpRequest: {
        url: `${target.url}/orders?id=7`,
        httpMethod: 'PUT',
        headers: { 'Content-Type': 'application/json', 'X-Mixed-Case': 'kept', 'User-Agent': 'ignored' },
        body: Buffer.from('{"order":7}').toString('base64'),
      },
    });
    await clock.advance(0);
    expect(target.requests[0]).toMatchObject({
      method: 'PUT',
      path: '/orders?id=7',
      body: '{"order":7}',
      headers: {
        'content-type': 'application/json',
        'x-mixed-case': 'kept',
        'user-agent': 'Google-Cloud-Tasks',
      },
    });
    expect(emulator.dispatches[0]!.headers['X-Mixed-Case']).toBe('kept');
  });

  it('sends an unsigned ID token carrying the OIDC claims', async () => {
    await start();
    await createTask('secured', {
      httpRequest: {
        url: `${target.url}/secured`,
        headers: { Authorization: 'Basic replaced' },
        oidcToken: { serviceAccountEmail: 'invoker@my-project.iam.gserviceaccount.com' },
      },
    });
    await clock.advance(0);
    const [scheme, token] = String(target.requests[0]!.headers.authorization).split(' ');
    expect(scheme).toBe('Bearer');
    const claims = JSON.parse(Buffer.from(token!.split('.')[1]!, 'base64url').toString());
    expect(claims).toMatchObject({
      email: 'invoker@my-project.iam.gserviceaccount.com',
      aud: `${target.url}/secured`,
    });
  });
});

describe('queue limits and state', () => {
  it('honours maxDispatchesPerSecond with its burst', async () => {
    await start({ rateLimits: { maxDispatchesPerSecond: 2, maxBurstSize: 1 } });
    for (let i = 0; i < 5; i++) await createTask(`t${i}`);
    await clock.advance(0);
    expect(target.requests).toHaveLength(1);
    await clock.advance(5_000);
    expect(emulator.dispatches.map((d) => d.atMs - T0)).toEqual([0, 500, 1000, 1500, 2000]);
  });

  it('honours maxConcurrentDispatches', async () => {
    await start({ rateLimits: { maxConcurrentDispatches: 2 } }, 50);
    const releases: Array<() => void> = [];
    target.setRespond(() => new Promise<number>((resolve) => releases.push(() => resolve(200))));
    for (let i = 0; i < 5; i++) await createTask(`t${i}`);
    await clock.advance(0);
    await until(() => target.requests.length === 2);
    await clock.advance(1_000);
    expect(target.requests).toHaveLength(2);
    releases.shift()!();
    await until(() => target.requests.length === 3);
    releases.splice(0).forEach((release) => release());
    await until(() => target.requests.length === 5);
    releases.splice(0).forEach((release) => release());
    await emulator.settled();
    expect(emulator.dispatches.every((d) => d.status === 200)).toBe(true);
  });

  it('accepts but does not dispatch tasks while PAUSED or DISABLED, and dispatches on resume', async () => {
    clock = new ManualClock(T0);
    emulator = await startEmulator({
      clock,
      seed: {
        queues: [
          { name: ORDERS, state: 'PAUSED' },
          {
            name: queueName('legacy'),
            state: 'DISABLED',
            tasks: [{ id: 'old', httpRequest: { url: target.url } }],
          },
        ],
      },
    });
    await createTask('waiting');
    await clock.advance(60_000);
    expect(target.requests).toHaveLength(0);
    const resumed = await rest(emulator, 'POST', `${ORDERS}:resume`, {});
    expect(resumed.body.state).toBe('RUNNING');
    await clock.advance(0);
    expect(target.requests.map((r) => r.path)).toEqual(['/work/waiting']);
    const disabled = await rest(emulator, 'POST', `${queueName('legacy')}:resume`, {});
    expect(disabled.body.error.status).toBe('FAILED_PRECONDITION');
  });

  it('cancels an attempt at its dispatchDeadline and retries it', async () => {
    await start({ retryConfig: { minBackoff: '5s', maxBackoff: '5s' } }, 50);
    target.setRespond(() => new Promise<number>(() => undefined)); // never answers
    await createTask('slow', { dispatchDeadline: '15s' });
    await clock.advance(14_999);
    expect(emulator.task(taskName('orders', 'slow'))?.lastAttempt?.responseTime).toBeUndefined();
    await clock.advance(1);
    const task = emulator.task(taskName('orders', 'slow'))!;
    expect(task.lastAttempt).toMatchObject({
      responseTime: '2026-11-22T10:00:15Z',
      responseStatus: { code: 4, message: 'DEADLINE_EXCEEDED(4): HTTP status code 504' },
    });
    expect(task.responseCount).toBeUndefined(); // no response arrived
    expect(task.scheduleTime).toBe('2026-11-22T10:00:20Z');
  });

  it('leaves a seeded in-flight task alone and a seeded failed task waits for its scheduleTime', async () => {
    clock = new ManualClock(T0);
    const at = (offsetMs: number) => new Date(T0 + offsetMs).toISOString();
    emulator = await startEmulator({
      clock,
      seed: {
        queues: [
          {
            name: ORDERS,
            tasks: [
              {
                id: 'in-flight',
                httpRequest: { url: `${target.url}/in-flight` },
                scheduleTime: at(-60_000),
                dispatchCount: 1,
                firstAttempt: { dispatchTime: at(-60_000) },
                lastAttempt: { scheduleTime: at(-60_000), dispatchTime: at(-60_000) },
              },
              {
                id: 'failed',
                httpRequest: { url: `${target.url}/failed` },
                scheduleTime: '+30m',
                dispatchCount: 2,
                responseCount: 2,
                lastAttempt: {
                  dispatchTime: '-10m',
                  responseTime: '-10m',
                  responseStatus: { code: 13, message: 'INTERNAL(13): HTTP status code 500' },
                },
              },
            ],
          },
        ],
      },
    });
    await clock.advance(29 * 60_000);
    expect(target.requests).toHaveLength(0);
    await clock.advance(60_000);
    expect(target.requests.map((r) => r.path)).toEqual(['/failed']);
    expect(target.requests[0]!.headers).toMatchObject({
      'x-cloudtasks-taskretrycount': '2',
      'x-cloudtasks-taskpreviousresponse': '500',
    });
    await clock.advance(24 * 3_600_000);
    expect(target.requests.filter((r) => r.path === '/in-flight')).toHaveLength(0);
  });
});

/** Waits (real time, briefly) for a condition the target reaches on its own. */
async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 5));
  expect(condition()).toBe(true);
}
