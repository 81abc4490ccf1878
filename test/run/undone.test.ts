import { describe, expect, it } from 'vitest';
import type { QueueReport } from '../../shared/run/settle.js';
import { continueWithOf, isQueueUndone, undoneQueues } from '../../shared/run/undone.js';

const base: QueueReport = {
  queue: 'projects/p/locations/l/queues/q',
  scanned: 0,
  matched: 0,
  complete: false,
};

describe('what counts as undone', () => {
  it.each<[string, Partial<QueueReport>, boolean]>([
    ['read to its end', { complete: true }, false],
    ['cut short by the budget (no error)', {}, true],
    ['a transient error', { error: 'unavailable', transient: true }, true],
    [
      'a listing that broke off on a permanent error (an expired page token)',
      { error: 'bad token', brokenOff: true },
      true,
    ],
    ['a queue that could not be opened for good (NOT_FOUND)', { error: 'queue not found' }, false],
  ])('%s: undone %s', (_, fields, undone) => {
    expect(isQueueUndone({ ...base, ...fields })).toBe(undone);
  });

  it('keeps the undone queues only, in order', () => {
    const queues = [
      { ...base, queue: 'a', complete: true },
      { ...base, queue: 'b', error: 'x', brokenOff: true as const },
      { ...base, queue: 'c', error: 'gone' },
      { ...base, queue: 'd' },
    ];
    expect(undoneQueues(queues).map((q) => q.queue)).toEqual(['b', 'd']);
  });
});

describe('continueWithOf', () => {
  const request = { requestId: 'r1', cutoff: '2030-01-01T00:00:00.000Z' };

  it('is absent when nothing is deferred and every queue is done', () => {
    expect(
      continueWithOf(request, 0, [
        { ...base, complete: true },
        { ...base, error: 'gone' },
      ]),
    ).toBeUndefined();
  });

  it('names the deferred count and the undone queues, and says to send the same request again', () => {
    const continueWith = continueWithOf(request, 2, [{ ...base, queue: 'b', error: 'x', brokenOff: true }]);
    expect(continueWith).toMatchObject({ ...request, deferred: 2, incompleteQueues: ['b'] });
    expect(continueWith?.note).toMatch(/send the same request again \(requestId r1/);
  });

  it('an undone queue alone is work left', () => {
    expect(continueWithOf(request, 0, [base])?.incompleteQueues).toEqual([base.queue]);
  });
});
