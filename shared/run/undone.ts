/**
 * What counts as undone: the one rule the report's continueWith, and so every acknowledgement, follows
 * (docs/acknowledgement.md "What counts as undone"). Pure.
 */
import type { QueueReport } from './settle.js';

/**
 * A queue is undone when it was not read to its end: cut short by the budget, met a transient error, or its
 * listing broke off after it started, whatever the error (a 500 on page 2, an expired page token). A queue
 * that could not be opened for a permanent reason (gone for good, not permitted) is done: sending the
 * request again would meet the same answer.
 */
export function isQueueUndone(queue: QueueReport): boolean {
  return (
    !queue.complete && (queue.error === undefined || queue.transient === true || queue.brokenOff === true)
  );
}

export function undoneQueues(queues: readonly QueueReport[]): QueueReport[] {
  return queues.filter(isQueueUndone);
}
