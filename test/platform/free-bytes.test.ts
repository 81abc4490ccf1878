import { describe, expect, it } from 'vitest';
import { freeNow, isFreed, ownsMemory } from '../../shared/platform/free-bytes.js';

describe('freeNow', () => {
  it('frees a buffer that is the whole of its memory: it reads as empty from then on', () => {
    const bytes = Buffer.allocUnsafeSlow(10_000).fill(1);
    expect(ownsMemory(bytes)).toBe(true);
    freeNow(bytes);
    expect(isFreed(bytes)).toBe(true);
    expect(bytes.length).toBe(0);
    freeNow(bytes); // again: nothing to do
    expect(ownsMemory(bytes)).toBe(false);
  });

  it('leaves a view into memory others share: a slice, or a small buffer from the pool', () => {
    const whole = Buffer.allocUnsafeSlow(100).fill(7);
    const slice = whole.subarray(10, 20);
    const pooled = Buffer.from('a small buffer');
    for (const view of [slice, pooled]) {
      expect(ownsMemory(view)).toBe(false);
      freeNow(view);
      expect(isFreed(view)).toBe(false);
    }
    expect(slice.every((byte) => byte === 7)).toBe(true);
    expect(pooled.toString()).toBe('a small buffer');
  });
});
