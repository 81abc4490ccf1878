import { describe, expect, it } from 'vitest';
import { Admission } from '../../shared/run/admission.js';

describe('Admission', () => {
  it('takes a task once: listed again, it is seen', () => {
    const admission = new Admission(10);
    expect(admission.check('a')).toBe('new');
    admission.take('a');
    expect(admission.check('a')).toBe('seen');
    expect(admission.check('b')).toBe('new');
  });

  it('takes at most the cap; the rest are over-cap', () => {
    const admission = new Admission(2);
    admission.take('a');
    admission.take('b');
    expect(admission.check('c')).toBe('over-cap');
    // A task already taken is still only seen, never counted twice.
    expect(admission.check('a')).toBe('seen');
  });

  it('a held task is seen but does not count against the cap', () => {
    const admission = new Admission(1);
    admission.hold('h');
    expect(admission.check('h')).toBe('seen');
    expect(admission.check('a')).toBe('new');
  });
});
