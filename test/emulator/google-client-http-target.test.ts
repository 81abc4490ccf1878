/**
 * Fidelity of `Queue.httpTarget` judged by Google's own client in REST fallback mode: a queue created with
 * it reads back with the same fields, and an UpdateQueue with an update mask changes only what it names.
 *
 * The v2 protos of @google-cloud/tasks 7.1.0 (the latest the registry offers here) have no `http_target`,
 * although the v2 REST reference and discovery document do, so the client would drop the field. Until the
 * client catches up, this file grafts the messages into the client's v2 protos before any client is made:
 * they are the client's own v2beta3 UriOverride, PathOverride, QueryOverride and HttpTarget, which the v2
 * reference matches field for field, and Queue.http_target = 13 as in v2beta3. Only this file's worker
 * sees the graft (vitest isolates files); the client's code, transcoding and JSON handling are unchanged.
 * Once the client has the field, nothing is grafted.
 */
import { protos } from '@google-cloud/tasks';
import { createRequire } from 'node:module';
import path from 'node:path';
import { afterEach, beforeAll, beforeEach, expect, it } from 'vitest';
import { startEmulator, type Emulator } from '../../emulator/server.js';
import { googleClient, LOCATION, queueName, rest } from './helpers.js';

type ProtoNamespace = { nested: Record<string, any> };

beforeAll(() => {
  if ('httpTarget' in protos.google.cloud.tasks.v2.Queue.prototype) return;
  // The very object the client loads (its json-helper `require`s this file, so the require cache shares it).
  const require = createRequire(import.meta.url);
  const main = require.resolve('@google-cloud/tasks'); // build/cjs/src/index.cjs
  const json = require(path.resolve(path.dirname(main), '../../protos/protos.json'));
  const tasks: Record<string, ProtoNamespace> = json.nested.google.nested.cloud.nested.tasks.nested;
  const { v2, v2beta3 } = tasks;
  for (const type of ['PathOverride', 'QueryOverride', 'UriOverride', 'HttpTarget']) {
    v2!.nested[type] ??= structuredClone(v2beta3!.nested[type]);
  }
  v2!.nested.Queue.fields.httpTarget ??= { type: 'HttpTarget', id: 13 };
});

let emulator: Emulator;
let client: ReturnType<typeof googleClient>;

beforeEach(async () => {
  emulator = await startEmulator();
  client = googleClient(emulator);
});
afterEach(async () => {
  await client.close();
  await emulator.stop();
});

const httpTarget = {
  uriOverride: {
    scheme: 'HTTPS',
    host: 'worker.example.com',
    port: 8443,
    pathOverride: { path: '/v2/handle' },
    queryOverride: { queryParams: 'tenant=a' },
    uriOverrideEnforceMode: 'IF_NOT_EXISTS',
  },
  httpMethod: 'PUT',
  headerOverrides: [
    { header: { key: 'X-Env', value: 'staging' } },
    { header: { key: 'Content-Type', value: 'application/json' } },
  ],
  oidcToken: {
    serviceAccountEmail: 'invoker@my-project.iam.gserviceaccount.com',
    audience: 'https://worker',
  },
};

/** The client's answer without protobufjs' oneof markers (`_host`, `authorizationHeader`), port as a number. */
function plain(target: any): unknown {
  const { authorizationHeader: _a, ...rest } = target;
  const { _scheme, _host, _port, ...uri } = rest.uriOverride;
  return { ...rest, uriOverride: { ...uri, port: Number(uri.port) } };
}

it('creates a queue with httpTarget and reads it back with the same fields', async () => {
  const [created] = await client.createQueue({
    parent: LOCATION,
    queue: { name: queueName('routed'), httpTarget } as any,
  });
  expect(plain((created as any).httpTarget)).toEqual(httpTarget);
  const [read] = await client.getQueue({ name: queueName('routed') });
  expect(plain((read as any).httpTarget)).toEqual(httpTarget);
  const [listed] = await client.listQueues({ parent: LOCATION });
  expect(plain((listed[0] as any).httpTarget)).toEqual(httpTarget);
  // It sent the enums as names and the int64 port as a string, and asked for enums by number.
  const raw = await rest(emulator, 'GET', `${queueName('routed')}?$alt=json;enum-encoding=int`);
  expect(raw.body.httpTarget.uriOverride).toMatchObject({
    scheme: 2,
    port: '8443',
    uriOverrideEnforceMode: 1,
  });
});

it('updates only the fields its update mask names', async () => {
  await client.createQueue({
    parent: LOCATION,
    queue: { name: queueName('routed'), httpTarget, rateLimits: { maxDispatchesPerSecond: 5 } } as any,
  });
  const [updated] = await client.updateQueue({
    queue: {
      name: queueName('routed'),
      httpTarget: { uriOverride: { host: 'other.example.com', port: 1 }, httpMethod: 'GET' },
      rateLimits: { maxDispatchesPerSecond: 1 },
    } as any,
    updateMask: { paths: ['http_target.uri_override.host', 'http_target.http_method'] },
  });
  expect(plain((updated as any).httpTarget)).toEqual({
    ...httpTarget,
    uriOverride: { ...httpTarget.uriOverride, host: 'other.example.com' },
    httpMethod: 'GET',
  });
  expect(updated.rateLimits?.maxDispatchesPerSecond).toBe(5);

  const [cleared] = await client.updateQueue({
    queue: { name: queueName('routed') },
    updateMask: { paths: ['http_target'] },
  });
  expect((cleared as any).httpTarget).toBeNull();
});
