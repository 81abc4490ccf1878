import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { Task } from '../../shared/cloud-tasks/client.js';
import {
  isParkingQueue,
  parkingQueueOf,
  parseQueueName,
  parseTaskName,
} from '../../shared/cloud-tasks/names.js';
import {
  backoffMs,
  homeCopyOf,
  homeNameOf,
  isAtRisk,
  mayHaveVanishedByItself,
  PARK_HEADER,
  parkedCopyOf,
  parkedNameOf,
  parkedRecordOf,
  quietUntilOf,
  shortestLifeMs,
  TASK_RETENTION_MS,
  type RetryPolicy,
} from '../../shared/run/park-rules.js';
import { selectTask } from '../../shared/run/select.js';

const NOW = Date.parse('2026-12-05T12:00:00Z');
const MINUTE = 60_000;
const HOME = parseQueueName('projects/proj/locations/us-central1/queues/orders')!;
const iso = (ms: number) => new Date(ms).toISOString();

const policy = (fields: Partial<RetryPolicy> = {}): RetryPolicy => ({
  maxAttempts: 5,
  maxRetryDurationMs: 0,
  minBackoffMs: 10_000,
  maxBackoffMs: 300_000,
  maxDoublings: 3,
  ...fields,
});

function failed(fields: Partial<Task> = {}): Task {
  return {
    name: `${HOME.name}/tasks/t1`,
    createTime: iso(NOW - 60 * MINUTE),
    scheduleTime: iso(NOW + 10 * MINUTE),
    dispatchCount: 3,
    responseCount: 3,
    firstAttempt: { dispatchTime: iso(NOW - 50 * MINUTE) },
    lastAttempt: {
      dispatchTime: iso(NOW - 5 * MINUTE),
      responseTime: iso(NOW - 5 * MINUTE + 200),
      responseStatus: { code: 14, message: 'HTTP status code 503' },
    },
    httpRequest: { url: 'https://work.example/orders/1', httpMethod: 'POST' },
    ...fields,
  };
}

describe('backoffMs', () => {
  it('doubles maxDoublings times, then grows linearly, capped at maxBackoff', () => {
    const waits = Array.from({ length: 8 }, (_, i) => backoffMs(policy(), i + 1) / 1000);
    expect(waits).toEqual([10, 20, 40, 80, 160, 240, 300, 300]);
  });
});

describe('isAtRisk', () => {
  const until = NOW + 20 * MINUTE;
  it('a task whose next attempt is its last, within the horizon', () => {
    expect(isAtRisk(failed({ dispatchCount: 4 }), policy(), NOW, until)).toBe(true);
  });
  it('a task with attempts left, but all of them within the horizon (short backoffs)', () => {
    expect(isAtRisk(failed({ dispatchCount: 2 }), policy(), NOW, until)).toBe(true);
  });
  it('not a task whose next attempts are spread past the horizon (long backoffs)', () => {
    const long = policy({ minBackoffMs: 10 * MINUTE, maxBackoffMs: 60 * MINUTE });
    expect(isAtRisk(failed({ dispatchCount: 2 }), long, NOW, until)).toBe(false);
  });
  it('not a task whose last attempt falls after the horizon', () => {
    expect(
      isAtRisk(failed({ dispatchCount: 4, scheduleTime: iso(NOW + 30 * MINUTE) }), policy(), NOW, until),
    ).toBe(false);
  });
  it('never by attempts with unlimited attempts, but by its 31 days', () => {
    expect(isAtRisk(failed(), policy({ maxAttempts: -1 }), NOW, until)).toBe(false);
    const old = failed({ createTime: iso(until - TASK_RETENTION_MS + MINUTE) });
    expect(isAtRisk(old, policy({ maxAttempts: -1 }), NOW, until)).toBe(false);
    const older = failed({ createTime: iso(until - TASK_RETENTION_MS - MINUTE) });
    expect(isAtRisk(older, policy({ maxAttempts: -1 }), NOW, until)).toBe(true);
  });
  it('waits for maxRetryDuration too: both limits must be used up', () => {
    const young = failed({ dispatchCount: 4, firstAttempt: { dispatchTime: iso(NOW - MINUTE) } });
    expect(
      isAtRisk(young, policy({ maxRetryDurationMs: 60 * MINUTE, maxBackoffMs: 10_000 }), NOW, until),
    ).toBe(false);
    expect(
      isAtRisk(young, policy({ maxRetryDurationMs: 5 * MINUTE, maxBackoffMs: 10_000 }), NOW, until),
    ).toBe(true);
  });
  it('judges maxRetryDuration when an attempt may fail: as late as its dispatch deadline', () => {
    // Five attempts made, the first 50 minutes ago; the next comes in 5 minutes, the one after 30 later.
    const slow = (dispatchDeadline: string) =>
      failed({ dispatchCount: 5, scheduleTime: iso(NOW + 5 * MINUTE), dispatchDeadline });
    const halfHourly = policy({
      maxRetryDurationMs: 60 * MINUTE,
      minBackoffMs: 30 * MINUTE,
      maxBackoffMs: 30 * MINUTE,
    });
    // Timing out after 10 minutes, it fails 65 minutes after its first attempt: dropped.
    expect(isAtRisk(slow('600s'), halfHourly, NOW, until)).toBe(true);
    // Failing within 30 s, it is 55.5 minutes old; the attempt after that is past the horizon.
    expect(isAtRisk(slow('30s'), halfHourly, NOW, until)).toBe(false);
  });
});

describe('shortestLifeMs', () => {
  it('is the whole schedule from the first failed attempt to the drop', () => {
    // Attempts at 0, 10, 30, 70 and 150 s: the fifth drops the task.
    expect(shortestLifeMs(policy())).toBe(150_000);
    expect(shortestLifeMs(policy({ maxRetryDurationMs: 10 * MINUTE }))).toBeGreaterThanOrEqual(10 * MINUTE);
    expect(shortestLifeMs(policy({ maxAttempts: -1 }))).toBe(TASK_RETENTION_MS);
  });
});

describe('parking queue names', () => {
  it('is <queue>-parked, hashed past 100 characters', () => {
    expect(parkingQueueOf(HOME).name).toBe('projects/proj/locations/us-central1/queues/orders-parked');
    const id = 'q'.repeat(95);
    const long = parkingQueueOf(parseQueueName(`projects/proj/locations/l/queues/${id}`)!);
    const hash = createHash('sha256').update(id).digest('hex').slice(0, 8);
    expect(long.queue).toBe(`${'q'.repeat(84)}-${hash}-parked`);
    expect(long.queue.length).toBeLessThanOrEqual(100);
    expect(isParkingQueue(long)).toBe(true);
    expect(isParkingQueue(HOME)).toBe(false);
  });
});

describe('the parked copy', () => {
  const withSecrets = failed({
    httpRequest: {
      url: 'https://work.example/orders/1',
      httpMethod: 'POST',
      headers: { 'X-Secret': 'v', 'x-rerun-original-task': 'projects/proj/locations/l/queues/q/tasks/first' },
      body: 'Ym9keQ==',
      oidcToken: { serviceAccountEmail: 'sa@proj.iam.gserviceaccount.com', audience: 'https://aud' },
    },
    dispatchDeadline: '900s',
  });
  const parking = parkingQueueOf(HOME);
  const name = parkedNameOf(parseTaskName(withSecrets.name)!, parking);
  const copy = parkedCopyOf(withSecrets, name, HOME, NOW, false);

  it('keeps every stored field, drops the token, and records it and the attempts in headers', () => {
    expect(copy.httpRequest?.body).toBe('Ym9keQ==');
    expect(copy.httpRequest?.oidcToken).toBeUndefined();
    expect(copy.dispatchDeadline).toBe('900s');
    const headers = copy.httpRequest!.headers!;
    expect(headers['X-Secret']).toBe('v');
    expect(Object.keys(headers).filter((k) => k.toLowerCase() === 'x-rerun-original-task')).toHaveLength(1);
    expect(headers['X-Rerun-Original-Task']).toBe('projects/proj/locations/l/queues/q/tasks/first');
    expect(headers[PARK_HEADER.oidcAccount]).toBe('sa@proj.iam.gserviceaccount.com');
    expect(headers[PARK_HEADER.parkCount]).toBe('1');
  });

  it('reads back as its original for selection, and goes home with its token', () => {
    const parked = { ...copy, createTime: iso(NOW) } as Task;
    const record = parkedRecordOf(parked);
    expect(record.home?.name).toBe(HOME.name);
    expect(record.tokenAccount).toBe('sa@proj.iam.gserviceaccount.com');
    expect(record.recorded).toMatchObject({
      dispatchCount: 3,
      createTime: withSecrets.createTime,
      lastAttempt: { responseStatus: { code: 14, message: 'HTTP status code 503' } },
    });
    const rules = {
      match: { responseCodes: [503] },
      cutoffMs: NOW,
      minBackoffLeftMs: 0,
      dueSoonApplies: false,
      retry: policy(),
      allowLastAttempt: true,
      nowMs: NOW,
    };
    expect(selectTask(record.recorded, rules)).toEqual({ kind: 'candidate' });
    const home = homeCopyOf(parked, homeNameOf(name, HOME), NOW + 10_000);
    expect(home.name.startsWith(`${HOME.name}/tasks/`)).toBe(true);
    expect(home.httpRequest?.oidcToken).toEqual({
      serviceAccountEmail: 'sa@proj.iam.gserviceaccount.com',
      audience: 'https://aud',
    });
    const headerNames = Object.keys(home.httpRequest!.headers!);
    expect(headerNames).toEqual(
      expect.arrayContaining(['X-Secret', 'X-Rerun-Original-Task', PARK_HEADER.parkCount]),
    );
    expect(headerNames).not.toContain(PARK_HEADER.originalQueue);
    expect(headerNames).not.toContain(PARK_HEADER.oidcAccount);
  });
});

describe('quietUntilOf and mayHaveVanishedByItself (docs/parking.md "The move")', () => {
  const T0 = Date.parse('2026-12-05T12:00:00Z');
  const iso = (ms: number) => new Date(ms).toISOString();

  it('is the earlier of the next attempt and the 31 days', () => {
    const created = T0 - TASK_RETENTION_MS + 60 * 60_000;
    expect(quietUntilOf({ name: 'x', scheduleTime: iso(T0 + 10 * 60_000), createTime: iso(created) })).toBe(
      iso(T0 + 10 * 60_000),
    );
    expect(quietUntilOf({ name: 'x', scheduleTime: iso(T0 + 2 * 3_600_000), createTime: iso(created) })).toBe(
      iso(T0 + 60 * 60_000),
    );
    expect(quietUntilOf({ name: 'x' })).toBeUndefined();
  });

  it('trusts a quiet time only a minute ahead of this clock', () => {
    expect(mayHaveVanishedByItself(iso(T0 + 10 * 60_000), T0)).toBe(false);
    expect(mayHaveVanishedByItself(iso(T0 + 30_000), T0)).toBe(true);
    expect(mayHaveVanishedByItself(iso(T0 - 1), T0)).toBe(true);
    expect(mayHaveVanishedByItself(undefined, T0)).toBe(true);
  });
});
