/**
 * Fidelity: Google's own @google-cloud/tasks client, in REST fallback mode and unchanged, against the
 * emulator.
 */
import type { CloudTasksClient } from '@google-cloud/tasks';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock, startEmulator, type Emulator } from '../../emulator/server.js';
import { startTarget, type Target } from '../helpers/target-server.js';
import { codeOf, googleClient, inAnHour, LOCATION, queueName, taskName } from './helpers.js';

let target: Target;
let emulator: Emulator;
let client: CloudTasksClient;

beforeAll(async () => {
  target = await startTarget({ respond: () => 500 });
});
afterAll(async () => {
  await target.stop();
});
beforeEach(async () => {
  emulator = await startEmulator({ port: 0, runTaskQuota: { limit: 1000, windowMs: 60_000 } });
  client = googleClient(emulator);
});
afterEach(async () => {
  await client.close();
  await emulator.stop();
});

describe('queues', () => {
  it('creates, gets, lists, pauses, resumes and deletes queues', async () => {
    const [created] = await client.createQueue({
      parent: LOCATION,
      queue: {
        name: queueName('orders'),
        rateLimits: { maxDispatchesPerSecond: 5, maxConcurrentDispatches: 10 },
        retryConfig: {
          maxAttempts: 7,
          minBackoff: { seconds: 2 },
          maxBackoff: { seconds: 60 },
          maxDoublings: 3,
        },
      },
    });
    expect(created.name).toBe(queueName('orders'));
    expect(created.state).toBe('RUNNING');
    expect(created.rateLimits).toMatchObject({
      maxDispatchesPerSecond: 5,
      maxBurstSize: 100,
      maxConcurrentDispatches: 10,
    });
    expect(created.retryConfig).toMatchObject({ maxAttempts: 7, maxDoublings: 3 });
    expect(Number(created.retryConfig?.minBackoff?.seconds)).toBe(2);

    const [defaults] = await client.createQueue({ parent: LOCATION, queue: { name: queueName('billing') } });
    expect(defaults.rateLimits).toMatchObject({
      maxDispatchesPerSecond: 500,
      maxBurstSize: 100,
      maxConcurrentDispatches: 1000,
    });
    expect(defaults.retryConfig).toMatchObject({ maxAttempts: 100, maxDoublings: 16 });
    expect(Number(defaults.retryConfig?.maxBackoff?.seconds)).toBe(3600);
    expect(defaults.retryConfig?.minBackoff?.nanos).toBe(100_000_000);
    await client.createQueue({ parent: LOCATION, queue: { name: queueName('audit') } });

    const [page, nextRequest] = await client.listQueues(
      { parent: LOCATION, pageSize: 2 },
      { autoPaginate: false },
    );
    expect(page.map((q) => q.name)).toEqual([queueName('audit'), queueName('billing')]);
    const [rest] = await client.listQueues({ ...nextRequest!, parent: LOCATION }, { autoPaginate: false });
    expect(rest.map((q) => q.name)).toEqual([queueName('orders')]);

    const [paused] = await client.pauseQueue({ name: queueName('orders') });
    expect(paused.state).toBe('PAUSED');
    const [onlyPaused] = await client.listQueues({ parent: LOCATION, filter: 'state: PAUSED' });
    expect(onlyPaused.map((q) => q.name)).toEqual([queueName('orders')]);
    const [resumed] = await client.resumeQueue({ name: queueName('orders') });
    expect(resumed.state).toBe('RUNNING');
    const [got] = await client.getQueue({ name: queueName('orders') });
    expect(got.state).toBe('RUNNING');

    await client.deleteQueue({ name: queueName('orders') });
    const gone = await codeOf(client.getQueue({ name: queueName('orders') }));
    expect(gone.code).toBe(5);
    expect(gone.message).toContain('Queue does not exist.');
  });

  it('answers ALREADY_EXISTS (6) for a queue twice and INVALID_ARGUMENT (3) for a bad queue ID', async () => {
    await client.createQueue({ parent: LOCATION, queue: { name: queueName('orders') } });
    expect(
      (await codeOf(client.createQueue({ parent: LOCATION, queue: { name: queueName('orders') } }))).code,
    ).toBe(6);
    const bad = await codeOf(
      client.createQueue({ parent: LOCATION, queue: { name: queueName('has_underscore') } }),
    );
    expect(bad.code).toBe(3);
    expect(bad.message).toContain('Queue name must be formatted');
  });
});

describe('tasks', () => {
  beforeEach(async () => {
    await client.createQueue({ parent: LOCATION, queue: { name: queueName('orders') } });
  });

  it('creates named and unnamed tasks, and gets them in BASIC and FULL views', async () => {
    const [named] = await client.createTask({
      parent: queueName('orders'),
      task: {
        name: taskName('orders', 'order-1'),
        httpRequest: {
          url: `${target.url}/work`,
          httpMethod: 'PUT',
          headers: { 'Content-Type': 'application/json', 'X-Secret': 's3cret' },
          body: Buffer.from('{"id":1}'),
        },
        scheduleTime: inAnHour(),
      },
    });
    expect(named.name).toBe(taskName('orders', 'order-1'));
    expect(named.view).toBe('BASIC');
    expect(named.httpRequest?.httpMethod).toBe('PUT');
    const headers = {
      'Content-Type': 'application/json',
      'X-Secret': 's3cret',
      'User-Agent': 'Google-Cloud-Tasks',
    };
    expect(named.httpRequest?.headers).toEqual(headers);
    expect(Number(named.dispatchDeadline?.seconds)).toBe(600);
    expect(named.createTime?.nanos).toBe(0);
    expect(named.dispatchCount).toBe(0);

    const [unnamed] = await client.createTask({
      parent: queueName('orders'),
      task: { httpRequest: { url: `${target.url}/work` }, scheduleTime: inAnHour() },
    });
    expect(unnamed.name).toMatch(new RegExp(`^${queueName('orders')}/tasks/\\d{19}$`));
    expect(unnamed.httpRequest?.httpMethod).toBe('POST');

    // BASIC has the headers (the real API shows them) but not the body; FULL has both.
    const [basic] = await client.getTask({ name: taskName('orders', 'order-1') });
    expect(basic.view).toBe('BASIC');
    expect(basic.httpRequest?.headers).toEqual(headers);
    expect(basic.httpRequest?.body?.length ?? 0).toBe(0);
    const [full] = await client.getTask({ name: taskName('orders', 'order-1'), responseView: 'FULL' });
    expect(full.view).toBe('FULL');
    expect(full.httpRequest?.headers).toEqual(headers);
    expect(Buffer.from(full.httpRequest!.body as Uint8Array).toString()).toBe('{"id":1}');
    const [listed] = await client.listTasks(
      { parent: queueName('orders'), responseView: 'FULL' },
      { autoPaginate: false },
    );
    const fullListed = listed.find((t) => t.name === taskName('orders', 'order-1'))!;
    expect(Buffer.from(fullListed.httpRequest!.body as Uint8Array).toString()).toBe('{"id":1}');
  });

  it('sets a scheduleTime in the past to the time of the call, and dispatches at once', async () => {
    const before = Math.floor(Date.now() / 1000);
    const [created] = await client.createTask({
      parent: queueName('orders'),
      task: {
        name: taskName('orders', 'late'),
        httpRequest: { url: `${target.url}/late` },
        scheduleTime: { seconds: before - 3600 },
      },
    });
    const scheduled = Number(created.scheduleTime?.seconds);
    expect(scheduled).toBeGreaterThanOrEqual(before);
    expect(scheduled).toBeLessThanOrEqual(Math.ceil(Date.now() / 1000));
    await expect.poll(() => target.requests.some((r) => r.path === '/late')).toBe(true);
    const future = before + 3600;
    const [ahead] = await client.createTask({
      parent: queueName('orders'),
      task: { httpRequest: { url: `${target.url}/later` }, scheduleTime: { seconds: future } },
    });
    expect(Number(ahead.scheduleTime?.seconds)).toBe(future);
  });

  it('gets every RetryConfig field and the RateLimits of a queue', async () => {
    await client.createQueue({
      parent: LOCATION,
      queue: {
        name: queueName('limited'),
        rateLimits: { maxDispatchesPerSecond: 2.5, maxConcurrentDispatches: 3 },
        retryConfig: {
          maxAttempts: 5,
          maxRetryDuration: { seconds: 600 },
          minBackoff: { seconds: 1 },
          maxBackoff: { seconds: 30 },
          maxDoublings: 2,
        },
      },
    });
    const [queue] = await client.getQueue({ name: queueName('limited') });
    expect(queue.rateLimits).toEqual({
      maxDispatchesPerSecond: 2.5,
      maxBurstSize: 100,
      maxConcurrentDispatches: 3,
    });
    const retry = queue.retryConfig!;
    expect([retry.maxAttempts, retry.maxDoublings]).toEqual([5, 2]);
    const seconds = [retry.maxRetryDuration, retry.minBackoff, retry.maxBackoff].map((d) =>
      Number(d?.seconds),
    );
    expect(seconds).toEqual([600, 1, 30]);
  });

  it('lists tasks across several pages without repeats', async () => {
    for (let i = 0; i < 25; i++) {
      await client.createTask({
        parent: queueName('orders'),
        task: {
          name: taskName('orders', `t${i}`),
          httpRequest: { url: `${target.url}/work` },
          scheduleTime: inAnHour(),
        },
      });
    }
    const seen: string[] = [];
    let request: { parent: string; pageSize: number; pageToken?: string } = {
      parent: queueName('orders'),
      pageSize: 10,
    };
    let pages = 0;
    for (;;) {
      const [tasks, next] = await client.listTasks(request, { autoPaginate: false });
      pages++;
      seen.push(...tasks.map((t) => t.name!));
      if (!next?.pageToken) break;
      request = { ...request, pageToken: next.pageToken };
    }
    expect(pages).toBe(3);
    expect(new Set(seen).size).toBe(25);

    const all = [];
    for await (const task of client.listTasksAsync(
      { parent: queueName('orders'), pageSize: 7, responseView: 'FULL' },
      { autoPaginate: false },
    )) {
      all.push(task);
    }
    expect(all).toHaveLength(25);
    expect(all.every((t) => t.view === 'FULL')).toBe(true);
    expect(emulator.calls.filter((c) => c.method === 'ListTasks')).toHaveLength(3 + 4);
  });

  it('runs a task, deletes a task, and keeps deleted names reserved', async () => {
    await client.createTask({
      parent: queueName('orders'),
      task: {
        name: taskName('orders', 'run-me'),
        httpRequest: { url: `${target.url}/work` },
        scheduleTime: inAnHour(),
      },
    });
    const [ran] = await client.runTask({ name: taskName('orders', 'run-me') });
    expect(ran.dispatchCount).toBe(1);
    expect(ran.lastAttempt?.dispatchTime).toBeTruthy();
    expect(ran.lastAttempt?.responseTime).toBeNull();
    await emulator.settled();
    expect(target.requests.at(-1)?.headers['x-cloudtasks-taskname']).toBe('run-me');

    await client.deleteTask({ name: taskName('orders', 'run-me') });
    const gone = await codeOf(client.getTask({ name: taskName('orders', 'run-me') }));
    expect(gone.code).toBe(5);
    expect(gone.message).toContain('existed recently');
    const again = await codeOf(
      client.createTask({
        parent: queueName('orders'),
        task: { name: taskName('orders', 'run-me'), httpRequest: { url: `${target.url}/work` } },
      }),
    );
    expect(again.code).toBe(6);
    expect((await codeOf(client.runTask({ name: taskName('orders', 'run-me') }))).code).toBe(5);
    expect((await codeOf(client.deleteTask({ name: taskName('orders', 'run-me') }))).code).toBe(5);
  });

  it('keeps the names of finished and deleted tasks reserved for the dedup window, then frees them', async () => {
    await client.close();
    await emulator.stop();
    const clock = new ManualClock(Date.parse('2026-11-22T10:00:00Z'));
    emulator = await startEmulator({ clock, dedupWindowMs: 24 * 3_600_000 });
    client = googleClient(emulator);
    await client.createQueue({ parent: LOCATION, queue: { name: queueName('orders') } });
    const create = (id: string, dueInMs = 0) =>
      client.createTask({
        parent: queueName('orders'),
        task: {
          name: taskName('orders', id),
          httpRequest: { url: `${target.url}/${id}` },
          scheduleTime: { seconds: (clock.now() + dueInMs) / 1000 },
        },
      });
    target.setRespond(() => 200);
    try {
      await create('finished');
      await clock.advance(0); // dispatched, answered 200, deleted
      expect(target.requests.at(-1)?.path).toBe('/finished');
      await create('deleted', 3_600_000);
      await client.deleteTask({ name: taskName('orders', 'deleted') });
    } finally {
      target.setRespond(() => 500);
    }
    for (const id of ['finished', 'deleted']) {
      expect((await codeOf(client.getTask({ name: taskName('orders', id) }))).message).toContain(
        'existed recently',
      );
      expect((await codeOf(create(id))).message).toContain('existed too recently');
    }
    await clock.advance(24 * 3_600_000 - 1);
    expect((await codeOf(create('finished'))).code).toBe(6);
    await clock.advance(1);
    expect((await codeOf(client.getTask({ name: taskName('orders', 'deleted') }))).message).toBe(
      'Requested entity was not found.',
    );
    const [again] = await create('deleted');
    expect(again.name).toBe(taskName('orders', 'deleted'));
  });

  it('answers the right gRPC codes: NOT_FOUND 5, ALREADY_EXISTS 6, INVALID_ARGUMENT 3, RESOURCE_EXHAUSTED 8', async () => {
    const missing = await codeOf(client.getTask({ name: taskName('orders', 'missing') }));
    expect(missing).toMatchObject({ code: 5, message: 'Requested entity was not found.' });

    const task = {
      name: taskName('orders', 'once'),
      httpRequest: { url: `${target.url}/work` },
      scheduleTime: inAnHour(),
    };
    await client.createTask({ parent: queueName('orders'), task });
    expect(await codeOf(client.createTask({ parent: queueName('orders'), task }))).toMatchObject({
      code: 6,
      message: 'Requested entity already exists',
    });

    const badId = await codeOf(client.getTask({ name: taskName('orders', 'not.valid') }));
    expect(badId.code).toBe(3);
    expect(badId.message).toContain('Task ID "not.valid" can contain only letters');
    const badUrl = await codeOf(
      client.createTask({ parent: queueName('orders'), task: { httpRequest: { url: 'ftp://x' } } }),
    );
    expect(badUrl.code).toBe(3);

    await emulator.stop();
    emulator = await startEmulator({ runTaskQuota: { limit: 2, windowMs: 60_000 } });
    client = googleClient(emulator);
    await client.createQueue({ parent: LOCATION, queue: { name: queueName('orders') } });
    await client.createTask({ parent: queueName('orders'), task });
    await client.runTask({ name: task.name });
    await client.runTask({ name: task.name });
    const exhausted = await codeOf(client.runTask({ name: task.name }));
    expect(exhausted.code).toBe(8);
    expect(exhausted.message).toContain("Quota exceeded for quota metric 'Force-run requests'");
  });
});
