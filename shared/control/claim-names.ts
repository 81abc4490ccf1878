/**
 * Writing one task's control task (a claim, or queued work) under the first of its names that is free
 * (docs/claims.md "Reserved names"). A released claim's name stays reserved in Cloud Tasks for a while, so
 * a name that answers ALREADY_EXISTS but reads NOT_FOUND was released: the next generation's name is
 * tried. Concurrent deliveries walk the same names in the same order, so they still race on one name and
 * only one of them wins it.
 */
import {
  toCloudTasksError,
  type CloudTasksClient,
  type CloudTasksError,
  type NewTask,
} from '../cloud-tasks/client.js';
import { parseTaskName, type QueueName } from '../cloud-tasks/names.js';
import {
  controlTaskFor,
  MAX_CLAIM_GENERATIONS,
  writerOfControlUrl,
  type ControlTarget,
  type ControlWork,
} from './control-tasks.js';

export type ControlCreateResult =
  | {
      readonly kind: 'created';
      readonly name: string;
      /** An earlier name of the walk was released: another delivery held it and gave it up. */
      readonly afterRelease: boolean;
    }
  /** A control task of this request holds the task now (or a create whose answer was lost made one). */
  | { readonly kind: 'exists'; readonly name: string }
  | { readonly kind: 'failed'; readonly error: CloudTasksError };

/** Runs one call; callers bound their calls in flight with it. */
export type CallGate = <T>(call: () => Promise<T>) => Promise<T>;

const direct: CallGate = (call) => call();

/** Creates the control task for `work` due at `scheduleMs`, under its first free name. */
export function createControlTask(
  tasks: CloudTasksClient,
  target: ControlTarget,
  work: ControlWork,
  scheduleMs: number,
  gate: CallGate = direct,
): Promise<ControlCreateResult> {
  return createUnderFreeName(
    tasks,
    target.queue,
    (generation) => controlTaskFor(work, target, scheduleMs, generation),
    gate,
  );
}

/** Creates the task `taskOf(generation)` makes, under the first generation's name that is not reserved. */
export async function createUnderFreeName(
  tasks: CloudTasksClient,
  queue: QueueName,
  taskOf: (generation: number) => NewTask,
  gate: CallGate = direct,
): Promise<ControlCreateResult> {
  let failure: CloudTasksError | undefined;
  for (let generation = 0; generation < MAX_CLAIM_GENERATIONS; generation++) {
    const task = taskOf(generation);
    try {
      await gate(() => tasks.createTask(queue, task));
      return { kind: 'created', name: task.name, afterRelease: generation > 0 };
    } catch (error) {
      failure = toCloudTasksError(error);
      if (failure.status !== 'ALREADY_EXISTS' && !failure.answerLost)
        return { kind: 'failed', error: failure };
      const state = await stateOf(tasks, task.name, gate);
      if (typeof state === 'object') {
        // A lost answer whose task is there as this run wrote it landed: the task is this run's
        // (docs/claims.md "Reserved names").
        const writer = writerOfControlUrl(task.httpRequest?.url);
        const ours = failure.answerLost && writer !== undefined && writerOfControlUrl(state.url) === writer;
        return ours
          ? { kind: 'created', name: task.name, afterRelease: generation > 0 }
          : { kind: 'exists', name: task.name };
      }
      // A lost answer whose task is not there (yet): unknown, never a reason to take the next name.
      if (failure.answerLost || state !== 'released') return { kind: 'failed', error: failure };
    }
  }
  return { kind: 'failed', error: failure! };
}

/**
 * Live (its URL, which names its writer), released (NOT_FOUND: its name is reserved, or it never existed),
 * or unknown (the read failed).
 */
async function stateOf(
  tasks: CloudTasksClient,
  name: string,
  gate: CallGate,
): Promise<{ readonly url: string | undefined } | 'released' | 'unknown'> {
  const parsed = parseTaskName(name);
  if (!parsed) return 'unknown';
  try {
    const live = await gate(() => tasks.getTask(parsed));
    return { url: live.httpRequest?.url };
  } catch (error) {
    return toCloudTasksError(error).status === 'NOT_FOUND' ? 'released' : 'unknown';
  }
}
