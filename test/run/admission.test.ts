import { describe, expect, it } from 'vitest';
import { Admission } from '../../shared/run/admission.js';

describe('Admission', () => {
  it('takes at most the cap; the rest are over-cap', () => {
    const admission = new Admission(2);
    expect(admission.check()).toBe('new');
    admission.take();
    admission.take();
    expect(admission.check()).toBe('over-cap');
  });
});
