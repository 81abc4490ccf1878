/**
 * The checks before a RunTask (docs/execution.md "Pacing", "Queue concurrency"): a task that passed them at
 * its slot and then waited (a quota push-back, a lowered concurrency) is checked again right before its
 * call, and read again when the wait was long.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startEmulator, type Emulator } from '../../emulator/server.js';
import { createCloudTasksClient, type CloudTasksClient } from '../../shared/cloud-tasks/client.js';
import { Budget } from '../../shared/run/budget.js';
import { LOST_ANSWER_HOLD_MS, type Claim } from '../../shared/run/claim.js';
import { Forcer, type ForcePolicy } from '../../shared/run/force.js';
import { Pacer, Semaphore } from '../../shared/run/pace.js';
import type { QueueRun } from '../../shared/run/plan.js';
import { QueueState } from '../../shared/run/queue-state.js';
import { failedTask } from '../helpers/seeds.js';
import { startTarget, type Target } from '../helpers/target-server.js';
import { candidateOf, ORDERS, ORDERS_QUEUE, queueRunOf, silentLog } from './stage-fixtures.js';

/** The RunTask quota: one call per 3 s, so a refused call pushes the pacer back by nearly 3 s. */
const QUOTA_WINDOW_MS = 3_000;

let emulator: Emulator;
let target: Target;
let tasks: CloudTasksClient;

beforeEach(async () => {
  target = await startTarget({
    // The task `slow` never answers: its own attempt stays in flight.
    respond: ({ path }) => (path.endsWith('/slow') ? new Promise<number>(() => undefined) : 200),
  });
  emulator = await startEmulator({ port: 0, runTaskQuota: { limit: 1, windowMs: QUOTA_WINDOW_MS } });
  tasks = createCloudTasksClient({ emulatorHost: emulator.host });
});
afterEach(async () => {
  await emulator.stop();
  await target.stop();
});

const policy = (claim?: Claim): ForcePolicy => ({
  rulesFor: (q) => ({
    match: {},
    cutoffMs: Date.now(),
    minBackoffLeftMs: 0,
    dueSoonApplies: true,
    retry: q.retry,
    allowLastAttempt: false,
    nowMs: Date.now(),
  }),
  isHeld: () => false,
  heldSignal: undefined,
  ...(claim && { claim }),
});

const runTasksOf = (id: string) =>
  emulator.calls.filter((c) => c.method === 'RunTask' && c.name.endsWith(`/tasks/${id}`));

/** A queue whose state is read again as a run reads it, paced by the process's pacer alone. */
async function queueWithPacer(pacer: Pacer): Promise<QueueRun> {
  const state = new QueueState(
    { tasks, now: Date.now },
    ORDERS_QUEUE,
    { force: false, bypassesDispatchLimit: true },
    await tasks.getQueue(ORDERS_QUEUE),
  );
  return { ...queueRunOf({ pacers: [pacer] }), state };
}

/**
 * `first` is refused for the quota (a direct RunTask used it up), which pushes the pacer back; `second`,
 * whose slot comes 0.5 s later, passes its checks at its slot and then waits for its call behind the
 * push-back.
 */
async function forcePushedBack(first: string, second: string, queue: QueueRun, pacer: Pacer) {
  await tasks.runTask(candidateOf('quota', queue).name);
  const forcer = new Forcer({
    tasks,
    pacer,
    inFlight: new Semaphore(4),
    budget: new Budget(QUOTA_WINDOW_MS + 2_000),
    log: silentLog(),
  });
  const firstSlot = forcer.reserve(queue)!;
  const secondSlot = forcer.reserve(queue)!;
  return Promise.all([
    forcer.force(candidateOf(first, queue), firstSlot, policy()),
    forcer.force(candidateOf(second, queue), secondSlot, policy()),
  ]);
}

describe('the checks before a RunTask', () => {
  it('a task whose own attempt started while it waited for the quota is read again and not forced', async () => {
    emulator.load({
      queues: [
        {
          name: ORDERS,
          tasks: [
            failedTask(ORDERS, 'quota', target.url),
            failedTask(ORDERS, 'a', target.url),
            // Its own next attempt starts 1 s from now, while it waits behind the push-back.
            failedTask(ORDERS, 'slow', target.url, { nextMs: 1_000 }),
          ],
        },
      ],
    });
    const pacer = new Pacer(2);
    const queue = await queueWithPacer(pacer);
    const [first, second] = await forcePushedBack('a', 'slow', queue, pacer);
    expect(runTasksOf('a').some((c) => c.status === 429)).toBe(true);
    expect(second).toEqual({ outcome: 'skipped', skipReason: 'in-flight' });
    expect(runTasksOf('slow')).toEqual([]);
    expect(first.outcome).toBe('dispatched');
  });

  it('a queue paused while a task waited for the quota takes no RunTask', async () => {
    emulator.load({
      queues: [
        {
          name: ORDERS,
          tasks: ['quota', 'a', 'b'].map((id) => failedTask(ORDERS, id, target.url)),
        },
      ],
    });
    const pacer = new Pacer(2);
    const queue = await queueWithPacer(pacer);
    let pausedAtMs = Number.POSITIVE_INFINITY;
    // Paused once the pause is answered: a call the emulator took before it is not late.
    setTimeout(() => {
      void fetch(`${emulator.url}/v2/${ORDERS}:pause`, { method: 'POST', body: '{}' }).then(() => {
        pausedAtMs = performance.timeOrigin + performance.now();
      });
    }, 500);
    const results = await forcePushedBack('a', 'b', queue, pacer);
    expect(results).toEqual([
      { outcome: 'skipped', skipReason: 'queue-paused' },
      { outcome: 'skipped', skipReason: 'queue-paused' },
    ]);
    const late = emulator.calls.filter((c) => c.method === 'RunTask' && c.realStartMs > pausedAtMs);
    expect(late).toEqual([]);
  });

  it('a RunTask refused for the quota is not sent again past its claim: the control queue carries it out', async () => {
    emulator.load({ queues: [{ name: ORDERS, tasks: [failedTask(ORDERS, 'a', target.url)] }] });
    // The injected refusal asks for 1 s; the claim falls due 0.5 s after a call sent now could take effect.
    emulator.injectFault({ method: 'RunTask', kind: 429, times: 1 });
    const pacer = new Pacer(10);
    const queue = queueRunOf({ pacers: [pacer] });
    const forcer = new Forcer({
      tasks,
      pacer,
      inFlight: new Semaphore(4),
      budget: new Budget(Number.POSITIVE_INFINITY),
      log: silentLog(),
    });
    const claim: Claim = {
      task: candidateOf('a', queue).name.name,
      controlTask: `${ORDERS}-control/tasks/claim`,
      readAfresh: false,
      dueMs: Date.now() + LOST_ANSWER_HOLD_MS + 500,
      ownDelivery: false,
    };
    const result = await forcer.force(candidateOf('a', queue), forcer.reserve(queue)!, policy(claim));
    expect(result).toMatchObject({ outcome: 'deferred', why: 'out-of-time' });
    expect(runTasksOf('a')).toHaveLength(1);
  });

  it('a task over a lowered concurrency waits until the attempts still running are within it', async () => {
    emulator.load({ queues: [{ name: ORDERS, tasks: [failedTask(ORDERS, 'a', target.url)] }] });
    const pacer = new Pacer(10);
    const queue = { ...queueRunOf({ pacers: [pacer] }), attemptsRunning: new Semaphore(3) };
    // Three tasks hold their places, as the flow gives them; the queue's limit is then lowered to 1.
    for (let i = 0; i < 3; i++) await queue.attemptsRunning.acquire();
    queue.attemptsRunning.setLimit(1);
    const forcer = new Forcer({
      tasks,
      pacer,
      inFlight: new Semaphore(4),
      budget: new Budget(10_000),
      log: silentLog(),
    });
    const forcing = forcer.force(candidateOf('a', queue), forcer.reserve(queue)!, policy());
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(runTasksOf('a')).toEqual([]);
    // The other two attempts end: the task's place is now within the limit.
    queue.attemptsRunning.release();
    queue.attemptsRunning.release();
    expect((await forcing).outcome).toBe('dispatched');
    expect(runTasksOf('a')).toHaveLength(1);
    queue.attemptsRunning.release();
  });
});
