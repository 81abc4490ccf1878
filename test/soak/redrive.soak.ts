/**
 * The redrive soak (docs/claims.md "Tried under random crashes"): rounds of a redrive killed with SIGKILL
 * at a random point, on a random path, once or twice, in half the rounds beside a fault that may pass, and
 * then the request again on a fresh process, with the crash tests' judge: no task runs twice, none is lost.
 * Not part of `npm test`: `npm run soak`, SOAK_ROUNDS rounds (default 12) of each soak, about 18 s each.
 * Each round prints what it drew, to replay a failure.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/rerun-process.js';
import { CrashWorld, ORDERS, type ProcessSetup } from '../helpers/crash-world.js';
import { faultOf, fixDeployed, killedThenAgain, killPoints, pick, ROUNDS, type KillPoint } from './chance.js';

const ARMING_MS = 6_000;

let world: CrashWorld;

beforeEach(async () => {
  world = await CrashWorld.start();
});
afterEach(() => world.stop());

/** Kill points of a redrive of `count` tasks on its path. */
const redriveKillPoints = (batch: boolean, count: number): KillPoint[] =>
  killPoints([
    batch
      ? { method: 'BatchCreateTasks', queue: ORDERS, upTo: Math.ceil(count / 100) }
      : { method: 'CreateTask', queue: ORDERS, upTo: count },
    batch
      ? { method: 'BatchDeleteTasks', queue: ORDERS, upTo: 3 }
      : { method: 'DeleteTask', queue: ORDERS, upTo: count },
    { method: 'ListTasks', queue: ORDERS, upTo: 6 },
  ]);

describe('redrive soak', () => {
  it.each(ROUNDS)(
    'round %i: killed at random, then the request again: none twice, none lost',
    async (round) => {
      const batch = Math.random() < 0.6;
      const count = pick([300, 600]);
      const kills = redriveKillPoints(batch, count);
      // The last delivery comes at once, or once the copies made before the crashes have fallen due.
      const settleFirst = Math.random() < 0.5;
      const fault = faultOf(batch, [ORDERS]);
      console.log(JSON.stringify({ round, batch, count, kills, settleFirst, fault }));
      const originals = world.loadFailed(count);
      const port = await freePort();
      const setup: ProcessSetup = { armingMs: ARMING_MS, batch, control: true };
      const event = fixDeployed('redrive', round);
      await killedThenAgain(world, port, setup, {
        event,
        kills,
        fault,
        ...(settleFirst && { beforeAgain: () => world.copiesSettled(ARMING_MS) }),
      });
      await world.copiesSettled(ARMING_MS);
      expect(await world.places(originals)).toEqual({ twice: 0, never: 0 });
    },
    180_000,
  );
});
