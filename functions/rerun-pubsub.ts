/**
 * rerunPubsub: Cloud Monitoring incidents, Cloud Build notifications, Cloud Scheduler sweeps and plain events,
 * as Pub/Sub messages (CloudEvent `google.cloud.pubsub.topic.v1.messagePublished`). Acknowledge or redeliver
 * (SPEC 3): a permanent problem is logged once at ERROR and the function returns (ack); a transient failure
 * throws, so Pub/Sub redelivers, which the cutoff rule makes safe.
 * https://cloud.google.com/functions/docs/bestpractices/retries
 */
import type { CloudEvent, CloudEventFunction } from '@google-cloud/functions-framework';
import type { HeaderLookup } from '../shared/log.js';
import { traceFields } from '../shared/log.js';
import { decodeMessage, parseEnvelope, type PubsubMessage } from '../shared/notifications.js';
import { CloudTasksUnavailableError } from '../shared/rerun.js';
import { rerun, type Runtime } from '../shared/runtime.js';

/** The CloudEvent type of a Pub/Sub message. */
export const MESSAGE_PUBLISHED = 'google.cloud.pubsub.topic.v1.messagePublished';

/** The data of a `messagePublished` CloudEvent (validated at run time: it comes off the wire). */
export interface MessagePublishedData {
  readonly message?: PubsubMessage;
  readonly subscription?: string;
}

/**
 * The run stopped before its work was done (time budget): not acknowledged, so Pub/Sub redelivers the
 * message and the redelivery goes on where this run stopped (tasks already rerun are past the cutoff).
 */
export class RerunIncompleteError extends Error {
  override readonly name = 'RerunIncompleteError';
}

/**
 * The CloudEvent handler over a runtime (index.ts registers it; tests register their own). Resolves to
 * acknowledge; rejects with CloudTasksUnavailableError, RerunIncompleteError or an unexpected error to
 * have the message redelivered.
 */
export function rerunPubsubHandler(runtime: Runtime): CloudEventFunction<MessagePublishedData> {
  return async (event: CloudEvent<MessagePublishedData>) => {
    const envelope = parseEnvelope(event.data);
    const messageId = (envelope.ok ? envelope.message.messageId : undefined) ?? event.id;
    const header: HeaderLookup = (name) => {
      const value = name === 'traceparent' ? event.traceparent : undefined;
      return typeof value === 'string' ? value : undefined;
    };
    // `base` goes to the run, which adds the trace itself; the adapter's own lines carry it too.
    const base = runtime.log.child({ messageId });
    const log = base.child(traceFields(header, runtime.traceProject));

    if (event.type !== MESSAGE_PUBLISHED) {
      log.error(
        { problem: `CloudEvent type ${String(event.type)} is not ${MESSAGE_PUBLISHED}` },
        'message rejected; acknowledged without a rerun',
      );
      return;
    }
    if (!envelope.ok) {
      log.error(
        { problem: envelope.error.message, fields: envelope.error.fields },
        'message rejected; acknowledged without a rerun',
      );
      return;
    }
    const decoded = decodeMessage(envelope.message, runtime.config.routes, Date.now());
    switch (decoded.kind) {
      case 'reject':
        log.error(
          { source: decoded.source, problem: decoded.error.message, fields: decoded.error.fields },
          'message rejected; acknowledged without a rerun',
        );
        return;
      case 'ignore':
        log[decoded.level]({ source: decoded.source, reason: decoded.reason }, 'message ignored');
        return;
      case 'request':
        break;
    }
    const { request, source, dedupeKey } = decoded;
    log.info(
      {
        source,
        dedupeKey,
        kind: request.kind,
        ...(request.reason !== undefined && { reason: request.reason }),
      },
      'message accepted',
    );
    let result: Awaited<ReturnType<typeof rerun>>;
    try {
      result = await rerun({ ...runtime, log: base }, request, header);
    } catch (error) {
      if (error instanceof CloudTasksUnavailableError) {
        log.warn({ source, dedupeKey }, 'message not acknowledged: Pub/Sub redelivers it');
      } else {
        log.error({ err: error, source, dedupeKey }, 'rerun failed unexpectedly; message not acknowledged');
      }
      throw error;
    }
    // Outside the allowlist: the run logged the one ERROR line (with messageId and the names); acknowledge.
    if (!result.ok) return;
    const { report } = result;
    if (report.continueWith) {
      log.warn(
        { source, dedupeKey, runId: report.runId, counts: report.counts },
        'rerun incomplete; message not acknowledged: Pub/Sub redelivers it to go on',
      );
      throw new RerunIncompleteError(
        `rerun ${report.runId} stopped with ${report.continueWith.deferred} tasks deferred; the redelivery goes on (cutoff ${report.cutoff})`,
      );
    }
    log.info(
      { source, dedupeKey, runId: report.runId, cutoff: report.cutoff, counts: report.counts },
      'message done; acknowledged',
    );
  };
}
