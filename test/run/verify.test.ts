import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Budget } from '../../shared/run/budget.js';
import { Semaphore } from '../../shared/run/pace.js';
import { readIntervalMs, Verifier } from '../../shared/run/verify.js';
import { failedTask } from '../helpers/seeds.js';
import { ORDERS, startWorld, taskName, type World } from './stage-fixtures.js';

let world: World;
const name = taskName('a');

beforeEach(async () => {
  world = await startWorld();
  world.emulator.load({ queues: [{ name: ORDERS, tasks: [failedTask(ORDERS, 'a', world.target.url)] }] });
});
afterEach(async () => {
  await world.stop();
});

/** The verdict on task a, forced now with the target answering `status` (undefined: hanging). */
async function verdict(
  status: number | undefined,
  windowMs: number,
  goneMeansSucceeded = true,
  budgetMs = 20_000,
) {
  world.target.setRespond(() => (status === undefined ? new Promise<number>(() => undefined) : status));
  const verifier = new Verifier({
    tasks: world.tasks,
    reads: new Semaphore(4),
    budget: new Budget(budgetMs),
  });
  const fresh = await world.tasks.getTask(name);
  await world.tasks.runTask(name);
  const result = await verifier.verdictOf(name, fresh, windowMs, goneMeansSucceeded);
  return { result, reads: verifier.reads };
}

describe('Verifier', () => {
  it('failed again: the forced attempt completed with an error, with its status', async () => {
    const { result, reads } = await verdict(500, 5_000);
    expect(result).toEqual({
      verdict: 'failed-again',
      status: expect.stringMatching(/HTTP status code 500/),
    });
    expect(reads).toBeGreaterThan(0);
  });

  it('succeeded: the task is gone after its forced attempt', async () => {
    expect((await verdict(200, 5_000)).result).toEqual({ verdict: 'succeeded' });
  });

  it('no verdict when the forced attempt may have been its last: gone tells success from giving up apart no more', async () => {
    const { result } = await verdict(200, 5_000, false);
    expect(result.verdict).toBeUndefined();
    expect(result.status).toMatch(/succeeded, or its last attempt failed/);
  });

  it('running: the attempt has not answered when the window ends', async () => {
    const started = Date.now();
    expect((await verdict(undefined, 600)).result).toEqual({ verdict: 'running' });
    expect(Date.now() - started).toBeLessThan(3_000);
  });

  it('never reads past the budget, whatever the window', async () => {
    const started = Date.now();
    expect((await verdict(undefined, 60_000, true, 700)).result).toEqual({ verdict: 'running' });
    expect(Date.now() - started).toBeLessThan(3_000);
  });

  it('reads about ten times per window, between 0.1 s and 2 s apart', () => {
    expect(readIntervalMs(500)).toBe(100);
    expect(readIntervalMs(5_000)).toBe(500);
    expect(readIntervalMs(300_000)).toBe(2_000);
  });
});
