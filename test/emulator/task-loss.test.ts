/**
 * The ways Cloud Tasks loses a task, as the emulator shows them, judged by Google's own client in REST
 * fallback mode: deletion after the last failed attempt (both limits used up), the 31-day retention, and a
 * PAUSED queue that never dispatches while RunTask still does. Time is the emulator's ManualClock.
 */
import type { CloudTasksClient } from '@google-cloud/tasks';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock, startEmulator, type Emulator } from '../../emulator/server.js';
import { startTarget, type Target } from '../helpers/target-server.js';
import { googleClient, queueName, taskName } from './helpers.js';

const T0 = Date.parse('2026-12-05T10:00:00Z');
const DAY = 24 * 3_600_000;
const Q = queueName('orders');

let clock: ManualClock;
let target: Target;
let emulator: Emulator;
let client: CloudTasksClient;

beforeEach(async () => {
  clock = new ManualClock(T0);
  target = await startTarget({ respond: () => 500 });
  emulator = await startEmulator({ port: 0, clock, runTaskQuota: { limit: 1000, windowMs: 60_000 } });
  client = googleClient(emulator);
});
afterEach(async () => {
  await client.close();
  await emulator.stop();
  await target.stop();
});

/** NOT_FOUND (5) from GetTask, or the task. */
async function exists(name: string): Promise<boolean> {
  try {
    await client.getTask({ name });
    return true;
  } catch (err) {
    expect((err as { code: number }).code).toBe(5);
    return false;
  }
}

function queueWith(retryConfig: Record<string, unknown>, state = 'RUNNING') {
  emulator.load({
    queues: [
      {
        name: Q,
        state: state as 'RUNNING',
        retryConfig: { minBackoff: '1s', maxBackoff: '1s', maxDoublings: 0, ...retryConfig },
        tasks: [],
      },
    ],
  });
}

async function createTask(id: string, scheduleInMs = 0) {
  const [task] = await client.createTask({
    parent: Q,
    task: {
      name: taskName('orders', id),
      httpRequest: { url: `${target.url}/work/${id}`, httpMethod: 'POST' },
      scheduleTime: { seconds: Math.floor((T0 + scheduleInMs) / 1000) },
    },
  });
  return task.name!;
}

describe('deletion after the last failed attempt', () => {
  it('with maxAttempts the limit: gone after the third failure, not before', async () => {
    queueWith({ maxAttempts: 3 });
    const name = await createTask('a');
    await clock.advance(0);
    await clock.advance(1_000);
    expect(await exists(name)).toBe(true);
    const [task] = await client.getTask({ name });
    expect(task.dispatchCount).toBe(2);
    await clock.advance(1_000);
    expect(await exists(name)).toBe(false);
    expect(emulator.dispatches.filter((d) => d.task === name)).toHaveLength(3);
  });

  it('with maxRetryDuration the limit: attempts used up, retried until the duration is over too', async () => {
    queueWith({ maxAttempts: 2, maxRetryDuration: '10s' });
    const name = await createTask('b');
    for (let i = 0; i < 5; i++) await clock.advance(1_000);
    expect(await exists(name)).toBe(true);
    expect(((await client.getTask({ name }))[0].dispatchCount as number) > 2).toBe(true);
    for (let i = 0; i < 7; i++) await clock.advance(1_000);
    expect(await exists(name)).toBe(false);
  });

  it('a RunTask that is the last attempt deletes the task when it fails', async () => {
    queueWith({ maxAttempts: 1 });
    const name = await createTask('c', 3_600_000);
    await client.runTask({ name });
    await emulator.settled();
    expect(await exists(name)).toBe(false);
  });
});

describe('the 31-day retention', () => {
  it('deletes a task 31 days after its creation, whatever its state, and keeps its name reserved', async () => {
    queueWith({ maxAttempts: -1 }, 'PAUSED');
    const name = await createTask('d', 29 * DAY);
    await clock.advance(31 * DAY - 60_000);
    expect(await exists(name)).toBe(true);
    await clock.advance(60_000);
    expect(await exists(name)).toBe(false);
    expect((await client.listTasks({ parent: Q }))[0]).toEqual([]);
    await expect(
      client.createTask({ parent: Q, task: { name, httpRequest: { url: target.url } } }),
    ).rejects.toMatchObject({
      code: 6,
    });
  });

  it('counts from the seeded createTime: a task created 31 days less a minute ago is gone a minute later, never dispatched', async () => {
    emulator.load({
      queues: [
        {
          name: Q,
          tasks: [
            {
              id: 'old',
              httpRequest: { url: `${target.url}/old`, httpMethod: 'POST' },
              createTime: new Date(T0 - 31 * DAY + 60_000).toISOString(),
              scheduleTime: new Date(T0 + 2 * 60_000).toISOString(),
            },
          ],
        },
      ],
    });
    const name = taskName('orders', 'old');
    await clock.advance(59_000);
    expect(await exists(name)).toBe(true);
    await clock.advance(2 * 60_000);
    expect(await exists(name)).toBe(false);
    expect(emulator.dispatches.filter((d) => d.task === name)).toEqual([]);
  });
});

describe('a PAUSED queue', () => {
  it('never dispatches its due tasks, however long the clock runs; RunTask still dispatches', async () => {
    queueWith({ maxAttempts: -1 }, 'RUNNING');
    await client.pauseQueue({ name: Q });
    const name = await createTask('e');
    for (let i = 0; i < 10; i++) await clock.advance(3_600_000);
    expect(emulator.dispatches.filter((d) => d.task === name)).toEqual([]);
    await client.runTask({ name });
    await emulator.settled();
    expect(emulator.dispatches.filter((d) => d.task === name).map((d) => d.trigger)).toEqual(['run']);
  });
});
