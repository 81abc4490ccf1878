import { describe, expect, it } from 'vitest';
import { hasSlot, Pacer, reserveSlot, Semaphore } from '../../shared/run/pace.js';

describe('reserveSlot', () => {
  it('spaces slots by the slowest pacer, a little wider than its rate', () => {
    const fast = new Pacer(10);
    const slow = new Pacer(1);
    const slots = [0, 1, 2].map(() => reserveSlot([fast, slow], 1_000, Infinity)!);
    expect(slots[0]).toBe(1_000);
    expect(slots[1]! - slots[0]!).toBeGreaterThanOrEqual(1_000);
    expect(slots[1]! - slots[0]!).toBeLessThan(1_020);
    expect(slots[2]! - slots[1]!).toBeCloseTo(slots[1]! - slots[0]!);
  });

  it('shares a process-wide pacer between two runs', () => {
    const processWide = new Pacer(1);
    const a = reserveSlot([processWide, new Pacer(100)], 0, Infinity)!;
    const b = reserveSlot([processWide, new Pacer(100)], 0, Infinity)!;
    expect(b - a).toBeGreaterThanOrEqual(1_000);
  });

  it('refuses a slot past the deadline and reserves nothing then', () => {
    const pacer = new Pacer(1);
    expect(reserveSlot([pacer], 0, 500)).toBe(0);
    expect(reserveSlot([pacer], 0, 500)).toBeUndefined();
    expect(reserveSlot([pacer], 0, 5_000)).toBeCloseTo(1_010);
  });

  it('tells whether a slot is left by the deadline without reserving it', () => {
    const pacer = new Pacer(1);
    expect(hasSlot([pacer], 0, 500)).toBe(true);
    expect(hasSlot([pacer], 0, 500)).toBe(true);
    expect(reserveSlot([pacer], 0, 500)).toBe(0);
    expect(hasSlot([pacer], 0, 500)).toBe(false);
    expect(hasSlot([pacer], 0, 5_000)).toBe(true);
  });

  it('waits out a quota push-back', () => {
    const pacer = new Pacer(1);
    pacer.pushBack(30_000);
    expect(reserveSlot([pacer], 0, Infinity)).toBe(30_000);
  });
});

describe('Semaphore', () => {
  it('never lets more than its limit hold at once', async () => {
    const semaphore = new Semaphore(3);
    let active = 0;
    let peak = 0;
    await Promise.all(
      Array.from({ length: 20 }, () =>
        semaphore.with(async () => {
          peak = Math.max(peak, ++active);
          await new Promise((resolve) => setImmediate(resolve));
          active--;
        }),
      ),
    );
    expect(peak).toBe(3);
  });

  it('holds units by weight, serves waiters in order, and lets one too large for the limit hold alone', async () => {
    const bytes = new Semaphore(100);
    const served: string[] = [];
    expect(await bytes.acquire(undefined, undefined, 60)).toBe(true);
    const big = bytes.acquire(undefined, undefined, 150).then(() => served.push('big'));
    // Fits beside the 60 held, but waits behind the waiter before it.
    const small = bytes.acquire(undefined, undefined, 10).then(() => served.push('small'));
    await new Promise((resolve) => setImmediate(resolve));
    expect(served).toEqual([]);
    bytes.release(60);
    await big;
    expect(served).toEqual(['big']);
    // Released in part: 50 of the 150 still held, and 10 more fit.
    bytes.release(100);
    await small;
    expect(served).toEqual(['big', 'small']);
  });

  it('gives up at its deadline, and a large waiter that gave up no longer holds back smaller ones', async () => {
    const bytes = new Semaphore(100);
    expect(await bytes.acquire(undefined, undefined, 80)).toBe(true);
    const nowMs = Date.now();
    const big = bytes.acquire(nowMs + 20, nowMs, 50);
    const small = bytes.acquire(Number.POSITIVE_INFINITY, nowMs, 20);
    expect(await big).toBe(false);
    expect(await small).toBe(true);
    expect(await bytes.acquire(0, 1, 1)).toBe(false);
  });
});
