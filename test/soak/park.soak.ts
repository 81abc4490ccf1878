/**
 * The parking soak (docs/parking.md "The move", docs/claims.md "Tried under random crashes"): rounds of a
 * park sweep and then an unpark, each killed with SIGKILL at a random point once or twice, with or without
 * a control queue, in half the rounds beside a fault that may pass, and then sent again on a fresh
 * process, with the parking crash tests' judge: every task in exactly one place, none run while parked,
 * none run twice. Not part of `npm test`: `npm run soak`, SOAK_ROUNDS rounds.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/rerun-process.js';
import { CrashWorld, ORDERS, PARKING, type ProcessSetup } from '../helpers/crash-world.js';
import { faultOf, killedThenAgain, killPoints, pick, ROUNDS, type KillPoint } from './chance.js';

const ARMING_MS = 4_000;

let world: CrashWorld;

beforeEach(async () => {
  world = await CrashWorld.start();
});
afterEach(() => world.stop());

/** Kill points of a move from `from` into `to`, `count` tasks. */
const moveKillPoints = (from: string, to: string, count: number): KillPoint[] =>
  killPoints([
    { method: 'CreateTask', queue: to, upTo: count },
    { method: 'DeleteTask', queue: from, upTo: count },
    { method: 'ListTasks', queue: from, upTo: 2 },
  ]);

describe('parking soak', () => {
  it.each(ROUNDS)(
    'round %i: a park and an unpark killed at random, then sent again: each task in one place, run once',
    async (round) => {
      const count = pick([150, 300]);
      const control = Math.random() < 0.5;
      const parkKills = moveKillPoints(ORDERS, PARKING, count);
      const unparkKills = moveKillPoints(PARKING, ORDERS, count);
      // The requests come again at once, or once the moves' recovery tasks (or the home copies) are done.
      const settleFirst = Math.random() < 0.5;
      const fault = faultOf(false, [ORDERS, PARKING]);
      console.log(JSON.stringify({ round, count, control, parkKills, unparkKills, settleFirst, fault }));
      const originals = world.loadLastAttempts(count);
      const port = await freePort();
      const setup: ProcessSetup = { armingMs: ARMING_MS, park: true, control };
      const settle = async () => {
        if (control) await expect.poll(() => world.recoveriesLeft(), { timeout: 30_000 }).toBe(0);
        await new Promise((resolve) => setTimeout(resolve, ARMING_MS + 1_000));
        await world.emulator.settled();
      };

      /** The request, killed at its kill points, then sent again: every task in one place. */
      const killedThenSettled = async (event: object, kills: readonly KillPoint[]) => {
        const last = await killedThenAgain(world, port, setup, {
          event,
          kills,
          fault,
          ...(settleFirst && { beforeAgain: settle }),
        });
        await settle();
        expect(await world.places(originals)).toEqual({ twice: 0, never: 0 });
        return last;
      };

      const parker = await killedThenSettled({ kind: 'sweep', canary: false, verify: '0s' }, parkKills);
      expect(world.target.requests).toEqual([]);
      // One process on the port at a time: the control queue delivers there.
      await parker.kill();

      const unpark = { kind: 'unpark', queues: [ORDERS], verify: '0s', requestId: `soak-${round}` };
      await killedThenSettled(unpark, unparkKills);
      const ran = world.target.requests.map((request) => request.path);
      expect(new Set(ran).size).toBe(ran.length);
    },
    180_000,
  );
});
