/**
 * Queue-level overrides of HTTP tasks, v2 `Queue.httpTarget`: stored by CreateQueue, UpdateQueue (with its
 * update mask) and seeds, checked field by field, answered by GetQueue and ListQueues, and applied at dispatch
 * (URI parts, ALWAYS vs IF_NOT_EXISTS, method, header overrides, a queue-level token) while the task keeps its
 * own URL. On a manual clock, against real local targets.
 */
import { protos } from '@google-cloud/tasks';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  ManualClock,
  startEmulator,
  type Emulator,
  type SeedHttpTarget,
  type SeedQueue,
} from '../../emulator/server.js';
import { overriddenUrl } from '../../emulator/http-target.js';
import { startTarget, type Target } from '../helpers/target-server.js';
import { googleClient, LOCATION, queueName, rest, taskName } from './helpers.js';

const T0 = Date.parse('2026-11-22T10:00:00Z');
const ORDERS = queueName('orders');
/** A URL nothing listens on: a task sent there unchanged fails to connect. */
const NOWHERE = 'http://127.0.0.1:9';

let own: Target;
let other: Target;
let emulator: Emulator;
let clock: ManualClock;
const started: Emulator[] = [];

const portOf = (target: Target) => Number(new URL(target.url).port);

async function start(queue: Omit<SeedQueue, 'name'> = {}, actAs?: string[]): Promise<void> {
  clock = new ManualClock(T0);
  emulator = await startEmulator({
    clock,
    seed: { queues: [{ name: ORDERS, ...queue }] },
    ...(actAs ? { actAs } : {}),
  });
  started.push(emulator);
}

/** Creates a task through the REST API, due now. */
async function createTask(id: string, httpRequest: Record<string, unknown>): Promise<void> {
  const { status, body } = await rest(emulator, 'POST', `${ORDERS}/tasks`, {
    task: { name: taskName('orders', id), httpRequest },
  });
  expect(status, JSON.stringify(body)).toBe(200);
}

beforeEach(async () => {
  own = await startTarget();
  other = await startTarget();
});
afterEach(async () => {
  for (const running of started.splice(0)) await running.stop();
  await own.stop();
  await other.stop();
});

const FULL_TARGET = {
  uriOverride: {
    scheme: 'HTTPS',
    host: 'worker.example.com',
    port: '8443',
    pathOverride: { path: '/v2/handle' },
    queryOverride: { queryParams: 'tenant=a&mode=b' },
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

describe('the resource', () => {
  it('is stored by CreateQueue and answered by GetQueue and ListQueues, by name or by number', async () => {
    await start();
    const created = await rest(emulator, 'POST', `${LOCATION}/queues`, {
      name: queueName('routed'),
      httpTarget: FULL_TARGET,
    });
    expect(created.status, JSON.stringify(created.body)).toBe(200);
    expect(created.body.httpTarget).toEqual(FULL_TARGET);
    expect((await rest(emulator, 'GET', queueName('routed'))).body.httpTarget).toEqual(FULL_TARGET);
    const listed = await rest(emulator, 'GET', `${LOCATION}/queues`);
    expect(listed.body.queues.find((q: any) => q.name === queueName('routed')).httpTarget).toEqual(
      FULL_TARGET,
    );
    expect(listed.body.queues.find((q: any) => q.name === ORDERS).httpTarget).toBeUndefined();

    // As Google's client asks: enums by number; int64 port still a string.
    const numeric = await rest(emulator, 'GET', `${queueName('routed')}?$alt=json;enum-encoding=int`);
    expect(numeric.body.httpTarget).toEqual({
      ...FULL_TARGET,
      uriOverride: { ...FULL_TARGET.uriOverride, scheme: 2, uriOverrideEnforceMode: 1 },
      httpMethod: 4,
    });
  });

  it('takes snake_case, numbers for enums and int64, and keeps given zero values of optional fields', async () => {
    await start();
    const created = await rest(emulator, 'POST', `${LOCATION}/queues`, {
      name: queueName('snake'),
      http_target: {
        uri_override: {
          scheme: 0,
          port: 0,
          path_override: { path: '' },
          query_override: {},
          uri_override_enforce_mode: 2,
        },
        http_method: 0,
        header_overrides: [{ header: { key: 'X-Empty' } }],
      },
    });
    expect(created.status, JSON.stringify(created.body)).toBe(200);
    // scheme, host and port are proto3 `optional`: given at 0 they are answered; the rest of the zero values
    // (HTTP_METHOD_UNSPECIFIED, empty path and query, an empty header value) are left out.
    expect(created.body.httpTarget).toEqual({
      uriOverride: {
        scheme: 'SCHEME_UNSPECIFIED',
        port: '0',
        pathOverride: {},
        queryOverride: {},
        uriOverrideEnforceMode: 'ALWAYS',
      },
      headerOverrides: [{ header: { key: 'X-Empty' } }],
    });
  });

  it.each([
    [{ uriOverride: { scheme: 'FTP' } }, "'queue.http_target.uri_override.scheme'"],
    [
      { uriOverride: { uriOverrideEnforceMode: 'SOMETIMES' } },
      "'queue.http_target.uri_override.uri_override_enforce_mode'",
    ],
    [
      { uriOverride: { uriOverrideEnforceMode: 3 } },
      "'queue.http_target.uri_override.uri_override_enforce_mode'",
    ],
    [{ uriOverride: { host: '' } }, 'queue.http_target.uri_override.host: it must not be empty'],
    [{ uriOverride: { host: 'https://x.test/path' } }, 'queue.http_target.uri_override.host'],
    [{ uriOverride: { port: -1 } }, 'queue.http_target.uri_override.port'],
    [{ uriOverride: { port: '70000' } }, 'queue.http_target.uri_override.port'],
    [{ uriOverride: { port: '8O' } }, "'queue.http_target.uri_override.port' (TYPE_INT64)"],
    [{ uriOverride: { pathOverride: { path: 7 } } }, "'queue.http_target.uri_override.path_override.path'"],
    [{ uriOverride: { hots: 'x' } }, `Unknown name "hots" at 'queue.http_target.uri_override'`],
    [{ httpMethod: 'FETCH' }, "'queue.http_target.http_method'"],
    [{ headerOverrides: { key: 'X' } }, "'queue.http_target.header_overrides'"],
    [
      { headerOverrides: [{ header: { value: 'v' } }] },
      'queue.http_target.header_overrides[0].header.key: it is required',
    ],
    [
      { headerOverrides: [{ header: { key: 'Bad Name' } }] },
      'queue.http_target.header_overrides[0].header.key',
    ],
    [
      { headerOverrides: [{ header: { key: 'X', value: 'a\r\nb' } }] },
      'queue.http_target.header_overrides[0].header.value',
    ],
    [
      {
        oauthToken: { serviceAccountEmail: 'a@p.iam', scope: 's' },
        oidcToken: { serviceAccountEmail: 'a@p.iam', audience: 'x' },
      },
      'queue.http_target: it can have only one of oauth_token and oidc_token',
    ],
    [
      { oidcToken: { serviceAccountEmail: 'a@p.iam' } },
      'queue.http_target.oidc_token.audience: it is required',
    ],
    [
      { oauthToken: { serviceAccountEmail: 'a@p.iam' } },
      'queue.http_target.oauth_token.scope: it is required',
    ],
    [{ oauthToken: { scope: 's' } }, 'queue.http_target.oauth_token.service_account_email: it is required'],
  ])('refuses %j naming the field', async (httpTarget, named) => {
    await start();
    const answer = await rest(emulator, 'POST', `${LOCATION}/queues`, { name: queueName('bad'), httpTarget });
    expect(answer.status).toBe(400);
    expect(answer.body.error.status).toBe('INVALID_ARGUMENT');
    expect(answer.body.error.message).toContain(named);
    expect((await rest(emulator, 'GET', queueName('bad'))).status).toBe(404);
  });

  it('refuses a seed with a bad value, naming the queue and the field', async () => {
    clock = new ManualClock(T0);
    const seed = { queues: [{ name: ORDERS, httpTarget: { uriOverride: { scheme: 'FTP' } } as any }] };
    await expect(startEmulator({ clock, seed })).rejects.toThrow(
      /seed queue projects\/my-project\/locations\/us-central1\/queues\/orders: INVALID_ARGUMENT: .*queue\.http_target\.uri_override\.scheme/,
    );
  });

  it('asks iam.serviceAccounts.actAs for the account of a queue-level token', async () => {
    await start({}, ['invoker@my-project.iam.gserviceaccount.com']);
    const denied = await rest(emulator, 'POST', `${LOCATION}/queues`, {
      name: queueName('minted'),
      httpTarget: {
        oidcToken: { serviceAccountEmail: 'admin@my-project.iam.gserviceaccount.com', audience: 'x' },
      },
    });
    expect(denied.status).toBe(403);
    expect(denied.body.error.message).toContain('iam.serviceAccounts.actAs');
    const allowed = await rest(emulator, 'POST', `${LOCATION}/queues`, {
      name: queueName('minted'),
      httpTarget: {
        oidcToken: { serviceAccountEmail: 'invoker@my-project.iam.gserviceaccount.com', audience: 'x' },
      },
    });
    expect(allowed.status).toBe(200);
  });
});

describe('UpdateQueue (PATCH)', () => {
  it('sets, narrows and clears httpTarget by update mask, leaving the other settings alone', async () => {
    await start({ rateLimits: { maxDispatchesPerSecond: 5 }, retryConfig: { maxAttempts: 3 } });
    const set = await rest(emulator, 'PATCH', `${ORDERS}?updateMask=http_target`, {
      httpTarget: { uriOverride: { host: 'a.test' }, httpMethod: 'GET' },
      rateLimits: { maxDispatchesPerSecond: 1 }, // not in the mask: ignored
    });
    expect(set.status, JSON.stringify(set.body)).toBe(200);
    expect(set.body).toMatchObject({
      httpTarget: { uriOverride: { host: 'a.test' }, httpMethod: 'GET' },
      rateLimits: { maxDispatchesPerSecond: 5 },
      retryConfig: { maxAttempts: 3 },
      state: 'RUNNING',
    });

    // A deeper path replaces only that field; camelCase paths too.
    const host = await rest(emulator, 'PATCH', `${ORDERS}?updateMask=httpTarget.uriOverride.host`, {
      httpTarget: { uriOverride: { host: 'b.test', port: 99 }, httpMethod: 'POST' },
    });
    expect(host.body.httpTarget).toEqual({ uriOverride: { host: 'b.test' }, httpMethod: 'GET' });

    // Several paths at once; output-only fields (state) are ignored.
    const two = await rest(
      emulator,
      'PATCH',
      `${ORDERS}?updateMask=http_target.http_method,rate_limits,state`,
      {
        rateLimits: { maxDispatchesPerSecond: 2 },
        state: 'PAUSED',
      },
    );
    expect(two.body).toMatchObject({
      httpTarget: { uriOverride: { host: 'b.test' } },
      rateLimits: { maxDispatchesPerSecond: 2, maxConcurrentDispatches: 1000 },
      state: 'RUNNING',
    });
    expect(two.body.httpTarget.httpMethod).toBeUndefined();

    // Named in the mask and absent from the body: cleared.
    const cleared = await rest(emulator, 'PATCH', `${ORDERS}?updateMask=http_target`, {});
    expect(cleared.status).toBe(200);
    expect(cleared.body.httpTarget).toBeUndefined();
    expect(cleared.body.retryConfig.maxAttempts).toBe(3);
  });

  it('without a mask replaces every setting; it creates a queue that does not exist', async () => {
    await start({ rateLimits: { maxDispatchesPerSecond: 5 } });
    const all = await rest(emulator, 'PATCH', ORDERS, { httpTarget: { httpMethod: 'PATCH' } });
    expect(all.body).toMatchObject({
      httpTarget: { httpMethod: 'PATCH' },
      rateLimits: { maxDispatchesPerSecond: 500 },
    });

    const upserted = await rest(emulator, 'PATCH', `${queueName('fresh')}?updateMask=http_target`, {
      httpTarget: { uriOverride: { host: 'c.test' } },
    });
    expect(upserted.status, JSON.stringify(upserted.body)).toBe(200);
    expect(upserted.body).toMatchObject({
      name: queueName('fresh'),
      httpTarget: { uriOverride: { host: 'c.test' } },
    });
    expect((await rest(emulator, 'GET', queueName('fresh'))).body.httpTarget).toEqual({
      uriOverride: { host: 'c.test' },
    });
  });

  it('refuses an unknown mask path or a bad value, and leaves the queue unchanged', async () => {
    await start({ httpTarget: { httpMethod: 'GET' } });
    const path = await rest(emulator, 'PATCH', `${ORDERS}?updateMask=http_target.uri`, {});
    expect(path.status).toBe(400);
    expect(path.body.error.message).toBe(
      'Invalid value for update_mask: "http_target.uri" is not a field of google.cloud.tasks.v2.Queue.',
    );
    const value = await rest(emulator, 'PATCH', `${ORDERS}?updateMask=http_target`, {
      httpTarget: { uriOverride: { uriOverrideEnforceMode: 'NEVER' } },
    });
    expect(value.status).toBe(400);
    expect(value.body.error.message).toContain("'queue.http_target.uri_override.uri_override_enforce_mode'");
    const bad = await rest(emulator, 'PATCH', `${ORDERS}?updateMask=http_target`, {
      httpTarget: { uriOverride: { port: 0x10000 } },
    });
    expect(bad.body.error.message).toContain('queue.http_target.uri_override.port');
    expect((await rest(emulator, 'GET', ORDERS)).body.httpTarget).toEqual({ httpMethod: 'GET' });
  });

  it('needs cloudtasks.queues.update', async () => {
    await start();
    emulator.setPermissions(['cloudtasks.queues.get']);
    const denied = await rest(emulator, 'PATCH', `${ORDERS}?updateMask=http_target`, {
      httpTarget: { httpMethod: 'GET' },
    });
    expect(denied.status).toBe(403);
    expect(denied.body.error.message).toContain('"cloudtasks.queues.update"');
  });
});

describe('dispatch', () => {
  it('sends the task to the overridden URL while the task keeps its own', async () => {
    await start({
      httpTarget: {
        uriOverride: {
          host: '127.0.0.1',
          port: portOf(other),
          pathOverride: { path: '/overridden' },
          queryOverride: { queryParams: 'via=queue' },
        },
      },
    });
    other.setRespond(() => 500);
    await createTask('t1', { url: 'http://tasks.invalid/own/path?mine=1' });
    await clock.advance(0);
    expect(other.requests.map((r) => r.path)).toEqual(['/overridden?via=queue']);
    expect(emulator.dispatches[0]!.url).toBe(`${other.url}/overridden?via=queue`);
    expect(other.requests[0]!.headers.host).toBe(`127.0.0.1:${portOf(other)}`);

    const task = await rest(emulator, 'GET', taskName('orders', 't1'));
    expect(task.body.httpRequest.url).toBe('http://tasks.invalid/own/path?mine=1');
    expect(task.body.lastAttempt.responseStatus.message).toBe('INTERNAL(13): HTTP status code 500');
  });

  it('replaces each URL part given, clears the port, path and query given empty', () => {
    const url = 'https://svc.test:8443/own/path?mine=1';
    expect(overriddenUrl(url, { host: 'other.test' })).toBe('https://other.test:8443/own/path?mine=1');
    expect(overriddenUrl(url, { scheme: 'HTTP', port: 8080 })).toBe('http://svc.test:8080/own/path?mine=1');
    // SCHEME_UNSPECIFIED, given, "defaults to HTTPS".
    expect(overriddenUrl('http://svc.test/a', { scheme: 'SCHEME_UNSPECIFIED' })).toBe('https://svc.test/a');
    expect(
      overriddenUrl(url, { port: 0, pathOverride: { path: '' }, queryOverride: { queryParams: '' } }),
    ).toBe('https://svc.test/');
    expect(
      overriddenUrl(url, { pathOverride: { path: 'v2/x' }, queryOverride: { queryParams: 'a=1&b=2' } }),
    ).toBe('https://svc.test:8443/v2/x?a=1&b=2');
    expect(overriddenUrl(url, { host: '[::1]', uriOverrideEnforceMode: 'ALWAYS' })).toBe(
      'https://[::1]:8443/own/path?mine=1',
    );
    expect(overriddenUrl(url, { host: 'other.test', uriOverrideEnforceMode: 'IF_NOT_EXISTS' })).toBe(url);
    expect(overriddenUrl(url, undefined)).toBe(url);
  });

  it('ALWAYS overrides the task URL; IF_NOT_EXISTS leaves a task that has its own URL alone', async () => {
    const override = (mode?: 'ALWAYS' | 'IF_NOT_EXISTS'): SeedHttpTarget => ({
      uriOverride: {
        port: portOf(other),
        pathOverride: { path: '/from-queue' },
        ...(mode ? { uriOverrideEnforceMode: mode } : {}),
      },
    });
    await start({ httpTarget: override('ALWAYS') });
    await createTask('always', { url: `${own.url}/from-task` });
    // Unspecified defaults to ALWAYS.
    emulator.load({ queues: [{ name: ORDERS, httpTarget: override() }] });
    await createTask('unspecified', { url: `${own.url}/from-task` });
    emulator.load({ queues: [{ name: ORDERS, httpTarget: override('IF_NOT_EXISTS') }] });
    await createTask('if-not-exists', { url: `${own.url}/from-task` });
    await clock.advance(0);
    // Each task was dispatched under the settings of the moment.
    expect(other.requests.map((r) => [r.headers['x-cloudtasks-taskname'], r.path])).toEqual([
      ['always', '/from-queue'],
      ['unspecified', '/from-queue'],
    ]);
    expect(own.requests.map((r) => [r.headers['x-cloudtasks-taskname'], r.path])).toEqual([
      ['if-not-exists', '/from-task'],
    ]);
  });

  it('overrides the method and sets header overrides over the task headers', async () => {
    await start({
      httpTarget: {
        httpMethod: 'GET',
        headerOverrides: [
          { header: { key: 'x-env', value: 'staging' } },
          { header: { key: 'content-type', value: 'application/json' } },
          { header: { key: 'X-CloudTasks-QueueName', value: 'spoofed' } },
          { header: { key: 'User-Agent', value: 'mine' } },
        ],
      },
    });
    own.setRespond(() => 500);
    await createTask('h1', {
      url: `${own.url}/h`,
      httpMethod: 'POST',
      headers: { 'Content-Type': 'text/plain', 'X-Env': 'prod', 'X-Task': '1' },
      body: Buffer.from('payload').toString('base64'),
    });
    await clock.advance(0);
    const [request] = own.requests;
    // "if the value is set to GET the HttpRequest.body of the task will be ignored at execution time"
    expect(request).toMatchObject({ method: 'GET', path: '/h', body: '' });
    expect(request!.headers).toMatchObject({
      'x-env': 'staging',
      'content-type': 'application/json',
      'x-task': '1',
      'x-cloudtasks-queuename': 'orders',
      'user-agent': 'Google-Cloud-Tasks',
    });
    expect(emulator.dispatches[0]).toMatchObject({ method: 'GET', url: `${own.url}/h` });
    // The task keeps its own method, headers and body.
    expect(emulator.task(taskName('orders', 'h1'))!.httpRequest).toMatchObject({
      httpMethod: 'POST',
      headers: { 'Content-Type': 'text/plain', 'X-Env': 'prod', 'X-Task': '1' },
      body: Buffer.from('payload').toString('base64'),
    });
  });

  it("sends the queue-level token instead of the task's own token and Authorization header", async () => {
    await start({
      httpTarget: {
        oidcToken: {
          serviceAccountEmail: 'queue@my-project.iam.gserviceaccount.com',
          audience: 'https://aud',
        },
      },
    });
    await createTask('token', {
      url: `${own.url}/own`,
      headers: { Authorization: 'Basic c2VjcmV0' },
      oidcToken: { serviceAccountEmail: 'task@my-project.iam.gserviceaccount.com' },
    });
    await clock.advance(0);
    const auth = own.requests[0]!.headers.authorization!;
    expect(auth).toMatch(/^Bearer /);
    const claims = JSON.parse(Buffer.from(auth.split(' ')[1]!.split('.')[1]!, 'base64url').toString('utf8'));
    expect(claims).toMatchObject({ email: 'queue@my-project.iam.gserviceaccount.com', aud: 'https://aud' });

    // A queue-level OAuth token replaces the task's OIDC one: the emulator mints no OAuth token, so no header.
    emulator.load({
      queues: [
        {
          name: ORDERS,
          httpTarget: {
            oauthToken: { serviceAccountEmail: 'queue@my-project.iam.gserviceaccount.com', scope: 's' },
          },
        },
      ],
    });
    await createTask('oauth', {
      url: `${own.url}/own`,
      headers: { Authorization: 'Basic c2VjcmV0' },
      oidcToken: { serviceAccountEmail: 'task@my-project.iam.gserviceaccount.com' },
    });
    await clock.advance(0);
    expect(own.requests[1]!.headers.authorization).toBeUndefined();
  });

  it('redirects a task waiting for a retry once UpdateQueue sets an override', async () => {
    await start({ retryConfig: { minBackoff: '10s', maxBackoff: '10s' } });
    own.setRespond(() => 503);
    await createTask('retry', { url: `${own.url}/work` });
    await clock.advance(0);
    expect(own.requests).toHaveLength(1);
    await rest(emulator, 'PATCH', `${ORDERS}?updateMask=http_target.uri_override`, {
      httpTarget: { uriOverride: { port: portOf(other) } },
    });
    await clock.advance(10_000);
    expect(own.requests).toHaveLength(1);
    expect(other.requests.map((r) => [r.path, r.headers['x-cloudtasks-taskretrycount']])).toEqual([
      ['/work', '1'],
    ]);
    expect(emulator.task(taskName('orders', 'retry'))).toBeUndefined();
  });

  it('applies to RunTask too', async () => {
    await start({ httpTarget: { uriOverride: { port: portOf(other) } } });
    const { body } = await rest(emulator, 'POST', `${ORDERS}/tasks`, {
      task: {
        name: taskName('orders', 'run-me'),
        httpRequest: { url: `${NOWHERE}/run` },
        scheduleTime: new Date(T0 + 3_600_000).toISOString(),
      },
    });
    expect(body.httpRequest.url).toBe(`${NOWHERE}/run`);
    const run = await rest(emulator, 'POST', `${taskName('orders', 'run-me')}:run`, {});
    expect(run.status).toBe(200);
    expect(run.body.httpRequest.url).toBe(`${NOWHERE}/run`);
    await emulator.settled();
    expect(other.requests.map((r) => r.path)).toEqual(['/run']);
  });
});

// @google-cloud/tasks 7.1.0 has no `http_target` in its v2 protos (v2beta2 and v2beta3 have it): in REST
// fallback it drops the field from requests and answers. google-client-http-target.test.ts reads it back with
// the field grafted into the client's protos.
const clientKnowsHttpTarget = 'httpTarget' in protos.google.cloud.tasks.v2.Queue.prototype;

describe("Google's client (REST fallback), unchanged", () => {
  it.skipIf(clientKnowsHttpTarget)(
    'reads queues that have one, and its updateQueue (which drops the field) clears it under the mask',
    async () => {
      await start({
        httpTarget: { uriOverride: { host: 'a.test', port: 8080, scheme: 'HTTPS' }, httpMethod: 'GET' },
      });
      const client = googleClient(emulator);
      try {
        // The emulator's answer, with httpTarget in the int-enum form the client asks for, parses.
        const [queue] = await client.getQueue({ name: ORDERS });
        expect(queue).toMatchObject({ name: ORDERS, state: 'RUNNING' });
        const [queues] = await client.listQueues({ parent: LOCATION });
        expect(queues.map((q) => q.name)).toEqual([ORDERS]);
        expect((await rest(emulator, 'GET', ORDERS)).body.httpTarget).toEqual({
          uriOverride: { scheme: 'HTTPS', host: 'a.test', port: '8080' },
          httpMethod: 'GET',
        });

        // The client sends PATCH ?updateMask=http_target with an empty body: the mask names a field the body
        // leaves out, so the override is cleared, as Cloud Tasks itself would do with this client.
        await client.updateQueue({
          queue: { name: ORDERS, httpTarget: { httpMethod: 'POST' } } as any,
          updateMask: { paths: ['http_target'] },
        });
        expect(emulator.calls.at(-1)).toMatchObject({ method: 'UpdateQueue', status: 200 });
        expect((await rest(emulator, 'GET', ORDERS)).body.httpTarget).toBeUndefined();

        // Its updateQueue of the other settings works.
        const [updated] = await client.updateQueue({
          queue: { name: ORDERS, rateLimits: { maxDispatchesPerSecond: 7 } },
          updateMask: { paths: ['rate_limits.max_dispatches_per_second'] },
        });
        expect(updated.rateLimits).toMatchObject({
          maxDispatchesPerSecond: 7,
          maxConcurrentDispatches: 1000,
        });
      } finally {
        await client.close();
      }
    },
  );
});
