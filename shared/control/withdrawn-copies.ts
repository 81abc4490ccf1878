/**
 * Withdrawn copies' records (docs/claims.md "Withdrawn copies are recorded"). Cloud Tasks keeps a
 * deleted or executed task's name reserved, so a copy's name found used up means the copy ran, or that
 * something took it out (or used its name up) without letting it run. Everything that does the latter
 * writes this record first, in the control queue; a move's recovery reads it to tell the two apart.
 */
import { toCloudTasksError, type CloudTasksClient, type CloudTasksError } from '../cloud-tasks/client.js';
import type { TaskName } from '../cloud-tasks/names.js';
import { copyWithdrawnNameOf, copyWithdrawnTaskFor, type ControlTarget } from './control-tasks.js';

/**
 * Writes the record that `copy` is withdrawn; undefined once it is there (written now, or before), else
 * the failure: the copy must then not be withdrawn.
 */
export async function recordWithdrawn(
  tasks: CloudTasksClient,
  target: ControlTarget,
  copy: TaskName,
  nowMs: number,
): Promise<CloudTasksError | undefined> {
  try {
    await tasks.createTask(target.queue, copyWithdrawnTaskFor(copy.name, target, nowMs));
    return undefined;
  } catch (error) {
    const failure = toCloudTasksError(error);
    // Written before (an earlier try or delivery), or written, fallen due and done: past its use either way.
    return failure.status === 'ALREADY_EXISTS' ? undefined : failure;
  }
}

/** Whether a record says `copy` was withdrawn, or the failure of the read. */
export async function wasWithdrawn(
  tasks: CloudTasksClient,
  target: ControlTarget,
  copy: TaskName,
): Promise<boolean | CloudTasksError> {
  try {
    await tasks.getTask(copyWithdrawnNameOf(target.queue, copy.name));
    return true;
  } catch (error) {
    const failure = toCloudTasksError(error);
    return failure.status === 'NOT_FOUND' ? false : failure;
  }
}
