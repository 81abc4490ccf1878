/**
 * Redrive's preflight (docs/redrive.md "Permissions"): copying and deleting needs `cloudtasks.tasks.fullView`, `create`
 * and `delete` on every queue of the request. Without them the request is refused before anything is
 * created or deleted, naming what is missing (`deploy.sh --redrive` grants exactly these).
 */
import { toCloudTasksError, type CloudTasksClient } from '../cloud-tasks/client.js';
import type { QueueName } from '../cloud-tasks/names.js';
import { actionFor } from '../cloud-tasks/retry.js';

export const REDRIVE_PERMISSIONS = [
  'cloudtasks.tasks.fullView',
  'cloudtasks.tasks.create',
  'cloudtasks.tasks.delete',
] as const;

/** The permissions a queue lacks for redrive. */
export interface MissingPermissions {
  readonly queue: string;
  readonly missing: readonly string[];
}

/** A redrive request on queues where the caller lacks redrive's permissions: nothing was called. */
export class RedriveForbiddenError extends Error {
  override readonly name = 'RedriveForbiddenError';
  constructor(readonly lacking: readonly MissingPermissions[]) {
    super(
      `redrive needs ${lacking.map((q) => `${q.missing.join(', ')} on ${q.queue}`).join('; ')} (deploy.sh --redrive grants them); nothing was created or deleted`,
    );
  }
}

/** Cloud Tasks answered redrive's permission check unexpectedly: nothing was created or deleted. */
export class RedriveCheckError extends Error {
  override readonly name = 'RedriveCheckError';
  constructor(
    readonly queue: string,
    readonly status: string,
    detail: string,
  ) {
    super(
      `redrive's permission check on ${queue} was answered ${status} (${detail}); nothing was created or deleted`,
    );
  }
}

/**
 * Asks Cloud Tasks (queues.testIamPermissions) which of redrive's permissions the caller holds on each
 * queue. Throws RedriveForbiddenError when any is missing, and RedriveCheckError on any other answer but
 * NOT_FOUND or UNIMPLEMENTED (nothing was called that changes anything, so the request is safe to send
 * again).
 * - A queue that does not exist holds no permission (the API answers an empty set): one found missing
 *   by GetQueue is left to the run, which finds it gone and reports it (docs/events.md "Bad input").
 * - A Cloud Tasks without the method (UNIMPLEMENTED) cannot be asked: the run goes on, and a call it may
 *   not make is refused on its own.
 */
export async function checkRedrivePermissions(
  tasks: CloudTasksClient,
  queues: readonly QueueName[],
): Promise<void> {
  const lacking = await Promise.all(
    queues.map(async (queue): Promise<MissingPermissions> => {
      const held = await heldOn(tasks, queue);
      const missing = REDRIVE_PERMISSIONS.filter((p) => !held.includes(p));
      if (missing.length === 0 || (await isGone(tasks, queue))) return { queue: queue.name, missing: [] };
      return { queue: queue.name, missing };
    }),
  );
  const missing = lacking.filter((q) => q.missing.length > 0);
  if (missing.length > 0) throw new RedriveForbiddenError(missing);
}

/** Redrive's permissions the caller holds on the queue (all of them where it cannot be asked). */
async function heldOn(tasks: CloudTasksClient, queue: QueueName): Promise<readonly string[]> {
  try {
    return await tasks.testQueuePermissions(queue, REDRIVE_PERMISSIONS);
  } catch (error) {
    const failure = toCloudTasksError(error);
    const action = actionFor(failure);
    // No such method, or no such queue (the run finds it gone): nothing to refuse here.
    if (failure.status === 'UNIMPLEMENTED' || action === 'gone') return REDRIVE_PERMISSIONS;
    if (action !== 'stop-queue') throw new RedriveCheckError(queue.name, failure.status, failure.message);
    // A queue the caller may not even ask about lacks every permission.
    return [];
  }
}

/** Whether GetQueue finds the queue missing; any other answer leaves the permissions to speak. */
async function isGone(tasks: CloudTasksClient, queue: QueueName): Promise<boolean> {
  try {
    await tasks.getQueue(queue);
    return false;
  } catch (error) {
    return actionFor(toCloudTasksError(error)) === 'gone';
  }
}
