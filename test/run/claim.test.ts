import { describe, expect, it } from 'vitest';
import { ClaimRegistry } from '../../shared/run/claim.js';
import { FirstDeliveries, FIRST_DELIVERY_MEMORY_MS } from '../../shared/platform/first-deliveries.js';

const T = 'projects/p/locations/l/queues/q/tasks/t';

describe('ClaimRegistry', () => {
  it('lets one run hold a task at a time, across requests', () => {
    const registry = new ClaimRegistry(1_000);
    expect(registry.tryClaim(T, 0)).toBe('claimed');
    expect(registry.tryClaim(T, 5)).toBe('running');
    registry.release(T, 8);
    expect(registry.tryClaim(T, 10)).toBe('claimed');
  });

  it('remembers when a claim was given up: a run begun before that reads the task afresh', () => {
    const registry = new ClaimRegistry(1_000);
    expect(registry.releasedSince(T, 0)).toBe(false);
    registry.tryClaim(T, 0);
    registry.release(T, 50);
    expect(registry.releasedSince(T, 40)).toBe(true);
    expect(registry.releasedSince(T, 60)).toBe(false);
    // Forgotten after 15 minutes, at the next sweep (a release, at most once a minute).
    registry.tryClaim(`${T}-2`, 16 * 60_000);
    registry.release(`${T}-2`, 16 * 60_000);
    expect(registry.releasedSince(T, 0)).toBe(false);
    expect(registry.releasedSince(`${T}-2`, 0)).toBe(true);
  });

  it('keeps a task whose RunTask lost its answer in doubt for the hold, then frees it', () => {
    const registry = new ClaimRegistry(1_000);
    registry.tryClaim(T, 0);
    registry.release(T, 100, true);
    expect(registry.tryClaim(T, 1_099)).toBe('in-doubt');
    expect(registry.tryClaim(T, 1_100)).toBe('claimed');
  });

  it('holds nothing in doubt with a hold of 0', () => {
    const registry = new ClaimRegistry(0);
    registry.tryClaim(T, 0);
    registry.release(T, 0, true);
    expect(registry.tryClaim(T, 0)).toBe('claimed');
  });
});

describe('FirstDeliveries', () => {
  it("gives every delivery within the hour the first one's cutoff, and a new one after", () => {
    const memory = new FirstDeliveries();
    expect(memory.cutoffFor('r', 1_000, 1_000)).toBe(1_000);
    expect(memory.cutoffFor('r', 2_000, 2_000)).toBe(1_000);
    expect(memory.cutoffFor('other', 2_000, 2_000)).toBe(2_000);
    const later = 1_000 + FIRST_DELIVERY_MEMORY_MS;
    expect(memory.cutoffFor('r', later, later)).toBe(later);
  });

  it('keeps an explicit cutoff as the first delivery gave it, even where a resend gives another', () => {
    const memory = new FirstDeliveries();
    // A deployedAt in the future is clamped to the time received: 5_000, then 9_000 on the resend.
    expect(memory.cutoffFor('deploy', 5_000, 5_000)).toBe(5_000);
    expect(memory.cutoffFor('deploy', 9_000, 9_000)).toBe(5_000);
  });
});
