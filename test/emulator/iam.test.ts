/**
 * Permissions and actAs, through Google's own client: testIamPermissions answers the held subset, and a call
 * the caller lacks the permission for answers PERMISSION_DENIED (7) with Cloud Tasks' real message.
 */
import type { CloudTasksClient } from '@google-cloud/tasks';
import { afterEach, describe, expect, it } from 'vitest';
import { startEmulator, type Emulator, type EmulatorOptions } from '../../emulator/server.js';
import { googleClient, LOCATION, queueName, rest, taskName } from './helpers.js';

const ORDERS = queueName('orders');
const BILLING = queueName('billing');
const SA = 'invoker@my-project.iam.gserviceaccount.com';
const OTHER_SA = 'someone-else@my-project.iam.gserviceaccount.com';
const URL = 'http://127.0.0.1:9/work';
const ALL = [
  'cloudtasks.queues.get',
  'cloudtasks.tasks.create',
  'cloudtasks.tasks.delete',
  'cloudtasks.tasks.fullView',
  'cloudtasks.tasks.get',
  'cloudtasks.tasks.list',
  'cloudtasks.tasks.run',
];

let emulator: Emulator;
let client: CloudTasksClient;

async function start(options: EmulatorOptions = {}): Promise<void> {
  emulator = await startEmulator({
    ...options,
    seed: {
      queues: [ORDERS, BILLING].map((name) => ({
        name,
        state: 'PAUSED' as const,
        tasks: [{ id: 'a', httpRequest: { url: URL, body: Buffer.from('secret').toString('base64') } }],
      })),
    },
  });
  client = googleClient(emulator);
}

afterEach(async () => {
  await client.close();
  await emulator.stop();
});

/** The error a call rejects with. */
async function errorOf(call: Promise<unknown>): Promise<{ code: number; message: string }> {
  try {
    await call;
  } catch (err) {
    return err as { code: number; message: string };
  }
  throw new Error('the call succeeded');
}

function lacks(permission: string, resource: string): { code: number; message: string } {
  return {
    code: 7,
    message: `The principal (user or service account) lacks IAM permission "${permission}" for the resource "${resource}" (or the resource may not exist).`,
  };
}

describe('testIamPermissions', () => {
  it('answers every permission asked by default, and an empty set for a queue that does not exist', async () => {
    await start();
    const [all] = await client.testIamPermissions({ resource: ORDERS, permissions: ALL });
    expect(all.permissions).toEqual(ALL);
    const [none] = await client.testIamPermissions({ resource: queueName('nope'), permissions: ALL });
    expect(none.permissions).toEqual([]);
    const raw = await rest(emulator, 'POST', `${ORDERS}:testIamPermissions`, { permissions: 'x' });
    expect(raw.status).toBe(400);
    expect(raw.body.error.message).toContain("'permissions'");
  });

  it('answers the held subset, per queue, and follows setPermissions', async () => {
    await start({ permissions: { [ORDERS]: ['cloudtasks.tasks.get', 'cloudtasks.tasks.list'] } });
    const [orders] = await client.testIamPermissions({ resource: ORDERS, permissions: ALL });
    expect(orders.permissions).toEqual(['cloudtasks.tasks.get', 'cloudtasks.tasks.list']);
    const [billing] = await client.testIamPermissions({ resource: BILLING, permissions: ALL });
    expect(billing.permissions).toEqual(ALL); // queues not named keep every permission

    emulator.setPermissions({ [ORDERS]: ALL, '*': ['cloudtasks.queues.get'] });
    const [after] = await client.testIamPermissions({ resource: BILLING, permissions: ALL });
    expect(after.permissions).toEqual(['cloudtasks.queues.get']);
    emulator.setPermissions(undefined);
    const [restored] = await client.testIamPermissions({ resource: BILLING, permissions: ALL });
    expect(restored.permissions).toEqual(ALL);
  });
});

describe('PERMISSION_DENIED', () => {
  it('refuses FULL without fullView, and create, delete and run without their permissions', async () => {
    await start({ permissions: ['cloudtasks.queues.get', 'cloudtasks.tasks.get', 'cloudtasks.tasks.list'] });
    const a = taskName('orders', 'a');

    const [basic] = await client.getTask({ name: a });
    expect(basic.httpRequest?.url).toBe(URL);
    expect(await errorOf(client.getTask({ name: a, responseView: 'FULL' }))).toMatchObject(
      lacks('cloudtasks.tasks.fullView', ORDERS),
    );
    expect(
      await errorOf(client.listTasks({ parent: ORDERS, responseView: 'FULL' }, { autoPaginate: false })),
    ).toMatchObject(lacks('cloudtasks.tasks.fullView', ORDERS));
    expect(
      await errorOf(client.createTask({ parent: ORDERS, task: { httpRequest: { url: URL } } })),
    ).toMatchObject(lacks('cloudtasks.tasks.create', ORDERS));
    expect(await errorOf(client.deleteTask({ name: a }))).toMatchObject(lacks('cloudtasks.tasks.delete', a));
    expect(await errorOf(client.runTask({ name: a }))).toMatchObject(lacks('cloudtasks.tasks.run', a));
    expect(await errorOf(client.listQueues({ parent: LOCATION }))).toMatchObject(
      lacks('cloudtasks.queues.list', LOCATION),
    );

    // Nothing was changed and nothing dispatched.
    expect(emulator.task(a)?.dispatchCount ?? 0).toBe(0);
    expect(emulator.dispatches).toHaveLength(0);
    const denied = await rest(emulator, 'POST', `${a}:run`, {});
    expect(denied.body.error).toMatchObject({
      code: 403,
      status: 'PERMISSION_DENIED',
      details: [
        {
          '@type': 'type.googleapis.com/google.rpc.ErrorInfo',
          reason: 'IAM_PERMISSION_DENIED',
          metadata: { permission: 'cloudtasks.tasks.run', resource: a },
        },
      ],
    });
  });

  it('refuses a call on one queue while the same call works on another', async () => {
    await start({ permissions: { [ORDERS]: ['cloudtasks.tasks.get'] } });
    expect(await errorOf(client.runTask({ name: taskName('orders', 'a') }))).toMatchObject({ code: 7 });
    const [ran] = await client.runTask({ name: taskName('billing', 'a'), responseView: 'FULL' });
    expect(ran.dispatchCount).toBe(1);
    expect(Buffer.from(ran.httpRequest!.body as Uint8Array).toString()).toBe('secret');
  });
});

describe('actAs', () => {
  it('refuses a task whose OIDC or OAuth account the caller may not act as, and accepts the others', async () => {
    await start({ actAs: [SA] });
    const oidc = (email: string) => ({
      httpRequest: { url: URL, oidcToken: { serviceAccountEmail: email } },
    });
    const oauth = (email: string) => ({
      httpRequest: { url: URL, oauthToken: { serviceAccountEmail: email } },
    });

    const [created] = await client.createTask({ parent: ORDERS, task: oidc(SA) });
    expect(created.httpRequest?.oidcToken?.serviceAccountEmail).toBe(SA);
    expect(await errorOf(client.createTask({ parent: ORDERS, task: oidc(OTHER_SA) }))).toMatchObject(
      lacks('iam.serviceAccounts.actAs', OTHER_SA),
    );
    expect(await errorOf(client.createTask({ parent: ORDERS, task: oauth(OTHER_SA) }))).toMatchObject(
      lacks('iam.serviceAccounts.actAs', OTHER_SA),
    );
    await client.createTask({ parent: ORDERS, task: { httpRequest: { url: URL } } }); // no token: no actAs
    const [tasks] = await client.listTasks({ parent: ORDERS }, { autoPaginate: false });
    expect(tasks).toHaveLength(3); // the seeded one and the two accepted

    emulator.setActAs(undefined);
    await client.createTask({ parent: ORDERS, task: oauth(OTHER_SA) });
  });
});
