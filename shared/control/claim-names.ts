/**
 * Writing one task's control task (a claim, or queued work) under the first of its names that is free
 * (docs/claims.md "Reserved names"). A released claim's name stays reserved in Cloud Tasks for a while, so
 * a name that answers ALREADY_EXISTS but reads NOT_FOUND was released: the next generation's name is
 * tried. Concurrent deliveries walk the same names in the same order, so they still race on one name and
 * only one of them wins it. Nothing is written for a cancelled request (docs/claims.md "Cancelled requests").
 */
import {
  toCloudTasksError,
  type CloudTasksClient,
  type CloudTasksError,
  type NewTask,
} from '../cloud-tasks/client.js';
import { parseTaskName, type QueueName } from '../cloud-tasks/names.js';
import { requestCancelled } from './status.js';
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

/** A request's control task written, or not: the request was cancelled. */
export type ControlWriteResult = ControlCreateResult | { readonly kind: 'cancelled' };

/** Cancelled, the record unreadable, or (undefined) not cancelled. */
type CancelAnswer =
  { readonly kind: 'cancelled' } | { readonly kind: 'failed'; readonly error: CloudTasksError };

/** Runs one call; callers bound their calls in flight with it. */
export type CallGate = <T>(call: () => Promise<T>) => Promise<T>;

const direct: CallGate = (call) => call();

/**
 * Creates the control task for `work` due at `scheduleMs`, under its first free name; nothing when the
 * request was cancelled.
 */
export async function createControlTask(
  tasks: CloudTasksClient,
  target: ControlTarget,
  work: ControlWork,
  scheduleMs: number,
  gate: CallGate = direct,
): Promise<ControlWriteResult> {
  const cancels = cancelReadsOf(target, work.requestId);
  const cancelled = await cancels.kept(tasks, gate);
  if (cancelled) return cancelled;
  return createUnderFreeName(
    tasks,
    target.queue,
    (generation) => controlTaskFor(work, target, scheduleMs, generation),
    gate,
    // A released name may be a claim that cancel deleted under a live run: the record is read afresh.
    () => cancels.fresh(tasks, gate),
  );
}

/**
 * Whether the request was cancelled, as this run read it once (`target` is the run's own), or the
 * failure of that read; undefined when it was not.
 */
export function requestCancelledForRun(
  tasks: CloudTasksClient,
  target: ControlTarget,
  requestId: string,
): Promise<CancelAnswer | undefined> {
  return cancelReadsOf(target, requestId).kept(tasks, direct);
}

/**
 * Creates the task `taskOf(generation)` makes, under the first generation's name that is not reserved.
 * `beforeNext`, asked before a later generation's name is taken, ends the walk with what it answers.
 */
export async function createUnderFreeName<S = never>(
  tasks: CloudTasksClient,
  queue: QueueName,
  taskOf: (generation: number) => NewTask,
  gate: CallGate = direct,
  beforeNext?: () => Promise<S | undefined>,
): Promise<ControlCreateResult | S> {
  let failure: CloudTasksError | undefined;
  for (let generation = 0; generation < MAX_CLAIM_GENERATIONS; generation++) {
    const answer = await createNamed(tasks, queue, taskOf(generation), generation > 0, gate);
    if (answer.kind !== 'released') return answer;
    failure = answer.error;
    const stop = generation + 1 < MAX_CLAIM_GENERATIONS ? await beforeNext?.() : undefined;
    if (stop !== undefined) return stop;
  }
  return { kind: 'failed', error: failure! };
}

/**
 * Creates `task` under its one name. A name that reads released is not taken: another writer held it and
 * gave it up (docs/claims.md "One delivery at a time").
 */
export async function createOnce(
  tasks: CloudTasksClient,
  queue: QueueName,
  task: NewTask,
  gate: CallGate = direct,
): Promise<ControlCreateResult> {
  const answer = await createNamed(tasks, queue, task, false, gate);
  return answer.kind === 'released' ? { kind: 'failed', error: answer.error } : answer;
}

/** One create, read back when it answered ALREADY_EXISTS or lost its answer (docs/claims.md "Reserved names"). */
async function createNamed(
  tasks: CloudTasksClient,
  queue: QueueName,
  task: NewTask,
  afterRelease: boolean,
  gate: CallGate,
): Promise<ControlCreateResult | { readonly kind: 'released'; readonly error: CloudTasksError }> {
  try {
    await gate(() => tasks.createTask(queue, task));
    return { kind: 'created', name: task.name, afterRelease };
  } catch (error) {
    const failure = toCloudTasksError(error);
    if (failure.status !== 'ALREADY_EXISTS' && !failure.answerLost) return { kind: 'failed', error: failure };
    const state = await stateOf(tasks, task.name, gate);
    if (typeof state === 'object') {
      // A lost answer whose task is there as this run wrote it landed: the task is this run's
      // (docs/claims.md "Reserved names").
      const writer = writerOfControlUrl(task.httpRequest?.url);
      const ours = failure.answerLost && writer !== undefined && writerOfControlUrl(state.url) === writer;
      return ours ? { kind: 'created', name: task.name, afterRelease } : { kind: 'exists', name: task.name };
    }
    // A lost answer whose task is not there (yet): unknown, never a reason to take the next name.
    if (failure.answerLost || state !== 'released') return { kind: 'failed', error: failure };
    return { kind: 'released', error: failure };
  }
}

/**
 * A run's reads of its request's cancel record (docs/claims.md "Cancelled requests"): the first is made
 * once and kept; a fresh one after each released name met, since cancel writes the record before it
 * deletes a claim. Once one finds the record, the request stays cancelled for the run.
 */
class CancelReads {
  #first: Promise<CancelAnswer | undefined> | undefined;
  #cancelled = false;

  constructor(
    private readonly queue: QueueName,
    private readonly requestId: string,
  ) {}

  kept(tasks: CloudTasksClient, gate: CallGate): Promise<CancelAnswer | undefined> {
    if (this.#cancelled) return Promise.resolve(CANCELLED);
    return (this.#first ??= this.fresh(tasks, gate));
  }

  async fresh(tasks: CloudTasksClient, gate: CallGate): Promise<CancelAnswer | undefined> {
    if (this.#cancelled) return CANCELLED;
    const found = await gate(() => requestCancelled(tasks, this.queue, this.requestId));
    if (found === false) return undefined;
    if (found !== true) return { kind: 'failed', error: found };
    this.#cancelled = true;
    return CANCELLED;
  }
}

const CANCELLED = { kind: 'cancelled' } as const;

/** Each run's reads, by its control target (a run makes its own) and requestId. */
const cancelReads = new WeakMap<ControlTarget, Map<string, CancelReads>>();

function cancelReadsOf(target: ControlTarget, requestId: string): CancelReads {
  let byRequest = cancelReads.get(target);
  if (!byRequest) cancelReads.set(target, (byRequest = new Map<string, CancelReads>()));
  let reads = byRequest.get(requestId);
  if (!reads) byRequest.set(requestId, (reads = new CancelReads(target.queue, requestId)));
  return reads;
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
