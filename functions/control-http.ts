/**
 * rerunHttp's `status` and `cancel` events (queued mode): how many control tasks of a request still wait,
 * and deleting them. And the delivery of a move's recovery task (docs/claims.md "A crash mid-redrive").
 */
import type { Response } from '@google-cloud/functions-framework';
import { CloudTasksError } from '../shared/cloud-tasks/client.js';
import {
  cancelRequest,
  NoCancelTargetError,
  NoControlQueueError,
  parseControlEvent,
  requestStatus,
  type ControlScope,
} from '../shared/control/status.js';
import { controlTargetOf, MoveRecoveryBody, type ControlTarget } from '../shared/control/control-tasks.js';
import { DEFAULT_ARMING_DELAY_MS } from '../shared/run/copy.js';
import { recoverDueMoves, recoverMove } from '../shared/run/recover-move.js';
import type { Runtime } from '../shared/platform/runtime.js';
import { inputErrorOf } from '../shared/triggers/events.js';
import { badRequestDetail, sendGoogleError } from './google-error.js';

/** Answers one status or cancel event: 200 with the counts, 400 for a bad event or no control queue. */
export async function answerControlEvent(runtime: ControlScope, body: unknown, res: Response): Promise<void> {
  const parsed = parseControlEvent(body);
  if (!parsed.success) {
    return sendGoogleError(res, 400, parsed.error.message, [
      badRequestDetail(parsed.error.fields, 'invalid value'),
    ]);
  }
  const { kind, requestId } = parsed.data;
  try {
    res
      .status(200)
      .json(
        kind === 'status' ? await requestStatus(runtime, requestId) : await cancelRequest(runtime, requestId),
      );
  } catch (error) {
    if (error instanceof NoControlQueueError || error instanceof NoCancelTargetError) {
      return sendGoogleError(res, 400, error.message);
    }
    if (error instanceof CloudTasksError) {
      return sendGoogleError(res, 503, `the control queue could not be read or written: ${error.status}`);
    }
    throw error;
  }
}

/**
 * Answers one delivery of a move's recovery task: 200 once the move is finished or undone (or can never
 * be, with an ERROR line), 503 while a call fails for a reason that may pass, so Cloud Tasks delivers it
 * again. `refuse` answers a body that is not valid.
 */
export async function answerMoveRecovery(
  runtime: Runtime,
  body: unknown,
  res: Response,
  refuse: ((code: number, reason: string, message: string, details?: object[]) => void) & {
    readonly controlTask: string | undefined;
  },
): Promise<void> {
  const ownId = refuse.controlTask ?? '';
  const parsed = MoveRecoveryBody.safeParse(body);
  if (!parsed.success) {
    const error = inputErrorOf(parsed.error);
    return refuse(400, 'INVALID_RECOVERY', error.message, [badRequestDetail(error.fields, 'invalid value')]);
  }
  const move = parsed.data;
  // The control queue delivered this, and config.ts accepts one only with the URL and account it needs.
  const control = controlTargetOf(runtime.config, ownId)!;
  const armingDelayMs = runtime.redriveArmingDelayMs ?? DEFAULT_ARMING_DELAY_MS;
  const result = await recoverMove(runtime.tasks, control, move, armingDelayMs, Date.now);
  const fields = { task: move.original, copy: move.copy };
  await sweepDueMoves(runtime, control, armingDelayMs, ownId);
  if (!result.done) {
    runtime.log.warn({ ...fields, problem: result.error }, 'move not recovered yet; Cloud Tasks retries it');
    return sendGoogleError(res, 503, `the move could not be recovered yet: ${result.error}`);
  }
  if (result.outcome === 'refused')
    runtime.log.error({ ...fields, problem: result.why }, 'move not recovered');
  else runtime.log.info({ ...fields, outcome: result.outcome, why: result.why }, 'move recovered');
  res.status(200).json({ outcome: result.outcome, ...(result.why !== undefined && { why: result.why }) });
}

/** Whether this process is sweeping already: one sweep at a time does the work of all. */
let sweeping = false;

/** The sweep of the other due recovery tasks; a failure is logged, their own deliveries come anyway. */
async function sweepDueMoves(
  runtime: Runtime,
  control: ControlTarget,
  armingDelayMs: number,
  ownId: string,
): Promise<void> {
  if (sweeping) return;
  sweeping = true;
  try {
    const { settled, left } = await recoverDueMoves(
      runtime.tasks,
      control,
      armingDelayMs,
      Date.now,
      ownId,
      runtime.bodies,
    );
    if (settled + left > 0) runtime.log.info({ settled, left }, 'due moves recovered');
  } catch (error) {
    runtime.log.warn({ err: error }, 'the control queue could not be listed for due moves');
  } finally {
    sweeping = false;
  }
}
