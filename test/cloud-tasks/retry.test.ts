import { describe, expect, it } from 'vitest';
import {
  actionFor,
  backoffDelayMs,
  outcomeOfFailedRead,
  quotaWaitMs,
  readRetryWaitMs,
} from '../../shared/cloud-tasks/retry.js';
import { toCloudTasksError } from '../../shared/cloud-tasks/client.js';

describe('outcomeOfFailedRead', () => {
  it.each([
    ['NOT_FOUND', false, 'gone'],
    ['PERMISSION_DENIED', false, 'failed'],
    ['INVALID_ARGUMENT', false, 'failed'],
    ['UNAVAILABLE', false, 'deferred'],
    ['DEADLINE_EXCEEDED', true, 'deferred'],
    ['RESOURCE_EXHAUSTED', false, 'deferred'],
    // AIP-194: ABORTED is retried at a higher level; a cancelled read says nothing either.
    ['ABORTED', false, 'deferred'],
    ['CANCELLED', false, 'deferred'],
    // A read has no side effect: a server error to it is transient, not a verdict on the task.
    ['INTERNAL', false, 'deferred'],
    ['UNKNOWN', false, 'deferred'],
    ['DEADLINE_EXCEEDED', false, 'deferred'],
  ] as const)('%s (answer lost: %s) is %s', (status, answerLost, outcome) => {
    expect(outcomeOfFailedRead({ status, answerLost })).toBe(outcome);
  });
});

describe('actionFor (AIP-194)', () => {
  it.each([
    ['UNAVAILABLE', false, 'retry'],
    ['DEADLINE_EXCEEDED', true, 'retry'],
    ['DEADLINE_EXCEEDED', false, 'fail'],
    ['RESOURCE_EXHAUSTED', false, 'wait-quota'],
    ['NOT_FOUND', false, 'gone'],
    ['PERMISSION_DENIED', false, 'stop-queue'],
    ['FAILED_PRECONDITION', false, 'fail'],
    ['INVALID_ARGUMENT', false, 'fail'],
  ] as const)('%s (answer lost: %s) -> %s', (status, answerLost, action) => {
    expect(actionFor({ status, answerLost })).toBe(action);
  });
});

describe('toCloudTasksError', () => {
  it('branches on the canonical status, not the HTTP code', () => {
    const error = toCloudTasksError({
      response: {
        status: 400,
        data: { error: { code: 400, status: 'FAILED_PRECONDITION', message: 'queue paused' } },
      },
    });
    expect(error.status).toBe('FAILED_PRECONDITION');
    expect(error.message).toBe('FAILED_PRECONDITION: queue paused');
  });

  it('reads RetryInfo', () => {
    const error = toCloudTasksError({
      response: {
        status: 429,
        data: {
          error: {
            status: 'RESOURCE_EXHAUSTED',
            details: [{ '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay: '12.5s' }],
          },
        },
      },
    });
    expect(error.retryDelayMs).toBe(12_500);
  });

  it('marks a reset as an answer lost', () => {
    const error = toCloudTasksError(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }));
    expect(error).toMatchObject({ status: 'UNAVAILABLE', answerLost: true });
  });
});

describe('waits', () => {
  it('backs off exponentially with full jitter, capped', () => {
    expect(backoffDelayMs(0, () => 1)).toBe(200);
    expect(backoffDelayMs(3, () => 1)).toBe(1_600);
    expect(backoffDelayMs(10, () => 1)).toBe(5_000);
    expect(backoffDelayMs(3, () => 0)).toBe(0);
  });

  it('waits for RetryInfo, else the next minute', () => {
    expect(quotaWaitMs(2_000, 0)).toBe(2_000);
    expect(quotaWaitMs(undefined, 45_000)).toBe(15_000);
  });
});

describe('readRetryWaitMs', () => {
  it('waits what RetryInfo or Retry-After asks, up to 5 s; a longer ask gives the read up', () => {
    expect(readRetryWaitMs({ status: 'UNAVAILABLE', answerLost: false, retryDelayMs: 1_500 }, 0)).toBe(1_500);
    expect(
      readRetryWaitMs({ status: 'UNAVAILABLE', answerLost: false, retryDelayMs: 30_000 }, 0),
    ).toBeUndefined();
  });

  it('backs off with jitter otherwise, and stops after the last attempt', () => {
    expect(readRetryWaitMs({ status: 'UNAVAILABLE', answerLost: false }, 1, () => 1)).toBe(400);
    expect(readRetryWaitMs({ status: 'UNAVAILABLE', answerLost: false }, 4)).toBeUndefined();
  });

  it('never resends what actionFor does not retry', () => {
    expect(readRetryWaitMs({ status: 'NOT_FOUND', answerLost: false }, 0)).toBeUndefined();
    expect(readRetryWaitMs({ status: 'ABORTED', answerLost: false }, 0)).toBeUndefined();
  });

  it('waits out a read refused for quota, what RetryInfo asks up to 10 s, else backoff', () => {
    const quota = { status: 'RESOURCE_EXHAUSTED', answerLost: false } as const;
    expect(readRetryWaitMs({ ...quota, retryDelayMs: 10 }, 0)).toBe(10);
    expect(readRetryWaitMs({ ...quota, retryDelayMs: 8_000 }, 0)).toBe(8_000);
    expect(readRetryWaitMs({ ...quota, retryDelayMs: 30_000 }, 0)).toBeUndefined();
    expect(readRetryWaitMs(quota, 1, () => 1)).toBe(400);
    expect(readRetryWaitMs({ ...quota, retryDelayMs: 10 }, 4)).toBeUndefined();
  });
});
