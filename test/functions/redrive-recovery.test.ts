/**
 * Redrive's crash recovery with a control queue, one call per task (docs/claims.md "A crash mid-redrive";
 * by batch: redrive-recovery-batch.test.ts): rerunHttp runs as a real process, the emulator's control
 * queue delivers each move's recovery task to it, and the emulator's records and the target's requests
 * judge: no task runs twice (original and copy), none is lost.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { listTasksFull, postJson } from '../helpers/http.js';
import { freePort } from '../helpers/rerun-process.js';
import { CONTROL, ORDERS, CrashWorld } from '../helpers/crash-world.js';

/**
 * The copies fall due this long after they are made, the recovery tasks halfway (the product's default is
 * 10 s). The crash test's recoveries go to a process just restarted: they get a little longer.
 */
const ARMING_MS = 3_000;
const CRASH_ARMING_MS = 8_000;

let world: CrashWorld;

beforeEach(async () => {
  world = await CrashWorld.start();
});
afterEach(() => world.stop());

type Json = Record<string, any>;

const post = postJson;
const listFull = (queue: string) => listTasksFull(world.emulator.url, queue);

function bodyOf(task: Json): Json {
  return JSON.parse(Buffer.from(task.httpRequest?.body ?? 'e30=', 'base64').toString('utf8')) as Json;
}

describe('redrive recovery, one call per task', () => {
  it('a create whose answer was lost and that lands late: the move is finished, no task runs twice', async () => {
    const originals = world.loadFailed(30);
    const child = await world.rerunProcess(await freePort(), {
      armingMs: ARMING_MS,
      batch: false,
      control: true,
    });
    // Every create in the queue loses its answer and lands 1.5 s later, after the run gave the task up.
    world.emulator.injectFault({
      method: 'CreateTask',
      kind: 'late-landing',
      delayMs: 1_500,
      resources: [ORDERS],
    });
    const event = { kind: 'fix-deployed', mode: 'redrive', verify: '0s', requestId: 'late-1' };
    const first = await post(child.url, event);
    expect(first.body.counts.redriven).toBe(0);
    world.emulator.clearFaults();
    await world.copiesSettled(ARMING_MS);
    // The next delivery of the request finds nothing left to move.
    const again = await post(child.url, event);
    expect(again.status).toBe(200);
    await world.copiesSettled(ARMING_MS);
    expect(await world.places(originals)).toEqual({ twice: 0, never: 0 });
    // Every recovery task is done; the claims of the tasks the first delivery left stay until they fall due.
    expect((await listFull(CONTROL)).filter((t) => bodyOf(t).kind === 'finish-move')).toEqual([]);
  }, 90_000);

  it('a process killed with SIGKILL mid-redrive, past 100 creates, then the request again: none twice, none lost', async () => {
    const again = await world.redriveKilledThenAgain({
      batch: false,
      count: 300,
      killAfterCreates: 101,
      armingMs: CRASH_ARMING_MS,
    });
    expect(again.status).toBe(200);
    // Tasks whose claim the killed process holds are left to that claim (due later): still there, once.
    expect(again.places).toEqual({ twice: 0, never: 0 });
  }, 120_000);
});
