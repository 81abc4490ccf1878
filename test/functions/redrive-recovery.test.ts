/**
 * Redrive's crash recovery with a control queue (docs/claims.md "A crash mid-redrive"): rerunHttp runs as
 * a real process, the emulator's control queue delivers each move's recovery task to it, and the emulator's
 * records and the target's requests judge: no task runs twice (original and copy), none is lost.
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

describe('redrive recovery', () => {
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

  it.each([
    // Killed once copies are being made: one call per task, past 100 creates; by batch, after two batch
    // creates, while their originals wait for the second read that comes before any delete.
    ['one call per task', false, 300, 101, CRASH_ARMING_MS],
    ['by batch', true, 300, 2, CRASH_ARMING_MS],
    // Hundreds of moves under way (a run takes 1,000 of the 2,000 tasks) fall due within a few seconds: one
    // delivery's sweep must settle them before their copies arm (docs/claims.md "A crash mid-redrive").
    ['by batch, 800 moves under way', true, 2_000, 8, 6_000],
  ])(
    'a process killed with SIGKILL mid-redrive (%s), then the request again: none twice, none lost',
    async (_, batch, count, killAfterCreates, armingMs) => {
      const originals = world.loadFailed(count);
      const port = await freePort();
      const first = await world.rerunProcess(port, { armingMs, batch, control: true });
      const event = {
        kind: 'fix-deployed',
        mode: 'redrive',
        verify: '0s',
        requestId: `crash-${count}`,
        deployedAt: new Date(Date.now() - 1_000).toISOString(),
      };
      const delivery = post(first.url, event).catch(() => undefined);
      const creates = () =>
        world.emulator.calls.filter(
          (c) => c.method === (batch ? 'BatchCreateTasks' : 'CreateTask') && c.name === ORDERS,
        ).length;
      await expect.poll(creates, { timeout: 20_000, interval: 5 }).toBeGreaterThanOrEqual(killAfterCreates);
      await first.kill();
      await delivery;
      const second = await world.rerunProcess(port, { armingMs, batch, control: true });
      // The request comes again once the copies made before the crash have fallen due (as a redelivery
      // would): without the recovery tasks, those whose original was not deleted ran twice by now.
      await world.copiesSettled(armingMs);
      const again = await post(second.url, event);
      expect(again.status).toBe(200);
      await world.copiesSettled(armingMs);
      // Tasks whose claim the killed process holds are left to that claim (due later): still there, once.
      expect(await world.places(originals)).toEqual({ twice: 0, never: 0 });
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
    const delivery = post(first.url, {
      kind: 'fix-deployed',
      mode: 'redrive',
      verify: '0s',
      requestId: 'late-recovery',
      deployedAt: new Date(Date.now() - 1_000).toISOString(),
    }).catch(() => undefined);
    const creates = () =>
      world.emulator.calls.filter((c) => c.method === 'BatchCreateTasks' && c.name === ORDERS).length;
    await expect.poll(creates, { timeout: 20_000, interval: 5 }).toBeGreaterThanOrEqual(2);
    await first.kill();
    await delivery;
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
