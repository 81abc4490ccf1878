import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Budget } from '../../shared/run/budget.js';
import { failureSignatureOf } from '../../shared/run/clusters.js';
import { Forcer, type ForcePolicy } from '../../shared/run/force.js';
import { Pacer, Semaphore } from '../../shared/run/pace.js';
import type { QueueRun } from '../../shared/run/plan.js';
import { failedTask } from '../helpers/seeds.js';
import {
  callsOf,
  candidateOf,
  ORDERS,
  queueRunOf,
  silentLog,
  startWorld,
  type World,
} from './stage-fixtures.js';

let world: World;
let queue: QueueRun;
let forcer: Forcer;
const T = (id: string) => `${ORDERS}/tasks/${id}`;

/** The rules as the plan gives them for a request made now. */
const policy = (held = false): ForcePolicy => ({
  rulesFor: (q) => ({
    match: {},
    cutoffMs: Date.now(),
    minBackoffLeftMs: 0,
    dueSoonApplies: true,
    retry: q.retry,
    allowLastAttempt: false,
    nowMs: Date.now(),
  }),
  isHeld: () => held,
  heldSignal: undefined,
});

beforeEach(async () => {
  world = await startWorld();
  const ids = ['a', 'b'];
  world.emulator.load({
    queues: [{ name: ORDERS, tasks: ids.map((id) => failedTask(ORDERS, id, world.target.url)) }],
  });
  queue = queueRunOf({ pacers: [new Pacer(50)] });
  const deps = { tasks: world.tasks, pacer: new Pacer(50), inFlight: new Semaphore(4), log: silentLog() };
  forcer = new Forcer({ ...deps, budget: new Budget(20_000) });
});
afterEach(async () => {
  await world.stop();
});

async function force(id: string, held = false) {
  const slotMs = forcer.reserve(queue)!;
  return forcer.force(candidateOf(id, queue), slotMs, policy(held));
}

describe('Forcer', () => {
  it('reads the task again, re-checks the rules, and sends one RunTask', async () => {
    const result = await force('a');
    expect(result.outcome).toBe('dispatched');
    expect(result.outcome === 'dispatched' && result.fresh.dispatchCount).toBe(3);
    expect(callsOf(world.emulator, 'RunTask')).toEqual([T('a')]);
  });

  it('skips a task whose fresh state no longer passes the rules: an attempt of its own started meanwhile', async () => {
    world.target.setRespond(() => new Promise<number>(() => undefined));
    await world.tasks.runTask(candidateOf('a', queue).name);
    expect(await force('a')).toEqual({ outcome: 'skipped', skipReason: 'in-flight' });
    expect(callsOf(world.emulator, 'RunTask')).toHaveLength(1);
  });

  it('selects by failure cluster on the fresh read: a task whose failure changed is no longer matched', async () => {
    // Listed (and clustered) when its attempts failed with 500; by its turn, an attempt of its own failed with 503.
    const listed = await world.tasks.getTask(candidateOf('b', queue).name, 'BASIC');
    const cluster = failureSignatureOf(listed)!.id;
    world.target.setRespond(() => 503);
    await world.tasks.runTask(candidateOf('b', queue).name);
    await world.emulator.settled();
    const byCluster: ForcePolicy = {
      ...policy(),
      rulesFor: (q) => ({ ...policy().rulesFor(q), clusters: [cluster] }),
    };
    const slotMs = forcer.reserve(queue)!;
    const result = await forcer.force(candidateOf('b', queue, listed), slotMs, byCluster);
    expect(result).toEqual({ outcome: 'skipped', skipReason: 'no-longer-matches' });
    expect(callsOf(world.emulator, 'RunTask')).toHaveLength(1);
  });

  it('a task that finished meanwhile is gone', async () => {
    await world.tasks.runTask(candidateOf('a', queue).name);
    await world.emulator.settled();
    expect(await force('a')).toEqual({ outcome: 'gone' });
  });

  it('holds a task once the rest is held, before any call', async () => {
    const calls = world.emulator.calls.length;
    expect(await force('a', true)).toEqual({ outcome: 'held' });
    expect(world.emulator.calls.length).toBe(calls);
  });

  it('stops the queue at the first PERMISSION_DENIED: the next task is skipped without a RunTask', async () => {
    world.emulator.injectFault({ method: 'RunTask', kind: 403, times: 1 });
    expect((await force('a')).outcome).toBe('failed');
    expect(queue.state.stoppedBy).toBe('queue-permission-denied');
    expect(await force('b')).toEqual({ outcome: 'skipped', skipReason: 'queue-permission-denied' });
    expect(callsOf(world.emulator, 'RunTask')).toEqual([T('a')]);
  });

  it('a RunTask whose answer was lost is read back, never sent again', async () => {
    // The target fails again, so the task stays and its read-back shows the new attempt.
    world.target.setRespond(() => 500);
    world.emulator.injectFault({ method: 'RunTask', kind: 'lost-response', times: 1 });
    expect((await force('a')).outcome).toBe('dispatched');
    world.emulator.injectFault({ method: 'RunTask', kind: 'late-landing', delayMs: 300, times: 1 });
    const late = await force('b');
    expect(late).toMatchObject({ outcome: 'deferred', why: 'lost-answer' });
    expect(callsOf(world.emulator, 'RunTask')).toEqual([T('a'), T('b')]);
  });

  it('an answered UNAVAILABLE that left no attempt is sent again, at most three times, then deferred', async () => {
    world.emulator.injectFault({ method: 'RunTask', kind: 503 });
    expect(await force('a')).toMatchObject({ outcome: 'deferred', why: 'transient' });
    expect(callsOf(world.emulator, 'RunTask')).toEqual([T('a'), T('a'), T('a')]);
  });

  it('an answered INTERNAL is a lost answer: read back, never sent again, held as in doubt', async () => {
    world.emulator.injectFault({ method: 'RunTask', kind: 500, times: 1 });
    expect(await force('a')).toMatchObject({ outcome: 'deferred', why: 'lost-answer' });
    expect(callsOf(world.emulator, 'RunTask')).toEqual([T('a')]);
  });
});
