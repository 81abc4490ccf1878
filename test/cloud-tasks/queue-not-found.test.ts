/**
 * A NOT_FOUND about the queue, answered to a call on tasks, is no answer about the tasks
 * (docs/cloud-tasks-calls.md "A queue not found"): the call did nothing and is transient, never "gone".
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createCloudTasksClient } from '../../shared/cloud-tasks/client.js';
import { parseQueueName, parseTaskName } from '../../shared/cloud-tasks/names.js';
import { Budget } from '../../shared/run/budget.js';
import { Copier, copyNameOf, type CopyResult } from '../../shared/run/copy.js';
import type { ForcePolicy } from '../../shared/run/force.js';
import { Semaphore } from '../../shared/run/pace.js';
import { MAX_BODY_BYTES_HELD } from '../../shared/run/redrive-calls.js';
import { failedTask } from '../helpers/seeds.js';
import {
  callsOf,
  candidateOf,
  ORDERS,
  queueName,
  queueRunOf,
  startWorld,
  type World,
} from '../run/stage-fixtures.js';

const QUEUE_NOT_FOUND =
  'Queue does not exist. If you just created the queue, wait at least a minute for the queue to initialize.';
const MISSING = queueName('missing');

let world: World;
beforeEach(async () => {
  world = await startWorld();
  world.emulator.load({ queues: [{ name: ORDERS, tasks: [failedTask(ORDERS, 'a', world.target.url)] }] });
});
afterEach(() => world.stop());

describe('a call on tasks of a queue that does not exist', () => {
  it('GetTask, RunTask, DeleteTask and a batch delete fail UNAVAILABLE with an answer; GetQueue, ListTasks and CreateTask NOT_FOUND', async () => {
    const name = parseTaskName(`${MISSING}/tasks/a`)!;
    const queue = parseQueueName(MISSING)!;
    const refused = { status: 'UNAVAILABLE', answerLost: false, message: `UNAVAILABLE: ${QUEUE_NOT_FOUND}` };
    await expect(world.tasks.runTask(name)).rejects.toMatchObject(refused);
    await expect(world.tasks.deleteTask(name)).rejects.toMatchObject(refused);
    await expect(world.tasks.batchDeleteTasks(queue, [name])).rejects.toMatchObject(refused);
    await expect(world.tasks.createTask(queue, { name: name.name })).rejects.toMatchObject({
      status: 'NOT_FOUND',
    });
    await expect(world.tasks.getQueue(queue)).rejects.toMatchObject({ status: 'NOT_FOUND' });
    await expect(world.tasks.listTasks(queue)[Symbol.asyncIterator]().next()).rejects.toMatchObject({
      status: 'NOT_FOUND',
    });
    // A missing task in a queue that exists is NOT_FOUND, as before.
    const gone = parseTaskName(`${ORDERS}/tasks/nope`)!;
    await expect(world.tasks.deleteTask(gone)).rejects.toMatchObject({ status: 'NOT_FOUND' });
    // A read is sent again (5 tries in all), as any UNAVAILABLE.
    await expect(world.tasks.getTask(name)).rejects.toMatchObject(refused);
    expect(callsOf(world.emulator, 'GetTask')).toHaveLength(5);
  });
});

describe("a redrive's delete of the original answered the queue's NOT_FOUND", () => {
  let proxy: Server;
  afterEach(() => new Promise<void>((resolve) => proxy.close(() => resolve())));

  /** The emulator, but for DELETE of `deleteRefused`, answered the queue's NOT_FOUND without being sent on. */
  async function refusingDeleteOf(deleteRefused: string): Promise<string> {
    proxy = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        void (async () => {
          if (request.method === 'DELETE' && request.url?.startsWith(`/v2/${deleteRefused}`)) {
            response.writeHead(404, { 'content-type': 'application/json' });
            const error = { code: 404, message: QUEUE_NOT_FOUND, status: 'NOT_FOUND' };
            return void response.end(JSON.stringify({ error }));
          }
          const body = Buffer.concat(chunks);
          const answer = await fetch(`${world.emulator.url}${request.url}`, {
            method: request.method!,
            headers: { 'content-type': 'application/json' },
            ...(body.length > 0 && { body }),
          });
          response.writeHead(answer.status, { 'content-type': 'application/json' });
          response.end(Buffer.from(await answer.arrayBuffer()));
        })();
      });
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    return `127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  }

  it('keeps the copy and the original, and leaves the move unsettled (deferred), never "gone"', async () => {
    const original = `${ORDERS}/tasks/a`;
    const tasks = createCloudTasksClient({ emulatorHost: await refusingDeleteOf(original) });
    const request = { requestId: 'r-1', cutoffMs: Date.now() };
    const policy: ForcePolicy = {
      rulesFor: (q) => ({
        match: {},
        cutoffMs: request.cutoffMs,
        minBackoffLeftMs: 0,
        dueSoonApplies: true,
        retry: q.retry,
        allowLastAttempt: true,
        nowMs: Date.now(),
      }),
      isHeld: () => false,
      heldSignal: undefined,
    };
    const stage = new Copier(
      {
        tasks,
        calls: new Semaphore(4),
        bodies: new Semaphore(MAX_BODY_BYTES_HELD),
        budget: new Budget(20_000),
        armingDelayMs: 60_000,
      },
      request,
    );
    const result = await new Promise<CopyResult>((moved, failed) =>
      stage.copy(candidateOf('a', queueRunOf()), Date.now(), policy, {
        moved,
        failed,
        copied: () => undefined,
      }),
    );
    expect(result).toMatchObject({ outcome: 'deferred', unsettled: true });
    const copy = copyNameOf(parseTaskName(original)!, request.requestId, request.cutoffMs).name;
    expect(world.emulator.task(original)).toBeDefined();
    expect(world.emulator.task(copy)).toBeDefined();
    expect(callsOf(world.emulator, 'DeleteTask')).toEqual([]);
  });
});
