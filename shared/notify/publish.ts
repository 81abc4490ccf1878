/**
 * The run's end on Pub/Sub (docs/notifications.md): one message per finished run to RERUN_NOTIFY_TOPIC,
 * published through the one Google API transport (shared/platform/google-api.ts), and in queued mode one message when a request's last
 * control task is done. A publish is retried within the caller's deadline and never throws: a notification
 * never changes a run's outcome or its answer.
 * https://cloud.google.com/pubsub/docs/reference/rest/v1/projects.topics/publish
 */
import type { AuthClient } from 'google-auth-library';
import { createGoogleApi, sendWithRetries, type GoogleApiError } from '../platform/google-api.js';
import type { CloudTasksClient } from '../cloud-tasks/client.js';
import type { Config } from '../platform/config.js';
import { waitingControlTasks } from '../control/waiting.js';
import { REQUEST_KIND_HEADER } from '../control/control-tasks.js';
import { EVENT_KINDS } from '../triggers/events.js';
import { runLogger, type HeaderLookup, type Logger } from '../platform/log.js';
import type { QueueName } from '../cloud-tasks/names.js';
import type { RerunReport } from '../run/settle.js';
import { backoffDelayMs } from '../cloud-tasks/retry.js';
import { requestEndMessage, runSummaryMessage, type SummaryMessage } from './summary.js';

/** How long a run's answer may wait for its notification (the caller's deadline is usually now + this). */
export const NOTIFY_BUDGET_MS = 5_000;

/** Publishes the end of runs and of queued requests; every method resolves, whatever Pub/Sub answers. */
export interface Notifier {
  /** Publishes the run-finished message of `report`, retrying until `deadlineMs` (epoch ms). */
  runFinished(report: RerunReport, deadlineMs: number): Promise<void>;
  /** Publishes the request-ended message of the control run that saw its request (of `kind`) end. */
  requestEnded(report: RerunReport, kind: string, deadlineMs: number): Promise<void>;
}

/** The notifier's collaborators and knobs; the defaults are production's. */
export interface NotifierOptions {
  /** Credentials; default PassThroughClient with PUBSUB_EMULATOR_HOST, else Application Default Credentials. */
  readonly authClient?: AuthClient;
  /** The wait before retry `attempt` (0-based); default exponential backoff with full jitter. */
  readonly backoffMs?: (attempt: number) => number;
  /** Longest single publish call. */
  readonly attemptTimeoutMs?: number;
  readonly now?: () => number;
}

const SCOPE = 'https://www.googleapis.com/auth/pubsub';
const RETRYABLE_HTTP = new Set([429, 500, 502, 503, 504]);

/** The notifier of an instance; a no-op when RERUN_NOTIFY_TOPIC is unset. */
export function createNotifier(
  config: Pick<Config, 'notifyTopic' | 'pubsubEmulatorHost'>,
  log: Logger,
  options: NotifierOptions = {},
): Notifier {
  const topic = config.notifyTopic;
  if (topic === undefined) return { runFinished: async () => {}, requestEnded: async () => {} };
  const now = options.now ?? Date.now;
  const backoffMs = options.backoffMs ?? ((attempt: number) => backoffDelayMs(attempt));
  const attemptTimeoutMs = options.attemptTimeoutMs ?? 2_000;
  const api = createGoogleApi({
    baseUrl: `${config.pubsubEmulatorHost ? `http://${config.pubsubEmulatorHost}` : 'https://pubsub.googleapis.com'}/v1/`,
    service: 'Pub/Sub',
    scope: SCOPE,
    local: Boolean(config.pubsubEmulatorHost),
    authClient: options.authClient,
    timeoutMs: attemptTimeoutMs,
  });

  async function publish(
    message: SummaryMessage<unknown>,
    deadlineMs: number,
    runLog: Logger,
  ): Promise<void> {
    const data = {
      messages: [
        {
          data: Buffer.from(JSON.stringify(message.data)).toString('base64'),
          attributes: message.attributes,
        },
      ],
    };
    const fields = { topic, attributes: message.attributes };
    let attempts = 0;
    try {
      const answer = await sendWithRetries(
        () => {
          attempts++;
          return api.call<{ messageIds?: string[] }>({
            method: 'POST',
            path: `${topic}:publish`,
            data,
            timeoutMs: Math.max(1, Math.min(attemptTimeoutMs, deadlineMs - now())),
          });
        },
        (error, attempt) => {
          const failure = error as GoogleApiError;
          if (!isRetryable(failure)) return undefined;
          const delayMs = failure.facts.retryDelayMs ?? backoffMs(attempt);
          return now() + delayMs < deadlineMs ? delayMs : undefined;
        },
      );
      runLog.info({ ...fields, messageId: answer.messageIds?.[0], attempts }, 'notification published');
    } catch (error) {
      const failure = error as GoogleApiError;
      if (failure.facts.noCredentials) {
        runLog.warn({ ...fields, error: failure.message }, 'notification not published: no credentials');
        return;
      }
      // Only the failure's summary: a GaxiosError carries the request, credentials included.
      runLog.warn(
        { ...fields, error: failure.message, attempts, retryable: isRetryable(failure) },
        'notification not published',
      );
    }
  }

  return {
    runFinished: (report, deadlineMs) =>
      publish(runSummaryMessage(report), deadlineMs, runLogger(log, report.runId)),
    requestEnded: (report, kind, deadlineMs) =>
      publish(requestEndMessage(report, kind), deadlineMs, runLogger(log, report.runId)),
  };
}

/** Pub/Sub's own clients retry publish on 429 and these 5xx; no answer at all (reset, timeout) is retried too. */
function isRetryable(failure: GoogleApiError): boolean {
  const { httpStatus, answerLost } = failure.facts;
  return answerLost || (httpStatus !== undefined && RETRYABLE_HTTP.has(httpStatus));
}

/** What requestEnded needs: the control queue to read and the notifier to publish through. */
export interface RequestEndDeps {
  readonly tasks: CloudTasksClient;
  readonly controlQueue: QueueName;
  readonly notifier: Notifier;
  readonly log: Logger;
}

/**
 * Queued mode: after the run of control task `ownTaskId` (its `X-CloudTasks-TaskName`, the task ID),
 * publishes the end of its request (of `requestKind`) when no other control task of the request waits in
 * the control queue.
 * Nothing when the run left work (its control task will run again) or on a dry run. Resolves true when it published (or tried to); never throws.
 */
export async function requestEnded(
  deps: RequestEndDeps,
  report: RerunReport,
  ownTaskId: string,
  requestKind: string,
  deadlineMs: number,
): Promise<boolean> {
  const { requestId } = report;
  if (report.continueWith || report.dryRun) return false;
  const ownId = ownTaskId.slice(ownTaskId.lastIndexOf('/') + 1);
  let others: number;
  try {
    const waiting = await waitingControlTasks(deps.tasks, deps.controlQueue, requestId);
    others = waiting.filter((task) => task.task !== ownId).length;
  } catch (error) {
    runLogger(deps.log, report.runId).warn(
      { requestId, error: (error as Error).message },
      'control queue not read; request end not published',
    );
    return false;
  }
  if (others > 0) return false;
  await deps.notifier.requestEnded(report, requestKind, deadlineMs);
  return true;
}

/** What notifyRunEnd reads of the runtime. */
export interface RunEndDeps {
  readonly config: Pick<Config, 'notifyTopic' | 'controlQueue'>;
  readonly tasks: CloudTasksClient;
  readonly notifier: Notifier;
  readonly log: Logger;
}

/**
 * After a run: nothing on a dry run or without a topic; for a control task of the control queue (queued
 * mode), the request's end when it was the last one waiting; otherwise the run-finished message. Never throws.
 */
export async function notifyRunEnd(
  deps: RunEndDeps,
  report: RerunReport,
  header: HeaderLookup,
  deadlineMs: number,
): Promise<void> {
  const { controlQueue } = deps.config;
  if (report.dryRun || deps.config.notifyTopic === undefined) return;
  const controlTask = header('x-cloudtasks-taskname');
  if (controlQueue && controlTask && header('x-cloudtasks-queuename') === controlQueue.queue) {
    // The control task's own header names its request's kind; only a known kind is taken from it.
    const named = header(REQUEST_KIND_HEADER.toLowerCase());
    const requestKind = EVENT_KINDS.find((kind) => kind === named) ?? report.kind;
    await requestEnded({ ...deps, controlQueue }, report, controlTask, requestKind, deadlineMs);
  } else {
    await deps.notifier.runFinished(report, deadlineMs);
  }
}
