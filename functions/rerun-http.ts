/**
 * rerunHttp: the deploy-pipeline hook, the control tasks' target, and a Pub/Sub push endpoint or
 * Eventarc target. POST one event as JSON: the run report, or an error in Google's shape. A Pub/Sub push
 * envelope or a binary-mode `messagePublished` CloudEvent follows rerunPubsub's rules instead: only 2xx
 * acknowledges, so a permanent problem is answered 204 and only work left undone gets 503.
 */
import type { HttpFunction, Request, Response } from '@google-cloud/functions-framework';
import { httpDelivery, parseRerunEvent } from '../shared/triggers/events.js';
import { deliverMessage } from '../shared/platform/delivery.js';
import { CloudTasksUnavailableError } from '../shared/run/run.js';
import { controlTaskOf, rerun, type Runtime } from '../shared/platform/runtime.js';
import { isControlEventKind } from '../shared/control/status.js';
import { answerControlEvent, answerMoveRecovery } from './control-http.js';
import { isMoveRecoveryKind, isNoOpRecordBody } from '../shared/control/control-tasks.js';
import { isFirstCutoffBody } from '../shared/platform/first-deliveries.js';
import { badRequestDetail, sendGoogleError } from './google-error.js';
import { outsideDomain } from './outside-domain.js';

/** Largest plain event accepted. */
export const MAX_BODY_BYTES = 1024 * 1024;
/** Largest Pub/Sub delivery accepted: a push envelope may carry up to 10 MB of message. */
export const MAX_MESSAGE_BODY_BYTES = 14 * 1024 * 1024;

/** The HTTP handler over a runtime (index.ts registers it; tests register their own). */
export function rerunHttpHandler(runtime: Runtime): HttpFunction {
  return outsideDomain(async (req: Request, res: Response) => {
    const refuse = refusalFor(runtime, req, res);
    if (req.method !== 'POST') {
      res.set('Allow', 'POST');
      return refuse(405, 'METHOD_NOT_ALLOWED', `method ${req.method} not allowed: POST a JSON event`);
    }
    const isMessage = req.get('ce-type') !== undefined || isPushEnvelope(req.body);
    const limit = isMessage ? MAX_MESSAGE_BODY_BYTES : MAX_BODY_BYTES;
    if (bodyBytes(req) > limit) {
      const size = limit === MAX_BODY_BYTES ? '1 MiB' : '14 MiB';
      return refuse(413, 'BODY_TOO_LARGE', `the body is larger than ${size}`);
    }
    if (!/^application\/json\s*(;|$)/i.test(req.get('content-type') ?? '')) {
      return refuse(415, 'NOT_JSON', 'Content-Type must be application/json');
    }
    if (refuse.controlTask !== undefined && (isFirstCutoffBody(req.body) || isNoOpRecordBody(req.body))) {
      // A record (a request's first cutoff, a withdrawn copy, a cancelled request) or a delivery's lease
      // falls due after every use of it: nothing to do.
      runtime.log.debug({ controlTask: refuse.controlTask }, "a record's control task fell due");
      return void res.status(204).end();
    }
    if (refuse.controlTask !== undefined && isMoveRecoveryKind(req.body)) {
      return answerMoveRecovery(runtime, req.body, res, refuse);
    }
    if (isControlEventKind(req.body)) return answerControlEvent(runtime, req.body, res);
    if (isMessage) return answerMessage(runtime, req, res);
    const receivedMs = Date.now();
    const parsed = parseRerunEvent(req.body, (event) => httpDelivery(event, receivedMs));
    if (!parsed.success) {
      runtime.log.warn({ fields: parsed.error.fields }, 'invalid event rejected');
      return refuse(400, 'INVALID_EVENT', parsed.error.message, [
        badRequestDetail(parsed.error.fields, 'invalid value'),
      ]);
    }
    try {
      const result = await rerun(runtime, parsed.data, (name) => req.get(name));
      if (!result.ok) {
        return refuse(403, result.reason, result.message, [errorInfo(result.reason, result.runId)]);
      }
      const { report } = result;
      // A control task is delivered by Cloud Tasks, which retries only on a non-2xx answer: work left
      // undone must not be acknowledged. Every other caller gets the report, whatever the mix.
      if (refuse.controlTask !== undefined && report.continueWith) {
        return sendGoogleError(
          res,
          503,
          `rerun ${report.runId} left work undone; Cloud Tasks retries this task`,
          [errorInfo('RERUN_INCOMPLETE', report.runId)],
        );
      }
      res.status(200).json(report);
    } catch (error) {
      if (error instanceof CloudTasksUnavailableError) {
        return sendGoogleError(res, 503, `${error.message}; nothing was dispatched, safe to call again`);
      }
      runtime.log.error({ err: error }, 'rerun failed unexpectedly');
      sendGoogleError(res, 500, 'internal error; see the logs');
    }
  });
}

/** Answers a request that can never be carried out, as it is: bad input or a refusal. */
type Refuse = ((code: number, reason: string, message: string, details?: object[]) => void) & {
  /** The control task this delivery is (its X-CloudTasks-TaskName), when the control queue sent it. */
  readonly controlTask: string | undefined;
};

/**
 * A caller gets the 4xx. A control task gets 200: Cloud Tasks retries any other answer, and the control
 * queue never gives up, so it would come back forever. It is dropped with one ERROR line that says why
 * (docs/events.md "Control tasks that can never be carried out").
 */
function refusalFor(runtime: Runtime, req: Request, res: Response): Refuse {
  const controlTask = controlTaskOf((name) => req.get(name), runtime.config.controlQueue);
  const refuse = (code: number, reason: string, message: string, details: object[] = []) => {
    if (controlTask === undefined) return sendGoogleError(res, code, message, details);
    runtime.log.error(
      { controlTask, dropReason: reason, droppedControlTasks: 1, httpStatus: code, problem: message },
      'control task dropped: it can never be carried out',
    );
    res.status(200).json({ dropped: { controlTask, reason, message } });
  };
  return Object.assign(refuse, { controlTask });
}

/** A Pub/Sub delivery: 200 with the report or 204 acknowledge; 503 has it redelivered. */
async function answerMessage(runtime: Runtime, req: Request, res: Response): Promise<void> {
  const answer = await deliverMessage(runtime, {
    type: req.get('ce-type'),
    id: req.get('ce-id'),
    data: req.body,
    header: (name) => req.get(name),
  });
  if (!answer.ack) {
    return sendGoogleError(res, 503, `${answer.problem}; Pub/Sub redelivers this message`, [
      errorInfo('RERUN_INCOMPLETE', answer.report?.runId),
    ]);
  }
  // A permanent problem (a queue that no longer exists, say) is answered 204, as one found before the run.
  const permanent = answer.report?.queues.some((queue) => queue.error !== undefined && !queue.transient);
  if (answer.report && !permanent) res.status(200).json(answer.report);
  else res.status(204).end();
}

/**
 * `{"message": {"messageId": "...", ...}, "subscription": "..."}`: the body of a Pub/Sub push subscription,
 * which always carries both (https://cloud.google.com/pubsub/docs/push#receive_push). Anything else is a
 * plain event.
 */
function isPushEnvelope(body: unknown): boolean {
  if (!isRecord(body) || 'kind' in body || typeof body.subscription !== 'string') return false;
  const { message } = body;
  return (
    isRecord(message) && (typeof message.messageId === 'string' || typeof message.message_id === 'string')
  );
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function errorInfo(reason: string, runId: string | undefined): object {
  return {
    '@type': 'type.googleapis.com/google.rpc.ErrorInfo',
    reason,
    domain: 'cloud-tasks-rerun',
    metadata: runId === undefined ? {} : { runId },
  };
}

function bodyBytes(req: Request): number {
  return req.rawBody?.length ?? Number(req.get('content-length') ?? 0);
}
