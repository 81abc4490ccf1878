/**
 * A move's recovery (docs/claims.md "A crash mid-redrive"): the delivery of the recovery task that a move
 * writes before it makes anything (recovery-tasks.ts), due before the copy's arming delay ends. When the run that started the move
 * stopped anywhere in it (a crash, a lost answer, a deferral), this finishes the move or undoes it, so the
 * task neither runs twice nor is lost:
 *   copy there, original idle        -> the original is deleted (the move is finished)
 *   copy there, original ran/running -> the copy is withdrawn (the move is undone)
 *   copy there, original gone        -> nothing to do (the move was finished)
 *   no copy, original idle           -> the copy is made from the original, then as above; when its name
 *                                       is used up, the copy ran unless its withdrawal was recorded
 *   no copy, original ran or gone    -> the copy's name is used up, so a create still in flight cannot land
 * Whatever withdraws a copy or uses its name up records that first (withdrawn-copies.ts). Each step is
 * safe to repeat: a delivery that stops is answered non-2xx and Cloud Tasks delivers it again.
 *
 * An unpark is a move too (docs/parking.md "Unparking"): its original is a parked task, in its home queue's
 * parking queue, and its copy goes home. The same table holds, but the copy it makes is the home copy (its
 * token put back).
 *
 * A park is a move into the home queue's parking queue, with the parking stage's own rules (recoverPark).
 */
import { toCloudTasksError, type CloudTasksClient, type NewTask, type Task } from '../cloud-tasks/client.js';
import { moveOfControlUrl, type ControlTarget, type MoveRecovery } from '../control/control-tasks.js';
import { recordWithdrawn, wasWithdrawn } from '../control/withdrawn-copies.js';
import {
  parkingQueueOf,
  parseQueueName,
  parseTaskName,
  type QueueName,
  type TaskName,
} from '../cloud-tasks/names.js';
import { copyOf, firstTaskOf, headerOf } from './copy.js';
import {
  homeCopyOf,
  mayHaveVanishedByItself,
  parkedCopyOf,
  possiblyDoneCopyOf,
  possiblyDoneNameOf,
} from './park-rules.js';
import { hasAttemptUnderWay } from './select.js';
import type { Semaphore } from './pace.js';
import { LARGEST_BODY_BYTES } from '../cloud-tasks/body-bytes.js';

/** The header of a placeholder that uses up a copy's name; it is deleted at once and never dispatched. */
export const PLACEHOLDER_HEADER = 'X-Rerun-Placeholder';

export type RecoveryResult =
  | {
      readonly done: true;
      readonly outcome: 'finished' | 'undone' | 'nothing-to-do' | 'refused';
      readonly why?: string;
    }
  /** A call failed for a reason that may pass: the recovery task is delivered again. */
  | { readonly done: false; readonly error: string };

type Read = Task | 'gone' | { readonly error: string };

/** The copy a recovery makes from the original, when the run that started the move did not make it. */
type CopyOf = (original: Task, copy: TaskName, dueMs: number) => NewTask;

/** What a move between `original` and `copy` copies: a redrive beside it, an unpark home; else undefined. */
function copyOfMove(original: TaskName, copy: TaskName): CopyOf | undefined {
  if (copy.queueName === original.queueName) return copyOf;
  const home = parseQueueName(copy.queueName)!;
  return parkingQueueOf(home).name === original.queueName ? homeCopyOf : undefined;
}

/**
 * Finishes or undoes one move; `nowMs` dates a copy it has to make. `control` is the control queue the
 * recovery task came from, where withdrawals are recorded.
 */
export async function recoverMove(
  tasks: CloudTasksClient,
  control: ControlTarget,
  move: MoveRecovery,
  armingDelayMs: number,
  nowMs: () => number,
): Promise<RecoveryResult> {
  const original = parseTaskName(move.original);
  const copy = parseTaskName(move.copy);
  const home = original && parseQueueName(original.queueName);
  if (original && home && copy && parkingQueueOf(home).name === copy.queueName) {
    return recoverPark(tasks, move, { original, parked: copy, home }, nowMs);
  }
  const makeOf = original && copy ? copyOfMove(original, copy) : undefined;
  if (!original || !copy || !makeOf) {
    return {
      done: true,
      outcome: 'refused',
      why: "the copy must be in the original's queue, in its parking queue, or (a parked original) in its home queue",
    };
  }
  const ran = (task: Task): boolean =>
    (task.dispatchCount ?? 0) > move.dispatchCount || hasAttemptUnderWay(task);

  const found = await read(tasks, copy, 'FULL');
  if (isError(found)) return retry('the copy', found);
  let existing: Task | undefined;
  let ours = false;
  if (found === 'gone') {
    const source = await read(tasks, original, 'FULL');
    if (isError(source)) return retry('the original', source);
    const idle = source !== 'gone' && !ran(source);
    const made = idle
      ? await makeCopy(tasks, copy, makeOf(source, copy, nowMs() + armingDelayMs))
      : await recordingWithdrawal(tasks, control, copy, nowMs, () => useUpName(tasks, copy, source));
    if (made === USED_UP) {
      return idle
        ? afterCopyRanOrWithdrawn(tasks, control, original, copy)
        : { done: true, outcome: 'undone', why: "the copy's name is used up" };
    }
    if (made === 'made') ours = true;
    else if (isTask(made)) existing = made;
    else return made;
  } else {
    existing = found;
  }
  if (existing !== undefined && headerOf(existing, PLACEHOLDER_HEADER) !== undefined) {
    return withdrawCopy(tasks, control, copy, 'a placeholder held the name', nowMs);
  }
  const now = await read(tasks, original, 'BASIC');
  if (isError(now)) return retry('the original', now);
  if (now === 'gone') return { done: true, outcome: 'nothing-to-do' };
  if (!ours && existing !== undefined && firstTaskOf(existing) !== move.first) {
    return { done: true, outcome: 'refused', why: 'a task not copied from this one holds the name' };
  }
  return ran(now)
    ? withdrawCopy(tasks, control, copy, 'the original ran meanwhile', nowMs)
    : deleteTask(tasks, original, 'finished');
}

/**
 * The copy's name is used up and the original idle: the copy ran, unless something withdrew it (and
 * recorded that first), so the original is deleted only when no record says it was withdrawn.
 */
async function afterCopyRanOrWithdrawn(
  tasks: CloudTasksClient,
  control: ControlTarget,
  original: TaskName,
  copy: TaskName,
): Promise<RecoveryResult> {
  const withdrawn = await wasWithdrawn(tasks, control, copy);
  if (typeof withdrawn !== 'boolean') {
    return { done: false, error: `the copy's withdrawal record could not be read (${withdrawn.message})` };
  }
  if (withdrawn) return { done: true, outcome: 'undone', why: 'the copy was withdrawn' };
  return deleteTask(
    tasks,
    original,
    'finished',
    "the copy's name is used up and no withdrawal was recorded: it ran",
  );
}

/** Withdraws the copy (or the placeholder under its name), its withdrawal recorded first. */
function withdrawCopy(
  tasks: CloudTasksClient,
  control: ControlTarget,
  copy: TaskName,
  why: string,
  nowMs: () => number,
): Promise<RecoveryResult> {
  return recordingWithdrawal(tasks, control, copy, nowMs, () => deleteTask(tasks, copy, 'undone', why));
}

/** Records that the copy is withdrawn, then runs `withdraw`; not done when it cannot be recorded. */
async function recordingWithdrawal<T>(
  tasks: CloudTasksClient,
  control: ControlTarget,
  copy: TaskName,
  nowMs: () => number,
  withdraw: () => Promise<T>,
): Promise<T | RecoveryResult> {
  const unrecorded = await recordWithdrawn(tasks, control, copy, nowMs());
  if (unrecorded) {
    return { done: false, error: `the copy's withdrawal could not be recorded (${unrecorded.message})` };
  }
  return withdraw();
}

/**
 * A park's recovery (docs/parking.md "The move"): the same steps as the parking stage's. An original that
 * is idle (whatever attempts it made meanwhile: it is still failed) is deleted once its parked copy
 * exists. One whose attempt is under way, or which vanished, may have been done: its parked copy is
 * replaced by one marked possibly done (and a running original deleted), unless it vanished before it
 * could run or expire by itself (`quietUntil`): then the move deleted it. With no parked copy, an original
 * whose attempt is under way, or which is gone, is left as it is: the name is used up.
 */
async function recoverPark(
  tasks: CloudTasksClient,
  move: MoveRecovery,
  names: { readonly original: TaskName; readonly parked: TaskName; readonly home: QueueName },
  nowMs: () => number,
): Promise<RecoveryResult> {
  const { original, parked, home } = names;

  let copy: Task;
  const found = await read(tasks, parked, 'FULL');
  if (isError(found)) return retry('the parked copy', found);
  if (found === 'gone') {
    const source = await read(tasks, original, 'FULL');
    if (isError(source)) return retry('the original', source);
    if (source === 'gone' || hasAttemptUnderWay(source)) {
      const used = await useUpName(tasks, parked, source);
      if (used === USED_UP)
        return { done: true, outcome: 'undone', why: "the parked copy's name is used up" };
      if (!isTask(used)) return used;
      copy = used;
    } else {
      const made = parkedCopyOf(source, parked, home, nowMs(), false);
      const result = await makeCopy(tasks, parked, made);
      if (result === USED_UP) {
        return { done: true, outcome: 'undone', why: "the parked copy's name is used up" };
      }
      if (result !== 'made' && !isTask(result)) return result;
      copy = result === 'made' ? made : result;
    }
  } else {
    copy = found;
  }
  if (headerOf(copy, PLACEHOLDER_HEADER) !== undefined) {
    return deleteTask(tasks, parked, 'undone', 'a placeholder held the name');
  }
  if (firstTaskOf(copy) !== move.first) {
    return { done: true, outcome: 'refused', why: 'a task not parked from this one holds the name' };
  }
  const now = await read(tasks, original, 'BASIC');
  if (isError(now)) return retry('the original', now);
  if (now !== 'gone' && !hasAttemptUnderWay(now)) return deleteTask(tasks, original, 'finished');
  if (now === 'gone' && !mayHaveVanishedByItself(move.quietUntil, nowMs())) {
    return { done: true, outcome: 'nothing-to-do', why: 'the original was not due: the move deleted it' };
  }
  // Its attempt is under way, or it vanished when it could have run: it may have been done.
  const marked = possiblyDoneNameOf(parked);
  const kept = await makeCopy(tasks, marked, possiblyDoneCopyOf(copy, marked, nowMs()));
  // A marked copy was made before, and taken out since: the plain one is all that is left to go.
  if (kept === USED_UP) return deleteTask(tasks, parked, 'finished', 'it was kept as possibly done before');
  if (kept !== 'made' && !isTask(kept)) {
    // Never left plainly parked when it may have been done: the recovery is delivered again.
    return kept.done
      ? { done: false, error: `the parked copy could not be marked: ${kept.why ?? ''}` }
      : kept;
  }
  const plain = await deleteTask(tasks, parked, 'finished', 'kept as possibly done');
  if (!plain.done || now === 'gone') return plain;
  return deleteTask(tasks, original, 'finished', 'kept as possibly done');
}

/**
 * Moves settled at once by one delivery's sweep. A move takes about four calls, so this keeps up with the
 * moves of a queue at its full 500 a second falling due after a crash (a batch redrive has thousands under
 * way). Each holds room for one body among the process's (docs/redrive.md "Bodies held") while it is
 * settled: with large bodies, or bodies held by a redrive, fewer go at once.
 */
const SWEEP_CONCURRENCY = 64;

/**
 * Settles every other move whose recovery task is due, and deletes those recovery tasks: one delivery
 * recovers them all, so the control queue's own dispatch rate (deploy.sh: 1 a second) does not hold the
 * recovery of many moves back (docs/claims.md "A crash mid-redrive"). Throws CloudTasksError when the
 * control queue cannot be listed.
 */
export async function recoverDueMoves(
  tasks: CloudTasksClient,
  control: ControlTarget,
  armingDelayMs: number,
  nowMs: () => number,
  ownId: string,
  /** The process's bytes of bodies held (MAX_BODY_BYTES_HELD): each move holds room for one while settled. */
  bodies: Semaphore,
): Promise<{ settled: number; left: number }> {
  const due: Array<{ recoveryTask: TaskName; move: MoveRecovery & { dueMs: number } }> = [];
  for await (const page of tasks.listTaskUrls(control.queue)) {
    for (const task of page) {
      const move = moveOfControlUrl(task.httpRequest?.url);
      const recoveryTask = parseTaskName(task.name);
      if (move && recoveryTask && recoveryTask.task !== ownId && move.dueMs <= nowMs()) {
        due.push({ recoveryTask, move });
      }
    }
  }
  // The first due first: their copies arm first. Taken from the end.
  due.sort((a, b) => b.move.dueMs - a.move.dueMs);
  let settled = 0;
  let left = 0;
  const worker = async (): Promise<void> => {
    for (let next = due.pop(); next; next = due.pop()) {
      await bodies.acquire(Number.POSITIVE_INFINITY, nowMs(), LARGEST_BODY_BYTES);
      const result = await recoverMove(tasks, control, next.move, armingDelayMs, nowMs).finally(() =>
        bodies.release(LARGEST_BODY_BYTES),
      );
      if (!result.done) {
        left++;
        continue;
      }
      settled++;
      // Left in place (the delete failed), it falls due again and finds the move settled.
      await tasks.deleteTask(next.recoveryTask).catch(() => undefined);
    }
  };
  await Promise.all(Array.from({ length: SWEEP_CONCURRENCY }, worker));
  return { settled, left };
}

/** A name that is taken with no task under it: reserved after a delete, so nothing can land under it. */
const USED_UP = 'used-up';

/** Makes the copy (the run that started the move did not, or not yet). */
async function makeCopy(
  tasks: CloudTasksClient,
  copy: TaskName,
  task: NewTask,
): Promise<'made' | Task | typeof USED_UP | RecoveryResult> {
  try {
    await tasks.createTask(queueOf(copy), task);
    return 'made';
  } catch (error) {
    const failure = toCloudTasksError(error);
    if (failure.status === 'ALREADY_EXISTS') return afterAlreadyExists(tasks, copy);
    if (failure.answerLost || failure.status === 'UNAVAILABLE' || failure.status === 'RESOURCE_EXHAUSTED') {
      return { done: false, error: `CreateTask: ${failure.message}` };
    }
    // It would fail the same on every delivery: the original stays as it is.
    return { done: true, outcome: 'undone', why: `the copy could not be made: ${failure.status}` };
  }
}

/**
 * Uses the copy's name up: a placeholder under it, deleted at once, leaves the name reserved, so a create
 * of the copy still in flight answers ALREADY_EXISTS instead of landing.
 */
async function useUpName(
  tasks: CloudTasksClient,
  copy: TaskName,
  source: Task | 'gone',
): Promise<Task | typeof USED_UP | RecoveryResult> {
  const placeholder = {
    name: copy.name,
    // Never due while it exists: it is deleted right after.
    scheduleTime: new Date(Date.now() + 29 * 24 * 3_600_000).toISOString(),
    httpRequest: {
      url:
        source === 'gone'
          ? 'https://placeholder.invalid/'
          : (source.httpRequest?.url ?? 'https://placeholder.invalid/'),
      headers: { [PLACEHOLDER_HEADER]: '1' },
    },
  };
  try {
    await tasks.createTask(queueOf(copy), placeholder);
  } catch (error) {
    const failure = toCloudTasksError(error);
    if (failure.status === 'ALREADY_EXISTS') return afterAlreadyExists(tasks, copy);
    return { done: false, error: `CreateTask: ${failure.message}` };
  }
  return deleteTask(tasks, copy, 'undone', "the original ran or is gone: the copy's name is used up");
}

/** The name is taken: the copy (or a placeholder) is there, or its name is used up (nothing can land). */
async function afterAlreadyExists(
  tasks: CloudTasksClient,
  copy: TaskName,
): Promise<Task | typeof USED_UP | RecoveryResult> {
  const existing = await read(tasks, copy, 'FULL');
  if (isError(existing)) return retry('the copy', existing);
  return existing === 'gone' ? USED_UP : existing;
}

async function deleteTask(
  tasks: CloudTasksClient,
  name: TaskName,
  outcome: 'finished' | 'undone',
  why?: string,
): Promise<RecoveryResult> {
  try {
    await tasks.deleteTask(name);
  } catch (error) {
    const failure = toCloudTasksError(error);
    if (failure.status !== 'NOT_FOUND') return { done: false, error: `DeleteTask: ${failure.message}` };
  }
  return { done: true, outcome, ...(why !== undefined && { why }) };
}

async function read(tasks: CloudTasksClient, name: TaskName, view: 'BASIC' | 'FULL'): Promise<Read> {
  try {
    return await tasks.getTask(name, view);
  } catch (error) {
    const failure = toCloudTasksError(error);
    return failure.status === 'NOT_FOUND' ? 'gone' : { error: `GetTask: ${failure.message}` };
  }
}

function isError(read: Read): read is { readonly error: string } {
  return typeof read === 'object' && 'error' in read;
}

function isTask(value: 'made' | Task | typeof USED_UP | RecoveryResult): value is Task {
  return typeof value === 'object' && !('done' in value);
}

function retry(what: string, read: { readonly error: string }): RecoveryResult {
  return { done: false, error: `${what} could not be read (${read.error})` };
}

function queueOf(task: TaskName): QueueName {
  return parseQueueName(task.queueName)!;
}
