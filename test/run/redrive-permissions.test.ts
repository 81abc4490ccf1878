/**
 * Redrive's preflight (docs/redrive.md "Permissions"), against the in-process emulator: its permissions
 * are asked of each queue with queues.testIamPermissions, and a request without them is refused before
 * anything is read, created or deleted.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseQueueName } from '../../shared/cloud-tasks/names.js';
import {
  checkRedrivePermissions,
  RedriveCheckError,
  RedriveForbiddenError,
  REDRIVE_PERMISSIONS,
} from '../../shared/run/redrive-permissions.js';
import { callsOf, ORDERS, queueName, startWorld, type World } from './stage-fixtures.js';

const BILLING = queueName('billing');
const queues = [parseQueueName(ORDERS)!, parseQueueName(BILLING)!];

let world: World;
beforeEach(async () => {
  world = await startWorld();
  world.emulator.load({ queues: [{ name: ORDERS }, { name: BILLING }] });
});
afterEach(() => world.stop());

const check = () => checkRedrivePermissions(world.tasks, queues);

describe('checkRedrivePermissions', () => {
  it('passes when every queue grants all three, asking each queue once and changing nothing', async () => {
    await expect(check()).resolves.toBeUndefined();
    expect(callsOf(world.emulator, 'TestIamPermissions').sort()).toEqual([BILLING, ORDERS]);
    expect(world.emulator.calls.filter((c) => c.method !== 'TestIamPermissions')).toEqual([]);
  });

  it('refuses when a queue lacks one, naming the permission and the queue', async () => {
    const allButDelete = REDRIVE_PERMISSIONS.filter((p) => p !== 'cloudtasks.tasks.delete');
    world.emulator.setPermissions({ [BILLING]: [...allButDelete, 'cloudtasks.queues.get'] });
    const error = await check().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RedriveForbiddenError);
    expect((error as RedriveForbiddenError).lacking).toEqual([
      { queue: BILLING, missing: ['cloudtasks.tasks.delete'] },
    ]);
    expect((error as Error).message).toContain(`cloudtasks.tasks.delete on ${BILLING}`);
  });

  it('takes a queue the caller may not even ask about as lacking every permission', async () => {
    world.emulator.injectFault({ method: 'TestIamPermissions', kind: 403, resources: [ORDERS] });
    const error = (await check().catch((e: unknown) => e)) as RedriveForbiddenError;
    expect(error.lacking).toEqual([{ queue: ORDERS, missing: [...REDRIVE_PERMISSIONS] }]);
  });

  it('leaves a queue that does not exist to the run (answered with no permission, found gone by GetQueue)', async () => {
    // testIamPermissions answers {} for a queue that does not exist, as for one that grants nothing.
    const gone = parseQueueName(queueName('gone'))!;
    await expect(checkRedrivePermissions(world.tasks, [gone, ...queues])).resolves.toBeUndefined();
    expect(callsOf(world.emulator, 'GetQueue')).toEqual([gone.name]);
  });

  it('goes on where Cloud Tasks has no testIamPermissions (UNIMPLEMENTED): the calls speak for themselves', async () => {
    world.emulator.injectFault({ method: 'TestIamPermissions', kind: 501 });
    await expect(check()).resolves.toBeUndefined();
  });

  it('answers any other failure as a check that could not be made, naming the queue and status', async () => {
    world.emulator.injectFault({ method: 'TestIamPermissions', kind: 400, resources: [ORDERS] });
    const error = await check().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RedriveCheckError);
    expect(error).toMatchObject({ queue: ORDERS, status: 'INVALID_ARGUMENT' });
  });
});
