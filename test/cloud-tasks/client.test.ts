import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startEmulator, type Emulator } from '../../emulator/server.js';
import {
  CloudTasksError,
  createCloudTasksClient,
  type CloudTasksClient,
} from '../../shared/cloud-tasks/client.js';
import { BodyBytes } from '../../shared/cloud-tasks/body-bytes.js';
import { parseQueueName, parseTaskName } from '../../shared/cloud-tasks/names.js';
import { startCloudTasksProxy } from '../helpers/cloud-tasks-proxy.js';
import { failedTask, laterTask, queueName } from '../helpers/seeds.js';

const ORDERS = queueName('orders');
const queue = parseQueueName(ORDERS)!;

let emulator: Emulator;
let client: CloudTasksClient;

beforeEach(async () => {
  emulator = await startEmulator({ port: 0 });
  client = createCloudTasksClient({ emulatorHost: emulator.host });
});
afterEach(() => emulator.stop());

/** Loads `count` failed tasks, each with a secret header and body, into the paused queue. */
function loadFailedTasks(count: number): void {
  const secret = { headers: { Authorization: 'Bearer secret' }, body: 'secret-body' };
  const tasks = Array.from({ length: count }, (_, i) =>
    failedTask(ORDERS, `t${i}`, 'http://127.0.0.1:9', secret),
  );
  emulator.load({ queues: [{ name: ORDERS, state: 'PAUSED', tasks }] } as never);
}

describe('the Cloud Tasks REST client', () => {
  it('lists every page, 1000 tasks at most each, without bodies or headers', async () => {
    loadFailedTasks(2100);
    const pages: number[] = [];
    const names = new Set<string>();
    for await (const page of client.listTasks(queue)) {
      pages.push(page.length);
      for (const task of page) {
        names.add(task.name);
        expect(task.httpRequest).toEqual({ url: expect.stringContaining('/work/') });
        expect(task.lastAttempt?.responseStatus?.code).toBe(13);
      }
    }
    expect(pages).toEqual([1000, 1000, 100]);
    expect(names.size).toBe(2100);
  });

  it('lists FULL pages of 500 after a first of 50, each body kept as the bytes it came in, the same task as a FULL read', async () => {
    loadFailedTasks(600);
    const pages: number[] = [];
    for await (const page of client.listTasks(queue, 'FULL')) {
      pages.push(page.length);
      for (const task of page) {
        expect(task.httpRequest?.body).toBeInstanceOf(BodyBytes);
        expect(task.httpRequest?.headers).toMatchObject({ Authorization: 'Bearer secret' });
      }
      const read = await client.getTask(parseTaskName(page[0]!.name)!, 'FULL');
      expect(typeof read.httpRequest?.body).toBe('string');
      expect(JSON.parse(JSON.stringify(page[0]))).toEqual(read);
    }
    expect(pages).toEqual([50, 500, 50]);
  });

  it('asks for fewer FULL tasks a page once a page shows large bodies, so no answer holds more than 16 MiB of them', async () => {
    const small = (id: string) => failedTask(ORDERS, id, 'http://127.0.0.1:9', { body: 'small' });
    const large = (id: string) =>
      failedTask(ORDERS, id, 'http://127.0.0.1:9', { body: 'L'.repeat(100 * 1024) });
    const ids = (prefix: string, count: number) =>
      Array.from({ length: count }, (_, i) => `${prefix}${String(i).padStart(3, '0')}`);
    const tasks = [...ids('a', 500).map(small), ...ids('b', 250).map(large)];
    emulator.load({ queues: [{ name: ORDERS, state: 'PAUSED', tasks }] } as never);
    const pages: number[] = [];
    for await (const page of client.listTasks(queue, 'FULL')) pages.push(page.length);
    // 100 KB is 136,536 bytes of base64: 16 MiB holds 122 of them.
    expect(pages).toEqual([50, 500, 122, 78]);
  });

  it('lists attempts alone for a re-read by listing: name, counts and last attempt, nothing more', async () => {
    loadFailedTasks(1100);
    const pages: number[] = [];
    for await (const page of client.listTaskAttempts(queue)) {
      pages.push(page.length);
      for (const task of page) {
        expect(Object.keys(task).sort()).toEqual(['dispatchCount', 'lastAttempt', 'name', 'responseCount']);
        expect(task.lastAttempt?.responseStatus?.code).toBe(13);
      }
    }
    expect(pages).toEqual([1000, 100]);
  });

  it('retries reads through 503s and resets', async () => {
    emulator.load({
      queues: [{ name: ORDERS, tasks: [laterTask(ORDERS, 'a', 'http://127.0.0.1:9')] }],
    });
    emulator.injectFault({ method: 'GetQueue', kind: 503, times: 2 });
    emulator.injectFault({ method: 'GetTask', kind: 'reset', times: 1 });
    expect((await client.getQueue(queue)).state).toBe('RUNNING');
    expect((await client.getTask(parseTaskName(`${ORDERS}/tasks/a`)!)).name).toBe(`${ORDERS}/tasks/a`);
    expect(emulator.calls.map((c) => `${c.method}:${c.status}`)).toEqual([
      'GetQueue:503',
      'GetQueue:503',
      'GetQueue:200',
      'GetTask:0',
      'GetTask:200',
    ]);
  });

  it('never retries RunTask itself, and maps Google errors to canonical statuses', async () => {
    emulator.load({ queues: [{ name: ORDERS, tasks: [] }] });
    const missing = parseTaskName(`${ORDERS}/tasks/missing`)!;
    await expect(client.runTask(missing)).rejects.toMatchObject({ status: 'NOT_FOUND', answerLost: false });
    emulator.injectFault({ method: 'RunTask', kind: 503, times: 1 });
    const error = await client.runTask(missing).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CloudTasksError);
    expect(error).toMatchObject({ status: 'UNAVAILABLE' });
    expect(emulator.calls.filter((c) => c.method === 'RunTask')).toHaveLength(2);
  });

  it.each([
    ['BASIC', true],
    [1, true],
    ['FULL', false],
    [2, false],
    [undefined, false],
  ])('a FULL read whose answer says view %s is refused: %s', async (view, refused) => {
    loadFailedTasks(1);
    const name = parseTaskName(`${ORDERS}/tasks/t0`)!;
    // The emulator's answer, with its view said otherwise (a server that ignores responseView, or writes
    // enums as numbers).
    const proxy = await startCloudTasksProxy(emulator.host, (call) => {
      const task = JSON.parse(call.text) as Record<string, unknown>;
      return { status: call.status, text: JSON.stringify({ ...task, view }) };
    });
    try {
      const read = createCloudTasksClient({ emulatorHost: proxy.host }).getTask(name, 'FULL');
      if (refused) await expect(read).rejects.toMatchObject({ status: 'FAILED_PRECONDITION' });
      else await expect(read).resolves.toMatchObject({ name: name.name });
    } finally {
      await proxy.close();
    }
  });

  it.each([
    ['Requested entity already exists', 'ALREADY_EXISTS'],
    ['Task already exists.', 'ALREADY_EXISTS'],
    ['The task cannot be created because a task with this name existed too recently.', 'ALREADY_EXISTS'],
    ['Concurrent modification, try again.', 'ABORTED'],
  ])('a 409 without a status, "%s", is %s', async (message, status) => {
    // A stand-in whose error JSON has only a code and a message.
    const standIn = createServer((request, response) => {
      request.resume().on('end', () => {
        response.writeHead(409, { 'content-type': 'application/json' });
        response.end(JSON.stringify({ error: { code: 409, message } }));
      });
    });
    await new Promise<void>((resolve) => standIn.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = standIn.address() as AddressInfo;
      const created = createCloudTasksClient({ emulatorHost: `127.0.0.1:${port}` }).createTask(queue, {
        name: `${ORDERS}/tasks/copy`,
        httpRequest: { url: 'http://127.0.0.1:9/work' },
      });
      await expect(created).rejects.toMatchObject({
        status,
        answerLost: false,
        options: { httpStatus: 409 },
      });
    } finally {
      await new Promise((resolve) => standIn.close(resolve));
    }
  });

  it('reports an unreachable endpoint as UNAVAILABLE with the answer lost', async () => {
    const offline = createCloudTasksClient({ emulatorHost: '127.0.0.1:9' });
    await expect(offline.runTask(parseTaskName(`${ORDERS}/tasks/a`)!)).rejects.toMatchObject({
      status: 'UNAVAILABLE',
      answerLost: true,
    });
  });
});
