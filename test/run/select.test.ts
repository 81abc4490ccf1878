import { describe, expect, it } from 'vitest';
import type { Task } from '../../shared/cloud-tasks/client.js';
import { Match } from '../../shared/triggers/events.js';
import {
  globMatch,
  isLastAttempt,
  queueSkipReason,
  selectTask,
  type SelectionRules,
} from '../../shared/run/select.js';

const NOW = Date.parse('2026-11-22T12:00:00Z');
const CUTOFF = Date.parse('2026-11-22T11:00:00Z');
const at = (offsetMin: number) => new Date(CUTOFF + offsetMin * 60_000).toISOString();
const Q = 'projects/p-1/locations/us-central1/queues/orders';

/** A task whose last attempt failed with HTTP 500 ten minutes before the cutoff, next attempt in an hour. */
function failedTask(overrides: { [K in keyof Task]?: Task[K] | undefined } = {}): Task {
  const task = {
    name: `${Q}/tasks/order-42`,
    httpRequest: { url: 'https://worker.example/orders/42' },
    createTime: at(-120),
    scheduleTime: at(120),
    dispatchCount: 3,
    responseCount: 3,
    lastAttempt: {
      scheduleTime: at(-10),
      dispatchTime: at(-10),
      responseTime: at(-9.9),
      responseStatus: { code: 13, message: 'INTERNAL(13): HTTP status code 500' },
    },
    ...overrides,
  };
  return JSON.parse(JSON.stringify(task)) as Task; // drops the fields overridden with undefined
}

const rules = (match: object = {}): SelectionRules => ({
  match: Match.parse(match),
  cutoffMs: CUTOFF,
  minBackoffLeftMs: 30_000,
  dueSoonApplies: true,
  retry: { maxAttempts: -1, maxRetryDurationMs: 0 },
  allowLastAttempt: false,
  nowMs: NOW,
});

describe('selectTask: safety rules', () => {
  it.each<[string, Task, string]>([
    ['a failed task is a candidate', failedTask(), 'candidate'],
    ['never attempted', failedTask({ lastAttempt: undefined, dispatchCount: 0 }), 'never-attempted'],
    ['in flight', failedTask({ lastAttempt: { scheduleTime: at(-1), dispatchTime: at(-1) } }), 'in-flight'],
    [
      'dispatched after the cutoff',
      failedTask({
        lastAttempt: { dispatchTime: at(1), responseTime: at(1.1), responseStatus: { code: 13 } },
      }),
      'after-cutoff',
    ],
    [
      'dispatched exactly at the cutoff',
      failedTask({
        lastAttempt: { dispatchTime: at(0), responseTime: at(0.1), responseStatus: { code: 13 } },
      }),
      'after-cutoff',
    ],
    ['next attempt in 10 s', failedTask({ scheduleTime: new Date(NOW + 10_000).toISOString() }), 'due-soon'],
    ['next attempt overdue', failedTask({ scheduleTime: new Date(NOW - 10_000).toISOString() }), 'due-soon'],
    [
      'last attempt succeeded',
      failedTask({
        lastAttempt: { dispatchTime: at(-10), responseTime: at(-9), responseStatus: { code: 0 } },
      }),
      'not-failed',
    ],
  ])('%s', (_, task, expected) => {
    const selection = selectTask(task, rules());
    expect(selection.kind === 'skip' ? selection.reason : selection.kind).toBe(expected);
  });

  it('honours a larger minBackoffLeft (sweeps)', () => {
    const task = failedTask({ scheduleTime: new Date(NOW + 4 * 60_000).toISOString() });
    expect(selectTask(task, rules()).kind).toBe('candidate');
    expect(selectTask(task, { ...rules(), minBackoffLeftMs: 5 * 60_000 })).toEqual({
      kind: 'skip',
      reason: 'due-soon',
    });
  });

  it('parses microsecond timestamps as Cloud Tasks writes them', () => {
    const task = failedTask({
      lastAttempt: {
        dispatchTime: '2026-11-22T10:59:59.999900Z',
        responseTime: '2026-11-22T11:00:00.500000Z',
        responseStatus: { code: 14 },
      },
    });
    expect(selectTask(task, rules()).kind).toBe('candidate');
  });
});

describe('selectTask: match', () => {
  it.each<[string, object, boolean]>([
    ['empty match', {}, true],
    ['task ID listed', { taskIds: ['order-42', 'x'] }, true],
    ['task ID not listed', { taskIds: ['order-43'] }, false],
    ['glob', { taskIdGlob: 'order-*' }, true],
    ['glob ?', { taskIdGlob: 'order-?2' }, true],
    ['glob miss', { taskIdGlob: 'invoice-*' }, false],
    ['url prefix', { urlPrefix: 'https://worker.example/orders/' }, true],
    ['url prefix miss', { urlPrefix: 'https://worker.example/invoices/' }, false],
    ['HTTP code', { responseCodes: [500] }, true],
    ['canonical name', { responseCodes: ['INTERNAL'] }, true],
    ['other codes', { responseCodes: [503, 'UNAVAILABLE'] }, false],
    ['attempts in range', { minAttempts: 2, maxAttempts: 3 }, true],
    ['too few attempts', { minAttempts: 4 }, false],
    ['too many attempts', { maxAttempts: 2 }, false],
    ['failed in window', { failedSince: at(-20), failedUntil: at(-5) }, true],
    ['failed before window', { failedSince: at(-5) }, false],
    ['failed after window', { failedUntil: at(-15) }, false],
    ['created before', { createdBefore: at(-60) }, true],
    ['created after (miss)', { createdAfter: at(-60) }, false],
    ['all fields hold', { taskIdGlob: 'order-*', responseCodes: [500], minAttempts: 1 }, true],
    ['one field fails', { taskIdGlob: 'order-*', responseCodes: [404] }, false],
  ])('%s', (_, match, matches) => {
    expect(selectTask(failedTask(), rules(match)).kind !== 'unmatched').toBe(matches);
  });

  it('reads the HTTP code from a status message that is the code alone', () => {
    const task = failedTask({
      lastAttempt: {
        dispatchTime: at(-10),
        responseTime: at(-9.9),
        responseStatus: { code: 14, message: '503' },
      },
    });
    expect(selectTask(task, rules({ responseCodes: [503] })).kind).toBe('candidate');
    expect(selectTask(task, rules({ responseCodes: [500] })).kind).toBe('unmatched');
  });

  it('matches App Engine tasks on relativeUri', () => {
    const task = failedTask({ httpRequest: undefined, appEngineHttpRequest: { relativeUri: '/orders/42' } });
    expect(selectTask(task, rules({ urlPrefix: '/orders/' })).kind).toBe('candidate');
  });
});

describe('globMatch', () => {
  it.each<[string, string, boolean]>([
    ['*', '', true],
    ['*', 'anything', true],
    ['a*b*c', 'aXXbYYc', true],
    ['a*b*c', 'aXXbYY', false],
    ['?', '', false],
    ['abc', 'abc', true],
    ['abc', 'abcd', false],
    ['*-42', 'order-42', true],
  ])('%s ~ %s = %s', (pattern, text, expected) => {
    expect(globMatch(pattern, text)).toBe(expected);
  });

  it('stays linear on a pathological pattern', () => {
    const text = 'a'.repeat(500);
    const pattern = `${'*a'.repeat(200)}b`;
    expect(globMatch(pattern, text)).toBe(false);
  });
});

describe('queueSkipReason', () => {
  it.each<[string | undefined, boolean, string | undefined]>([
    ['RUNNING', false, undefined],
    ['PAUSED', false, 'queue-paused'],
    ['PAUSED', true, undefined],
    ['DISABLED', true, 'queue-disabled'],
  ])('%s force=%s -> %s', (state, force, reason) => {
    expect(queueSkipReason({ name: 'q', state: state as 'RUNNING' }, force)).toBe(reason);
  });
});

describe('isLastAttempt (docs/selection.md, last-attempt)', () => {
  const task = (dispatchCount: number, firstAgoMs = 60 * 60_000, dispatchDeadline?: string): Task => ({
    name: 'projects/p/locations/l/queues/q/tasks/t',
    dispatchCount,
    firstAttempt: { dispatchTime: new Date(NOW - firstAgoMs).toISOString() },
    ...(dispatchDeadline && { dispatchDeadline }),
  });
  it.each<[string, Task, { maxAttempts: number; maxRetryDurationMs: number }, boolean]>([
    ['unlimited attempts never', task(99), { maxAttempts: -1, maxRetryDurationMs: 0 }, false],
    ['attempts left', task(3), { maxAttempts: 5, maxRetryDurationMs: 0 }, false],
    ['the 5th of 5', task(4), { maxAttempts: 5, maxRetryDurationMs: 0 }, true],
    ['past the last', task(7), { maxAttempts: 5, maxRetryDurationMs: 0 }, true],
    [
      'attempts used but retry time left',
      task(4),
      { maxAttempts: 5, maxRetryDurationMs: 2 * 3_600_000 },
      false,
    ],
    ['attempts and retry time used', task(4), { maxAttempts: 5, maxRetryDurationMs: 30 * 60_000 }, true],
    [
      'retry time ends during the forced attempt',
      task(4, 55 * 60_000, '600s'),
      { maxAttempts: 5, maxRetryDurationMs: 60 * 60_000 },
      true,
    ],
    [
      'retry time outlasts a short forced attempt',
      task(4, 55 * 60_000, '60s'),
      { maxAttempts: 5, maxRetryDurationMs: 60 * 60_000 },
      false,
    ],
  ])('%s', (_, t, retry, expected) => {
    expect(isLastAttempt(t, retry, NOW)).toBe(expected);
  });

  it('is a skip reason unless allowed', () => {
    const base = { ...failedTask(), dispatchCount: 4 };
    const retry = { maxAttempts: 5, maxRetryDurationMs: 0 };
    expect(selectTask(base, { ...rules(), retry })).toEqual({ kind: 'skip', reason: 'last-attempt' });
    expect(selectTask(base, { ...rules(), retry, allowLastAttempt: true })).toEqual({ kind: 'candidate' });
  });
});
