/**
 * The copy stage against the emulator: the copy (copy.ts), the move (move.ts) and redrive's calls
 * (redrive-calls.ts): what is left of the original and its copy afterwards, and which calls were made.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BodyBytes, LARGEST_BODY_BYTES } from '../../shared/cloud-tasks/body-bytes.js';
import type { Task } from '../../shared/cloud-tasks/client.js';
import { parseQueueName, parseTaskName } from '../../shared/cloud-tasks/names.js';
import { Budget } from '../../shared/run/budget.js';
import {
  Copier,
  copyNameOf,
  ORIGINAL_TASK_HEADER,
  type CopyDeps,
  type CopyResult,
} from '../../shared/run/copy.js';
import type { ForcePolicy } from '../../shared/run/force.js';
import { Semaphore } from '../../shared/run/pace.js';
import { MAX_BODY_BYTES_HELD } from '../../shared/run/redrive-calls.js';
import { Handover, type TaskUnderWay } from '../../shared/run/plan.js';
import { failedTask } from '../helpers/seeds.js';
import {
  callsOf,
  candidateOf,
  ORDERS,
  queueName,
  queueRunOf,
  startWorld,
  taskName,
  type World,
} from './stage-fixtures.js';

const CONTROL = queueName('control');
const REQUEST = { requestId: 'r-1', cutoffMs: Date.now() };
const ARMING_MS = 60_000;
const SA = 'worker@test-project.iam.gserviceaccount.com';
/** The control queue each move's recovery task is written to, when a test has one. */
const RECOVERY = {
  queue: parseQueueName(CONTROL)!,
  selfUrl: 'http://127.0.0.1:9/',
  invokerServiceAccount: SA,
  writtenBy: 'run-1',
};

let world: World;
const queue = queueRunOf();

const policy = (held = false): ForcePolicy => ({
  rulesFor: (q) => ({
    match: {},
    cutoffMs: REQUEST.cutoffMs,
    minBackoffLeftMs: 0,
    dueSoonApplies: true,
    retry: q.retry,
    allowLastAttempt: true,
    nowMs: Date.now(),
  }),
  isHeld: () => held,
  heldSignal: undefined,
});

beforeEach(async () => {
  world = await startWorld();
  const tasks = ['a', 'b'].map((id) =>
    failedTask(ORDERS, id, world.target.url, { headers: { 'X-Kind': 'order' } }),
  );
  world.emulator.load({ queues: [{ name: ORDERS, tasks }, { name: CONTROL }] });
});
afterEach(async () => {
  await world.stop();
});

/** The stage, with each task's result as a promise. */
function copier(deps: Partial<CopyDeps> = {}) {
  const base = {
    tasks: world.tasks,
    calls: new Semaphore(4),
    bodies: new Semaphore(MAX_BODY_BYTES_HELD),
    budget: new Budget(20_000),
    armingDelayMs: ARMING_MS,
  };
  const stage = new Copier({ ...base, ...deps }, REQUEST);
  return {
    copies: stage.copies,
    copy: (...task: [TaskUnderWay, number, ForcePolicy]): Promise<CopyResult> =>
      new Promise((moved, failed) => stage.copy(...task, { moved, failed, copied: () => undefined })),
  };
}

/**
 * Holds the task's second read (its second GetTask) `ms` real milliseconds; resolves once it is under way.
 * Injected before the move's first call reaches the emulator: call it right after starting the move.
 */
async function secondReadHeld(id: string, ms: number): Promise<void> {
  const task = taskName(id).name;
  world.emulator.injectFault({
    method: 'GetTask',
    kind: 'delay',
    delayMs: ms,
    resources: [task],
    after: 1,
    times: 1,
  });
  await expect.poll(() => callsOf(world.emulator, 'GetTask').filter((n) => n === task).length).toBe(2);
}

const copyOfTask = (id: string) => copyNameOf(taskName(id), REQUEST.requestId, REQUEST.cutoffMs).name;

describe('Copier', () => {
  it('copies the task into a new one due after the arming delay, naming its original, and deletes the original', async () => {
    const c = copier();
    const before = Date.now();
    const result = await c.copy(candidateOf('a', queue), Date.now(), policy());
    expect(result).toMatchObject({ outcome: 'redriven', copy: { name: copyOfTask('a') } });
    expect(world.emulator.task(`${ORDERS}/tasks/a`)).toBeUndefined();
    const copy = world.emulator.task(copyOfTask('a'))!;
    expect(copy.httpRequest?.headers).toMatchObject({
      'X-Kind': 'order',
      [ORIGINAL_TASK_HEADER]: `${ORDERS}/tasks/a`,
    });
    expect(Date.parse(copy.scheduleTime)).toBeGreaterThanOrEqual(before + ARMING_MS);
    expect(c.copies.has(copyOfTask('a'))).toBe(true);
    expect(callsOf(world.emulator, 'CreateTask')).toEqual([ORDERS]);
  });

  it("lets a held task's listed body go: it is never copied", async () => {
    world.emulator.load({
      queues: [
        {
          name: queueName('bodies'),
          tasks: [failedTask(queueName('bodies'), 'c', world.target.url, { body: 'c'.repeat(6_000) })],
        },
      ],
    });
    const listed: Task[] = [];
    for await (const page of world.tasks.listTasks(parseQueueName(queueName('bodies'))!, 'FULL'))
      listed.push(...page);
    const body = listed[0]!.httpRequest!.body as BodyBytes;
    const held = await copier().copy(
      { ...candidateOf('a', queue), full: new Handover(listed[0]!) },
      Date.now(),
      policy(true),
    );
    expect(held).toEqual({ outcome: 'held' });
    expect(() => body.json).toThrow(/read after it was let go/);
  });

  it("a copy name used before whose withdrawal cannot be recorded: the move's recovery task is deleted, sent again after a 503", async () => {
    // An earlier delivery's copy of `a` was made and is gone: its name is reserved (a tombstone).
    const used = copyNameOf(taskName('a'), REQUEST.requestId, REQUEST.cutoffMs);
    await world.tasks.createTask(parseQueueName(ORDERS)!, {
      name: used.name,
      httpRequest: { url: world.target.url },
    });
    await world.tasks.deleteTask(used);
    // The record of the withdrawal (the second create in the control queue) is refused; the recovery
    // task's first delete answers 503.
    world.emulator.injectFault({ method: 'CreateTask', kind: 403, resources: [CONTROL], after: 1, times: 3 });
    world.emulator.injectFault({ method: 'DeleteTask', kind: 503, resources: [CONTROL], times: 1 });
    const result = await copier({ recovery: RECOVERY }).copy(candidateOf('a', queue), Date.now(), policy());
    expect(result).toMatchObject({
      outcome: 'failed',
      error: expect.stringMatching(/used by an earlier delivery/),
    });
    // Left in place, the recovery task would read the used name as a copy that ran, and delete `a`.
    const left: string[] = [];
    for await (const page of world.tasks.listTasks(RECOVERY.queue)) left.push(...page.map((t) => t.name));
    expect(left).toEqual([]);
    expect(world.emulator.task(`${ORDERS}/tasks/a`)).toBeDefined();
  });

  it('holds a task once the rest is held, before any call', async () => {
    const calls = world.emulator.calls.length;
    expect(await copier().copy(candidateOf('a', queue), Date.now(), policy(true))).toEqual({
      outcome: 'held',
    });
    expect(world.emulator.calls.length).toBe(calls);
  });

  it("with a control queue, writes the move's recovery task before the copy and deletes it once the move is settled", async () => {
    const result = await copier({ recovery: RECOVERY }).copy(candidateOf('a', queue), Date.now(), policy());
    expect(result.outcome).toBe('redriven');
    expect(callsOf(world.emulator, 'CreateTask')).toEqual([CONTROL, ORDERS]);
    const deleted = callsOf(world.emulator, 'DeleteTask');
    expect(deleted).toHaveLength(2);
    expect(deleted[1]!.startsWith(`${CONTROL}/tasks/`)).toBe(true);
  });

  it("keeps the copy when the original is gone once the move's recovery task was due: its delivery may have finished the move", async () => {
    // The second read is held past the recovery task's due time (half the arming delay), and the
    // recovery's delivery deletes the original meanwhile, the copy being there.
    const moving = copier({ recovery: RECOVERY, armingDelayMs: 400 }).copy(
      candidateOf('a', queue),
      Date.now(),
      policy(),
    );
    await secondReadHeld('a', 600);
    await world.tasks.deleteTask(taskName('a'));
    const result = await moving;
    expect(result).toMatchObject({ outcome: 'redriven', copy: { name: copyOfTask('a') } });
    // Not withdrawn: the copy runs (it falls due 400 ms after its slot), and the task is not lost.
    expect(callsOf(world.emulator, 'DeleteTask')).not.toContain(copyOfTask('a'));
  });

  it("keeps the copy when the original is gone and the move's recovery task was delivered early, by Cloud Tasks' clock ahead of the run's", async () => {
    // The run's recovery task is not due by its own clock (an arming delay of a minute), but Cloud Tasks,
    // whose clock is ahead, delivers it: it deletes the original, the copy being there, and is done.
    const moving = copier({ recovery: RECOVERY }).copy(candidateOf('a', queue), Date.now(), policy());
    await secondReadHeld('a', 300);
    for await (const page of world.tasks.listTasks(RECOVERY.queue)) {
      for (const recovery of page) await world.tasks.deleteTask(parseTaskName(recovery.name)!);
    }
    await world.tasks.deleteTask(taskName('a'));
    const result = await moving;
    expect(result).toMatchObject({ outcome: 'redriven', copy: { name: copyOfTask('a') } });
    expect(world.emulator.task(copyOfTask('a'))).toBeDefined();
  });

  it("keeps the copy when the original cannot be read again once the move's recovery task was due: that task settles the move", async () => {
    // The run's clock jumps past the recovery task's due time (half the arming delay) while the copy is
    // being created; the second read then fails for good. The recovery's delivery may already have
    // deleted the original, so withdrawing the copy could lose the task.
    let skewMs = 0;
    const budget = new Budget(600_000, () => Date.now() + skewMs);
    world.emulator.injectFault({
      method: 'CreateTask',
      kind: 'delay',
      delayMs: 300,
      resources: [ORDERS],
      times: 1,
    });
    world.emulator.injectFault({
      method: 'GetTask',
      kind: 400,
      resources: [taskName('a').name],
      after: 1,
      times: 1,
    });
    const moving = copier({ recovery: RECOVERY, budget }).copy(candidateOf('a', queue), Date.now(), policy());
    await expect.poll(() => callsOf(world.emulator, 'CreateTask')).toContain(ORDERS);
    skewMs = ARMING_MS;
    const result = await moving;
    expect(result).toMatchObject({ outcome: 'deferred', unsettled: true });
    expect(world.emulator.task(copyOfTask('a'))).toBeDefined();
    expect(world.emulator.task(`${ORDERS}/tasks/a`)).toBeDefined();
    // Not withdrawn, and the recovery task left armed to settle the move.
    expect(callsOf(world.emulator, 'DeleteTask')).toEqual([]);
  });

  it('refuses a name some other task holds: the task fails and its original stays', async () => {
    world.emulator.load({
      queues: [
        {
          name: ORDERS,
          tasks: [
            {
              name: copyOfTask('a'),
              httpRequest: { url: world.target.url },
              scheduleTime: new Date(Date.now() + 3_600_000).toISOString(),
            },
          ],
        },
      ],
    });
    const result = await copier().copy(candidateOf('a', queue), Date.now(), policy());
    expect(result).toMatchObject({
      outcome: 'failed',
      error: expect.stringMatching(/not copied from this one/),
    });
    expect(world.emulator.task(`${ORDERS}/tasks/a`)).toBeDefined();
  });

  it('a task whose token it may not act as is skipped, and later tasks with that token are not tried', async () => {
    world.emulator.setActAs([]);
    const withToken = (id: string) => ({
      ...failedTask(ORDERS, id, world.target.url),
      httpRequest: { url: world.target.url, oidcToken: { serviceAccountEmail: SA } },
    });
    world.emulator.load({ queues: [{ name: ORDERS, tasks: [withToken('t1'), withToken('t2')] }] });
    const c = copier();
    const skipped = { outcome: 'skipped', skipReason: 'cannot-act-as' };
    expect(await c.copy(candidateOf('t1', queue), Date.now(), policy())).toEqual(skipped);
    expect(await c.copy(candidateOf('t2', queue), Date.now(), policy())).toEqual(skipped);
    expect(callsOf(world.emulator, 'CreateTask')).toHaveLength(1);
    expect(world.emulator.task(`${ORDERS}/tasks/t1`)).toBeDefined();
  });

  it('sends a delete answered UNAVAILABLE again (redrive-calls.ts), and the move completes', async () => {
    world.emulator.injectFault({ method: 'DeleteTask', kind: 503, times: 1 });
    expect((await copier().copy(candidateOf('a', queue), Date.now(), policy())).outcome).toBe('redriven');
    expect(callsOf(world.emulator, 'DeleteTask')).toEqual([`${ORDERS}/tasks/a`, `${ORDERS}/tasks/a`]);
  });

  it('a delete answered INTERNAL after it went through: NOT_FOUND on the resend keeps the copy', async () => {
    world.emulator.injectFault({ method: 'DeleteTask', kind: 500, afterWork: true, times: 1 });
    const moved = await copier().copy(candidateOf('a', queue), Date.now(), policy());
    expect(moved).toMatchObject({ outcome: 'redriven', copy: parseTaskName(copyOfTask('a')) });
    expect(world.emulator.task(`${ORDERS}/tasks/a`)).toBeUndefined();
    expect(world.emulator.task(copyOfTask('a'))).toBeDefined();
  });

  it("copies a FULL listing's bodies intact, and lets them go once each move's copy is settled, made or not", async () => {
    const bodies = { c: 'c'.repeat(6_000), d: 'd'.repeat(6_000) };
    world.emulator.load({
      queues: [
        {
          name: ORDERS,
          tasks: [
            failedTask(ORDERS, 'c', world.target.url, { body: bodies.c }),
            failedTask(ORDERS, 'd', world.target.url, { body: bodies.d }),
            // d's copy name is held by another task: its move fails after its body was taken.
            {
              name: copyOfTask('d'),
              httpRequest: { url: world.target.url },
              scheduleTime: new Date(Date.now() + 3_600_000).toISOString(),
            },
          ],
        },
      ],
    });
    const listed: Task[] = [];
    for await (const page of world.tasks.listTasks(parseQueueName(ORDERS)!, 'FULL')) listed.push(...page);
    const taskOf = (id: string) => listed.find((task) => task.name === `${ORDERS}/tasks/${id}`)!;
    const bodyOf = (id: string) => taskOf(id).httpRequest!.body as BodyBytes;
    expect(bodyOf('c')).toBeInstanceOf(BodyBytes);
    const c = copier();
    const moved = async (id: string) =>
      (await c.copy({ ...candidateOf(id, queue), full: new Handover(taskOf(id)) }, Date.now(), policy()))
        .outcome;
    expect(await moved('c')).toBe('redriven');
    expect(await moved('d')).toBe('failed');
    const sent = world.emulator.task(copyOfTask('c'))!.httpRequest.body!;
    expect(Buffer.from(sent, 'base64').toString()).toBe(bodies.c);
    // Both let go: the answer's memory is freed, and reading a body now fails rather than reading nothing.
    expect(() => bodyOf('c').json).toThrow(/read after it was let go/);
    expect(() => bodyOf('d').json).toThrow(/read after it was let go/);
  });

  it('a create that keeps failing leaves the move unsettled for its recovery, and the original in place', async () => {
    world.emulator.injectFault({ method: 'CreateTask', kind: 503 });
    const result = await copier().copy(candidateOf('a', queue), Date.now(), policy());
    expect(result).toMatchObject({ outcome: 'deferred', unsettled: true });
    expect(callsOf(world.emulator, 'CreateTask')).toHaveLength(3);
    expect(world.emulator.task(`${ORDERS}/tasks/a`)).toBeDefined();
  });
});

/** The process's bound on bodies, watched: how many bytes are held, and the most ever held at once. */
class WatchedBytes extends Semaphore {
  held = 0;
  peak = 0;

  override async acquire(untilMs?: number, nowMs?: number, units = 1): Promise<boolean> {
    const granted = await super.acquire(untilMs, nowMs, units);
    if (granted) this.peak = Math.max(this.peak, (this.held += units));
    return granted;
  }

  override release(units = 1): void {
    this.held -= units;
    super.release(units);
  }
}

describe('bodies held (docs/redrive.md "Bodies held")', () => {
  it('reads tasks on their own only while their bodies fit the process bound, and gives every byte back', async () => {
    const ids = ['l1', 'l2', 'l3', 'l4', 'l5', 'l6'];
    const body = 'large body '.repeat(70_000);
    world.emulator.load({
      queues: [{ name: ORDERS, tasks: ids.map((id) => failedTask(ORDERS, id, world.target.url, { body })) }],
    });
    const bodies = new WatchedBytes(2 * LARGEST_BODY_BYTES);
    const c = copier({ bodies, calls: new Semaphore(8) });
    const results = await Promise.all(ids.map((id) => c.copy(candidateOf(id, queue), Date.now(), policy())));
    expect(results.map((r) => r.outcome)).toEqual(ids.map(() => 'redriven'));
    for (const id of ids) {
      const copied = world.emulator.task(copyOfTask(id))!.httpRequest?.body;
      expect(Buffer.from(copied ?? '', 'base64').toString()).toBe(body);
    }
    // Two reads at the largest a body can be; the other four waited, though eight calls were free.
    expect(bodies.peak).toBe(2 * LARGEST_BODY_BYTES);
    expect(bodies.held).toBe(0);
  });

  it('a task whose read finds no room before the budget ends is deferred, untouched', async () => {
    const bodies = new Semaphore(LARGEST_BODY_BYTES);
    expect(await bodies.acquire(undefined, undefined, LARGEST_BODY_BYTES)).toBe(true);
    const result = await copier({ bodies, budget: new Budget(50) }).copy(
      candidateOf('a', queue),
      Date.now(),
      policy(),
    );
    expect(result).toEqual({ outcome: 'deferred' });
    expect(world.emulator.task(`${ORDERS}/tasks/a`)).toBeDefined();
    expect(callsOf(world.emulator, 'GetTask')).toEqual([]);
  });
});
