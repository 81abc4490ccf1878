/**
 * The modes (docs/architecture.md "Modes"): one object per way of acting, made in one place from the
 * request. What each says to the plan, what a task gets when no slot is left, and a dry run's rows and
 * estimate; redrive's permissions first, against the in-process emulator.
 */
import { ListBudget } from '../../shared/run/list-budget.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseQueueName } from '../../shared/cloud-tasks/names.js';
import { Budget } from '../../shared/run/budget.js';
import { DryRunMode, modeOf, RedriveMode, RunTaskMode, type ModeDeps } from '../../shared/run/modes.js';
import { Pacer, Semaphore } from '../../shared/run/pace.js';
import { MAX_BODY_BYTES_HELD } from '../../shared/run/redrive-calls.js';
import { RedriveForbiddenError } from '../../shared/run/redrive-permissions.js';
import type { RerunRequest } from '../../shared/triggers/events.js';
import {
  candidateOf,
  configOf,
  ORDERS,
  queueRunOf,
  requestOf,
  silentLog,
  startWorld,
  type World,
} from './stage-fixtures.js';

let world: World;
beforeEach(async () => {
  world = await startWorld();
  world.emulator.load({ queues: [{ name: ORDERS }] });
});
afterEach(() => world.stop());

function modeFor(request: RerunRequest, overrides: Partial<ModeDeps> = {}) {
  const config = configOf();
  return modeOf(request, {
    config,
    tasks: world.tasks,
    pacer: new Pacer(config.maxRatePerSecond),
    inFlight: new Semaphore(config.concurrency),
    bodies: new Semaphore(MAX_BODY_BYTES_HELD),
    log: silentLog(),
    budget: new Budget(60_000),
    now: Date.now,
    armingDelayMs: 10_000,
    lists: new ListBudget(Date.now),
    control: undefined,
    mayEnqueue: true,
    work: {
      requestId: request.requestId,
      cutoffMs: request.cutoffMs,
      mode: request.mode,
      reason: undefined,
      requestKind: request.kind,
      force: false,
      lastAttempts: false,
      verifyMs: 0,
      minBackoffLeftMs: 0,
    },
    ...overrides,
  });
}

describe('modeOf', () => {
  it.each([
    [{}, RunTaskMode, 'run', 'dispatched'],
    [{ mode: 'redrive' }, RedriveMode, 'redrive', 'redriven'],
    [{ dryRun: true }, DryRunMode, 'run', 'dispatched'],
    [{ mode: 'redrive', dryRun: true }, DryRunMode, 'redrive', 'redriven'],
  ] as const)('makes %j a %o', (event, kind, name, forcedOutcome) => {
    const mode = modeFor(requestOf(event));
    expect(mode).toBeInstanceOf(kind);
    expect(mode).toMatchObject({ name, forcedOutcome });
  });

  it('tells the plan what the mode changes: a copy starts its attempts again, RunTask bypasses the limit', () => {
    expect(modeFor(requestOf())).toMatchObject({ startsAttemptsAgain: false, bypassesDispatchLimit: true });
    expect(modeFor(requestOf({ mode: 'redrive' }))).toMatchObject({
      startsAttemptsAgain: true,
      bypassesDispatchLimit: false,
    });
    expect(modeFor(requestOf({ mode: 'redrive', dryRun: true }))).toMatchObject({
      startsAttemptsAgain: true,
    });
  });

  it('paces RunTask with the RunTask pacer, a copy with the queue and request pacers only', () => {
    const pacers = [new Pacer(1)];
    const copyPacers = [new Pacer(500)];
    expect(modeFor(requestOf()).pacersOf({ pacers, copyPacers })).toBe(pacers);
    expect(modeFor(requestOf({ mode: 'redrive' })).pacersOf({ pacers, copyPacers })).toBe(copyPacers);
  });

  it('carries the request canary, except in a dry run: nothing to verify', () => {
    const canary = { count: 2, wait: '5s' };
    expect(modeFor(requestOf({ canary })).canary).toEqual({ count: 2, waitMs: 5_000 });
    expect(modeFor(requestOf({ canary, dryRun: true })).canary).toBeUndefined();
  });
});

describe('when no slot is left in the budget', () => {
  it('RunTask defers without a control queue; redrive always defers (the control queue runs at the RunTask quota)', async () => {
    const queue = queueRunOf();
    expect(await modeFor(requestOf()).acting.noSlot(`${ORDERS}/tasks/t`, queue)).toEqual({
      outcome: 'deferred',
    });
    expect(await modeFor(requestOf({ mode: 'redrive' })).acting.noSlot(`${ORDERS}/tasks/t`, queue)).toEqual({
      outcome: 'deferred',
    });
  });
});

describe('a dry run', () => {
  it('gives each admitted task its row at once, and estimates both modes from them', () => {
    const mode = modeFor(requestOf({ dryRun: true }));
    const queue = queueRunOf({ pacers: [new Pacer(1)], copyPacers: [new Pacer(10)] });
    const rows = ['a', 'b', 'c'].map((id) => mode.rowAtOnce(candidateOf(id, queue)));
    expect(rows.map((row) => row?.outcome)).toEqual(['dispatched', 'dispatched', 'dispatched']);
    const estimate = mode.estimate(Date.now());
    expect(estimate?.runSeconds).toBeCloseTo(3, 0);
    expect(estimate?.redriveSeconds).toBeGreaterThan(0);
  });

  it('is the only mode with rows at once or an estimate', () => {
    for (const mode of [modeFor(requestOf()), modeFor(requestOf({ mode: 'redrive' }))]) {
      expect(mode.rowAtOnce(candidateOf('a', queueRunOf()))).toBeUndefined();
      expect(mode.estimate(Date.now())).toBeUndefined();
    }
  });
});

describe('prepare', () => {
  it('redrive checks its permissions first (a dry run too); RunTask asks nothing', async () => {
    world.emulator.setPermissions({ [ORDERS]: ['cloudtasks.tasks.fullView', 'cloudtasks.tasks.create'] });
    const queues = [parseQueueName(ORDERS)!];
    await expect(modeFor(requestOf({ mode: 'redrive' })).prepare(queues)).rejects.toBeInstanceOf(
      RedriveForbiddenError,
    );
    await expect(
      modeFor(requestOf({ mode: 'redrive', dryRun: true })).prepare(queues),
    ).rejects.toBeInstanceOf(RedriveForbiddenError);
    const before = world.emulator.calls.length;
    await modeFor(requestOf()).prepare(queues);
    expect(world.emulator.calls.length).toBe(before);
  });
});
