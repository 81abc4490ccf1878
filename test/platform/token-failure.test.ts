/**
 * A token that cannot be had is a call not sent (docs/cloud-tasks-calls.md "Credentials"): a metadata
 * server's 404 or 403 is never read as Cloud Tasks' NOT_FOUND or PERMISSION_DENIED. Google's own Compute
 * client against a local stand-in for the metadata server, and the emulator behind it.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Compute } from 'google-auth-library';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startEmulator, type Emulator } from '../../emulator/server.js';
import { createCloudTasksClient } from '../../shared/cloud-tasks/client.js';
import { parseTaskName } from '../../shared/cloud-tasks/names.js';
import { failedTask, queueName } from '../helpers/seeds.js';

const ORDERS = queueName('orders');
const TASK = `${ORDERS}/tasks/a`;

let emulator: Emulator;
let metadata: Server;
/** The token requests the metadata server received. */
let tokenRequests: string[];
let answerStatus: number;
const hostBefore = process.env.GCE_METADATA_HOST;

beforeEach(async () => {
  emulator = await startEmulator({ port: 0 });
  emulator.load({ queues: [{ name: ORDERS, tasks: [failedTask(ORDERS, 'a', 'http://127.0.0.1:9')] }] });
  tokenRequests = [];
  metadata = createServer((request, response) => {
    tokenRequests.push(request.url ?? '');
    response.writeHead(answerStatus, { 'Metadata-Flavor': 'Google', 'Content-Type': 'text/plain' });
    response.end(answerStatus === 404 ? 'Not Found' : 'Forbidden');
  });
  await new Promise<void>((resolve) => metadata.listen(0, '127.0.0.1', resolve));
  process.env.GCE_METADATA_HOST = `127.0.0.1:${(metadata.address() as AddressInfo).port}`;
});
afterEach(async () => {
  if (hostBefore === undefined) delete process.env.GCE_METADATA_HOST;
  else process.env.GCE_METADATA_HOST = hostBefore;
  await new Promise<void>((resolve) => metadata.close(() => resolve()));
  await emulator.stop();
});

describe('a token the metadata server refuses', () => {
  it.each([404, 403])(
    'answered %i: RunTask, DeleteTask (and GetTask) fail as not sent (UNAVAILABLE, no answer lost), not as the task gone or the queue refused',
    async (status) => {
      answerStatus = status;
      const tasks = createCloudTasksClient({ emulatorHost: emulator.host, authClient: new Compute() });
      const name = parseTaskName(TASK)!;
      const notSent = { status: 'UNAVAILABLE', answerLost: false };
      await expect(tasks.runTask(name)).rejects.toMatchObject(notSent);
      await expect(tasks.deleteTask(name)).rejects.toMatchObject(notSent);
      // A read is sent again (with real backoff): once is enough to show.
      if (status === 404) await expect(tasks.getTask(name)).rejects.toMatchObject(notSent);
      expect(tokenRequests.length).toBeGreaterThanOrEqual(2);
      expect(tokenRequests[0]).toContain('/service-accounts/default/token');
      // Nothing reached Cloud Tasks: the task is as it was.
      expect(emulator.calls).toEqual([]);
      expect(emulator.task(TASK)).toMatchObject({ dispatchCount: 3 });
      expect(emulator.dispatches).toEqual([]);
    },
  );
});
