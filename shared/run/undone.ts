/**
 * What counts as undone: the one rule the report's continueWith, and so every acknowledgement, follows
 * (docs/acknowledgement.md "What counts as undone"). Pure.
 */
import type { QueueReport, RerunReport } from './settle.js';

/**
 * A queue is undone when it was not read to its end: cut short by the budget, met an error a task's read
 * is deferred for, or its listing broke off after it started, whatever the error (a 500 on page 2, an
 * expired page token). A queue that could not be opened or listed at all for a permanent reason (gone for
 * good, not permitted) is done: sending the request again would meet the same answer.
 */
export function isQueueUndone(queue: QueueReport): boolean {
  return (
    !queue.complete && (queue.error === undefined || queue.transient === true || queue.brokenOff === true)
  );
}

export function undoneQueues(queues: readonly QueueReport[]): QueueReport[] {
  return queues.filter(isQueueUndone);
}

/**
 * The report's continueWith: present exactly when work is left, a task deferred or a queue undone. The same
 * request sent again goes on where this one stopped.
 */
export function continueWithOf(
  request: { readonly requestId: string; readonly cutoff: string },
  deferred: number,
  queues: readonly QueueReport[],
): RerunReport['continueWith'] {
  const undone = undoneQueues(queues);
  if (deferred === 0 && undone.length === 0) return undefined;
  const { requestId, cutoff } = request;
  return {
    requestId,
    cutoff,
    deferred,
    incompleteQueues: undone.map((q) => q.queue),
    note: `work is left undone: send the same request again (requestId ${requestId}, or the same event with this cutoff as deployedAt, until or cutoff); tasks already rerun are skipped`,
  };
}
