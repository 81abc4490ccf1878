/**
 * Status and cancel of a queued request (kinds `status` and `cancel`, docs/claims.md): how many control tasks of
 * one request still wait in the control queue, and deleting them.
 */
import { z } from 'zod';
import { CloudTasksError, type CloudTasksClient } from '../cloud-tasks/client.js';
import { waitingControlTasks } from './waiting.js';
import { inputErrorOf, RequestId, type InputError } from '../triggers/events.js';
import type { QueueName } from '../cloud-tasks/names.js';

/** `{"kind":"status","requestId":...}` or `{"kind":"cancel","requestId":...}`. */
export const ControlEvent = z.strictObject({
  kind: z.enum(['status', 'cancel']),
  requestId: RequestId,
});
export type ControlEvent = z.infer<typeof ControlEvent>;

/** What status and cancel need of a runtime: the client and the control queue. */
export interface ControlScope {
  readonly tasks: CloudTasksClient;
  readonly config: { readonly controlQueue: QueueName | undefined };
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

/**
 * Deletes every waiting control task of `requestId`; NOT_FOUND means it was carried out (or deleted)
 * meanwhile. Throws NoControlQueueError, or CloudTasksError on any other failed call.
 */
export async function cancelRequest(runtime: ControlScope, requestId: string): Promise<CancelResult> {
  const controlQueue = controlQueueOf(runtime);
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

function controlQueueOf(runtime: ControlScope): QueueName {
  const queue = runtime.config.controlQueue;
  if (!queue) throw new NoControlQueueError();
  return queue;
}
