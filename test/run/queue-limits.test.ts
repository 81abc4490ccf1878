/**
 * A queue's rate, concurrency and state read again during a run (docs/execution.md "Pacing", "Queue
 * concurrency"): each read changes the queue's pacer, its bound on attempts (one per process, shared by
 * every run) and whether the due-soon rule applies.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseQueueName } from '../../shared/cloud-tasks/names.js';
import { ListBudget } from '../../shared/run/list-budget.js';
import { Pacer, QueueAttempts, rateOf, reserveCall, reserveSlot } from '../../shared/run/pace.js';
import { Plan, type PlanMode } from '../../shared/run/plan.js';
import { QUEUE_RECHECK_MS } from '../../shared/run/queue-state.js';
import { resolveScope } from '../../shared/triggers/scope.js';
import {
  configOf,
  ORDERS,
  ORDERS_QUEUE,
  requestOf,
  silentLog,
  startWorld,
  type World,
} from './stage-fixtures.js';

let world: World;
let nowMs: number;
beforeEach(async () => {
  world = await startWorld();
  nowMs = Date.now();
});
afterEach(async () => {
  await world.stop();
});

const runMode: PlanMode = {
  readsBodies: false,
  canary: undefined,
  startsAttemptsAgain: false,
  bypassesDispatchLimit: true,
  pacersOf: (queue) => queue.pacers,
  isOwnWork: () => false,
};

function planOf(event: Record<string, unknown>, queueAttempts: QueueAttempts): Plan {
  const request = requestOf(event);
  const resolved = resolveScope(request, configOf().allowlist, parseQueueName(`${ORDERS}-control`));
  if (!resolved.ok) throw new Error(`refused ${resolved.refused.join()}`);
  const now = () => nowMs;
  const deps = {
    tasks: world.tasks,
    pacer: new Pacer(100),
    queueAttempts,
    log: silentLog(),
    now,
    mode: runMode,
    lists: new ListBudget(now),
  };
  return new Plan(request, resolved.scope, deps);
}

const api = (method: string, path: string, body: unknown = {}) =>
  fetch(`${world.emulator.url}/v2/${path}`, { method, body: JSON.stringify(body) }).then((r) => r.status);

describe("a queue's limits read again", () => {
  it("bring its rate, its concurrency and the due-soon rule's applicability to the run", async () => {
    world.emulator.load({
      queues: [
        {
          name: ORDERS,
          state: 'PAUSED',
          rateLimits: { maxDispatchesPerSecond: 10, maxConcurrentDispatches: 50 },
        },
      ],
    });
    const plan = planOf({ force: true }, new QueueAttempts());
    const queue = (await plan.openQueue(ORDERS_QUEUE))!;
    expect(queue.dueSoonApplies).toBe(false);
    expect(rateOf(queue.copyPacers)).toBe(10);
    expect(queue.attemptsRunning.limit).toBe(50);

    expect(await api('POST', `${ORDERS}:resume`)).toBe(200);
    const rateLimits = { maxDispatchesPerSecond: 0.5, maxConcurrentDispatches: 5 };
    expect(await api('PATCH', `${ORDERS}?updateMask=rateLimits`, { rateLimits })).toBe(200);
    nowMs += QUEUE_RECHECK_MS;
    expect(await queue.state.skipReason()).toBeUndefined();

    expect(queue.dueSoonApplies).toBe(true);
    expect(plan.rulesFor(queue, false).dueSoonApplies).toBe(true);
    expect(rateOf(queue.pacers)).toBe(0.5);
    expect(queue.attemptsRunning.limit).toBe(5);
  });

  it('two runs that read the old and the new concurrency share one bound, at the new limit', async () => {
    const attempts = new QueueAttempts();
    const older = attempts.of(ORDERS, 3);
    for (let i = 0; i < 3; i++) expect(await older.acquire()).toBe(true);
    const newer = attempts.of(ORDERS, 1);
    expect(newer).toBe(older);
    expect(older.overLimit).toBe(true);
    let entered = false;
    const entering = newer.acquire().then(() => (entered = true));
    older.release();
    older.release();
    await Promise.resolve();
    expect(entered).toBe(false);
    older.release();
    await entering;
    expect(entered).toBe(true);
    expect(newer.overLimit).toBe(false);
  });
});

describe('a pacer whose rate changes', () => {
  it('spaces the next slot and call by the new interval from the last ones, and keeps a push-back', () => {
    const pacer = new Pacer(10);
    expect(reserveSlot([pacer], 0, Infinity)).toBe(0);
    expect(reserveCall([pacer], 0, Infinity)).toBe(0);
    pacer.setRate(0.5);
    expect(reserveSlot([pacer], 0, Infinity)).toBe(2020);
    expect(reserveCall([pacer], 0, Infinity)).toBe(2020);
    pacer.pushBack(10_000);
    pacer.setRate(100);
    expect(reserveSlot([pacer], 0, Infinity)).toBe(10_000);
    expect(reserveCall([pacer], 0, Infinity)).toBe(10_000);
    expect(reserveSlot([pacer], 0, Infinity)).toBe(10_010.1);
  });
});
