import { describe, expect, it } from 'vitest';
import { ServerClock } from '../../shared/platform/server-clock.js';

describe('ServerClock', () => {
  it('knows nothing before an answer, and ignores a header that is not a date', () => {
    const clock = new ServerClock(() => 1_000_000);
    expect(clock.msUntil(0)).toBeUndefined();
    clock.observe(undefined);
    clock.observe('not a date');
    expect(clock.msUntil(0)).toBeUndefined();
  });

  it('takes the largest lower bound of the answers: the server read at least each Date on arrival', () => {
    let localMs = Date.parse('2026-12-08T00:00:10.000Z');
    const clock = new ServerClock(() => localMs);
    // The server is 60 s behind this clock; its Date headers are floored to the second.
    clock.observe('Mon, 07 Dec 2026 23:59:09 GMT');
    const cutoffMs = localMs - 1_000;
    expect(clock.msUntil(cutoffMs)).toBe(60_000);
    localMs += 500;
    clock.observe('Mon, 07 Dec 2026 23:59:10 GMT');
    // A later answer, a truer bound: 59 s to go from here.
    expect(clock.msUntil(cutoffMs)).toBe(59_000);
    localMs += 59_000;
    expect(clock.msUntil(cutoffMs)).toBe(0);
  });

  it('measures again once its bound is a minute old: the local clock may have been stepped', () => {
    let localMs = Date.parse('2026-12-08T00:00:00.000Z');
    const clock = new ServerClock(() => localMs);
    clock.observe('Tue, 08 Dec 2026 00:00:00 GMT');
    localMs += 61_000;
    clock.observe('Tue, 08 Dec 2026 00:00:31 GMT');
    expect(clock.msUntil(localMs)).toBe(30_000);
  });
});
