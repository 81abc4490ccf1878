/**
 * How redrive's batches read their operations (docs/redrive.md "Batch calls"), against stand-in Cloud Tasks
 * servers on 127.0.0.1: an unfinished operation's named items, and the names a running operation is read by.
 */
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { createCloudTasksClient } from '../../shared/cloud-tasks/client.js';
import { parseQueueName } from '../../shared/cloud-tasks/names.js';
import { batchWrites, type BatchingClient } from '../../shared/run/batch-writes.js';
import { Budget } from '../../shared/run/budget.js';
import { capturedLog, ORDERS, taskName } from './stage-fixtures.js';

const queue = parseQueueName(ORDERS)!;
const newTask = (id: string) => ({
  name: taskName(id).name,
  httpRequest: { url: `http://127.0.0.1:9/${id}` },
});

/** Runs `work` with batch writes through a stand-in whose every answer is `answer(request)` as JSON. */
async function withStandIn(
  answer: (request: IncomingMessage) => object,
  work: (client: BatchingClient) => Promise<void>,
): Promise<void> {
  const standIn = createServer((request, response) => {
    request.resume().on('end', () => {
      response.setHeader('content-type', 'application/json');
      response.end(JSON.stringify(answer(request)));
    });
  });
  await new Promise<void>((resolve) => standIn.listen(0, '127.0.0.1', resolve));
  try {
    const { port } = standIn.address() as AddressInfo;
    const tasks = createCloudTasksClient({ emulatorHost: `127.0.0.1:${port}` });
    await work(batchWrites({ tasks, budget: new Budget(20_000), log: capturedLog().log }));
  } finally {
    await new Promise((resolve) => standIn.close(resolve));
  }
}

describe('batch operations', () => {
  it.each(['FAILED', 'CANCELLED'])(
    'an operation that ended %s fails the items it names with their own status, and leaves the others unknown',
    async (state) => {
      const operation = {
        name: 'projects/p/locations/l/operations/op-1',
        done: true,
        metadata: { state, failedRequests: { '1': { code: 6, message: 'exists' } } },
        error: { code: 13, message: 'The batch operation failed to complete' },
      };
      await withStandIn(
        () => operation,
        async (client) => {
          const created = await Promise.all(
            ['a', 'b', 'c'].map((id) => client.createTask(queue, newTask(id)).catch((e: unknown) => e)),
          );
          expect(created[0]).toMatchObject({ status: 'UNAVAILABLE', answerLost: true });
          expect(created[1]).toMatchObject({ status: 'ALREADY_EXISTS', answerLost: false });
          expect(created[2]).toMatchObject({ status: 'UNAVAILABLE', answerLost: true });
        },
      );
    },
  );

  it.each([
    ['operations/op1', ['/v2/operations/op1']],
    ['projects/123/locations/l/operations/op1', ['/v2/projects/123/locations/l/operations/op1']],
    ['operations/../queues/q', []],
    ['operations/op1?alt=x', []],
    ['operations//op1', []],
    ['http:op1', []],
  ])('a running operation named %s is read at %j', async (name, reads) => {
    // The batch call answers the operation running; each read of it, done.
    const paths: string[] = [];
    await withStandIn(
      (request) => {
        const running = request.method === 'POST';
        if (!running) paths.push(new URL(request.url ?? '', 'http://x').pathname);
        return { name, done: !running, metadata: { state: running ? 'RUNNING' : 'SUCCEEDED' } };
      },
      async (client) => {
        const created = await client.createTask(queue, newTask('a')).catch((e: unknown) => e);
        if (reads.length > 0) expect(created).toEqual({ name: taskName('a').name });
        else expect(created).toMatchObject({ status: 'UNAVAILABLE', answerLost: true });
        expect(paths).toEqual(reads);
      },
    );
  });
});
