/**
 * The emulator's pure parts: the retry schedule, the sliding-window quota, the manual clock, time formats,
 * the permissions held.
 */
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../emulator/clock.js';
import { formatDuration, statusForHttp } from '../../emulator/errors.js';
import { Iam } from '../../emulator/iam.js';
import { formatTimestamp, parseProtoDuration, parseTimestamp } from '../../emulator/proto-json.js';
import { SlidingWindowQuota } from '../../emulator/quota.js';
import { isRetryExhausted, retryDelayMs, type RetryPolicy } from '../../emulator/retry.js';

const policy = (overrides: Partial<RetryPolicy> = {}): RetryPolicy => ({
  maxAttempts: 100,
  maxRetryDurationMs: 0,
  minBackoffMs: 10_000,
  maxBackoffMs: 300_000,
  maxDoublings: 3,
  ...overrides,
});

describe('retryDelayMs', () => {
  it('follows the documented example: 10s, 20s, 40s, 80s, 160s, 240s, 300s, 300s', () => {
    const delays = [1, 2, 3, 4, 5, 6, 7, 8].map((n) => retryDelayMs(policy(), n) / 1000);
    expect(delays).toEqual([10, 20, 40, 80, 160, 240, 300, 300]);
  });

  it.each([
    [{ maxDoublings: 0 }, [10, 20, 30, 40]],
    [{ maxDoublings: 16, maxBackoffMs: 3_600_000, minBackoffMs: 100 }, [0.1, 0.2, 0.4, 0.8]],
    [{ minBackoffMs: 5_000, maxBackoffMs: 5_000 }, [5, 5, 5, 5]],
  ])('with %j gives %j', (overrides, expected) => {
    expect([1, 2, 3, 4].map((n) => retryDelayMs(policy(overrides), n) / 1000)).toEqual(expected);
  });
});

describe('isRetryExhausted', () => {
  it.each([
    ['attempts left', policy({ maxAttempts: 3 }), 2, 0, false],
    ['attempts used, no time limit', policy({ maxAttempts: 3 }), 3, 0, true],
    ['attempts used, time left', policy({ maxAttempts: 3, maxRetryDurationMs: 60_000 }), 3, 59_999, false],
    ['attempts and time used', policy({ maxAttempts: 3, maxRetryDurationMs: 60_000 }), 3, 60_000, true],
    ['time used, attempts left', policy({ maxAttempts: 5, maxRetryDurationMs: 60_000 }), 3, 120_000, false],
    ['unlimited attempts', policy({ maxAttempts: -1 }), 10_000, 1e9, false],
  ])('%s', (_label, p, attempts, elapsedMs, expected) => {
    expect(isRetryExhausted(p, attempts, 1_000, 1_000 + elapsedMs)).toBe(expected);
  });
});

describe('SlidingWindowQuota', () => {
  it('allows `limit` calls per window per key and says when the next slot frees', () => {
    const quota = new SlidingWindowQuota(3, 60_000);
    expect([0, 10_000, 20_000].map((t) => quota.take('p', t).ok)).toEqual([true, true, true]);
    expect(quota.take('p', 30_000)).toEqual({ ok: false, retryAfterMs: 30_000 });
    expect(quota.take('other', 30_000).ok).toBe(true);
    expect(quota.take('p', 59_999).ok).toBe(false);
    expect(quota.take('p', 60_000).ok).toBe(true);
    expect(quota.take('p', 60_001)).toEqual({ ok: false, retryAfterMs: 9_999 });
  });
});

describe('ManualClock', () => {
  it('fires due timers in time order, including timers set while advancing', async () => {
    const clock = new ManualClock(1_000);
    const fired: Array<[string, number]> = [];
    clock.setTimeout(() => fired.push(['b', clock.now()]), 200);
    clock.setTimeout(() => {
      fired.push(['a', clock.now()]);
      clock.setTimeout(() => fired.push(['c', clock.now()]), 50);
    }, 100);
    const cancelled = clock.setTimeout(() => fired.push(['never', clock.now()]), 10);
    cancelled.cancel();
    await clock.advance(149);
    expect(fired).toEqual([['a', 1_100]]);
    await clock.advance(1_000);
    expect(fired).toEqual([
      ['a', 1_100],
      ['c', 1_150],
      ['b', 1_200],
    ]);
    expect(clock.now()).toBe(2_149);
    await expect(clock.set(0)).rejects.toThrow(RangeError);
  });

  it('waits for tracked work before moving on', async () => {
    const clock = new ManualClock(0);
    let done = false;
    clock.setTimeout(() => {
      clock.track(new Promise<void>((resolve) => setTimeout(() => resolve(), 20)).then(() => (done = true)));
    }, 10);
    await clock.advance(10);
    expect(done).toBe(true);
  });
});

describe('time formats', () => {
  it('formats and parses timestamps and durations as Google does', () => {
    expect(formatTimestamp(Date.parse('2026-11-22T10:00:00Z'))).toBe('2026-11-22T10:00:00Z');
    expect(formatTimestamp(Date.parse('2026-11-22T10:00:00.120Z'))).toBe('2026-11-22T10:00:00.120Z');
    expect(parseTimestamp('2026-11-22T10:00:00.123456789Z')).toBe(Date.parse('2026-11-22T10:00:00.123Z'));
    expect(parseTimestamp('2026-11-22T12:00:00+02:00')).toBe(Date.parse('2026-11-22T10:00:00Z'));
    expect(parseTimestamp('2026-11-22')).toBeUndefined();
    expect(parseTimestamp('+1h', 0)).toBe(3_600_000);
    expect(parseTimestamp('-10m', 3_600_000)).toBe(3_000_000);
    expect(parseTimestamp('+1h')).toBeUndefined();
    expect([formatDuration(600_000), formatDuration(100), formatDuration(12_345)]).toEqual([
      '600s',
      '0.100s',
      '12.345s',
    ]);
    expect([parseProtoDuration('600s'), parseProtoDuration('0.1s'), parseProtoDuration('1.5')]).toEqual([
      600_000,
      100,
      undefined,
    ]);
  });

  it('maps target HTTP statuses to canonical codes as Google clients do', () => {
    expect([500, 503, 504, 404, 429, 400, 418, 502, 302].map(statusForHttp)).toEqual([
      'INTERNAL',
      'UNAVAILABLE',
      'DEADLINE_EXCEEDED',
      'NOT_FOUND',
      'RESOURCE_EXHAUSTED',
      'INVALID_ARGUMENT',
      'FAILED_PRECONDITION',
      'INTERNAL',
      'UNKNOWN',
    ]);
  });
});

describe('Iam', () => {
  const Q = 'projects/p/locations/l/queues/q';
  const OTHER = 'projects/p/locations/l/queues/other';
  it.each([
    ['nothing given: everything', undefined, [true, true, true]],
    ['one list: on every queue and the project', ['cloudtasks.tasks.get'], [true, true, true]],
    ['by queue: the queues not named keep everything', { [Q]: ['cloudtasks.tasks.get'] }, [true, true, true]],
    ['by queue, with * for the rest', { [Q]: ['cloudtasks.tasks.get'], '*': [] }, [true, false, false]],
    ['an empty list: nothing', [], [false, false, false]],
  ] as const)('%s', (_, permissions, expected) => {
    const iam = new Iam({ permissions });
    const on = (queue: string | undefined) => iam.holds('cloudtasks.tasks.get', queue);
    expect([on(Q), on(OTHER), on(undefined)]).toEqual(expected);
    expect(iam.holds('cloudtasks.tasks.run', Q)).toBe(permissions === undefined);
  });

  it('checks actAs only when told which accounts, and refuses bad knobs naming them', () => {
    expect(() => new Iam().requireActAs('a@p.iam.gserviceaccount.com')).not.toThrow();
    const iam = new Iam({ actAs: ['a@p.iam.gserviceaccount.com'] });
    expect(() => iam.requireActAs('a@p.iam.gserviceaccount.com')).not.toThrow();
    expect(() => iam.requireActAs('b@p.iam.gserviceaccount.com')).toThrow('iam.serviceAccounts.actAs');
    expect(() => new Iam({ permissions: 'cloudtasks.tasks.get' as never })).toThrow('permissions must be');
    expect(() => new Iam({ permissions: { [Q]: 'x' } as never })).toThrow('permissions must be');
    expect(() => new Iam({ actAs: 'a@p' as never })).toThrow('actAs must be');
  });
});
