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

it.each([
  // With a control queue, the second claims a task only once the first gives it up, and reads it afresh.
  { batch: true, control: true, gapMs: 800 },
  { batch: true, control: true, gapMs: 1_200 },
  // Without one, nothing is shared: the second may find the first's copy under the shared name.
  { batch: true, control: false, gapMs: 800 },
  { batch: false, control: false, gapMs: 1_200 },
])(
  'two deliveries of one redrive (by batch: $batch, control queue: $control), $gapMs ms apart: none twice, none lost',
  async ({ batch, control, gapMs }) => {
    // Each run takes at most 1,000 tasks, so the two overlap on the tasks the first moves as it goes.
    const originals = world.loadFailed(2_000);
    const setup = { armingMs: ARMING_MS, batch, control };
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
