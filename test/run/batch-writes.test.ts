/**
 * Redrive's creates and deletes by batch (docs/redrive.md "Batch calls"), against the in-process emulator:
 * concurrent calls on one queue go out as one batch, each caller gets its own item's answer.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CloudTasksError, createCloudTasksClient, type NewTask } from '../../shared/cloud-tasks/client.js';
import { parseQueueName } from '../../shared/cloud-tasks/names.js';
import { batchWrites } from '../../shared/run/batch-writes.js';
import { Budget } from '../../shared/run/budget.js';
import { callsOf, capturedLog, ORDERS, startWorld, taskName, type World } from './stage-fixtures.js';

describe('batchWrites', () => {
  let world: World;
  const queue = parseQueueName(ORDERS)!;
  beforeEach(async () => {
    world = await startWorld();
    world.emulator.load({ queues: [{ name: ORDERS, state: 'PAUSED' }] });
  });
  afterEach(() => world.stop());

  const writes = () => {
    const { log, lines } = capturedLog();
    return { client: batchWrites({ tasks: world.tasks, budget: new Budget(20_000), log }), lines };
  };
  const newTask = (id: string, dueInMs?: number) => ({
    name: taskName(id).name,
    httpRequest: { url: `${world.target.url}/${id}` },
    ...(dueInMs !== undefined && { scheduleTime: new Date(Date.now() + dueInMs).toISOString() }),
  });
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

  it('gathers the creates and deletes made together into one batch each; each caller gets its own answer', async () => {
    const { client } = writes();
    await Promise.all(['a', 'b', 'c'].map((id) => client.createTask(queue, newTask(id))));
    expect(callsOf(world.emulator, 'BatchCreateTasks')).toEqual([ORDERS]);
    expect(world.emulator.task(taskName('b').name)).toBeDefined();
    const existing = await client.createTask(queue, newTask('a')).catch((e: unknown) => e);
    expect(existing).toBeInstanceOf(CloudTasksError);
    expect((existing as CloudTasksError).status).toBe('ALREADY_EXISTS');
    await Promise.all(['a', 'b'].map((id) => client.deleteTask(taskName(id))));
    expect(callsOf(world.emulator, 'BatchDeleteTasks')).toEqual([ORDERS]);
    expect(world.emulator.task(taskName('a').name)).toBeUndefined();
    const gone = (await client.deleteTask(taskName('a')).catch((e: unknown) => e)) as CloudTasksError;
    expect(gone.status).toBe('NOT_FOUND');
    expect(gone.answerLost).toBe(false);
  });

  it('a create waits for others no longer than its kind allows, nor than a tenth of the time until it falls due', async () => {
    const { log } = capturedLog();
    const gatherMs = { creates: 400, deletes: 20 };
    const client = batchWrites({ tasks: world.tasks, budget: new Budget(20_000), log, gatherMs });
    const batches = (method: string) => callsOf(world.emulator, method).length;
    // Due in 10 s: a tenth of that is more than 400 ms, so two creates 100 ms apart share a batch.
    await Promise.all([
      client.createTask(queue, newTask('far-a', 10_000)),
      sleep(100).then(() => client.createTask(queue, newTask('far-b', 10_000))),
    ]);
    expect(batches('BatchCreateTasks')).toBe(1);
    // Due in 300 ms: each waits 30 ms at most, so two 100 ms apart go in two batches.
    await Promise.all([
      client.createTask(queue, newTask('soon-a', 300)),
      sleep(100).then(() => client.createTask(queue, newTask('soon-b', 300))),
    ]);
    expect(batches('BatchCreateTasks')).toBe(3);
    // One due now, joining a batch that could wait 400 ms, sends it at once.
    const startedMs = Date.now();
    await Promise.all([
      client.createTask(queue, newTask('far-c', 10_000)),
      client.createTask(queue, newTask('now')),
    ]);
    expect(batches('BatchCreateTasks')).toBe(4);
    expect(Date.now() - startedMs).toBeLessThan(300);
    // Deletes wait their own 20 ms.
    await Promise.all([
      client.deleteTask(taskName('far-a')),
      sleep(100).then(() => client.deleteTask(taskName('far-b'))),
    ]);
    expect(batches('BatchDeleteTasks')).toBe(2);
  });

  it('keeps a batch of creates under the request size Google takes: large bodies go in several', async () => {
    const { client } = writes();
    // 30 bodies of 400 KB: 12 MB in one request, past the 10 MiB the front end (and the emulator) refuse.
    const body = 'QUJD'.repeat(100_000);
    const ids = Array.from({ length: 30 }, (_, i) => `big-${i}`);
    await Promise.all(
      ids.map((id) =>
        client.createTask(queue, { ...newTask(id), httpRequest: { ...newTask(id).httpRequest, body } }),
      ),
    );
    expect(callsOf(world.emulator, 'BatchCreateTasks').length).toBeGreaterThanOrEqual(2);
    for (const id of ids) expect(world.emulator.task(taskName(id).name)?.httpRequest?.body).toBe(body);
  });

  it('an operation that ended FAILED leaves each item unknown: an answer lost, never a plain failure', async () => {
    const { client } = writes();
    world.emulator.injectFault({ method: 'BatchCreateTasks', kind: 'operation-failed', applied: 1 });
    const results = await Promise.all(
      ['a', 'b'].map((id) => client.createTask(queue, newTask(id)).catch((e: unknown) => e)),
    );
    for (const result of results) expect(result).toMatchObject({ answerLost: true });
    // The first was applied: sent again, it meets its own name.
    expect(world.emulator.task(taskName('a').name)).toBeDefined();
    expect(world.emulator.task(taskName('b').name)).toBeUndefined();
  });

  it('an operation that carries an error leaves each item it does not name unknown, never done', async () => {
    // A stand-in Cloud Tasks whose batch operations end done with an error: the delete names no item (as a
    // service that reports "none succeeded" by its error alone), the create names its second item.
    const operation = (url: string) => ({
      name: 'projects/p/locations/l/operations/op-1',
      done: true,
      error: { code: 10, message: 'None of the requests succeeded' },
      ...(url.includes(':batchCreate') && {
        metadata: { state: 'PARTIALLY_SUCCEEDED', failedRequests: { '1': { code: 6, message: 'exists' } } },
      }),
    });
    const standIn = createServer((request, response) => {
      request.resume().on('end', () => {
        response.setHeader('content-type', 'application/json');
        response.end(JSON.stringify(operation(request.url ?? '')));
      });
    });
    await new Promise<void>((resolve) => standIn.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = standIn.address() as AddressInfo;
      const tasks = createCloudTasksClient({ emulatorHost: `127.0.0.1:${port}` });
      const client = batchWrites({ tasks, budget: new Budget(20_000), log: capturedLog().log });
      const deleted = await client.deleteTask(taskName('a')).catch((e: unknown) => e);
      expect(deleted).toMatchObject({ status: 'UNAVAILABLE', answerLost: true });
      const created = await Promise.all(
        ['a', 'b'].map((id) => client.createTask(queue, newTask(id)).catch((e: unknown) => e)),
      );
      expect(created[0]).toMatchObject({ status: 'UNAVAILABLE', answerLost: true });
      expect(created[1]).toMatchObject({ status: 'ALREADY_EXISTS', answerLost: false });
    } finally {
      await new Promise((resolve) => standIn.close(resolve));
    }
  });

  it('sends the items of a batch refused whole as INVALID_ARGUMENT on their own, and goes on batching', async () => {
    const { client, lines } = writes();
    // The batch is refused whole; on their own, 'a' (no valid URL) is refused and 'b' is created.
    world.emulator.injectFault({ method: 'BatchCreateTasks', kind: 400, times: 1 });
    const invalid = { ...newTask('a'), httpRequest: { url: 'not a url' } };
    const answers = await Promise.all(
      [invalid, newTask('b')].map((task) => client.createTask(queue, task).catch((e: unknown) => e)),
    );
    expect((answers[0] as CloudTasksError).status).toBe('INVALID_ARGUMENT');
    expect(answers[1]).toEqual({ name: taskName('b').name });
    expect(world.emulator.task(taskName('a').name)).toBeUndefined();
    expect(world.emulator.task(taskName('b').name)).toBeDefined();
    expect(callsOf(world.emulator, 'CreateTask')).toHaveLength(2);
    await client.createTask(queue, newTask('c'));
    expect(callsOf(world.emulator, 'BatchCreateTasks')).toHaveLength(2);
    expect(client.batching).toBe(true);
    expect(
      lines().filter((l) => l.message === 'a batch refused whole: its items sent one by one'),
    ).toHaveLength(1);
  });

  it.each([
    [404, 'text/html', '<html><body>Not Found</body></html>'],
    [405, 'text/plain', 'Method Not Allowed'],
    [501, 'text/plain', ''],
  ])(
    "a Cloud Tasks without the batch methods (%i, not in Google's error shape): each item goes on its own",
    async (status, type, text) => {
      // A stand-in with GetQueue and single creates only: a batch route answers as a plain web server would.
      let queueReads = 0;
      const standIn = createServer((request, response) => {
        let body = '';
        request.on('data', (chunk: Buffer) => (body += chunk.toString()));
        request.on('end', () => {
          if (request.url?.includes(':batch')) {
            response.writeHead(status, { 'content-type': type });
            return response.end(text);
          }
          response.setHeader('content-type', 'application/json');
          if (request.method === 'GET') {
            queueReads++;
            return response.end(JSON.stringify({ name: ORDERS, state: 'RUNNING' }));
          }
          response.end(JSON.stringify({ name: (JSON.parse(body) as { task: { name: string } }).task.name }));
        });
      });
      await new Promise<void>((resolve) => standIn.listen(0, '127.0.0.1', resolve));
      try {
        const { port } = standIn.address() as AddressInfo;
        const tasks = createCloudTasksClient({ emulatorHost: `127.0.0.1:${port}` });
        const client = batchWrites({ tasks, budget: new Budget(20_000), log: capturedLog().log });
        const created = await Promise.all(['a', 'b'].map((id) => client.createTask(queue, newTask(id))));
        expect(created).toEqual([{ name: taskName('a').name }, { name: taskName('b').name }]);
        expect(client.batching).toBe(false);
        // A 404 is the method's only once the queue is seen there.
        expect(queueReads).toBe(status === 404 ? 1 : 0);
      } finally {
        await new Promise((resolve) => standIn.close(resolve));
      }
    },
  );

  it.each([
    ['the batch call', 'INTERNAL: failed on [redacted] [redacted]'],
    [
      'its operation',
      'UNAVAILABLE: the batch operation ended with an error: failed on [redacted] [redacted]',
    ],
  ])(
    "a whole batch's failure (%s) that quotes one item is told to every item without any item's content",
    async (failing, told) => {
      // A stand-in whose batch create fails, quoting the first task's header value and body.
      const standIn = createServer((request, response) => {
        let body = '';
        request.on('data', (chunk: Buffer) => (body += chunk.toString()));
        request.on('end', () => {
          const first = (JSON.parse(body) as { requests: { task: NewTask }[] }).requests[0]!.task;
          const quoted = `${first.httpRequest!.headers!['X-Api-Key']} ${first.httpRequest!.body as string}`;
          const error = { code: 13, status: 'INTERNAL', message: `failed on ${quoted}` };
          const operation = { name: 'projects/p/locations/l/operations/op-1', done: true, error };
          response.writeHead(failing === 'the batch call' ? 500 : 200, {
            'content-type': 'application/json',
          });
          response.end(JSON.stringify(failing === 'the batch call' ? { error } : operation));
        });
      });
      await new Promise<void>((resolve) => standIn.listen(0, '127.0.0.1', resolve));
      try {
        const { port } = standIn.address() as AddressInfo;
        const tasks = createCloudTasksClient({ emulatorHost: `127.0.0.1:${port}` });
        const client = batchWrites({ tasks, budget: new Budget(20_000), log: capturedLog().log });
        const secret = (id: string) => ({
          ...newTask(id),
          httpRequest: {
            url: `${world.target.url}/${id}`,
            headers: { 'X-Api-Key': `key-of-${id}-secret` },
            body: Buffer.from(`card-of-${id}-4111111111111111`).toString('base64'),
          },
        });
        const failures = await Promise.all(
          ['a', 'b'].map((id) =>
            client.createTask(queue, secret(id)).catch((e: unknown) => e as CloudTasksError),
          ),
        );
        for (const failure of failures) expect((failure as CloudTasksError).message).toBe(told);
      } finally {
        await new Promise((resolve) => standIn.close(resolve));
      }
    },
  );

  it('turns batching off once the method is refused, saying so once, and sends each item on its own', async () => {
    const { client, lines } = writes();
    world.emulator.injectFault({ method: 'BatchCreateTasks', kind: 403 });
    await Promise.all(['a', 'b'].map((id) => client.createTask(queue, newTask(id))));
    await client.createTask(queue, newTask('c'));
    expect(callsOf(world.emulator, 'BatchCreateTasks')).toHaveLength(1);
    expect(callsOf(world.emulator, 'CreateTask')).toHaveLength(3);
    expect(lines().filter((l) => l.message === 'batch calls unavailable: one call per task')).toHaveLength(1);
  });

  it('a Cloud Tasks without the batch methods (404 "Method not found."): batching off once the queue is seen there', async () => {
    const { client, lines } = writes();
    world.emulator.injectFault({ method: 'BatchCreateTasks', kind: 404 });
    world.emulator.injectFault({ method: 'BatchDeleteTasks', kind: 404 });
    await Promise.all(['a', 'b'].map((id) => client.createTask(queue, newTask(id))));
    await client.createTask(queue, newTask('c'));
    await client.deleteTask(taskName('a'));
    expect(callsOf(world.emulator, 'BatchCreateTasks')).toHaveLength(1);
    expect(callsOf(world.emulator, 'CreateTask')).toHaveLength(3);
    expect(callsOf(world.emulator, 'BatchDeleteTasks')).toEqual([]);
    expect(callsOf(world.emulator, 'DeleteTask')).toHaveLength(1);
    expect(world.emulator.task(taskName('b').name)).toBeDefined();
    expect(world.emulator.task(taskName('a').name)).toBeUndefined();
    // The queue read once, to tell the method's NOT_FOUND from the queue's.
    expect(callsOf(world.emulator, 'GetQueue')).toEqual([ORDERS]);
    expect(client.batching).toBe(false);
    expect(lines().filter((l) => l.message === 'batch calls unavailable: one call per task')).toHaveLength(1);
  });

  it('a batch to a queue that is gone fails each item NOT_FOUND, and goes on batching for the other queues', async () => {
    const { client, lines } = writes();
    const gone = parseQueueName(`${ORDERS}-gone`)!;
    const goneTask = (id: string) => ({ ...newTask(id), name: `${gone.name}/tasks/${id}` });
    const failures = await Promise.all(
      ['a', 'b'].map((id) => client.createTask(gone, goneTask(id)).catch((e: unknown) => e)),
    );
    for (const failure of failures) {
      expect(failure).toBeInstanceOf(CloudTasksError);
      expect((failure as CloudTasksError).status).toBe('NOT_FOUND');
      expect((failure as CloudTasksError).answerLost).toBe(false);
    }
    expect(callsOf(world.emulator, 'BatchCreateTasks')).toEqual([gone.name]);
    expect(callsOf(world.emulator, 'GetQueue')).toEqual([gone.name]);
    await client.createTask(queue, newTask('c'));
    expect(callsOf(world.emulator, 'BatchCreateTasks')).toEqual([gone.name, ORDERS]);
    expect(callsOf(world.emulator, 'CreateTask')).toEqual([]);
    expect(client.batching).toBe(true);
    expect(lines().filter((l) => l.message === 'batch calls unavailable: one call per task')).toEqual([]);
  });
});
