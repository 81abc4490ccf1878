/**
 * Parking and unparking across a crash (docs/parking.md "The move", "Limits"): rerunHttp runs as a real
 * process, is killed with SIGKILL mid-move, and the request comes again on a new process, or (an unpark
 * with a control queue) only the moves' recovery tasks do. The emulator's queues and the target's requests
 * judge: every task is in exactly one place, and runs once.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { postJson } from '../helpers/http.js';
import { freePort, type RerunProcess } from '../helpers/rerun-process.js';
import { CrashWorld, ORDERS, PARKING } from '../helpers/crash-world.js';

const ARMING_MS = 1_000;
const COUNT = 150;

let world: CrashWorld;

beforeEach(async () => {
  world = await CrashWorld.start();
});
afterEach(() => world.stop());

/** rerunHttp in a process of its own; with `control`, its control queue delivers recovery tasks to it. */
const rerunProcess = (port: number, control = false) =>
  world.rerunProcess(port, { armingMs: ARMING_MS, park: true, control });

const creates = (queue: string) =>
  world.emulator.calls.filter((c) => c.method === 'CreateTask' && c.name === queue).length;

/**
 * Sends `event` to `child` and kills it with SIGKILL once 40 creates reached `queue`: every task is still
 * somewhere, some in two places.
 */
async function killMidMove(
  child: RerunProcess,
  event: object,
  queue: string,
  originals: readonly string[],
): Promise<void> {
  const delivery = postJson(child.url, event).catch(() => undefined);
  await expect.poll(() => creates(queue), { timeout: 20_000, interval: 5 }).toBeGreaterThanOrEqual(40);
  await child.kill();
  await delivery;
  const halfway = await world.places(originals);
  expect(halfway.never).toBe(0);
  expect(halfway.twice).toBeGreaterThan(0);
}

describe('parking across a crash', () => {
  it('a process killed mid-park, then the next sweep: each task parked once, none lost', async () => {
    const originals = world.loadLastAttempts(COUNT);
    const port = await freePort();
    const first = await rerunProcess(port);
    const sweep = { kind: 'sweep', canary: false, verify: '0s' };
    // Killed mid-move: some tasks are both parked and still in their queue, none is nowhere.
    await killMidMove(first, sweep, PARKING, originals);
    expect((await world.listed(PARKING)).length).toBeLessThan(COUNT);

    const second = await rerunProcess(port);
    const again = await postJson(second.url, sweep);
    expect(again.status).toBe(200);
    expect(await world.listed(ORDERS)).toEqual([]);
    expect(await world.listed(PARKING)).toHaveLength(COUNT);
    expect(await world.places(originals)).toEqual({ twice: 0, never: 0 });
    expect(world.target.requests).toEqual([]);
  }, 60_000);

  it('a process killed mid-park with a control queue, no sweep after it: the recovery tasks settle every park', async () => {
    const originals = world.loadLastAttempts(COUNT);
    const port = await freePort();
    const sweep = { kind: 'sweep', canary: false, verify: '0s' };
    await killMidMove(await rerunProcess(port, true), sweep, PARKING, originals);

    await rerunProcess(port, true);
    await expect.poll(() => world.recoveriesLeft(), { timeout: 30_000, interval: 250 }).toBe(0);
    expect(await world.places(originals)).toEqual({ twice: 0, never: 0 });
    const parked = await world.listed(PARKING);
    expect(parked.length).toBeGreaterThanOrEqual(40);
    expect(parked.length + (await world.listed(ORDERS)).length).toBe(COUNT);
    // Every original was idle: none is marked possibly done, and none ran.
    expect(parked.filter((t) => t.httpRequest?.headers?.['X-Rerun-Possibly-Done'])).toEqual([]);
    expect(world.target.requests).toEqual([]);
  }, 60_000);

  it('a process killed mid-unpark, then the same request again: each task home once, run once', async () => {
    const originals = world.loadLastAttempts(COUNT);
    const port = await freePort();
    const first = await rerunProcess(port);
    expect(
      (await postJson(first.url, { kind: 'sweep', canary: false, verify: '0s' })).body.counts.parked,
    ).toBe(COUNT);
    const unpark = { kind: 'unpark', queues: [ORDERS], verify: '0s', requestId: 'unpark-crash' };
    await killMidMove(first, unpark, ORDERS, originals);
    expect((await world.listed(PARKING)).length).toBeGreaterThan(0);
    // The home copies made before the kill fall due and run before the request comes again: their names
    // are used up, and the parked copies they left behind must go without a second home copy.
    await new Promise((resolve) => setTimeout(resolve, ARMING_MS + 1_000));
    await world.emulator.settled();

    const second = await rerunProcess(port);
    const again = await postJson(second.url, unpark);
    expect(again.status).toBe(200);
    expect(await world.listed(PARKING)).toEqual([]);
    await new Promise((resolve) => setTimeout(resolve, ARMING_MS + 1_000));
    await expect
      .poll(async () => (await world.listed(ORDERS)).length, { timeout: 15_000, interval: 200 })
      .toBe(0);
    await world.emulator.settled();
    expect(await world.places(originals)).toEqual({ twice: 0, never: 0 });
    expect(world.target.requests).toHaveLength(COUNT);
  }, 60_000);

  it('a process killed mid-unpark with a control queue, the request never sent again: the recovery tasks settle every move', async () => {
    const originals = world.loadLastAttempts(COUNT);
    const port = await freePort();
    const first = await rerunProcess(port, true);
    expect(
      (await postJson(first.url, { kind: 'sweep', canary: false, verify: '0s' })).body.counts.parked,
    ).toBe(COUNT);
    const unpark = { kind: 'unpark', queues: [ORDERS], verify: '0s', requestId: 'unpark-recovered' };
    await killMidMove(first, unpark, ORDERS, originals);

    // Back up on the same address; only the control queue's recovery tasks come to it. Home copies made
    // before the kill may run first: their recovery then finds the name used up and deletes the parked task.
    await rerunProcess(port, true);
    await expect.poll(() => world.recoveriesLeft(), { timeout: 30_000, interval: 250 }).toBe(0);
    await new Promise((resolve) => setTimeout(resolve, ARMING_MS + 1_000));
    await world.emulator.settled();
    const settled = await world.places(originals);
    expect(settled.twice).toBe(0);
    expect(settled.never).toBe(0);
    // Tasks the killed run had not reached stay parked, once: a later unpark brings them home.
    const home = world.target.requests.length;
    expect(home).toBeGreaterThanOrEqual(40);
    expect(home + (await world.listed(PARKING)).length).toBe(COUNT);
    expect(new Set(world.target.requests.map((r) => r.path)).size).toBe(home);
  }, 60_000);
});
