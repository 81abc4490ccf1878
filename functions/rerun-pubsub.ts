/**
 * rerunPubsub: Cloud Monitoring incidents, Cloud Build notifications, Cloud Scheduler sweeps and plain events,
 * as Pub/Sub messages (CloudEvent `google.cloud.pubsub.topic.v1.messagePublished`). Resolves to acknowledge;
 * throws to have the message redelivered (shared/platform/delivery.ts decides which).
 * https://cloud.google.com/functions/docs/bestpractices/retries
 */
import type { CloudEvent, CloudEventFunction } from '@google-cloud/functions-framework';
import { deliverMessage } from '../shared/platform/delivery.js';
import type { PubsubMessage } from '../shared/triggers/messages.js';
import type { Runtime } from '../shared/platform/runtime.js';
import { outsideDomain } from './outside-domain.js';

export { MESSAGE_PUBLISHED } from '../shared/platform/delivery.js';

/** The data of a `messagePublished` CloudEvent (validated at run time: it comes off the wire). */
export interface MessagePublishedData {
  readonly message?: PubsubMessage;
  readonly subscription?: string;
}

/** Work was left undone: not acknowledged, so Pub/Sub redelivers and the redelivery goes on. */
export class RerunIncompleteError extends Error {
  override readonly name = 'RerunIncompleteError';
}

/** The CloudEvent handler over a runtime (index.ts registers it; tests register their own). */
export function rerunPubsubHandler(runtime: Runtime): CloudEventFunction<MessagePublishedData> {
  return outsideDomain(async (event: CloudEvent<MessagePublishedData>) => {
    const answer = await deliverMessage(runtime, {
      type: event.type,
      id: event.id,
      data: event.data,
      header: (name) => {
        const value = name === 'traceparent' ? event.traceparent : undefined;
        return typeof value === 'string' ? value : undefined;
      },
    });
    if (!answer.ack) throw new RerunIncompleteError(answer.problem, { cause: answer.cause });
  });
}
