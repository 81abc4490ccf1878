/**
 * The crash soak (docs/claims.md "Tried under random crashes"): rounds of a redrive killed with SIGKILL at a
 * random point, on a random path, once or twice, in half the rounds beside a fault that may pass, and then
 * the request again on a fresh process, with the crash tests' judge: no task runs twice, none is lost. Not part of `npm test`: `npm run soak`, with
 * SOAK_ROUNDS rounds (default 12), about 18 s each. Each round prints what it drew, to replay a failure.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Fault } from '../../emulator/faults.js';
import { postJson } from '../helpers/http.js';
import { freePort, type RerunProcess } from '../helpers/rerun-process.js';
import { ORDERS, CrashWorld } from '../helpers/crash-world.js';

const ARMING_MS = 6_000;
const ROUNDS = Number(process.env.SOAK_ROUNDS ?? 12);

let world: CrashWorld;

beforeEach(async () => {
  world = await CrashWorld.start();
});
afterEach(() => world.stop());

const pick = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)]!;
const upTo = (n: number): number => 1 + Math.floor(Math.random() * n);

/** When a process is killed: at the n-th call of a method to ORDERS since it started, or after some ms. */
type KillPoint = { readonly method: string; readonly nth: number } | { readonly ms: number };

function killPointOf(batch: boolean): KillPoint {
  switch (pick(['create', 'delete', 'list', 'time'])) {
    case 'create':
      return batch ? { method: 'BatchCreateTasks', nth: upTo(4) } : { method: 'CreateTask', nth: upTo(300) };
    case 'delete':
      return batch ? { method: 'BatchDeleteTasks', nth: upTo(3) } : { method: 'DeleteTask', nth: upTo(300) };
    case 'list':
      return { method: 'ListTasks', nth: upTo(6) };
    default:
      return { ms: 100 + Math.floor(Math.random() * 3_000) };
  }
}

/** Faults that may pass, on some of ORDERS's calls, while the processes are killed (docs/emulator.md). */
function faultOf(batch: boolean): Fault | undefined {
  const resources = [ORDERS];
  const batchFaults: Fault[] = [
    { method: 'BatchCreateTasks', kind: 'lost-response', rate: 0.3, resources },
    { method: 'BatchCreateTasks', kind: 'late-landing', delayMs: 1_500, rate: 0.3, resources },
    { method: 'BatchCreateTasks', kind: 'operation-failed', applied: 50, rate: 0.3, resources },
    { method: 'BatchDeleteTasks', kind: 'lost-response', rate: 0.3, resources },
    { method: 'BatchDeleteTasks', kind: 'operation-running', forMs: 2_000, rate: 0.3, resources },
    { method: 'ListTasks', kind: 503, rate: 0.2, resources },
  ];
  const perTaskFaults: Fault[] = [
    { method: 'CreateTask', kind: 'lost-response', rate: 0.1, resources },
    { method: 'CreateTask', kind: 'late-landing', delayMs: 1_500, rate: 0.1, resources },
    { method: 'DeleteTask', kind: 'lost-response', rate: 0.1, resources },
    { method: 'GetTask', kind: 503, rate: 0.1, resources },
    { method: 'ListTasks', kind: 503, rate: 0.2, resources },
  ];
  return Math.random() < 0.5 ? pick(batch ? batchFaults : perTaskFaults) : undefined;
}

/** Delivers the request to `child` and kills it at `point`, or once the delivery has ended. */
async function deliverAndKill(child: RerunProcess, event: object, point: KillPoint): Promise<void> {
  const firstCall = world.emulator.calls.length;
  const startMs = Date.now();
  let ended = false;
  const delivery = postJson(child.url, event)
    .catch(() => undefined)
    .finally(() => (ended = true));
  const reached = () =>
    'ms' in point
      ? Date.now() - startMs >= point.ms
      : world.emulator.calls
          .slice(firstCall)
          .filter((c) => c.method === point.method && c.name.startsWith(ORDERS)).length >= point.nth;
  while (!ended && !reached()) await new Promise((resolve) => setTimeout(resolve, 2));
  await child.kill();
  await delivery;
}

describe('crash soak', () => {
  it.each(Array.from({ length: ROUNDS }, (_, round) => round))(
    'round %i: killed at random, then the request again: none twice, none lost',
    async (round) => {
      const batch = Math.random() < 0.6;
      const count = pick([300, 600]);
      const kills = [killPointOf(batch), ...(Math.random() < 0.4 ? [killPointOf(batch)] : [])];
      // The last delivery comes at once, or once the copies made before the crashes have fallen due.
      const settleFirst = Math.random() < 0.5;
      const fault = faultOf(batch);
      console.log(JSON.stringify({ round, batch, count, kills, settleFirst, fault }));
      const originals = world.loadFailed(count);
      const port = await freePort();
      const event = {
        kind: 'fix-deployed',
        mode: 'redrive',
        verify: '0s',
        requestId: `soak-${round}`,
        deployedAt: new Date(Date.now() - 1_000).toISOString(),
      };
      if (fault) world.emulator.injectFault(fault);
      for (const point of kills) {
        await deliverAndKill(
          await world.rerunProcess(port, { armingMs: ARMING_MS, batch, control: true }),
          event,
          point,
        );
      }
      world.emulator.clearFaults();
      const last = await world.rerunProcess(port, { armingMs: ARMING_MS, batch, control: true });
      if (settleFirst) await world.copiesSettled(ARMING_MS);
      const again = await postJson(last.url, event);
      expect(again.status).toBe(200);
      await world.copiesSettled(ARMING_MS);
      expect(await world.places(originals)).toEqual({ twice: 0, never: 0 });
    },
    120_000,
  );
});
