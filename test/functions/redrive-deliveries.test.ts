/**
 * Two deliveries of one redrive request at once, on two instances (real processes): the second starts
 * while the first moves tasks it listed too (docs/claims.md "Reserved names", docs/redrive.md "Per task").
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

// The second claims a task only once the first gives it up, and then reads it afresh. Without a control
// queue nothing is shared between the two: docs/claims.md "Limits".
it.each([
  { batch: true, gapMs: 800 },
  { batch: true, gapMs: 1_200 },
  { batch: false, gapMs: 1_200 },
])(
  'two deliveries of one redrive with a control queue (by batch: $batch), $gapMs ms apart: none twice, none lost',
  async ({ batch, gapMs }) => {
    // Each run takes at most 1,000 tasks, so the two overlap on the tasks the first moves as it goes.
    const originals = world.loadFailed(2_000);
    const setup = { armingMs: ARMING_MS, batch, control: true };
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
  120_000,
);
