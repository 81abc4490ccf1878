/**
 * rerunHttp's `status` and `cancel` events (queued mode): how many control tasks of a request still wait,
 * and deleting them.
 */
import type { Response } from '@google-cloud/functions-framework';
import { CloudTasksError } from '../shared/cloud-tasks/client.js';
import {
  cancelRequest,
  NoControlQueueError,
  parseControlEvent,
  requestStatus,
  type ControlScope,
} from '../shared/control/status.js';
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
    if (error instanceof NoControlQueueError) return sendGoogleError(res, 400, error.message);
    if (error instanceof CloudTasksError) {
      return sendGoogleError(res, 503, `the control queue could not be read: ${error.status}`);
    }
    throw error;
  }
}
