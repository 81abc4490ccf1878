import { describe, expect, it } from 'vitest';
import { estimateOf, formatSeconds, LoadCollector } from '../../shared/run/estimate.js';
import { Pacer } from '../../shared/run/pace.js';
import { candidateOf, queueName, queueRunOf } from './stage-fixtures.js';

describe('estimateOf', () => {
  it('paces RunTask at the lowest rate and redrive at the queue rate plus the arming delay', () => {
    const estimate = estimateOf(
      [{ tasks: 120, runRatePerSecond: 1, copyRatePerSecond: 10, backoffLeftSeconds: 30 }],
      { mode: 'run', armingDelayMs: 10_000 },
    );
    expect(estimate).toMatchObject({ runSeconds: 120, redriveSeconds: 22, backoffLeftSeconds: 30 });
    expect(estimate.suggestion).toMatch(/"mode": "redrive"/);
  });

  it('suggests nothing when the tasks retry by themselves first, or the request already redrives', () => {
    const load = { tasks: 120, runRatePerSecond: 1, copyRatePerSecond: 10, backoffLeftSeconds: 600 };
    expect(estimateOf([load], { mode: 'run', armingDelayMs: 10_000 }).suggestion).toBeUndefined();
    const slow = { ...load, backoffLeftSeconds: 1 };
    expect(estimateOf([slow], { mode: 'redrive', armingDelayMs: 10_000 }).suggestion).toBeUndefined();
  });

  it('adds the queues up, one after another, and caps a copy rate at 500 per second', () => {
    const estimate = estimateOf(
      [
        { tasks: 10, runRatePerSecond: 1, copyRatePerSecond: undefined, backoffLeftSeconds: 0 },
        { tasks: 1000, runRatePerSecond: 10, copyRatePerSecond: 1e6, backoffLeftSeconds: 5 },
      ],
      { mode: 'run', armingDelayMs: 0 },
    );
    expect(estimate).toMatchObject({ runSeconds: 110, redriveSeconds: 2, backoffLeftSeconds: 5 });
  });

  it('nothing to force takes no time', () => {
    expect(estimateOf([], { mode: 'redrive', armingDelayMs: 10_000 })).toMatchObject({
      runSeconds: 0,
      redriveSeconds: 0,
    });
  });

  it.each([
    [45, '45s'],
    [750, '12m 30s'],
    [10_020, '2h 47m'],
  ])('formatSeconds(%d) = %s', (seconds, text) => expect(formatSeconds(seconds)).toBe(text));
});

describe('LoadCollector', () => {
  it("sums a dry run's tasks per queue, with their rates and the latest next attempt", () => {
    const orders = queueRunOf({ pacers: [new Pacer(50), new Pacer(2)], copyPacers: [new Pacer(20)] });
    const billing = queueRunOf({ queue: queueName('billing'), pacers: [new Pacer(50)] });
    const nowMs = Date.parse('2030-01-01T00:00:00Z');
    const collector = new LoadCollector();
    collector.add(candidateOf('a', orders, { scheduleTime: '2030-01-01T00:00:30Z' }));
    collector.add(candidateOf('b', orders, { scheduleTime: '2030-01-01T00:01:00Z' }));
    collector.add(candidateOf('c', billing, { scheduleTime: '2029-12-31T00:00:00Z' }));
    expect(collector.loads(nowMs)).toEqual([
      { tasks: 2, backoffLeftSeconds: 60, runRatePerSecond: 2, copyRatePerSecond: 20 },
      { tasks: 1, backoffLeftSeconds: 0, runRatePerSecond: 50, copyRatePerSecond: undefined },
    ]);
  });
});
