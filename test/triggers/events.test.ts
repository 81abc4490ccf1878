import { describe, expect, it } from 'vitest';
import { httpDelivery, parseRerunEvent } from '../../shared/triggers/events.js';

const NOW = Date.parse('2026-11-22T12:00:00Z');
const Q = 'projects/p-1/locations/us-central1/queues/orders';

function parse(json: unknown) {
  return parseRerunEvent(json, { receivedMs: NOW, requestId: 'test-request' });
}

describe('parseRerunEvent', () => {
  it('normalizes a fix-deployed event: deployedAt is the cutoff', () => {
    const result = parse({
      kind: 'fix-deployed',
      queues: [Q],
      deployedAt: '2026-11-22T10:00:00Z',
      service: 'orders-api',
    });
    expect(result.success && result.data).toMatchObject({
      kind: 'fix-deployed',
      queues: [Q],
      cutoffMs: Date.parse('2026-11-22T10:00:00Z'),
      minBackoffLeftMs: 30_000,
      dryRun: false,
      force: false,
      context: { service: 'orders-api' },
    });
  });

  it("names the request: explicit requestId, else the delivery's; every option has its default", () => {
    const plain = parse({ kind: 'fix-deployed' });
    expect(plain.success && plain.data).toMatchObject({
      requestId: 'test-request',
      mode: 'run',
      lastAttempts: false,
      verifyMs: 30_000,
      breaker: { maxFailedAgain: 0.5, minVerdicts: 5 },
      canary: undefined,
      cutoffSource: 'first-delivery',
      cutoffClamped: false,
    });
    const named = parse({ kind: 'fix-deployed', requestId: 'deploy-42', breaker: false, verify: '0s' });
    expect(named.success && named.data).toMatchObject({
      requestId: 'deploy-42',
      breaker: undefined,
      verifyMs: 0,
    });
    expect(parse({ kind: 'fix-deployed', requestId: 'no spaces' })).toMatchObject({
      success: false,
      error: { fields: ['requestId'] },
    });
  });

  it('hashes the canonical body into the default requestId of an HTTP event', () => {
    const a = httpDelivery({ kind: 'fix-deployed', queues: ['q'], reason: 'x' }, NOW);
    const b = httpDelivery({ reason: 'x', queues: ['q'], kind: 'fix-deployed' }, NOW + 5);
    const c = httpDelivery({ kind: 'fix-deployed', queues: ['q'], reason: 'y' }, NOW);
    expect(a.requestId).toBe(b.requestId);
    expect(a.requestId).not.toBe(c.requestId);
    expect(a.requestId).toMatch(/^body-[0-9a-f]{40}$/);
  });

  it('takes the cutoff from the event, else the publish time, else the first delivery; clamps and says so', () => {
    const cutoffOf = (json: object, defaultCutoffMs?: number) => {
      const parsed = parseRerunEvent(json, { receivedMs: NOW, requestId: 'r', defaultCutoffMs });
      return parsed.success
        ? [
            parsed.data.cutoffMs,
            parsed.data.cutoffSource,
            parsed.data.cutoffClamped,
            parsed.data.cutoffFromDelivery,
          ]
        : [];
    };
    const earlier = NOW - 60_000;
    expect(cutoffOf({ kind: 'fix-deployed', deployedAt: new Date(earlier).toISOString() }, NOW - 5)).toEqual([
      earlier,
      'event',
      false,
      false,
    ]);
    expect(cutoffOf({ kind: 'sweep' }, earlier)).toEqual([earlier, 'publish-time', false, false]);
    // Taken from the time received: another delivery would get another, so the first one's is shared.
    expect(cutoffOf({ kind: 'sweep' })).toEqual([NOW, 'first-delivery', false, true]);
    const future = { kind: 'tasks', tasks: [`${Q}/tasks/t`], cutoff: '2030-01-01T00:00:00Z' };
    expect(cutoffOf(future)).toEqual([NOW, 'event', true, true]);
    // A message's clamp is its publishTime, which every delivery carries.
    expect(cutoffOf(future, earlier)).toEqual([earlier, 'event', true, false]);
  });

  it('gives sweeps a canary by default, which false turns off', () => {
    const sweep = parse({ kind: 'sweep' });
    expect(sweep.success && sweep.data.canary).toEqual({ count: 2, waitMs: 20_000 });
    const off = parse({ kind: 'sweep', canary: false });
    expect(off.success && off.data.canary).toBeUndefined();
    const deploy = parse({ kind: 'fix-deployed' });
    expect(deploy.success && deploy.data.canary).toBeUndefined();
  });

  it('defaults the cutoff to the time received, and never lets it lie in the future', () => {
    expect(parse({ kind: 'fix-deployed' }).success && parse({ kind: 'fix-deployed' })).toMatchObject({
      data: { cutoffMs: NOW, queues: undefined },
    });
    const future = parse({ kind: 'fix-deployed', deployedAt: '2030-01-01T00:00:00Z' });
    expect(future.success && future.data.cutoffMs).toBe(NOW);
  });

  it('turns a failure-alert window into the match and the cutoff', () => {
    const result = parse({
      kind: 'failure-alert',
      since: '2026-11-22T09:00:00Z',
      until: '2026-11-22T10:00:00+01:00',
    });
    expect(result.success && result.data).toMatchObject({
      cutoffMs: Date.parse('2026-11-22T09:00:00Z'),
      match: {
        failedSince: Date.parse('2026-11-22T09:00:00Z'),
        failedUntil: Date.parse('2026-11-22T09:00:00Z'),
      },
    });
  });

  it('gives sweeps 5 minutes of minBackoffLeft by default', () => {
    const result = parse({ kind: 'sweep' });
    expect(result.success && result.data.minBackoffLeftMs).toBe(300_000);
    const explicit = parse({ kind: 'sweep', minBackoffLeft: '90s' });
    expect(explicit.success && explicit.data.minBackoffLeftMs).toBe(90_000);
  });

  it('takes explicit task names with a cutoff', () => {
    const result = parse({
      kind: 'tasks',
      tasks: [`${Q}/tasks/t1`],
      cutoff: '2026-11-22T11:00:00Z',
      reason: 'PR 12',
    });
    expect(result.success && result.data).toMatchObject({ tasks: [`${Q}/tasks/t1`], reason: 'PR 12' });
  });

  it.each<[string, unknown, string[]]>([
    ['unknown kind', { kind: 'rerun-all' }, ['kind']],
    ['no kind', { queues: [Q] }, ['kind']],
    ['not an object', [1, 2], ['']],
    ['wrong type', { kind: 'fix-deployed', dryRun: 'yes' }, ['dryRun']],
    ['unknown field', { kind: 'sweep', queue: Q }, ['queue']],
    ['unknown match field', { kind: 'sweep', match: { taskId: 'x' } }, ['match.taskId']],
    ['bad queue name', { kind: 'sweep', queues: ['projects/p/locations/l/queues/../x'] }, ['queues[0]']],
    ['injection in a task name', { kind: 'tasks', tasks: [`${Q}/tasks/a?b=1`] }, ['tasks[0]']],
    ['bad time', { kind: 'fix-deployed', deployedAt: 'yesterday' }, ['deployedAt']],
    ['bad duration', { kind: 'sweep', minBackoffLeft: '5 minutes' }, ['minBackoffLeft']],
    ['regex instead of glob', { kind: 'sweep', match: { taskIdGlob: '(a+)+$' } }, ['match.taskIdGlob']],
    [
      'bad response code',
      { kind: 'sweep', match: { responseCodes: ['TEAPOT'] } },
      ['match.responseCodes[0]'],
    ],
    [
      'inverted attempts',
      { kind: 'sweep', match: { minAttempts: 5, maxAttempts: 2 } },
      ['match.minAttempts'],
    ],
    ['zero maxTasks', { kind: 'sweep', maxTasks: 0 }, ['maxTasks']],
  ])('rejects %s, naming the field', (_, json, fields) => {
    const result = parse(json);
    expect(result.success).toBe(false);
    if (!result.success) {
      expect(result.error.fields).toEqual(fields);
      expect(result.error.message).toMatch(/^invalid event: /);
    }
  });

  it('takes "redrive": {"batch": false} as the request\'s choice of path, and names an unknown field', () => {
    const off = parse({ kind: 'fix-deployed', mode: 'redrive', redrive: { batch: false } });
    expect(off.success && off.data.redriveBatch).toBe(false);
    const unset = parse({ kind: 'fix-deployed', mode: 'redrive' });
    expect(unset.success && unset.data.redriveBatch).toBeUndefined();
    const bad = parse({ kind: 'fix-deployed', redrive: { batches: false } });
    expect(!bad.success && bad.error.fields).toEqual(['redrive.batches']);
  });

  it('takes park, unpark and includeParked (docs/parking.md); an unpark is always a redrive', () => {
    const sweep = parse({ kind: 'sweep', park: true });
    expect(sweep.success && sweep.data.park).toBe(true);
    expect(sweep.success && sweep.data.includeParked).toBe(false);
    const unset = parse({ kind: 'sweep' });
    expect(unset.success && unset.data.park).toBeUndefined();
    const unpark = parse({ kind: 'unpark', queues: [Q], possiblyDone: true });
    expect(unpark.success && unpark.data).toMatchObject({
      kind: 'unpark',
      mode: 'redrive',
      queues: [Q],
      possiblyDone: true,
      includeParked: false,
    });
    const runMode = parse({ kind: 'unpark', mode: 'run' });
    expect(!runMode.success && runMode.error.fields).toEqual(['mode']);
    // A fix and an ended alert leave it to the deployment (RERUN_PARK); an open alert never unparks.
    const fix = parse({ kind: 'fix-deployed' });
    expect(fix.success && fix.data.includeParked).toBeUndefined();
    const off = parse({ kind: 'fix-deployed', includeParked: false });
    expect(off.success && off.data.includeParked).toBe(false);
    const ended = parse({ kind: 'failure-alert', until: '2026-11-22T11:00:00Z' });
    expect(ended.success && ended.data.includeParked).toBeUndefined();
    const open = parse({ kind: 'failure-alert', since: '2026-11-22T11:00:00Z' });
    expect(open.success && open.data.includeParked).toBe(false);
    const bad = parse({ kind: 'sweep', includeParked: true });
    expect(!bad.success && bad.error.fields).toEqual(['includeParked']);
  });

  it('never echoes the payload in its error', () => {
    const result = parse({ kind: 'sweep', reason: 42, secret: 'hunter2-token' });
    expect(!result.success && result.error.message).not.toContain('hunter2');
  });
});
