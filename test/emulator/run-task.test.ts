/**
 * RunTask as documented: dispatches now even on a PAUSED queue, over the rate limits or while the task is
 * running; answers before the target does; reschedules from the call's time on failure; NOT_FOUND once the
 * task succeeded; and the per-project quota with Google's RESOURCE_EXHAUSTED answer.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock, startEmulator, type Emulator, type EmulatorOptions } from '../../emulator/server.js';
import { startTarget, type Target } from '../helpers/target-server.js';
import { queueName, rest, taskName } from './helpers.js';

const T0 = Date.parse('2026-11-22T10:00:00Z');
const ORDERS = queueName('orders');
const at = (offsetMs: number) => new Date(T0 + offsetMs).toISOString();

let target: Target;
let emulator: Emulator;
let clock: ManualClock;

/** A task whose third attempt failed ten minutes ago and waits an hour for the next. */
function failedTask(id: string) {
  return {
    id,
    httpRequest: { url: `${target.url}/work/${id}` },
    scheduleTime: at(3_600_000),
    dispatchCount: 3,
    responseCount: 3,
    firstAttempt: { dispatchTime: at(-3_600_000) },
    lastAttempt: {
      scheduleTime: at(-600_000),
      dispatchTime: at(-600_000),
      responseTime: at(-599_000),
      responseStatus: { code: 13, message: 'INTERNAL(13): HTTP status code 500' },
    },
  };
}

async function start(
  options: EmulatorOptions = {},
  state: 'RUNNING' | 'PAUSED' = 'PAUSED',
  settleTimeoutMs = 2000,
): Promise<void> {
  clock = new ManualClock(T0, { settleTimeoutMs });
  emulator = await startEmulator({
    clock,
    seed: {
      queues: [
        {
          name: ORDERS,
          state,
          rateLimits: { maxDispatchesPerSecond: 1, maxBurstSize: 1 },
          retryConfig: { minBackoff: '10s', maxBackoff: '1h', maxDoublings: 16 },
          tasks: ['a', 'b', 'c'].map(failedTask),
        },
      ],
    },
    ...options,
  });
}

const run = (id: string, body: unknown = {}, queue = ORDERS) =>
  rest(emulator, 'POST', `${queue}/tasks/${id}:run`, body);

beforeEach(async () => {
  target = await startTarget({ respond: () => 500 });
});
afterEach(async () => {
  await emulator.stop();
  await target.stop();
});

describe('RunTask', () => {
  it('dispatches at once on a PAUSED queue and answers before the target does', async () => {
    await start({}, 'PAUSED', 50); // the target holds its answer while the clock moves
    let release: (status: number) => void = () => undefined;
    target.setRespond(() => new Promise<number>((resolve) => (release = resolve)));
    const { status, body } = await run('a', { responseView: 'FULL' });
    expect(status).toBe(200);
    expect(body).toMatchObject({
      name: taskName('orders', 'a'),
      view: 'FULL',
      dispatchCount: 4,
      responseCount: 3,
      lastAttempt: { scheduleTime: '2026-11-22T10:00:00Z', dispatchTime: '2026-11-22T10:00:00Z' },
    });
    expect(body.lastAttempt.responseTime).toBeUndefined();
    expect(body.lastAttempt.responseStatus).toBeUndefined();
    expect(emulator.dispatches).toMatchObject([{ task: taskName('orders', 'a'), trigger: 'run', atMs: T0 }]);

    await clock.advance(5_000); // the target answers 5 s after the call
    release(500);
    await emulator.settled();
    const task = emulator.task(taskName('orders', 'a'))!;
    // Retry delay after the 4th failure: 10s doubled three times = 80s, from the time of the call.
    expect(task.scheduleTime).toBe('2026-11-22T10:01:20Z');
    expect(task.lastAttempt).toMatchObject({
      responseTime: '2026-11-22T10:00:05Z',
      responseStatus: { code: 13, message: 'INTERNAL(13): HTTP status code 500' },
    });
    expect(task.responseCount).toBe(4);
    // Still PAUSED: the scheduler does not retry it.
    await clock.advance(3_600_000);
    expect(target.requests).toHaveLength(1);
  });

  it('dispatches over the queue rate limits and while the task is already running', async () => {
    await start({}, 'RUNNING');
    target.setRespond(() => new Promise<number>(() => undefined)); // every attempt hangs
    for (const id of ['a', 'b', 'c']) expect((await run(id)).status).toBe(200);
    const again = await run('a');
    expect(again.body.dispatchCount).toBe(5);
    expect(emulator.dispatches.map((d) => [d.task.slice(-1), d.atMs])).toEqual([
      ['a', T0],
      ['b', T0],
      ['c', T0],
      ['a', T0],
    ]);
    expect(await waitForRequests(4)).toBe(4);
  });

  it('answers NOT_FOUND once the task succeeded, with the real messages', async () => {
    await start();
    target.setRespond(() => 200);
    expect((await run('a')).status).toBe(200);
    await clock.advance(0);
    expect(emulator.task(taskName('orders', 'a'))).toBeUndefined();
    expect((await run('a')).body).toEqual({
      error: { code: 404, message: 'Requested entity was not found.', status: 'NOT_FOUND', details: [] },
    });
    expect((await rest(emulator, 'GET', taskName('orders', 'a'))).body.error.message).toBe(
      'The task no longer exists, though a task with this name existed recently. ' +
        'The task either successfully completed or was deleted.',
    );
  });

  it('counts its attempts toward RetryConfig: a failed last attempt deletes the task', async () => {
    await start();
    // a, b and c have had 3 attempts, the first an hour ago; the 4th is the last unless time is left.
    const retryConfig = (maxRetryDuration?: string) => ({
      queues: [
        {
          name: ORDERS,
          retryConfig: { maxAttempts: 4, minBackoff: '10s', ...(maxRetryDuration && { maxRetryDuration }) },
        },
      ],
    });
    emulator.load(retryConfig());
    expect((await run('a')).body.dispatchCount).toBe(4);
    await clock.advance(0);
    expect(emulator.task(taskName('orders', 'a'))).toBeUndefined();
    expect((await rest(emulator, 'GET', taskName('orders', 'a'))).body.error.message).toContain(
      'existed recently',
    );

    emulator.load(retryConfig('2h')); // attempts used up, but not the time
    await run('b');
    await clock.advance(0);
    expect(emulator.task(taskName('orders', 'b'))).toMatchObject({ dispatchCount: 4, responseCount: 4 });

    emulator.load(retryConfig('30m')); // both used up
    await run('c');
    await clock.advance(0);
    expect(emulator.task(taskName('orders', 'c'))).toBeUndefined();
    expect(target.requests).toHaveLength(3);
  });

  it("bypasses maxConcurrentDispatches, which still holds the queue's own dispatches", async () => {
    await start({}, 'RUNNING', 50);
    const rateLimits = { maxDispatchesPerSecond: 500, maxBurstSize: 100, maxConcurrentDispatches: 1 };
    emulator.load({ queues: [{ name: ORDERS, rateLimits }] });
    target.setRespond(() => new Promise<number>(() => undefined)); // every attempt hangs
    await clock.advance(3_600_000); // all three fall due
    expect(emulator.dispatches).toHaveLength(1);
    const dispatched = emulator.dispatches[0]!.task;
    for (const id of ['a', 'b', 'c'].filter((id) => taskName('orders', id) !== dispatched)) {
      expect((await run(id)).status).toBe(200);
    }
    expect(emulator.dispatches.map((d) => d.trigger)).toEqual(['schedule', 'run', 'run']);
    expect(await waitForRequests(3)).toBe(3);
    await clock.advance(60_000);
    expect(emulator.dispatches).toHaveLength(3);
  });

  it('runs a seeded in-flight task, which the scheduler never would', async () => {
    await start({}, 'RUNNING');
    emulator.load({
      queues: [
        {
          name: ORDERS,
          tasks: [
            {
              id: 'stuck',
              httpRequest: { url: `${target.url}/stuck` },
              scheduleTime: '-1h',
              dispatchCount: 1,
              lastAttempt: { scheduleTime: '-1h', dispatchTime: '-1h' },
            },
          ],
        },
      ],
    });
    await clock.advance(60_000);
    expect(target.requests.filter((r) => r.path === '/stuck')).toHaveLength(0);
    expect((await run('stuck')).body.dispatchCount).toBe(2);
    await clock.advance(0);
    expect(target.requests.filter((r) => r.path === '/stuck')).toHaveLength(1);
    expect(emulator.task(taskName('orders', 'stuck'))?.lastAttempt?.responseStatus?.code).toBe(13);
  });
});

describe('RunTask quota', () => {
  it('answers the 61st call in a minute with 429 RESOURCE_EXHAUSTED and RetryInfo, then frees slots', async () => {
    await start();
    for (let i = 0; i < 60; i++) expect((await run('a')).status).toBe(200);
    await clock.advance(10_000);
    const over = await run('a');
    expect(over.status).toBe(429);
    expect(over.body.error).toMatchObject({ code: 429, status: 'RESOURCE_EXHAUSTED' });
    expect(over.body.error.message).toContain("'Force-run requests'");
    expect(over.body.error.details).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          '@type': 'type.googleapis.com/google.rpc.ErrorInfo',
          reason: 'RATE_LIMIT_EXCEEDED',
          metadata: expect.objectContaining({ quota_limit_value: '60', consumer: 'projects/my-project' }),
        }),
        { '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay: '50s' },
      ]),
    );
    expect(emulator.dispatches).toHaveLength(60); // the refused call dispatched nothing

    // Another project has its own quota.
    const other = 'projects/other-project/locations/us-central1/queues/q';
    emulator.load({ queues: [{ name: other, state: 'PAUSED', tasks: [failedTask('x')] }] });
    expect((await run('x', {}, other)).status).toBe(200);

    await clock.advance(49_999);
    expect((await run('a')).status).toBe(429);
    await clock.advance(1);
    expect((await run('a')).status).toBe(200);
  });

  it('scales with the configured quota and can leave RetryInfo out', async () => {
    await start({ runTaskQuota: { limit: 3, windowMs: 1_000 }, quotaRetryInfo: false });
    for (let i = 0; i < 3; i++) expect((await run('b')).status).toBe(200);
    const over = await run('b');
    expect(over.status).toBe(429);
    expect(over.body.error.details.map((d: { '@type': string }) => d['@type'])).not.toContain(
      'type.googleapis.com/google.rpc.RetryInfo',
    );
    await clock.advance(1_000);
    expect((await run('b')).status).toBe(200);
  });
});

/** Waits (real time, briefly) until the target has received `count` requests; returns how many arrived. */
async function waitForRequests(count: number): Promise<number> {
  for (let i = 0; i < 200 && target.requests.length < count; i++) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return target.requests.length;
}
