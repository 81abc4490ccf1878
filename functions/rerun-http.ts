/**
 * rerunHttp: the deploy-pipeline hook. POST one event as JSON; answers the run report, or an error in
 * Google's shape (SPEC 3).
 */
import type { HttpFunction, Request } from '@google-cloud/functions-framework';
import { parseRerunEvent } from '../shared/events.js';
import { CloudTasksUnavailableError } from '../shared/rerun.js';
import { rerun, type Runtime } from '../shared/runtime.js';
import { isControlEventKind } from '../shared/control-status.js';
import { answerControlEvent } from './control-http.js';
import { badRequestDetail, sendGoogleError } from './google-error.js';

/** Largest body accepted. */
export const MAX_BODY_BYTES = 1024 * 1024;

/** The HTTP handler over a runtime (index.ts registers it; tests register their own). */
export function rerunHttpHandler(runtime: Runtime): HttpFunction {
  return async (req, res) => {
    if (req.method !== 'POST') {
      res.set('Allow', 'POST');
      return sendGoogleError(res, 405, `method ${req.method} not allowed: POST a JSON event`);
    }
    if (bodyBytes(req) > MAX_BODY_BYTES) return sendGoogleError(res, 413, 'the body is larger than 1 MiB');
    if (!/^application\/json\s*(;|$)/i.test(req.get('content-type') ?? '')) {
      return sendGoogleError(res, 415, 'Content-Type must be application/json');
    }
    if (isControlEventKind(req.body)) return answerControlEvent(runtime, req.body, res);
    const parsed = parseRerunEvent(req.body, Date.now());
    if (!parsed.success) {
      runtime.log.warn({ fields: parsed.error.fields }, 'invalid event rejected');
      return sendGoogleError(res, 400, parsed.error.message, [
        badRequestDetail(parsed.error.fields, 'invalid value'),
      ]);
    }
    try {
      const result = await rerun(runtime, parsed.data, (name) => req.get(name));
      if (!result.ok) {
        return sendGoogleError(
          res,
          403,
          `queues outside the allowlist (RERUN_QUEUES): ${result.refused.join(', ')}`,
          [
            {
              '@type': 'type.googleapis.com/google.rpc.ErrorInfo',
              reason: 'QUEUE_NOT_ALLOWED',
              domain: 'cloud-tasks-rerun',
              metadata: { runId: result.runId },
            },
          ],
        );
      }
      const { report } = result;
      // A control task (queued mode) is delivered by Cloud Tasks, which retries only on a non-2xx answer:
      // work left undone must not be acknowledged. Every other caller gets the report, whatever the mix.
      if (req.get('x-cloudtasks-taskname') && (report.counts.deferred > 0 || report.counts.failed > 0)) {
        return sendGoogleError(
          res,
          503,
          `rerun ${report.runId} left work undone; Cloud Tasks retries this task`,
          [
            {
              '@type': 'type.googleapis.com/google.rpc.ErrorInfo',
              reason: 'RERUN_INCOMPLETE',
              domain: 'cloud-tasks-rerun',
              metadata: { runId: report.runId },
            },
          ],
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
  };
}

function bodyBytes(req: Request): number {
  return req.rawBody?.length ?? Number(req.get('content-length') ?? 0);
}
