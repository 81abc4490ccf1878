/**
 * The run soak (docs/claims.md "Tried under random crashes"): rounds of a run (RunTask) killed with SIGKILL
 * at a random point once or twice, with a control queue in half the rounds, in half the rounds beside a
 * fault that may pass, and then the request again on a fresh process. Then the claims the killed runs left
 * (with a control queue) fall due, and in half those rounds the process carrying them out is killed too.
 * The emulator's dispatch records judge: each task forced exactly once. Not part of `npm test`: `npm run
 * soak`, SOAK_ROUNDS rounds.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Fault } from '../../emulator/faults.js';
import { ManualClock } from '../../emulator/server.js';
import { freePort, type RerunProcess } from '../helpers/rerun-process.js';
import { CONTROL, CrashWorld, ORDERS, type ProcessSetup } from '../helpers/crash-world.js';
import { forcedCounts } from '../helpers/forced.js';
import { callsSince, fixDeployed, killedThenAgain, killPoints, pick, ROUNDS, upTo } from './chance.js';

/** A run's claims fall due within this long: its budget (50 s by default) and a minute. */
const CLAIMS_DUE_WITHIN_MS = 5 * 60_000;

let world: CrashWorld;
/** The emulator's clock: it moves only when told (the processes keep real time). */
let clock: ManualClock;

beforeEach(async () => {
  clock = new ManualClock(Date.now());
  world = await CrashWorld.start({ runTaskQuota: { limit: 60_000, windowMs: 60_000 }, clock });
});
afterEach(() => world.stop());

/** In half the rounds, a fault that may pass on some of the run's calls: a RunTask's answer lost, 503. */
function runFaultOf(): Fault | undefined {
  const resources = [ORDERS];
  const faults: Fault[] = [
    { method: 'RunTask', kind: 'lost-response', rate: 0.1, resources },
    { method: 'RunTask', kind: 503, rate: 0.1, resources },
    { method: 'GetTask', kind: 503, rate: 0.1, resources },
    { method: 'ListTasks', kind: 503, rate: 0.2, resources },
  ];
  return Math.random() < 0.5 ? pick(faults) : undefined;
}

/**
 * Moves the emulator's clock on until the claims left fall due, and kills the process carrying them out at
 * the `nth` RunTask from then (or once every claim was delivered); then a fresh process takes the claims
 * Cloud Tasks delivers again.
 */
async function claimsKilledThenAgain(
  carrier: RerunProcess,
  nth: number,
  fresh: () => Promise<RerunProcess>,
): Promise<void> {
  const firstCall = world.emulator.calls.length;
  let advanced = false;
  const advancing = clock.advance(CLAIMS_DUE_WITHIN_MS).finally(() => (advanced = true));
  while (!advanced && callsSince(world, firstCall, 'RunTask', ORDERS) < nth) {
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  await carrier.kill();
  await advancing;
  await fresh();
  await clock.advance(CLAIMS_DUE_WITHIN_MS);
}

describe('run soak', () => {
  it.each(ROUNDS)(
    'round %i: a run killed at random, then the request again: each task forced once',
    async (round) => {
      const count = pick([100, 200]);
      const kills = killPoints([
        { method: 'RunTask', queue: ORDERS, upTo: count },
        { method: 'ListTasks', queue: ORDERS, upTo: 2 },
      ]);
      const settleFirst = Math.random() < 0.5;
      const control = Math.random() < 0.5;
      // With a control queue, in half the rounds the process carrying out the claims is killed too.
      const killClaims = control && Math.random() < 0.5;
      const fault = runFaultOf();
      console.log(JSON.stringify({ round, count, kills, settleFirst, control, killClaims, fault }));
      const originals = world.loadFailed(count);
      const port = await freePort();
      const setup: ProcessSetup = { armingMs: 1_000, control, maxRate: 100 };
      const event = fixDeployed('run', round);
      const last = await killedThenAgain(world, port, setup, {
        event,
        kills,
        fault,
        ...(settleFirst && { beforeAgain: () => new Promise((resolve) => setTimeout(resolve, 2_000)) }),
      });
      await world.emulator.settled();
      // The claims the killed runs left fall due after their budget: on the emulator's clock, now.
      const claims = killClaims ? (await world.listed(CONTROL)).length : 0;
      if (claims === 0) await clock.advance(CLAIMS_DUE_WITHIN_MS);
      else {
        const nth = upTo(claims);
        await claimsKilledThenAgain(last, nth, () => world.rerunProcess(port, setup));
        const failedDeliveries = world.emulator.dispatches.filter(
          (d) => d.task.startsWith(`${CONTROL}/`) && (d.status === undefined || d.status >= 500),
        ).length;
        console.log(JSON.stringify({ round, claims, killedAtRunTask: nth, failedDeliveries }));
      }
      const forced = forcedCounts(world.emulator.dispatches);
      // Each task forced once: by a killed run, the last delivery, or a claim a killed run left.
      expect(originals.filter((name) => forced.get(name) !== 1)).toEqual([]);
      expect(await world.places(originals)).toEqual({ twice: 0, never: 0 });
    },
    120_000,
  );
});
