/**
 * The ways Cloud Tasks loses a task, as the emulator shows them, judged by Google's own client in REST
 * fallback mode: deletion after the last failed attempt (both limits used up), the 31-day retention, and a
 * PAUSED queue that never dispatches while RunTask still does. Time is the emulator's ManualClock.
 */
import type { CloudTasksClient } from '@google-cloud/tasks';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock, startEmulator, type Emulator } from '../../emulator/server.js';
import { Retention } from '../../emulator/retention.js';
import type { TaskRecord } from '../../emulator/model.js';
import type { Store } from '../../emulator/store.js';
import { startTarget, type Target } from '../helpers/target-server.js';
import { googleClient, queueName, taskName } from './helpers.js';

const T0 = Date.parse('2026-12-05T10:00:00Z');
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
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

/** Whether GetTask finds the task; any answer but the task must be NOT_FOUND (5). */
async function exists(name: string): Promise<boolean> {
  try {
    await client.getTask({ name });
    return true;
  } catch (err) {
    expect((err as { code: number }).code).toBe(5);
    return false;
  }
}

async function dispatchCount(name: string): Promise<number> {
  const [task] = await client.getTask({ name });
  return task.dispatchCount ?? 0;
}

async function listed(): Promise<string[]> {
  const [tasks] = await client.listTasks({ parent: Q });
  return tasks.map((t) => t.name!);
}

const dispatchesOf = (name: string) => emulator.dispatches.filter((d) => d.task === name);

function queueWith(retryConfig: Record<string, unknown>, state: 'RUNNING' | 'PAUSED' = 'RUNNING') {
  emulator.load({
    queues: [
      {
        name: Q,
        state,
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
      scheduleTime: { seconds: Math.floor((clock.now() + scheduleInMs) / 1000) },
    },
  });
  return task.name!;
}

describe('deletion after the last failed attempt', () => {
  it('maxAttempts 3: NOT_FOUND after the third failure, not before, and nothing dispatched after', async () => {
    queueWith({ maxAttempts: 3 });
    const name = await createTask('a');
    await clock.advance(0);
    expect(await dispatchCount(name)).toBe(1);
    await clock.advance(1_000);
    expect(await dispatchCount(name)).toBe(2);
    expect(await listed()).toEqual([name]);
    await clock.advance(1_000);
    expect(await exists(name)).toBe(false);
    expect(await listed()).toEqual([]);
    await clock.advance(HOUR);
    expect(dispatchesOf(name).map((d) => d.status)).toEqual([500, 500, 500]);
  });

  it('maxRetryDuration the limit: attempts used up early, the task is retried until the duration is over', async () => {
    queueWith({ maxAttempts: 2, maxRetryDuration: '10s' });
    const name = await createTask('b');
    // Attempts every second from T0; the one failing at T0 + 10 s is the first past both limits.
    await clock.advance(9_000);
    expect(await dispatchCount(name)).toBe(10);
    await clock.advance(1_000);
    expect(await exists(name)).toBe(false);
    await clock.advance(MINUTE);
    expect(dispatchesOf(name)).toHaveLength(11);
  });

  it('unlimited attempts (-1) with a maxRetryDuration: never deleted, since both limits must be used up', async () => {
    queueWith({ maxAttempts: -1, maxRetryDuration: '10s' });
    const name = await createTask('u');
    await clock.advance(MINUTE);
    expect(await dispatchCount(name)).toBe(61);
  });

  it('a RunTask that is the last attempt deletes the task when it fails', async () => {
    queueWith({ maxAttempts: 3 });
    const name = await createTask('c');
    await clock.advance(0);
    await clock.advance(1_000);
    expect(await dispatchCount(name)).toBe(2);
    const [ran] = await client.runTask({ name });
    expect(ran.dispatchCount).toBe(3);
    await emulator.settled();
    expect(await exists(name)).toBe(false);
    await expect(client.runTask({ name })).rejects.toMatchObject({ code: 5 });
    await clock.advance(HOUR);
    expect(dispatchesOf(name).map((d) => d.trigger)).toEqual(['schedule', 'schedule', 'run']);
  });

  it('a RunTask on a task never attempted, with maxAttempts 1, deletes it too', async () => {
    queueWith({ maxAttempts: 1 });
    const name = await createTask('c1', HOUR);
    await client.runTask({ name });
    await emulator.settled();
    expect(await exists(name)).toBe(false);
  });
});

describe('the 31-day retention', () => {
  it('deletes a task 31 days after its creation, whatever its state; the name stays reserved for the dedup window', async () => {
    queueWith({ maxAttempts: -1 }, 'PAUSED');
    const name = await createTask('d', 29 * DAY);
    await clock.advance(31 * DAY - MINUTE);
    expect(await exists(name)).toBe(true);
    expect(await listed()).toEqual([name]);
    await clock.advance(MINUTE);
    expect(await exists(name)).toBe(false);
    expect(await listed()).toEqual([]);
    const again = { parent: Q, task: { name, httpRequest: { url: target.url } } };
    await expect(client.createTask(again)).rejects.toMatchObject({ code: 6 });
    await clock.advance(HOUR); // the default dedup window
    await expect(client.createTask(again)).resolves.toBeDefined();
  });

  it('retries a failing task until its 31st day, and never after', async () => {
    queueWith({ maxAttempts: -1, minBackoff: '23h', maxBackoff: '23h' });
    const name = await createTask('r');
    await clock.advance(31 * DAY - MINUTE);
    expect(await exists(name)).toBe(true);
    await clock.advance(40 * DAY);
    expect(await exists(name)).toBe(false);
    const times = dispatchesOf(name).map((d) => d.atMs - T0);
    expect(times).toHaveLength(33); // every 23 h from T0: 32 * 23 h = 736 h < 744 h = 31 days
    expect(times.every((t) => t < 31 * DAY)).toBe(true);
  });

  it('counts from a seed’s createTime, in flight or waiting; never dispatches a task after it expired', async () => {
    const url = `${target.url}/old`;
    emulator.load({
      queues: [
        {
          name: Q,
          tasks: [
            {
              id: 'old',
              httpRequest: { url, httpMethod: 'POST' },
              createTime: new Date(T0 - 31 * DAY + MINUTE).toISOString(),
              scheduleTime: new Date(T0 + 2 * MINUTE).toISOString(),
            },
            {
              id: 'running',
              httpRequest: { url, httpMethod: 'POST' },
              createTime: new Date(T0 - 31 * DAY + MINUTE).toISOString(),
              dispatchCount: 1,
              lastAttempt: { scheduleTime: '-1m', dispatchTime: '-1m' },
            },
            {
              id: 'month',
              httpRequest: { url, httpMethod: 'POST' },
              createTime: new Date(T0 - 30 * DAY).toISOString(),
              scheduleTime: new Date(T0 + 2 * DAY).toISOString(),
            },
          ],
        },
      ],
    });
    const [old, running, month] = ['old', 'running', 'month'].map((id) => taskName('orders', id));
    await clock.advance(59_000);
    expect(await listed()).toEqual([old, running, month]);
    await clock.advance(1_000);
    expect(await exists(old!)).toBe(false);
    expect(await exists(running!)).toBe(false);
    expect(await listed()).toEqual([month]);
    await clock.advance(DAY - MINUTE);
    expect(await exists(month!)).toBe(false);
    await clock.advance(5 * DAY);
    expect(emulator.dispatches).toEqual([]);
  });

  it('a seeded task already past its retention is never seen', async () => {
    emulator.load({
      queues: [
        {
          name: Q,
          tasks: [
            {
              id: 'ancient',
              httpRequest: { url: target.url, httpMethod: 'POST' },
              createTime: new Date(T0 - 32 * DAY).toISOString(),
            },
          ],
        },
      ],
    });
    const name = taskName('orders', 'ancient');
    expect(await exists(name)).toBe(false);
    expect(await listed()).toEqual([]);
    await clock.advance(MINUTE);
    expect(emulator.dispatches).toEqual([]);
  });

  it('taskRetentionMs sets the lifetime; it must be positive', async () => {
    const short = await startEmulator({ port: 0, clock, taskRetentionMs: 10 * MINUTE });
    const shortClient = googleClient(short);
    try {
      short.load({ queues: [{ name: Q, state: 'PAUSED', tasks: [] }] });
      const [task] = await shortClient.createTask({
        parent: Q,
        task: { httpRequest: { url: target.url } },
      });
      await clock.advance(10 * MINUTE - 1_000);
      await expect(shortClient.getTask({ name: task.name! })).resolves.toBeDefined();
      await clock.advance(1_000);
      await expect(shortClient.getTask({ name: task.name! })).rejects.toMatchObject({ code: 5 });
    } finally {
      await shortClient.close();
      await short.stop();
    }
    await expect(startEmulator({ port: 0, taskRetentionMs: 0 })).rejects.toThrow(RangeError);
  });
});

describe('the retention heap', () => {
  it('sweeps out tasks that ended sooner and still expires every live one, in order', async () => {
    const removed: string[] = [];
    const store = {
      removeTask: (task: TaskRecord) => {
        task.deleted = true;
        removed.push(task.name);
      },
    } as unknown as Store;
    const manual = new ManualClock(T0);
    const retention = new Retention({ clock: manual, store: () => store, retentionMs: DAY, log: () => {} });
    const tasks: TaskRecord[] = [];
    for (let i = 0; i < 5_000; i++) {
      const task = { name: `t${i}`, createTimeMs: T0 + (i % 97) * 1_000, deleted: false } as TaskRecord;
      tasks.push(task);
      retention.track(task);
      if (i % 3 !== 0) task.deleted = true; // ended sooner: succeeded, failed for good or deleted
    }
    await manual.advance(DAY + 97_000);
    const live = tasks.filter((_, i) => i % 3 === 0);
    expect([...removed].sort()).toEqual(live.map((t) => t.name).sort());
    const created = new Map(tasks.map((t) => [t.name, t.createTimeMs]));
    const times = removed.map((n) => created.get(n)!);
    expect(times).toEqual([...times].sort((a, b) => a - b));
    retention.stop();
  });
});

describe('a PAUSED queue', () => {
  it('never dispatches its due tasks, however long the clock runs; RunTask still dispatches', async () => {
    queueWith({ maxAttempts: -1 }, 'RUNNING');
    await client.pauseQueue({ name: Q });
    const name = await createTask('e');
    for (let i = 0; i < 10; i++) await clock.advance(3 * DAY);
    expect(dispatchesOf(name)).toEqual([]);
    expect(await dispatchCount(name)).toBe(0);
    await client.runTask({ name });
    await emulator.settled();
    expect(dispatchesOf(name).map((d) => [d.trigger, d.status])).toEqual([['run', 500]]);
    await clock.advance(DAY - MINUTE);
    expect(dispatchesOf(name)).toHaveLength(1);
    expect(await dispatchCount(name)).toBe(1);
  });
});
