/**
 * A 2xx answer that is not a JSON object is not Cloud Tasks' (docs/cloud-tasks-calls.md "An answer that is
 * not JSON"): an answer lost, so a read is sent again and a write is in doubt, never taken as data.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startEmulator, type Emulator } from '../../emulator/server.js';
import { createCloudTasksClient, type CloudTasksClient } from '../../shared/cloud-tasks/client.js';
import { parseQueueName, parseTaskName } from '../../shared/cloud-tasks/names.js';
import { startCloudTasksProxy, type CloudTasksProxy } from '../helpers/cloud-tasks-proxy.js';
import { failedTask, queueName } from '../helpers/seeds.js';

const ORDERS = queueName('orders');
const queue = parseQueueName(ORDERS)!;

let emulator: Emulator;
let proxy: CloudTasksProxy;
let tasks: CloudTasksClient;
/** How many more answers of `method` (GET, POST) the proxy turns into an HTML page. */
let htmlLeft: Record<string, number>;

beforeEach(async () => {
  emulator = await startEmulator({ port: 0 });
  const seeded = Array.from({ length: 1200 }, (_, i) => failedTask(ORDERS, `t${i}`, 'http://127.0.0.1:9'));
  emulator.load({ queues: [{ name: ORDERS, state: 'PAUSED', tasks: seeded }] } as never);
  htmlLeft = {};
  proxy = await startCloudTasksProxy(emulator.host, (call) => {
    if ((htmlLeft[call.method] ?? 0) <= 0) return { status: call.status, text: call.text };
    htmlLeft[call.method]!--;
    return { status: 200, text: '<html/>' };
  });
  tasks = createCloudTasksClient({ emulatorHost: proxy.host });
});
afterEach(async () => {
  await proxy.close();
  await emulator.stop();
});

describe('a 2xx answer that is not JSON', () => {
  it('to a listing page is read again: the listing is whole, not cut short', async () => {
    htmlLeft = { GET: 1 };
    let listed = 0;
    for await (const page of tasks.listTasks(queue)) listed += page.length;
    expect(listed).toBe(1200);
    expect(emulator.calls.filter((c) => c.method === 'ListTasks')).toHaveLength(3);
  });

  it('to a FULL GetTask is read again: the task comes back, not a string', async () => {
    htmlLeft = { GET: 1 };
    const task = await tasks.getTask(parseTaskName(`${ORDERS}/tasks/t0`)!, 'FULL');
    expect(task).toMatchObject({ name: `${ORDERS}/tasks/t0`, view: 'FULL' });
  });

  it('to a RunTask is an answer lost: in doubt, never sent again', async () => {
    htmlLeft = { POST: 1 };
    await expect(tasks.runTask(parseTaskName(`${ORDERS}/tasks/t0`)!)).rejects.toMatchObject({
      status: 'UNAVAILABLE',
      answerLost: true,
    });
    expect(emulator.calls.filter((c) => c.method === 'RunTask')).toHaveLength(1);
  });
});
