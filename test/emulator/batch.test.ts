/**
 * The batch methods (tasks:batchCreate, tasks:batchDelete) and operations.get: judged by Google's own v2beta3
 * client in REST fallback mode, then by direct REST calls under both v2 and v2beta3 paths for per-item
 * failures, operation states, requestId and the batch fault knobs.
 */
import type { v2beta3 } from '@google-cloud/tasks';
import { protos } from '@google-cloud/tasks';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock, startEmulator, type Emulator } from '../../emulator/server.js';
import { googleBetaClient, LOCATION, PROJECT, queueName, taskName } from './helpers.js';

const T0 = Date.UTC(2026, 11, 5, 12, 0, 0);
const LATER = new Date(T0 + 3_600_000).toISOString();
const QUEUE = queueName('orders');
const REQUEST_ID = '0f6b1c2e-8d3a-4b5c-9e7f-1a2b3c4d5e6f';
// The client decodes Any-packed metadata into messages whose enums are numbers.
const { BatchCreateTasksMetadata, BatchDeleteTasksMetadata } = protos.google.cloud.tasks.v2beta3;
const CreateState = BatchCreateTasksMetadata.State;
const DeleteState = BatchDeleteTasksMetadata.State;

/** The error a promise rejects with (undefined if it resolves). */
async function rejectionOf(
  promise: Promise<unknown>,
): Promise<{ code: number; message: string } | undefined> {
  return promise.then(
    () => undefined,
    (err: { code: number; message: string }) => err,
  );
}

/** The metadata of an operation that ended with an error, which the client's Operation leaves undecoded. */
function rawMetadata(operation: { latestResponse: unknown }): Uint8Array {
  return (operation.latestResponse as protos.google.longrunning.IOperation).metadata!.value as Uint8Array;
}

let clock: ManualClock;
let emulator: Emulator;

beforeEach(async () => {
  clock = new ManualClock(T0);
  emulator = await startEmulator({ clock, seed: { queues: [{ name: QUEUE }] } });
});
afterEach(async () => {
  await emulator.stop();
});

/** A raw REST call under `v2` or `v2beta3`; answers the status and parsed JSON body. */
async function call(
  method: 'GET' | 'POST',
  path: string,
  body?: unknown,
  version: 'v2' | 'v2beta3' = 'v2',
): Promise<{ status: number; body: any }> {
  const init: RequestInit = { method, headers: { 'Content-Type': 'application/json' } };
  if (body !== undefined) init.body = JSON.stringify(body);
  const response = await fetch(`${emulator.url}/${version}/${path}`, init);
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined };
}

/** A CreateTaskRequest for a named task due in an hour. */
function createRequest(id: string) {
  return {
    parent: QUEUE,
    task: {
      name: taskName('orders', id),
      httpRequest: { url: 'http://127.0.0.1:9/work', headers: { 'X-Id': id }, body: 'e30=' },
      scheduleTime: LATER,
    },
  };
}

const batchCreate = (ids: string[], extra: object = {}, version: 'v2' | 'v2beta3' = 'v2') =>
  call('POST', `${QUEUE}/tasks:batchCreate`, { requests: ids.map(createRequest), ...extra }, version);
const batchDelete = (ids: string[], extra: object = {}, version: 'v2' | 'v2beta3' = 'v2') =>
  call(
    'POST',
    `${QUEUE}/tasks:batchDelete`,
    { names: ids.map((id) => taskName('orders', id)), ...extra },
    version,
  );

function load(ids: string[]): void {
  emulator.load({
    queues: [
      {
        name: QUEUE,
        tasks: ids.map((id) => ({
          name: taskName('orders', id),
          httpRequest: { url: 'http://127.0.0.1:9/' },
          scheduleTime: LATER,
        })),
      },
    ],
  });
}

describe("Google's v2beta3 client", () => {
  let client: v2beta3.CloudTasksClient;
  beforeEach(() => {
    client = googleBetaClient(emulator);
  });
  afterEach(async () => {
    await client.close();
  });

  it('batchCreateTasks: the operation, awaited through the client, names the created tasks and the failed item', async () => {
    load(['b']);
    const [operation] = await client.batchCreateTasks({
      parent: QUEUE,
      requests: ['a', 'b', 'c'].map((id) => ({
        parent: QUEUE,
        task: {
          name: taskName('orders', id),
          httpRequest: { url: 'http://127.0.0.1:9/work', body: Buffer.from(`{"id":"${id}"}`) },
          scheduleTime: { seconds: Math.floor(T0 / 1000) + 3600 },
        },
      })),
    });
    const [response, metadata] = await operation.promise();
    expect(response.tasks?.map((t) => t.name)).toEqual([taskName('orders', 'a'), taskName('orders', 'c')]);
    expect(metadata?.state).toBe(CreateState.PARTIALLY_SUCCEEDED);
    expect(Object.keys(metadata?.failedRequests ?? {})).toEqual(['1']);
    expect(metadata?.failedRequests?.[1]?.code).toBe(6);
    expect(Number(metadata?.startTime?.seconds)).toBe(T0 / 1000);
    expect(emulator.task(taskName('orders', 'c'))?.httpRequest.body).toBe(
      Buffer.from('{"id":"c"}').toString('base64'),
    );

    // The client's own progress check reads the same operation again.
    const progress = await client.checkBatchCreateTasksProgress(operation.name!);
    expect(progress.done).toBe(true);
    const metadataAgain = progress.metadata as protos.google.cloud.tasks.v2beta3.IBatchCreateTasksMetadata;
    expect(metadataAgain.state).toBe(CreateState.PARTIALLY_SUCCEEDED);
  });

  it('batchCreateTasks: a running operation is polled by the client until the emulator clock ends it', async () => {
    emulator.injectFault({ method: 'BatchCreateTasks', kind: 'operation-running', untilMs: T0 + 5000 });
    const [operation] = await client.batchCreateTasks({
      parent: QUEUE,
      requests: [
        {
          parent: QUEUE,
          task: { name: taskName('orders', 'slow'), httpRequest: { url: 'http://127.0.0.1:9/' } },
        },
      ],
    });
    expect(operation.done).toBe(false);
    expect(emulator.task(taskName('orders', 'slow'))).toBeUndefined();
    const settled = operation.promise();
    await expect
      .poll(() => emulator.calls.filter((c) => c.method === 'GetOperation').length)
      .toBeGreaterThan(0);
    await clock.set(T0 + 5000);
    const [response, metadata] = await settled;
    expect(response.tasks?.map((t) => t.name)).toEqual([taskName('orders', 'slow')]);
    expect(metadata?.state).toBe(CreateState.SUCCEEDED);
    expect(Number(metadata?.endTime?.seconds)).toBe(T0 / 1000 + 5);
  });

  it('batchDeleteTasks: a partial delete resolves; one where every delete fails rejects with ABORTED', async () => {
    load(['a', 'b']);
    const names = ['a', 'gone', 'b'].map((id) => taskName('orders', id));
    const [operation] = await client.batchDeleteTasks({ parent: QUEUE, names });
    const [, metadata] = await operation.promise();
    expect(metadata?.state).toBe(DeleteState.PARTIALLY_SUCCEEDED);
    expect(metadata?.failedRequests?.[1]?.code).toBe(5);
    expect(Object.keys(metadata?.failedRequests ?? {})).toEqual(['1']);
    expect(emulator.task(taskName('orders', 'a'))).toBeUndefined();
    expect(emulator.task(taskName('orders', 'b'))).toBeUndefined();

    const [none] = await client.batchDeleteTasks({ parent: QUEUE, names });
    const err = await rejectionOf(none.promise());
    expect(err?.code).toBe(10);
    expect(err?.message).toContain('None of the requests succeeded');
    const failed = BatchDeleteTasksMetadata.decode(rawMetadata(none));
    expect(failed.state).toBe(DeleteState.PARTIALLY_SUCCEEDED);
    expect(Object.keys(failed.failedRequests)).toEqual(['0', '1', '2']);
  });

  it('an operation ended FAILED by the knob rejects with its code', async () => {
    emulator.injectFault({
      method: 'BatchCreateTasks',
      kind: 'operation-failed',
      code: 'UNAVAILABLE',
      applied: 1,
    });
    const [operation] = await client.batchCreateTasks({
      parent: QUEUE,
      requests: ['x', 'y'].map((id) => ({
        parent: QUEUE,
        task: { name: taskName('orders', id), httpRequest: { url: 'http://127.0.0.1:9/' } },
      })),
    });
    const err = await rejectionOf(operation.promise());
    expect(err?.code).toBe(14);
    expect(BatchCreateTasksMetadata.decode(rawMetadata(operation)).state).toBe(CreateState.FAILED);
    expect(operation.result ?? undefined).toBeUndefined();
    // The first item was applied before the failure; the second was not.
    expect(emulator.task(taskName('orders', 'x'))).toBeDefined();
    expect(emulator.task(taskName('orders', 'y'))).toBeUndefined();
  });
});

describe('REST: shapes under v2 and v2beta3', () => {
  it.each(['v2', 'v2beta3'] as const)(
    '%s: batchCreate answers a done operation with typed metadata and response',
    async (version) => {
      const { status, body } = await batchCreate(['a', 'b'], {}, version);
      expect(status).toBe(200);
      expect(body.name).toMatch(new RegExp(`^${LOCATION}/operations/[0-9a-f]{16}$`));
      expect(body.done).toBe(true);
      expect(body.metadata).toEqual({
        '@type': `type.googleapis.com/google.cloud.tasks.${version}.BatchCreateTasksMetadata`,
        startTime: '2026-12-05T12:00:00Z',
        endTime: '2026-12-05T12:00:00Z',
        state: 'SUCCEEDED',
      });
      expect(body.response['@type']).toBe(
        `type.googleapis.com/google.cloud.tasks.${version}.BatchCreateTasksResponse`,
      );
      expect(body.response.tasks.map((t: { name: string }) => t.name)).toEqual([
        taskName('orders', 'a'),
        taskName('orders', 'b'),
      ]);
      // BASIC view: headers, no body.
      expect(body.response.tasks[0].httpRequest.headers['X-Id']).toBe('a');
      expect(body.response.tasks[0].httpRequest.body).toBeUndefined();
      const read = await call('GET', body.name, undefined, version);
      expect(read.body).toEqual(body);
    },
  );

  it('batchDelete answers google.protobuf.Empty; operations.get under the other version uses its @type', async () => {
    load(['a']);
    const { body } = await batchDelete(['a'], {}, 'v2beta3');
    expect(body.metadata['@type']).toBe(
      'type.googleapis.com/google.cloud.tasks.v2beta3.BatchDeleteTasksMetadata',
    );
    expect(body.metadata.state).toBe('SUCCEEDED');
    expect(body.response).toEqual({ '@type': 'type.googleapis.com/google.protobuf.Empty' });
    const v2 = await call('GET', body.name);
    expect(v2.body.metadata['@type']).toBe(
      'type.googleapis.com/google.cloud.tasks.v2.BatchDeleteTasksMetadata',
    );
  });

  it('numbers enums when asked, by each metadata enum of its own', async () => {
    load(['a']);
    const created = await call('POST', `${QUEUE}/tasks:batchCreate?$alt=json;enum-encoding=int`, {
      requests: [createRequest('a'), createRequest('n')],
    });
    expect(created.body.metadata.state).toBe(5); // BatchCreateTasksMetadata.PARTIALLY_SUCCEEDED
    expect(created.body.response.tasks[0].view).toBe(1);
    expect(created.body.response.tasks[0].httpRequest.httpMethod).toBe(1);
    const deleted = await call('POST', `${QUEUE}/tasks:batchDelete?$alt=json;enum-encoding=int`, {
      names: [taskName('orders', 'a'), taskName('orders', 'none')],
    });
    expect(deleted.body.metadata.state).toBe(3); // BatchDeleteTasksMetadata.PARTIALLY_SUCCEEDED
  });

  it('answers an operation not found under both versions, and a method it leaves out as UNIMPLEMENTED', async () => {
    expect((await call('POST', `${QUEUE}:purge`, {}, 'v2beta3')).status).toBe(501);
    expect((await call('GET', `${LOCATION}/operations/nope`)).status).toBe(404);
    expect((await call('GET', `${LOCATION}/operations/nope`, undefined, 'v2beta3')).status).toBe(404);
  });
});

describe('REST: per-item failures and whole-call errors', () => {
  it('fails items one by one: a duplicate name, a bad ID, an actAs the caller lacks; the others are created', async () => {
    load(['dup']);
    emulator.setActAs(['ok@p.iam.gserviceaccount.com']);
    const token = {
      parent: QUEUE,
      task: {
        name: taskName('orders', 'token'),
        httpRequest: {
          url: 'https://x/',
          oidcToken: { serviceAccountEmail: 'other@p.iam.gserviceaccount.com' },
        },
      },
    };
    const { body } = await call('POST', `${QUEUE}/tasks:batchCreate`, {
      requests: [createRequest('dup'), createRequest('fine'), createRequest('bad id'), token],
    });
    expect(body.metadata.state).toBe('PARTIALLY_SUCCEEDED');
    expect(Object.keys(body.metadata.failedRequests)).toEqual(['0', '2', '3']);
    expect(body.metadata.failedRequests['0'].code).toBe(6);
    expect(body.metadata.failedRequests['2'].code).toBe(3);
    expect(body.metadata.failedRequests['3'].code).toBe(7);
    expect(body.response.tasks.map((t: { name: string }) => t.name)).toEqual([taskName('orders', 'fine')]);
  });

  it('answers a whole-call error, creating nothing, for a bad batch', async () => {
    const many = Array.from({ length: 101 }, (_, i) => `t${i}`);
    const tooMany = await batchCreate(many);
    expect(tooMany.status).toBe(400);
    expect(tooMany.body.error.details[0].fieldViolations[0].field).toBe('requests');
    expect((await batchCreate([])).status).toBe(400);
    const other = await call('POST', `${QUEUE}/tasks:batchCreate`, {
      requests: [createRequest('a'), { ...createRequest('b'), parent: queueName('billing') }],
    });
    expect(other.status).toBe(400);
    expect(other.body.error.message).toContain('requests[1].parent');
    const orphan = await call('POST', `${QUEUE}/tasks:batchCreate`, {
      requests: [createRequest('a'), { task: createRequest('b').task }],
    });
    expect(orphan.status).toBe(400);
    expect(orphan.body.error.message).toBe('requests[1].parent is required.');
    const unknown = await call('POST', `${QUEUE}/tasks:batchCreate`, { requests: [{ task: {}, extra: 1 }] });
    expect(unknown.status).toBe(400);
    expect(unknown.body.error.message).toContain('"extra"');
    expect(
      (
        await call('POST', `${queueName('missing')}/tasks:batchCreate`, {
          requests: [{ ...createRequest('a'), parent: queueName('missing') }],
        })
      ).status,
    ).toBe(404);
    expect(emulator.task(taskName('orders', 'a'))).toBeUndefined();

    const tooManyNames = await batchDelete(Array.from({ length: 1001 }, (_, i) => `t${i}`));
    expect(tooManyNames.status).toBe(400);
    const foreign = await call('POST', `${QUEUE}/tasks:batchDelete`, {
      names: [`${queueName('billing')}/tasks/a`],
    });
    expect(foreign.status).toBe(400);
    expect(foreign.body.error.details[0].fieldViolations[0].field).toBe('names[0]');
  });

  it('a batch delete of which every item fails carries ABORTED with the failures in its metadata', async () => {
    const { body } = await batchDelete(['x', 'y']);
    expect(body.done).toBe(true);
    expect(body.metadata.state).toBe('PARTIALLY_SUCCEEDED');
    expect(body.error).toEqual({
      code: 10,
      message:
        'None of the requests succeeded, refer to BatchDeleteTasksMetadata.failed_requests for individual error details',
    });
    expect(body.response).toBeUndefined();
    expect(Object.keys(body.metadata.failedRequests)).toEqual(['0', '1']);
  });

  it('a deleted original cannot be batch-created again within the dedup window', async () => {
    load(['a']);
    await batchDelete(['a']);
    const { body } = await batchCreate(['a']);
    expect(body.metadata.failedRequests['0'].code).toBe(6);
  });
});

describe('REST: requestId', () => {
  it('a retry with the same requestId and contents answers the same operation and creates nothing again', async () => {
    const first = await batchCreate(['a', 'b'], { requestId: REQUEST_ID });
    const again = await batchCreate(['a', 'b'], { requestId: REQUEST_ID.toUpperCase() });
    expect(again.body).toEqual(first.body);
    expect(again.body.metadata.state).toBe('SUCCEEDED');
    // Another queue's batch or another method with the same ID: ALREADY_EXISTS (the emulator's choice).
    const otherContents = await batchCreate(['b', 'a'], { requestId: REQUEST_ID });
    expect(otherContents.status).toBe(409);
    expect(otherContents.body.error.status).toBe('ALREADY_EXISTS');
    expect((await batchDelete(['a'], { requestId: REQUEST_ID })).status).toBe(409);
    expect(emulator.task(taskName('orders', 'a'))).toBeDefined();
  });

  it('forgets a requestId, and its operation, a day after the operation ended', async () => {
    const first = await batchCreate(['a'], { requestId: REQUEST_ID });
    await clock.advance(24 * 3_600_000 + 1);
    const later = await batchCreate(['b'], { requestId: REQUEST_ID });
    expect(later.status).toBe(200);
    expect(later.body.name).not.toBe(first.body.name);
    expect((await call('GET', first.body.name)).status).toBe(404);
  });

  it('answers INVALID_ARGUMENT naming request_id for a value not in UUID4 form', async () => {
    for (const requestId of ['batch-1', '0f6b1c2e-8d3a-1b5c-9e7f-1a2b3c4d5e6f']) {
      const { status, body } = await batchCreate(['a'], { requestId });
      expect(status).toBe(400);
      expect(body.error.details[0].fieldViolations[0].field).toBe('request_id');
    }
  });

  it('a lost answer leaves the work done; the retry with the same requestId gets the same operation', async () => {
    emulator.injectFault({ method: 'BatchCreateTasks', kind: 'lost-response', times: 1 });
    await expect(batchCreate(['a'], { requestId: REQUEST_ID })).rejects.toThrow();
    expect(emulator.task(taskName('orders', 'a'))).toBeDefined();
    const retry = await batchCreate(['a'], { requestId: REQUEST_ID });
    expect(retry.body.metadata.state).toBe('SUCCEEDED');
    expect(retry.body.response.tasks.map((t: { name: string }) => t.name)).toEqual([taskName('orders', 'a')]);
    expect(emulator.calls.map((c) => [c.method, c.status])).toEqual([
      ['BatchCreateTasks', 0],
      ['BatchCreateTasks', 200],
    ]);
  });
});

describe('REST: batch fault knobs', () => {
  it('fail-items fails chosen items by index or task name with the chosen code', async () => {
    load(['old']);
    emulator.injectFault({
      method: 'BatchCreateTasks',
      kind: 'fail-items',
      items: [0, taskName('orders', 'c')],
      code: 'INTERNAL',
    });
    emulator.injectFault({
      method: 'BatchDeleteTasks',
      kind: 'fail-items',
      items: [0],
      code: 'PERMISSION_DENIED',
    });
    const created = await batchCreate(['a', 'b', 'c']);
    expect(created.body.metadata.failedRequests).toEqual({
      '0': { code: 13, message: 'Injected failure (INTERNAL).' },
      '2': { code: 13, message: 'Injected failure (INTERNAL).' },
    });
    expect(emulator.task(taskName('orders', 'a'))).toBeUndefined();
    expect(emulator.task(taskName('orders', 'b'))).toBeDefined();
    const deleted = await batchDelete(['old']);
    expect(deleted.body.metadata.failedRequests['0'].code).toBe(7);
    expect(deleted.body.error.code).toBe(10);
    expect(emulator.task(taskName('orders', 'old'))).toBeDefined();
  });

  it('operation-cancelled ends a batch create CANCELLED after the items it applied', async () => {
    emulator.injectFault({ method: 'BatchCreateTasks', kind: 'operation-cancelled', applied: 2 });
    const { body } = await batchCreate(['a', 'b', 'c']);
    expect(body.metadata.state).toBe('CANCELLED');
    expect(body.error.code).toBe(1);
    expect(body.response).toBeUndefined();
    expect(['a', 'b', 'c'].map((id) => emulator.task(taskName('orders', id)) !== undefined)).toEqual([
      true,
      true,
      false,
    ]);
  });

  it('operation-running keeps a batch delete running until the clock passes its time, then does the work', async () => {
    load(['a']);
    emulator.injectFault({
      method: 'BatchDeleteTasks',
      kind: 'operation-running',
      untilMs: T0 + 60_000,
      times: 1,
    });
    const { body } = await batchDelete(['a'], { requestId: REQUEST_ID });
    expect(body.done).toBe(false);
    expect(body.metadata).toEqual({
      '@type': 'type.googleapis.com/google.cloud.tasks.v2.BatchDeleteTasksMetadata',
      startTime: '2026-12-05T12:00:00Z',
      state: 'RUNNING',
    });
    await clock.advance(59_999);
    expect((await call('GET', body.name)).body.done).toBe(false);
    expect(emulator.task(taskName('orders', 'a'))).toBeDefined();
    // A retry while it runs answers the same running operation.
    expect((await batchDelete(['a'], { requestId: REQUEST_ID })).body.name).toBe(body.name);
    await clock.advance(1);
    const done = (await call('GET', body.name)).body;
    expect(done.done).toBe(true);
    expect(done.metadata.state).toBe('SUCCEEDED');
    expect(done.metadata.endTime).toBe('2026-12-05T12:01:00Z');
    expect(emulator.task(taskName('orders', 'a'))).toBeUndefined();
  });

  it('batch knobs stack: a running operation reports its injected item failures once it ends', async () => {
    emulator.injectFault({ method: 'BatchCreateTasks', kind: 'operation-running', forMs: 1000 });
    emulator.injectFault({ method: 'BatchCreateTasks', kind: 'fail-items', items: [1], code: 'UNAVAILABLE' });
    emulator.injectFault({ method: 'BatchCreateTasks', kind: 'lost-response', times: 1 });
    const started = emulator.calls.length;
    await expect(batchCreate(['a', 'b'])).rejects.toThrow();
    expect(emulator.calls[started]?.fault).toBe('lost-response,operation-running,fail-items');
    await clock.advance(1000);
    expect(emulator.task(taskName('orders', 'a'))).toBeDefined();
    expect(emulator.task(taskName('orders', 'b'))).toBeUndefined();
  });

  it('lost-response on operations.get drops the answer; errors and resets use up no batch fault', async () => {
    emulator.injectFault({ method: 'BatchCreateTasks', kind: 503, times: 1 });
    emulator.injectFault({
      method: 'BatchCreateTasks',
      kind: 'fail-items',
      items: [0],
      code: 'ABORTED',
      times: 1,
    });
    expect((await batchCreate(['a'])).status).toBe(503);
    expect((await batchCreate(['a'])).body.metadata.failedRequests['0'].code).toBe(10);
    const { body } = await batchCreate(['b']);
    emulator.injectFault({ method: 'GetOperation', kind: 'lost-response', resources: [body.name], times: 1 });
    await expect(call('GET', body.name)).rejects.toThrow();
    expect((await call('GET', body.name)).body.done).toBe(true);
  });

  it('rejects knobs that are not valid, naming the field', () => {
    const bad = [
      [{ method: 'GetTask', kind: 'fail-items', items: [0], code: 'INTERNAL' }, 'fault.method'],
      [{ method: 'BatchCreateTasks', kind: 'fail-items', items: [], code: 'INTERNAL' }, 'fault.items'],
      [{ method: 'BatchCreateTasks', kind: 'fail-items', items: [0] }, 'fault.code'],
      [{ method: 'BatchCreateTasks', kind: 'operation-failed', code: 'OK' }, 'fault.code'],
      [{ method: 'BatchDeleteTasks', kind: 'operation-cancelled' }, 'fault.method'],
      [{ method: 'BatchCreateTasks', kind: 'operation-failed', applied: -1 }, 'fault.applied'],
      [{ method: 'BatchCreateTasks', kind: 'operation-running' }, 'fault.untilMs or fault.forMs'],
      [{ method: 'BatchCreateTasks', kind: 'operation-running', untilMs: 1, forMs: 1 }, 'fault.untilMs or'],
    ] as const;
    for (const [fault, field] of bad) {
      expect(() => emulator.injectFault(fault as never)).toThrow(field);
    }
  });
});

describe('REST: permissions', () => {
  it('batchCreate needs cloudtasks.tasks.create, batchDelete cloudtasks.tasks.delete, on the queue', async () => {
    load(['a']);
    emulator.setPermissions({ [QUEUE]: ['cloudtasks.tasks.list'], '*': ['cloudtasks.operations.get'] });
    const created = await batchCreate(['b']);
    expect(created.status).toBe(403);
    expect(created.body.error.details[0].metadata.permission).toBe('cloudtasks.tasks.create');
    const deleted = await batchDelete(['a']);
    expect(deleted.status).toBe(403);
    expect(deleted.body.error.details[0].metadata.permission).toBe('cloudtasks.tasks.delete');
    emulator.setPermissions({ [QUEUE]: ['cloudtasks.tasks.create', 'cloudtasks.tasks.delete'], '*': [] });
    expect((await batchDelete(['a'])).body.metadata.state).toBe('SUCCEEDED');
  });

  it('operations.get needs cloudtasks.operations.get on the project, not the queue', async () => {
    const { body } = await batchCreate(['a']);
    emulator.setPermissions({ [QUEUE]: ['cloudtasks.operations.get'], '*': [] });
    const denied = await call('GET', body.name);
    expect(denied.status).toBe(403);
    expect(denied.body.error.details[0].metadata.permission).toBe('cloudtasks.operations.get');
    emulator.setPermissions({ '*': ['cloudtasks.operations.get'] });
    expect((await call('GET', body.name)).status).toBe(200);
    expect(PROJECT).toBe(body.name.split('/')[1]);
  });
});
