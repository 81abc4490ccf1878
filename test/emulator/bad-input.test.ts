/**
 * Bad input gets INVALID_ARGUMENT (or the fitting code) in Google's error shape, and the emulator keeps
 * serving: malformed JSON, unknown fields and parameters, wrong value types, invalid names, page sizes out of
 * range.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmulator, type Emulator } from '../../emulator/server.js';
import { LOCATION, queueName, rest, taskName } from './helpers.js';

let emulator: Emulator;
const ORDERS = queueName('orders');
const later = () => new Date(Date.now() + 3_600_000).toISOString();

beforeAll(async () => {
  emulator = await startEmulator({
    seed: {
      queues: [
        {
          name: ORDERS,
          tasks: [{ id: 'a', httpRequest: { url: 'http://127.0.0.1:9/' }, scheduleTime: '+1h' }],
        },
      ],
    },
  });
});
afterAll(async () => {
  await emulator.stop();
});

/** Asserts Google's error shape and returns the error. */
function googleError(answer: { status: number; body: any }, status: string, httpStatus = 400) {
  expect(answer.status).toBe(httpStatus);
  expect(Object.keys(answer.body)).toEqual(['error']);
  expect(Object.keys(answer.body.error)).toEqual(['code', 'message', 'status', 'details']);
  expect(answer.body.error).toMatchObject({ code: httpStatus, status });
  expect(Array.isArray(answer.body.error.details)).toBe(true);
  return answer.body.error as { message: string; details: any[] };
}

describe('payloads', () => {
  it('rejects malformed JSON', async () => {
    const error = googleError(
      await rest(emulator, 'POST', `${ORDERS}/tasks`, '{"task": {'),
      'INVALID_ARGUMENT',
    );
    expect(error.message).toBe('Invalid JSON payload received. Unexpected token.');
    expect(error.details[0]['@type']).toBe('type.googleapis.com/google.rpc.BadRequest');
  });

  it.each([
    [
      { task: { httpRequest: { url: 'http://x.test/' } }, x: 1 },
      'Invalid JSON payload received. Unknown name "x": Cannot find field.',
    ],
    [
      { task: { httpRequest: { url: 'http://x.test/' }, x: 1 } },
      `Invalid JSON payload received. Unknown name "x" at 'task': Cannot find field.`,
    ],
    [
      { task: { httpRequest: { url: 'http://x.test/', retries: 3 } } },
      `Invalid JSON payload received. Unknown name "retries" at 'task.http_request': Cannot find field.`,
    ],
    [
      { task: { httpRequest: { url: 'http://x.test/' }, dispatchCount: 'abc' } },
      `Invalid value at 'task.dispatch_count' (TYPE_INT32), "abc"`,
    ],
    [
      { task: { httpRequest: { url: 'http://x.test/', httpMethod: 'FETCH' } } },
      `Invalid value at 'task.http_request.http_method' (type.googleapis.com/google.cloud.tasks.v2.HttpMethod), "FETCH"`,
    ],
    [
      { task: { httpRequest: { url: 'http://x.test/' }, dispatchDeadline: '10 minutes' } },
      `Invalid value at 'task.dispatch_deadline' (type.googleapis.com/google.protobuf.Duration), "10 minutes"`,
    ],
    [
      { task: { httpRequest: { url: 'http://x.test/' }, scheduleTime: 'tomorrow' } },
      `Invalid value at 'task.schedule_time' (type.googleapis.com/google.protobuf.Timestamp), "tomorrow"`,
    ],
  ])('rejects unknown fields and bad values: %j', async (body, message) => {
    const error = googleError(await rest(emulator, 'POST', `${ORDERS}/tasks`, body), 'INVALID_ARGUMENT');
    expect(error.message).toBe(message);
  });

  it('rejects a task Cloud Tasks would not accept', async () => {
    const cases = [
      { httpRequest: { url: 'ftp://x.test/' } },
      { httpRequest: { url: 'http://x.test/', httpMethod: 'GET', body: 'aGk=' } },
      { httpRequest: { url: 'http://x.test/' }, dispatchDeadline: '5s' },
      { httpRequest: { url: 'http://x.test/', oidcToken: { audience: 'x' } } },
      {
        httpRequest: { url: 'http://x.test/' },
        scheduleTime: new Date(Date.now() + 31 * 86_400_000).toISOString(),
      },
      {},
    ];
    for (const task of cases) {
      googleError(await rest(emulator, 'POST', `${ORDERS}/tasks`, { task }), 'INVALID_ARGUMENT');
    }
    googleError(await rest(emulator, 'POST', `${ORDERS}/tasks`, {}), 'INVALID_ARGUMENT');
    const appEngine = await rest(emulator, 'POST', `${ORDERS}/tasks`, {
      task: { appEngineHttpRequest: { relativeUri: '/x' } },
    });
    googleError(appEngine, 'UNIMPLEMENTED', 501);
  });

  it('accepts snake_case field names and numeric enums, as Google does', async () => {
    const { status, body } = await rest(emulator, 'POST', `${ORDERS}/tasks`, {
      task: {
        name: taskName('orders', 'snake'),
        http_request: { url: 'http://x.test/', http_method: 4 },
        schedule_time: later(),
      },
      response_view: 'FULL',
    });
    expect(status).toBe(200);
    expect(body).toMatchObject({ httpRequest: { httpMethod: 'PUT' }, view: 'FULL' });
  });

  it('answers with numeric enums when asked with $alt=json;enum-encoding=int', async () => {
    const { body } = await rest(emulator, 'GET', `${ORDERS}?$alt=json%3Benum-encoding=int`);
    expect(body.state).toBe(1);
    const task = await rest(
      emulator,
      'GET',
      `${taskName('orders', 'a')}?$alt=json%3Benum-encoding=int&responseView=2`,
    );
    expect(task.body).toMatchObject({ view: 2, httpRequest: { httpMethod: 1 } });
  });
});

describe('names', () => {
  it.each([
    ['GET', 'projects/my-project/locations/us-central1/queues/bad_queue', 'Queue name must be formatted'],
    [
      'GET',
      `projects/my-project/locations/us-central1/queues/${'q'.repeat(101)}`,
      'Queue name must be formatted',
    ],
    ['GET', 'projects/My_Project/locations/us-central1/queues/orders', 'Queue name must be formatted'],
    ['GET', `${ORDERS}/tasks/bad.id`, 'Task ID "bad.id" can contain only letters'],
    ['GET', `${ORDERS}/tasks/${'t'.repeat(501)}`, 'Task ID must between 1 and 500 characters'],
    ['POST', `${ORDERS}/tasks/bad%20id:run`, 'Task ID "bad id" can contain only letters'],
    ['GET', 'projects/my-project/locations/Not_A_Region/queues', 'Parent must be formatted'],
  ])('%s %s is INVALID_ARGUMENT', async (method, path, message) => {
    const error = googleError(
      await rest(emulator, method, path, method === 'POST' ? {} : undefined),
      'INVALID_ARGUMENT',
    );
    expect(error.message).toContain(message);
  });

  it('accepts the longest IDs and domain-scoped projects', async () => {
    const domainQueue = 'projects/example.com:my-project/locations/us-central1/queues/orders';
    const created = await rest(
      emulator,
      'POST',
      'projects/example.com:my-project/locations/us-central1/queues',
      {
        name: domainQueue,
      },
    );
    expect(created.status).toBe(200);
    expect(
      (await rest(emulator, 'GET', 'projects/example.com%3Amy-project/locations/us-central1/queues/orders'))
        .body.name,
    ).toBe(domainQueue);
    const longId = `${'x'.repeat(499)}_`;
    const task = await rest(emulator, 'POST', `${domainQueue}/tasks`, {
      task: {
        name: `${domainQueue}/tasks/${longId}`,
        httpRequest: { url: 'http://x.test/' },
        scheduleTime: later(),
      },
    });
    expect(task.status).toBe(200);
    const longQueue = await rest(emulator, 'POST', `${LOCATION}/queues`, {
      name: queueName('Q-'.repeat(50)),
    });
    expect(longQueue.status).toBe(200);
  });

  it('rejects a named task outside the queue it is created in', async () => {
    const error = googleError(
      await rest(emulator, 'POST', `${ORDERS}/tasks`, {
        task: { name: `${queueName('other')}/tasks/t1`, httpRequest: { url: 'http://x.test/' } },
      }),
      'INVALID_ARGUMENT',
    );
    expect(error.message).toBe(
      `The queue name from request ('${ORDERS}') must be the same as the queue name in the named task ('${queueName('other')}').`,
    );
  });

  it('answers NOT_FOUND in Google shape, for resources and for unknown paths', async () => {
    expect((await rest(emulator, 'GET', taskName('orders', 'nope'))).body).toEqual({
      error: { code: 404, message: 'Requested entity was not found.', status: 'NOT_FOUND', details: [] },
    });
    const queue = googleError(await rest(emulator, 'GET', queueName('nope')), 'NOT_FOUND', 404);
    expect(queue.message).toBe(
      'Queue does not exist. If you just created the queue, wait at least a minute for the queue to initialize.',
    );
    googleError(await rest(emulator, 'GET', 'not/a/resource'), 'NOT_FOUND', 404);
    googleError(await rest(emulator, 'POST', `${ORDERS}:purge`, {}), 'UNIMPLEMENTED', 501);
  });
});

describe('listing parameters', () => {
  it.each([
    ['ListTasks pageSize -1', `${ORDERS}/tasks?pageSize=-1`],
    ['ListTasks pageSize 1001', `${ORDERS}/tasks?pageSize=1001`],
    ['ListTasks pageSize abc', `${ORDERS}/tasks?pageSize=abc`],
    ['ListQueues pageSize 9801', `${LOCATION}/queues?pageSize=9801`],
    ['an unknown parameter', `${ORDERS}/tasks?orderBy=name`],
    ['a page token of another listing', `${ORDERS}/tasks?pageToken=bm90LW91cnM`],
    ['an unsupported filter', `${LOCATION}/queues?filter=name%3Dx`],
    ['an unknown view', `${ORDERS}/tasks?responseView=HUGE`],
  ])('rejects %s', async (_label, path) => {
    googleError(await rest(emulator, 'GET', path), 'INVALID_ARGUMENT');
  });

  it('names the unknown query parameter as Google does', async () => {
    const error = googleError(
      await rest(emulator, 'GET', `${ORDERS}/tasks?orderBy=name`),
      'INVALID_ARGUMENT',
    );
    expect(error.message).toBe(
      `Invalid JSON payload received. Unknown name "orderBy": Cannot bind query parameter. Field 'orderBy' could not be found in request message.`,
    );
  });

  it('accepts page sizes 0 to 1000, snake_case parameters and system parameters', async () => {
    for (const query of [
      'pageSize=1000',
      'pageSize=0',
      'page_size=5',
      'fields=tasks(name)&prettyPrint=false&$.xgafv=2',
    ]) {
      expect((await rest(emulator, 'GET', `${ORDERS}/tasks?${query}`)).status).toBe(200);
    }
  });
});

describe('after all of the above', () => {
  it('still serves, with every bad call recorded', async () => {
    expect((await rest(emulator, 'GET', ORDERS)).status).toBe(200);
    const refused = emulator.calls.filter((c) => c.status >= 400);
    expect(refused.length).toBeGreaterThan(30);
    expect(refused.every((c) => c.status < 500 || c.status === 501)).toBe(true);
  });
});
