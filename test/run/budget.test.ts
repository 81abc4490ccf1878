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

  it('sleeps until the time asked, the deadline, or the signal aborting, whichever comes first', async () => {
    const budget = new Budget(60_000);
    const started = Date.now();
    await budget.sleepUntil(started + 30);
    expect(Date.now() - started).toBeGreaterThanOrEqual(29);
    const shortBudget = new Budget(20);
    const shortStart = Date.now();
    await shortBudget.sleepUntil(shortStart + 60_000);
    expect(Date.now() - shortStart).toBeLessThan(5_000);

    const hold = new AbortController();
    const woken: number[] = [];
    // One sleeper's time comes first; the others wake together when the signal aborts.
    const early = budget.sleepUntil(Date.now() + 10, hold.signal).then(() => woken.push(0));
    const sleepers = [1, 2, 3].map((i) =>
      budget.sleepUntil(Date.now() + 60_000, hold.signal).then(() => woken.push(i)),
    );
    await early;
    expect(woken).toEqual([0]);
    hold.abort();
    await Promise.all(sleepers);
    expect(woken.sort()).toEqual([0, 1, 2, 3]);
    // Once aborted, a sleep on the signal returns at once.
    const after = Date.now();
    await budget.sleepUntil(after + 60_000, hold.signal);
    expect(Date.now() - after).toBeLessThan(5_000);
  });
});
