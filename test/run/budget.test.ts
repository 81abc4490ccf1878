import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { Budget, OUT_OF_TIME } from '../../shared/run/budget.js';

describe('Budget', () => {
  it('with no budget (Infinity) never ends, and a raced call gives its answer', async () => {
    const budget = new Budget(Number.POSITIVE_INFINITY);
    expect(budget.isOver()).toBe(false);
    expect(budget.deadlineMs).toBe(Number.POSITIVE_INFINITY);
    expect(await budget.race(sleep(20).then(() => 'answer'))).toBe('answer');
  });

  it('past a timer range is no budget either (a timer that long would fire at once)', async () => {
    const budget = new Budget(30 * 24 * 3_600_000);
    expect(budget.deadlineMs).toBe(Number.POSITIVE_INFINITY);
    expect(await budget.race(sleep(20).then(() => 'answer'))).toBe('answer');
  });

  it('stopped: no new task starts, yet a call under way is let answer', async () => {
    const stop = new AbortController();
    const budget = new Budget(60_000, Date.now, stop.signal);
    const underWay = budget.race(sleep(30).then(() => 'answer'));
    stop.abort();
    expect(budget.isOver()).toBe(true);
    expect(budget.leftMs()).toBeGreaterThan(50_000);
    expect(await underWay).toBe('answer');
  });

  it('a call still unanswered at the deadline gives OUT_OF_TIME', async () => {
    expect(await new Budget(10).race(sleep(200).then(() => 'late'))).toBe(OUT_OF_TIME);
  });
});
