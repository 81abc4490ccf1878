/**
 * Redrive's second reads (second-reads.ts) against the emulator: one listing answers the reads asked of a
 * queue when that pays and the list budget allows; every other read, and every task the listing did not
 * show, is a GetTask of its own. The list budget's rules (list-budget.ts) are pure.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Budget } from '../../shared/run/budget.js';
import { TASK_PAGE_SIZE as LIST_PAGE_SIZE } from '../../shared/cloud-tasks/client.js';
import { ListBudget, listingPays, pagesOf } from '../../shared/run/list-budget.js';
import { Semaphore } from '../../shared/run/pace.js';
import { RedriveCalls, type Stop } from '../../shared/run/redrive-calls.js';
import type { Task } from '../../shared/cloud-tasks/client.js';
import type { QueueName, TaskName } from '../../shared/cloud-tasks/names.js';
import { SecondReads } from '../../shared/run/second-reads.js';
import { failedTask, laterTask } from '../helpers/seeds.js';
import { callsOf, ORDERS, ORDERS_QUEUE, startWorld, taskName, type World } from './stage-fixtures.js';

let world: World;
beforeEach(async () => {
  world = await startWorld();
});
afterEach(() => world.stop());

/** The stage, with each read's answer as a promise. */
function secondReads(lists = new ListBudget(Date.now)) {
  const budget = new Budget(20_000);
  const calls = new RedriveCalls({ tasks: world.tasks, calls: new Semaphore(8), budget });
  const reads = new SecondReads({ tasks: world.tasks, calls, budget, lists });
  return {
    read: (...asked: [QueueName, number, TaskName, number]): Promise<Task | Stop> =>
      new Promise((secondRead, readFailed) => reads.read(...asked, { secondRead, readFailed })),
  };
}

/** Reads answered by then: the first copies fall due a moment from now. */
const soon = () => Date.now() + 200;

function load(failed: number, others = 0): void {
  world.emulator.load({
    queues: [
      {
        name: ORDERS,
        tasks: [
          ...Array.from({ length: failed }, (_, i) => failedTask(ORDERS, `t${i}`, world.target.url)),
          ...Array.from({ length: others }, (_, i) => laterTask(ORDERS, `other-${i}`, world.target.url)),
        ],
      },
    ],
  });
}

describe('SecondReads', () => {
  it('answers the reads of a queue asked together with one listing, each with the task as it is', async () => {
    load(30);
    const reads = secondReads();
    const answers = await Promise.all(
      Array.from({ length: 30 }, (_, i) => reads.read(ORDERS_QUEUE, 30, taskName(`t${i}`), soon())),
    );
    expect(answers.map((a) => ('name' in a ? a.name : undefined))).toEqual(
      Array.from({ length: 30 }, (_, i) => `${ORDERS}/tasks/t${i}`),
    );
    expect(answers.every((a) => 'dispatchCount' in a && a.dispatchCount === 3)).toBe(true);
    expect(callsOf(world.emulator, 'ListTasks')).toHaveLength(1);
    expect(callsOf(world.emulator, 'GetTask')).toEqual([]);
  });

  it('gathers the reads asked over time until the first must be answered, then lists once', async () => {
    load(10);
    const reads = secondReads();
    const startMs = Date.now();
    const startRealMs = performance.timeOrigin + performance.now();
    const answerByMs = startMs + 700;
    const answers: Promise<unknown>[] = [];
    for (let i = 0; i < 10; i++) {
      answers.push(reads.read(ORDERS_QUEUE, 10, taskName(`t${i}`), answerByMs));
      await new Promise((r) => setTimeout(r, 30));
    }
    await Promise.all(answers);
    expect(callsOf(world.emulator, 'ListTasks')).toHaveLength(1);
    expect(callsOf(world.emulator, 'GetTask')).toEqual([]);
    const listedAt = world.emulator.calls.find((c) => c.method === 'ListTasks')!.realStartMs;
    // Not before 700 ms less a listing's time: the reads asked over 300 ms waited for each other.
    expect(listedAt - startRealMs).toBeGreaterThan(350);
    expect(Date.now()).toBeLessThan(answerByMs + 300);
  });

  it('reads a task the listing did not show on its own: gone when GetTask says so', async () => {
    load(10);
    const reads = secondReads();
    const missing = taskName('t-deleted');
    const answers = await Promise.all([
      ...Array.from({ length: 9 }, (_, i) => reads.read(ORDERS_QUEUE, 10, taskName(`t${i}`), soon())),
      reads.read(ORDERS_QUEUE, 10, missing, soon()),
    ]);
    expect(answers.at(-1)).toEqual({ stop: { outcome: 'gone' } });
    expect(callsOf(world.emulator, 'ListTasks')).toHaveLength(1);
    expect(callsOf(world.emulator, 'GetTask')).toEqual([missing.name]);
  });

  it('reads each task on its own when they are few among many', async () => {
    load(2, 2_500);
    const reads = secondReads();
    await Promise.all([0, 1].map((i) => reads.read(ORDERS_QUEUE, 2_502, taskName(`t${i}`), soon())));
    expect(callsOf(world.emulator, 'ListTasks')).toEqual([]);
    expect(callsOf(world.emulator, 'GetTask')).toHaveLength(2);
  });

  it('reads each task on its own when the list budget has no room', async () => {
    load(10);
    const lists = new ListBudget(Date.now, 60, 0);
    lists.count(5);
    const reads = secondReads(lists);
    await Promise.all(
      Array.from({ length: 10 }, (_, i) => reads.read(ORDERS_QUEUE, 10, taskName(`t${i}`), soon())),
    );
    expect(callsOf(world.emulator, 'ListTasks')).toEqual([]);
    expect(callsOf(world.emulator, 'GetTask')).toHaveLength(10);
  });

  it('reads that can wait for the list budget to have room wait for one listing; only the others are read on their own', async () => {
    load(30);
    // 100 ms a list call and no burst: the 5 calls counted leave no room for 500 ms.
    const lists = new ListBudget(Date.now, 600, 0);
    lists.count(5);
    const reads = secondReads(lists);
    const later = Date.now() + 1_500;
    const answers = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        reads.read(ORDERS_QUEUE, 30, taskName(`t${i}`), i < 10 ? soon() : later),
      ),
    );
    expect(answers.every((a) => 'dispatchCount' in a && a.dispatchCount === 3)).toBe(true);
    // The ten due soon could not wait: read on their own; the twenty others by one listing.
    expect(callsOf(world.emulator, 'GetTask').sort()).toEqual(
      Array.from({ length: 10 }, (_, i) => taskName(`t${i}`).name).sort(),
    );
    expect(callsOf(world.emulator, 'ListTasks')).toHaveLength(1);
    expect(Date.now()).toBeLessThan(later + 300);
  });

  it('a task on a page too old by the time the listing ends (it took longer than reckoned) is read again on its own', async () => {
    load(LIST_PAGE_SIZE + 10);
    const ids = Array.from({ length: LIST_PAGE_SIZE + 10 }, (_, i) => `t${i}`);
    // The second page comes 3.5 s late; meanwhile the first page's t0 is forced by someone else (and fails
    // again: it stays, with an attempt more).
    world.target.setRespond(() => 500);
    world.emulator.injectFault({ method: 'ListTasks', kind: 'delay', delayMs: 3_500, after: 1, times: 1 });
    const reads = secondReads();
    const answers = ids.map((id) => reads.read(ORDERS_QUEUE, ids.length, taskName(id), soon()));
    await expect.poll(() => callsOf(world.emulator, 'ListTasks').length).toBe(2);
    await fetch(`${world.emulator.url}/v2/${ORDERS}/tasks/t0:run`, { method: 'POST', body: '{}' });
    const first = await answers[0]!;
    expect('dispatchCount' in first && first.dispatchCount).toBeGreaterThan(3);
    await Promise.all(answers);
    // The first page's tasks, not the second's: it came just now.
    expect(callsOf(world.emulator, 'GetTask')).toHaveLength(LIST_PAGE_SIZE);
  });

  it('a read asked while a listing runs is answered by a later call, never by that listing', async () => {
    load(20);
    world.emulator.setLatency(150);
    const reads = secondReads();
    const first = Promise.all(
      Array.from({ length: 10 }, (_, i) => reads.read(ORDERS_QUEUE, 20, taskName(`t${i}`), soon())),
    );
    await new Promise((r) => setTimeout(r, 60));
    const askedMs = performance.timeOrigin + performance.now();
    const late = await reads.read(ORDERS_QUEUE, 20, taskName('t15'), soon());
    await first;
    expect('name' in late && late.name).toBe(`${ORDERS}/tasks/t15`);
    const answeredBy = world.emulator.calls.filter(
      (c) => (c.method === 'ListTasks' || c.method === 'GetTask') && c.realStartMs >= askedMs,
    );
    expect(answeredBy.length).toBeGreaterThan(0);
  });
});

describe('ListBudget', () => {
  it('lets a burst through, then calls at their share of a minute', () => {
    let nowMs = 0;
    const lists = new ListBudget(() => nowMs, 60, 2);
    expect(lists.tryTake(2)).toBe(true);
    expect(lists.tryTake(1)).toBe(true);
    expect(lists.tryTake(1)).toBe(false);
    nowMs = 1_000;
    expect(lists.tryTake(1)).toBe(true);
    expect(lists.tryTake(1)).toBe(false);
    expect(lists.calls).toBe(4);
  });

  it('a listing that can wait leaves room for one that cannot', () => {
    const lists = new ListBudget(() => 0, 60, 10);
    lists.count(6);
    expect(lists.tryTake(3, 5)).toBe(false);
    expect(lists.tryTake(3)).toBe(true);
  });

  it('counts the calls a run must make, whatever the budget says', () => {
    const lists = new ListBudget(() => 0, 60, 0);
    lists.count(3);
    expect(lists.calls).toBe(3);
    expect(lists.fitsAtMs()).toBe(3_000);
  });

  it('a listing pays once the waiting reads outnumber the pages twice over', () => {
    expect(pagesOf(0)).toBe(1);
    expect(pagesOf(LIST_PAGE_SIZE + 1)).toBe(2);
    expect(listingPays(3, 2 * LIST_PAGE_SIZE)).toBe(false);
    expect(listingPays(4, 2 * LIST_PAGE_SIZE)).toBe(true);
  });
});
