import { describe, expect, it } from 'vitest';
import { Admission } from '../../shared/run/admission.js';

/** Whether `promise` has settled once pending callbacks ran. */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  void promise.then(() => (done = true));
  await new Promise((resolve) => setImmediate(resolve));
  return done;
}

describe('Admission', () => {
  it('takes at most the cap; the rest are over-cap once every place is used', async () => {
    const admission = new Admission(2);
    (await admission.enter())!.use();
    (await admission.enter())!.use();
    expect(await admission.enter()).toBeUndefined();
  });

  it('gives a place back to the next candidate when its task was not acted on', async () => {
    const admission = new Admission(2);
    const first = (await admission.enter())!;
    const second = (await admission.enter())!;
    // Every place is held by a task that may still give it back: the next candidate waits.
    const third = admission.enter();
    expect(await settled(third)).toBe(false);
    first.giveBack();
    const place = await third;
    expect(place).toBeDefined();
    // The cap stays hard: two acted on, the rest over-cap.
    second.use();
    const fourth = admission.enter();
    expect(await settled(fourth)).toBe(false);
    place!.use();
    expect(await fourth).toBeUndefined();
  });

  it('ends a place once: a second end changes nothing', async () => {
    const admission = new Admission(1);
    const place = (await admission.enter())!;
    place.use();
    place.giveBack();
    expect(await admission.enter()).toBeUndefined();
  });
});
