/**
 * Status and cancel of a queued request (kinds `status` and `cancel`, docs/claims.md): how many control tasks of
 * one request still wait in the control queue, and deleting them once the request's cancel record is written
 * (docs/claims.md "Cancelled requests").
 */
import { z } from 'zod';
import { CloudTasksError, toCloudTasksError, type CloudTasksClient } from '../cloud-tasks/client.js';
import { cancelRecordNameOf, cancelRecordTaskFor } from './control-tasks.js';
import { waitingControlTasks } from './waiting.js';
import { inputErrorOf, RequestId, type InputError } from '../triggers/events.js';
import type { QueueName } from '../cloud-tasks/names.js';

/** `{"kind":"status","requestId":...}` or `{"kind":"cancel","requestId":...}`. */
export const ControlEvent = z.strictObject({
  kind: z.enum(['status', 'cancel']),
  requestId: RequestId,
});
export type ControlEvent = z.infer<typeof ControlEvent>;

/**
 * What status and cancel need of a runtime: the client and the control queue; for cancel also where its
 * record is sent when it falls due (rerunHttp's URL and the invoker account).
 */
export interface ControlScope {
  readonly tasks: CloudTasksClient;
  readonly config: {
    readonly controlQueue: QueueName | undefined;
    readonly selfUrl?: string | undefined;
    readonly invokerServiceAccount?: string | undefined;
  };
}

/** What `status` answers. */
export interface RequestStatus {
  readonly requestId: string;
  readonly controlQueue: string;
  /** Control tasks of the request still waiting (not yet carried out). */
  readonly waiting: number;
}

/** What `cancel` answers. */
export interface CancelResult {
  readonly requestId: string;
  readonly controlQueue: string;
  /** Control tasks deleted by this call. */
  readonly cancelled: number;
  /** Control tasks that were gone before their delete reached them (carried out meanwhile). */
  readonly alreadyGone: number;
}

/** True when a JSON body is meant as a status or cancel event (then ControlEvent decides if it is valid). */
export function isControlEventKind(json: unknown): boolean {
  const kind = (json as { kind?: unknown } | null)?.kind;
  return kind === 'status' || kind === 'cancel';
}

/** Validates a status or cancel event; expected failures are values, like zod's safeParse. */
export function parseControlEvent(
  json: unknown,
): { success: true; data: ControlEvent } | { success: false; error: InputError } {
  const parsed = ControlEvent.safeParse(json);
  return parsed.success
    ? { success: true, data: parsed.data }
    : { success: false, error: inputErrorOf(parsed.error) };
}

/** Thrown when status or cancel is asked of an instance without a control queue (RERUN_CONTROL_QUEUE). */
export class NoControlQueueError extends Error {
  override readonly name = 'NoControlQueueError';
  constructor() {
    super('no control queue: set RERUN_CONTROL_QUEUE (queued mode) to ask for status or cancel');
  }
}

/** How many control tasks of `requestId` still wait. Throws NoControlQueueError or CloudTasksError. */
export async function requestStatus(runtime: ControlScope, requestId: string): Promise<RequestStatus> {
  const controlQueue = controlQueueOf(runtime);
  const waiting = await waitingControlTasks(runtime.tasks, controlQueue, requestId);
  return { requestId, controlQueue: controlQueue.name, waiting: waiting.length };
}

/** Thrown when cancel has no rerunHttp URL or invoker account to send its record to. */
export class NoCancelTargetError extends Error {
  override readonly name = 'NoCancelTargetError';
  constructor() {
    super('cancel writes a control task to rerunHttp: set RERUN_SELF_URL and RERUN_INVOKER_SA');
  }
}

/**
 * Writes the request's cancel record, then deletes every waiting control task of `requestId` (claims that
 * live runs hold among them: docs/claims.md "Cancelled requests"); NOT_FOUND means it was carried out (or
 * deleted) meanwhile. Throws NoControlQueueError, NoCancelTargetError, or CloudTasksError on any other
 * failed call (nothing is deleted when the record could not be written).
 */
export async function cancelRequest(runtime: ControlScope, requestId: string): Promise<CancelResult> {
  const controlQueue = controlQueueOf(runtime);
  const { selfUrl, invokerServiceAccount } = runtime.config;
  if (!selfUrl || !invokerServiceAccount) throw new NoCancelTargetError();
  await recordCancel(runtime.tasks, { queue: controlQueue, selfUrl, invokerServiceAccount }, requestId);
  let cancelled = 0;
  let alreadyGone = 0;
  for (const task of await waitingControlTasks(runtime.tasks, controlQueue, requestId)) {
    try {
      await runtime.tasks.deleteTask(task);
      cancelled++;
    } catch (error) {
      if (!(error instanceof CloudTasksError && error.status === 'NOT_FOUND')) throw error;
      alreadyGone++;
    }
  }
  return { requestId, controlQueue: controlQueue.name, cancelled, alreadyGone };
}

/**
 * Writes the record that `requestId` is cancelled; there already (an earlier cancel, or this create whose
 * answer was lost) is as good. Throws CloudTasksError when it is not there.
 */
async function recordCancel(
  tasks: CloudTasksClient,
  target: { readonly queue: QueueName; readonly selfUrl: string; readonly invokerServiceAccount: string },
  requestId: string,
): Promise<void> {
  let failure: CloudTasksError;
  try {
    await tasks.createTask(target.queue, cancelRecordTaskFor(requestId, target, Date.now()));
    return;
  } catch (error) {
    failure = toCloudTasksError(error);
    if (failure.status !== 'ALREADY_EXISTS' && !failure.answerLost) throw failure;
  }
  const found = await requestCancelled(tasks, target.queue, requestId);
  if (found === true) return;
  if (found !== false) throw found;
  // ALREADY_EXISTS and gone: an earlier record fell due (or was deleted) and Cloud Tasks still reserves its
  // name. A lost answer and gone: unknown. Either way the request is not recorded as cancelled.
  throw new CloudTasksError(
    `the cancel record of request ${requestId} could not be written: ${failure.status}`,
    failure.answerLost ? 'UNAVAILABLE' : 'FAILED_PRECONDITION',
    { cause: failure },
  );
}

/** Whether the request's cancel record is there, or the failure of the read. */
export async function requestCancelled(
  tasks: CloudTasksClient,
  controlQueue: QueueName,
  requestId: string,
): Promise<boolean | CloudTasksError> {
  try {
    await tasks.getTask(cancelRecordNameOf(controlQueue, requestId));
    return true;
  } catch (error) {
    const failure = toCloudTasksError(error);
    return failure.status === 'NOT_FOUND' ? false : failure;
  }
}

function controlQueueOf(runtime: ControlScope): QueueName {
  const queue = runtime.config.controlQueue;
  if (!queue) throw new NoControlQueueError();
  return queue;
}
