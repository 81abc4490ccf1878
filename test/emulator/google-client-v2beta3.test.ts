/**
 * The v2 methods under v2beta3 paths (docs/emulator.md "v2beta3"), judged by Google's own v2beta3 client in
 * REST fallback mode, unchanged: queues and tasks in v2beta3's shapes, and what the emulator refuses.
 */
import type { v2beta3 } from '@google-cloud/tasks';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startEmulator, type Emulator } from '../../emulator/server.js';
import { startTarget, type Target } from '../helpers/target-server.js';
import { codeOf, googleBetaClient, inAnHour, LOCATION, queueName, taskName } from './helpers.js';

const ORDERS = queueName('orders');
const DAY_S = 24 * 3600;

let target: Target;
let emulator: Emulator;
let client: v2beta3.CloudTasksClient;

beforeEach(async () => {
  target = await startTarget({ respond: () => 500 });
  emulator = await startEmulator({ port: 0, dedupWindowMs: 2 * 3_600_000 });
  client = googleBetaClient(emulator);
});
afterEach(async () => {
  await client.close();
  await emulator.stop();
  await target.stop();
});

describe('v2beta3 queues', () => {
  it("creates, lists, updates, pauses, resumes, gets and deletes queues in v2beta3's Queue", async () => {
    const [created] = await client.createQueue({
      parent: LOCATION,
      queue: {
        name: ORDERS,
        appEngineHttpQueue: { appEngineRoutingOverride: { service: 'worker' } },
        rateLimits: { maxDispatchesPerSecond: 5 },
        tombstoneTtl: { seconds: 2 * 3600 },
      },
    });
    expect(created.name).toBe(ORDERS);
    expect(created.type).toBe('PUSH');
    expect(created.state).toBe('RUNNING');
    expect(created.appEngineHttpQueue?.appEngineRoutingOverride?.service).toBe('worker');
    expect(Number(created.taskTtl?.seconds)).toBe(31 * DAY_S);
    expect(Number(created.tombstoneTtl?.seconds)).toBe(2 * 3600);
    expect(created.stats).toBeFalsy();

    await client.createQueue({ parent: LOCATION, queue: { name: queueName('billing') } });
    const [queues] = await client.listQueues({ parent: LOCATION });
    expect(queues.map((q) => [q.name, q.type])).toEqual([
      [queueName('billing'), 'PUSH'],
      [ORDERS, 'PUSH'],
    ]);
    const [masked] = await client.listQueues({ parent: LOCATION, readMask: { paths: ['name', 'stats'] } });
    expect(masked.map((q) => [q.name, q.rateLimits ?? undefined])).toEqual([
      [queueName('billing'), undefined],
      [ORDERS, undefined],
    ]);
    expect(masked[1]?.stats?.effectiveExecutionRate).toBe(5);

    const [updated] = await client.updateQueue({
      queue: {
        name: ORDERS,
        rateLimits: { maxDispatchesPerSecond: 9 },
        appEngineHttpQueue: { appEngineRoutingOverride: { service: 'other' } },
      },
      updateMask: { paths: ['rate_limits.max_dispatches_per_second', 'app_engine_http_queue'] },
    });
    expect(updated.rateLimits?.maxDispatchesPerSecond).toBe(9);
    expect(updated.appEngineHttpQueue?.appEngineRoutingOverride?.service).toBe('other');

    expect((await client.pauseQueue({ name: ORDERS }))[0].state).toBe('PAUSED');
    expect((await client.resumeQueue({ name: ORDERS }))[0].state).toBe('RUNNING');
    const [got] = await client.getQueue({ name: ORDERS });
    expect(got.rateLimits?.maxDispatchesPerSecond).toBe(9);
    expect(got.type).toBe('PUSH');

    await client.deleteQueue({ name: ORDERS });
    expect((await codeOf(client.getQueue({ name: ORDERS }))).code).toBe(5);
  });

  it('answers UNIMPLEMENTED (12) for a pull queue, a TTL of its own, and purge', async () => {
    const pull = await codeOf(
      client.createQueue({ parent: LOCATION, queue: { name: ORDERS, type: 'PULL' } }),
    );
    expect(pull.code).toBe(12);
    const ttl = await codeOf(
      client.createQueue({ parent: LOCATION, queue: { name: ORDERS, taskTtl: { seconds: 10 * DAY_S } } }),
    );
    expect(ttl.code).toBe(12);
    expect(ttl.message).toContain('task_ttl');
    await client.createQueue({ parent: LOCATION, queue: { name: ORDERS } });
    expect((await codeOf(client.purgeQueue({ name: ORDERS }))).code).toBe(12);
  });
});

describe('v2beta3 tasks', () => {
  beforeEach(async () => {
    await client.createQueue({ parent: LOCATION, queue: { name: ORDERS } });
  });

  it('creates, lists, gets, runs and deletes tasks, and deletes them by batch', async () => {
    const create = (id: string) =>
      client.createTask({
        parent: ORDERS,
        task: {
          name: taskName('orders', id),
          httpRequest: { url: `${target.url}/${id}`, body: Buffer.from(`{"id":"${id}"}`) },
          scheduleTime: inAnHour(),
        },
      });
    const [created] = await create('a');
    expect(created.name).toBe(taskName('orders', 'a'));
    expect(created.view).toBe('BASIC');
    expect(created.httpRequest?.httpMethod).toBe('POST');
    await create('b');
    await create('c');

    const [listed] = await client.listTasks({ parent: ORDERS, responseView: 'FULL' });
    expect(listed.map((t) => t.name)).toEqual(['a', 'b', 'c'].map((id) => taskName('orders', id)));
    expect(Buffer.from(listed[1]!.httpRequest!.body as Uint8Array).toString()).toBe('{"id":"b"}');
    const [full] = await client.getTask({ name: taskName('orders', 'a'), responseView: 'FULL' });
    expect(full.view).toBe('FULL');
    expect(Buffer.from(full.httpRequest!.body as Uint8Array).toString()).toBe('{"id":"a"}');

    const [ran] = await client.runTask({ name: taskName('orders', 'a') });
    expect(ran.dispatchCount).toBe(1);
    await emulator.settled();
    expect(target.requests.map((r) => r.path)).toEqual(['/a']);

    await client.deleteTask({ name: taskName('orders', 'a') });
    expect((await codeOf(client.getTask({ name: taskName('orders', 'a') }))).code).toBe(5);
    const [operation] = await client.batchDeleteTasks({
      parent: ORDERS,
      names: ['b', 'c'].map((id) => taskName('orders', id)),
    });
    await operation.promise();
    expect(emulator.task(taskName('orders', 'b'))).toBeUndefined();
    expect(emulator.task(taskName('orders', 'c'))).toBeUndefined();
    expect(emulator.calls.map((c) => c.method)).toContain('BatchDeleteTasks');
  });

  it('answers UNIMPLEMENTED (12) for a task-level retry config, and creates nothing', async () => {
    const refused = await codeOf(
      client.createTask({
        parent: ORDERS,
        task: {
          name: taskName('orders', 'own-retry'),
          httpRequest: { url: `${target.url}/x` },
          retryConfig: { maxAttempts: 3 },
        },
      }),
    );
    expect(refused.code).toBe(12);
    expect(emulator.task(taskName('orders', 'own-retry'))).toBeUndefined();
  });
});
