import { describe, expect, it } from 'vitest';
import { Breaker } from '../../shared/run/breaker.js';
import { capturedLog } from './stage-fixtures.js';

const SETTINGS = { maxFailedAgain: 0.5, minVerdicts: 4 };

describe('Breaker', () => {
  it('does not trip before minVerdicts verdicts are in, however many failed again', () => {
    const breaker = new Breaker(SETTINGS, capturedLog().log);
    expect([1, 2, 3].map(() => breaker.record('failed-again'))).toEqual([false, false, false]);
    expect(breaker.isTripped).toBe(false);
    expect(breaker.record('failed-again')).toBe(true);
    expect(breaker.isTripped).toBe(true);
  });

  it('trips only when more than maxFailedAgain of the verdicts failed again', () => {
    const breaker = new Breaker(SETTINGS, capturedLog().log);
    for (const verdict of ['failed-again', 'succeeded', 'failed-again', 'succeeded'] as const)
      expect(breaker.record(verdict)).toBe(false);
    expect(breaker.record('failed-again')).toBe(true);
  });

  it('counts no `running` and no missing verdict', () => {
    const breaker = new Breaker({ maxFailedAgain: 0, minVerdicts: 1 }, capturedLog().log);
    expect(breaker.record('running')).toBe(false);
    expect(breaker.record(undefined)).toBe(false);
    expect(breaker.isTripped).toBe(false);
  });

  it('says so once, at WARN, with the figures; later verdicts do not trip it again', () => {
    const { log, lines } = capturedLog();
    const breaker = new Breaker({ maxFailedAgain: 0, minVerdicts: 1 }, log);
    expect(breaker.record('failed-again')).toBe(true);
    expect(breaker.record('failed-again')).toBe(false);
    const tripped = lines().filter((l) => String(l.message).startsWith('breaker tripped'));
    expect(tripped).toHaveLength(1);
    expect(tripped[0]).toMatchObject({ severity: 'WARNING', succeeded: 0, failedAgain: 1 });
  });

  it('never trips when turned off', () => {
    const breaker = new Breaker(undefined, capturedLog().log);
    for (let i = 0; i < 20; i++) expect(breaker.record('failed-again')).toBe(false);
  });
});
