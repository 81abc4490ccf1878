import { describe, expect, it } from 'vitest';
import { Hold } from '../../shared/run/hold.js';

describe('Hold', () => {
  it('holds the rest and wakes whoever waits on its signal', () => {
    const hold = new Hold();
    expect(hold.isHeld).toBe(false);
    expect(hold.signal.aborted).toBe(false);
    hold.hold();
    expect(hold.isHeld).toBe(true);
    expect(hold.signal.aborted).toBe(true);
  });

  it('a stop wakes the waiters without holding anything (they find the budget over and are deferred)', () => {
    const stop = new AbortController();
    const hold = new Hold(stop.signal);
    stop.abort();
    expect(hold.signal.aborted).toBe(true);
    expect(hold.isHeld).toBe(false);
  });
});
