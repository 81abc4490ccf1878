/**
 * One delivery of a Pub/Sub message, whichever way it came (a `messagePublished` CloudEvent to rerunPubsub,
 * a push envelope or a binary-mode CloudEvent to rerunHttp), and whether to acknowledge it: a
 * permanent problem is logged once at ERROR and acknowledged; work left undone for a transient reason is
 * not, so Pub/Sub redelivers and the redelivery goes on where this one stopped.
 */
import type { HeaderLookup } from './log.js';
import { traceFields } from './log.js';
import { decodeMessage, parseEnvelope } from '../triggers/messages.js';
import type { RerunReport } from '../run/settle.js';
import { CloudTasksUnavailableError } from '../run/run.js';
import { rerun, type Runtime } from './runtime.js';

/** The CloudEvent type of a Pub/Sub message. */
export const MESSAGE_PUBLISHED = 'google.cloud.pubsub.topic.v1.messagePublished';

/** A Pub/Sub message ID: the only shape of a CloudEvent id that is used (docs/events.md "Request identity"). */
const PUBSUB_MESSAGE_ID = /^[0-9]{1,64}$/;

/** What the adapter answers: acknowledge, or have the message redelivered. */
export type MessageAnswer =
  | { readonly ack: true; readonly report?: RerunReport }
  | {
      readonly ack: false;
      readonly problem: string;
      readonly report?: RerunReport;
      readonly cause?: unknown;
    };

/** The delivery as the adapter saw it. */
export interface MessageDelivery {
  /** The CloudEvent type (undefined for a push envelope, which is always a message). */
  readonly type: string | undefined;
  /** The CloudEvent's id (a header value in binary mode): the messageId when the data has none. */
  readonly id: string | undefined;
  /** The `{message, subscription}` object. */
  readonly data: unknown;
  readonly header: HeaderLookup;
}

/** Decodes the message, runs what it asks for, and decides the acknowledgement. Never throws. */
export async function deliverMessage(runtime: Runtime, delivery: MessageDelivery): Promise<MessageAnswer> {
  const envelope = parseEnvelope(delivery.data);
  const eventId = delivery.id !== undefined && PUBSUB_MESSAGE_ID.test(delivery.id) ? delivery.id : undefined;
  const messageId = (envelope.ok ? envelope.message.messageId : undefined) ?? eventId;
  // `base` goes to the run, which adds the trace itself; the adapter's own lines carry it too.
  const base = runtime.log.child({ messageId });
  const log = base.child(traceFields(delivery.header, runtime.traceProject));
  const rejected = (fields: Record<string, unknown>): MessageAnswer => {
    log.error(fields, 'message rejected; acknowledged without a rerun');
    return { ack: true };
  };

  if (delivery.type !== undefined && delivery.type !== MESSAGE_PUBLISHED) {
    return rejected({ problem: `the CloudEvent type is not ${MESSAGE_PUBLISHED}`, fields: ['type'] });
  }
  if (!envelope.ok) return rejected({ problem: envelope.error.message, fields: envelope.error.fields });
  const decoded = decodeMessage({ ...envelope.message, messageId }, runtime.config.routes, Date.now());
  switch (decoded.kind) {
    case 'reject':
      return rejected({
        source: decoded.source,
        problem: decoded.error.message,
        fields: decoded.error.fields,
      });
    case 'ignore':
      log[decoded.level]({ source: decoded.source, reason: decoded.reason }, 'message ignored');
      return { ack: true };
    case 'request':
      break;
  }
  const { request, source, dedupeKey } = decoded;
  log.info(
    {
      source,
      dedupeKey,
      requestId: request.requestId,
      kind: request.kind,
      ...(request.reason !== undefined && { reason: request.reason }),
    },
    'message accepted',
  );
  let result: Awaited<ReturnType<typeof rerun>>;
  try {
    result = await rerun({ ...runtime, log: base }, request, delivery.header);
  } catch (error) {
    if (error instanceof CloudTasksUnavailableError) {
      log.warn({ source, dedupeKey }, 'message not acknowledged: Pub/Sub redelivers it');
    } else {
      log.error({ err: error, source, dedupeKey }, 'rerun failed unexpectedly; message not acknowledged');
    }
    return { ack: false, problem: (error as Error).message, cause: error };
  }
  // Refused (outside the allowlist, or without redrive's permissions): the run logged the one ERROR line
  // with the reason; a redelivery would be refused the same, so acknowledge.
  if (!result.ok) return { ack: true };
  const { report } = result;
  if (report.continueWith) {
    log.warn(
      { source, dedupeKey, runId: report.runId, counts: report.counts, continueWith: report.continueWith },
      'rerun incomplete; message not acknowledged: Pub/Sub redelivers it to go on',
    );
    return {
      ack: false,
      report,
      problem: `rerun ${report.runId} left work undone (${report.continueWith.deferred} tasks deferred, ${report.continueWith.incompleteQueues.length} queues incomplete); the redelivery goes on (cutoff ${report.cutoff})`,
    };
  }
  log.info(
    { source, dedupeKey, runId: report.runId, cutoff: report.cutoff, counts: report.counts },
    'message done; acknowledged',
  );
  return { ack: true, report };
}
