/**
 * Redrive's crash recovery by batch, with a control queue (docs/claims.md "A crash mid-redrive"): as
 * redrive-recovery.test.ts, where one window covers a batch of a hundred tasks. rerunHttp runs as a real
 * process killed with SIGKILL, the emulator's control queue delivers each move's recovery task to it, and
 * the emulator's records and the target's requests judge: no task runs twice, none is lost.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/rerun-process.js';
import { CONTROL, CrashWorld } from '../helpers/crash-world.js';

/** The copies fall due this long after they are made, the recovery tasks halfway. */
const ARMING_MS = 3_000;

let world: CrashWorld;

beforeEach(async () => {
  world = await CrashWorld.start();
});
afterEach(() => world.stop());

describe('redrive recovery by batch', () => {
  it.each([
    // Killed after two batch creates, while their originals wait for the second read that comes before any
    // delete. Its recoveries go to a process just restarted: they get a little longer.
    ['after two batches', 300, 2, 8_000],
    // Hundreds of moves under way (a run takes 1,000 of the 2,000 tasks) fall due within a few seconds: one
    // delivery's sweep must settle them before their copies arm (docs/claims.md "A crash mid-redrive").
    ['800 moves under way', 2_000, 8, 6_000],
  ])(
    'a process killed with SIGKILL mid-redrive (%s), then the request again: none twice, none lost',
    async (_, count, killAfterCreates, armingMs) => {
      const again = await world.redriveKilledThenAgain({ batch: true, count, killAfterCreates, armingMs });
      expect(again.status).toBe(200);
      // Tasks whose claim the killed process holds are left to that claim (due later): still there, once.
      expect(again.places).toEqual({ twice: 0, never: 0 });
    },
    120_000,
  );

  it('a process killed mid-redrive, its recovery tasks delivered only after the copies ran: none twice, none lost', async () => {
    const originals = world.loadFailed(300);
    // The control queue dispatches nothing until the copies made before the crash have run.
    const controlQueue = (verb: 'pause' | 'resume') =>
      fetch(`${world.emulator.url}/v2/${CONTROL}:${verb}`, { method: 'POST', body: '{}' });
    await controlQueue('pause');
    const port = await freePort();
    const first = await world.rerunProcess(port, { armingMs: ARMING_MS, batch: true, control: true });
    const event = {
      kind: 'fix-deployed',
      mode: 'redrive',
      verify: '0s',
      requestId: 'late-recovery',
      deployedAt: new Date(Date.now() - 1_000).toISOString(),
    };
    await world.killAfterCreates(first, event, 2, true);
    await world.copiesSettled(ARMING_MS);
    const ranBeforeRecovery = world.target.requests.length;
    expect(ranBeforeRecovery).toBeGreaterThan(0);
    await world.rerunProcess(port, { armingMs: ARMING_MS, batch: true, control: true });
    await controlQueue('resume');
    await expect.poll(() => world.recoveriesLeft(), { timeout: 20_000, interval: 200 }).toBe(0);
    // Each copy that ran had its original deleted by the late recovery; tasks not moved wait, once each.
    expect(await world.places(originals)).toEqual({ twice: 0, never: 0 });
    expect(world.target.requests).toHaveLength(ranBeforeRecovery);
  }, 120_000);
});
