/**
 * Two deliveries of one redrive request at once, on two instances (real processes) sharing a control
 * queue (docs/claims.md "Reserved names"): the second starts while the first moves tasks it listed too.
 * Judged by the queue and the target: every task in one place, run once.
 */
import { afterEach, beforeEach, expect, it } from 'vitest';
import { postJson } from '../helpers/http.js';
import { freePort } from '../helpers/rerun-process.js';
import { CrashWorld } from '../helpers/crash-world.js';

const ARMING_MS = 3_000;

let world: CrashWorld;

beforeEach(async () => {
  world = await CrashWorld.start();
});
afterEach(() => world.stop());

it.each([800, 1_200])(
  'two deliveries of one redrive by batch, the second %i ms after the first: none twice, none lost',
  async (gapMs) => {
    // Each run takes at most 1,000 tasks, so the two overlap on the tasks the first releases as it goes.
    const originals = world.loadFailed(2_000);
    const setup = { armingMs: ARMING_MS, batch: true, control: true };
    const first = await world.rerunProcess(await freePort(), setup);
    const second = await world.rerunProcess(await freePort(), setup);
    const event = {
      kind: 'fix-deployed',
      mode: 'redrive',
      verify: '0s',
      requestId: 'two-at-once',
      deployedAt: new Date(Date.now() - 1_000).toISOString(),
    };
    const firstAnswer = postJson(first.url, event);
    await new Promise((resolve) => setTimeout(resolve, gapMs));
    const answers = await Promise.all([firstAnswer, postJson(second.url, event)]);
    expect(answers.map((a) => a.status)).toEqual([200, 200]);
    await world.copiesSettled(ARMING_MS);
    expect(await world.places(originals)).toEqual({ twice: 0, never: 0 });
  },
  60_000,
);
