/**
 * Redrive's verdicts by listing (docs/redrive.md "Verdicts"): the pure judgement of one listing, and the
 * stage against the in-process emulator, whose call records say how the verdicts were read.
 */
import { ListBudget } from '../../shared/run/list-budget.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Task } from '../../shared/cloud-tasks/client.js';
import { parseQueueName } from '../../shared/cloud-tasks/names.js';
import { Budget } from '../../shared/run/budget.js';
import {
  CONFIRM_BY_READ,
  CopyVerdicts,
  judgeListing,
  type WaitingCopy,
} from '../../shared/run/copy-verdicts.js';
import { Semaphore } from '../../shared/run/pace.js';
import type { VerdictResult } from '../../shared/run/verify.js';
import { Verifier } from '../../shared/run/verify.js';
import { laterTask } from '../helpers/seeds.js';
import { callsOf, ORDERS, startWorld, taskName, type World } from './stage-fixtures.js';

/** The list budget these tests give the verdicts. */
const LIST_CALLS_PER_MINUTE = 60;

function waitingCopy(fromMs = 0, untilMs = 10_000): WaitingCopy & { verdict?: VerdictResult } {
  const copy: WaitingCopy & { verdict?: VerdictResult } = {
    fromMs,
    untilMs,
    misses: 0,
    listener: {
      verdict: (verdict) => (copy.verdict = verdict),
      failed: (error) => {
        throw error;
      },
    },
  };
  return copy;
}

const failed: Task = {
  name: 'c',
  responseCount: 1,
  lastAttempt: { responseStatus: { code: 13, message: 'INTERNAL(13): HTTP status code 500' } },
};

describe('judgeListing', () => {
  it('a listed copy whose attempt completed failed again, with its status; one not yet answered waits', () => {
    const waiting = new Map([
      ['c', waitingCopy()],
      ['d', waitingCopy()],
    ]);
    const listed = new Map([
      ['c', failed],
      ['d', { name: 'd', responseCount: 0 }],
    ]);
    expect(judgeListing(waiting, { tasks: listed, fromMs: 1 }, 1)).toEqual(
      new Map([['c', { verdict: 'failed-again', status: 'INTERNAL(13): HTTP status code 500' }]]),
    );
  });

  it('a copy missing from one listing is not yet a success; missing from two in a row, it succeeded', () => {
    const waiting = new Map([['c', waitingCopy()]]);
    expect(judgeListing(waiting, { tasks: new Map(), fromMs: 1 }, 1).size).toBe(0);
    expect(judgeListing(waiting, { tasks: new Map(), fromMs: 2 }, 2)).toEqual(
      new Map([['c', { verdict: 'succeeded' }]]),
    );
  });

  it('a copy seen again between two misses starts counting again', () => {
    const waiting = new Map([['c', waitingCopy()]]);
    judgeListing(waiting, { tasks: new Map(), fromMs: 1 }, 1);
    judgeListing(waiting, { tasks: new Map([['c', { name: 'c' }]]), fromMs: 2 }, 2);
    expect(judgeListing(waiting, { tasks: new Map(), fromMs: 3 }, 3).size).toBe(0);
  });

  it('a listing that started before the copy was due, or failed, judges nothing; the window still ends', () => {
    const waiting = new Map([['c', waitingCopy(5, 10)]]);
    expect(judgeListing(waiting, { tasks: new Map(), fromMs: 4 }, 4).size).toBe(0);
    expect(judgeListing(waiting, { tasks: new Map(), fromMs: 4 }, 4).size).toBe(0);
    expect(waiting.get('c')!.misses).toBe(0);
    expect(judgeListing(waiting, undefined, 10)).toEqual(new Map([['c', { verdict: 'running' }]]));
  });

  it('once its window has ended, a copy the listings missed once is left to one read to confirm', () => {
    const waiting = new Map([
      ['missed', waitingCopy(0, 10)],
      ['listed', waitingCopy(0, 10)],
    ]);
    const listed = new Map([['listed', { name: 'listed', responseCount: 0 }]]);
    expect(judgeListing(waiting, { tasks: listed, fromMs: 1 }, 1).size).toBe(0);
    // The next listing fails after the window's end: the one miss so far is not yet a success.
    expect(judgeListing(waiting, undefined, 10)).toEqual(
      new Map<string, unknown>([
        ['missed', CONFIRM_BY_READ],
        ['listed', { verdict: 'running' }],
      ]),
    );
  });
});

describe('CopyVerdicts', () => {
  let world: World;
  beforeEach(async () => {
    world = await startWorld();
  });
  afterEach(() => world.stop());

  /**
   * `count` copies due now in ORDERS (beside `others` tasks due in an hour), each awaiting its verdict for
   * `windowMs`; the target answers `status`. `spent` list calls are taken from the budget first.
   */
  async function copiesDueNow(
    count: number,
    others: number,
    status: (path: string) => number,
    { windowMs = 5_000, spent = 0 } = {},
  ) {
    world.target.setRespond((request) => status(request.path));
    const queue = parseQueueName(ORDERS)!;
    world.emulator.load({
      queues: [
        {
          name: ORDERS,
          tasks: Array.from({ length: others }, (_, i) => laterTask(ORDERS, `other-${i}`, world.target.url)),
        },
      ],
    });
    const copies = Array.from({ length: count }, (_, i) => taskName(`copy-${i}`));
    for (const copy of copies) {
      await world.tasks.createTask(queue, {
        name: copy.name,
        httpRequest: { url: `${world.target.url}/${copy.task}`, httpMethod: 'POST' },
      });
    }
    const budget = new Budget(20_000);
    const verifier = new Verifier({ tasks: world.tasks, reads: new Semaphore(8), budget });
    // A budget of 60 list calls a minute, no burst: a listing of three pages every 3 s at most.
    const lists = new ListBudget(Date.now, LIST_CALLS_PER_MINUTE, 0);
    lists.count(spent);
    const verdicts = new CopyVerdicts({ tasks: world.tasks, budget, lists, verifier });
    const results = await Promise.all(
      copies.map(
        (copy) =>
          new Promise<VerdictResult>((verdict, failed) =>
            verdicts.verdictOf(queue, others, copy.name, Date.now(), windowMs, { verdict, failed }),
          ),
      ),
    );
    return { results, verdicts, verifier };
  }

  it('a listing loop that throws hands the error to every copy waiting, rather than leaving them waiting', async () => {
    const queue = parseQueueName(ORDERS)!;
    const budget = new Budget(20_000);
    const verifier = new Verifier({ tasks: world.tasks, reads: new Semaphore(8), budget });
    const lists = new ListBudget(Date.now, LIST_CALLS_PER_MINUTE, 0);
    // Nothing the loop expects throws: an unexpected throw, injected here.
    lists.fitsAtMs = () => {
      throw new Error('unexpected');
    };
    const verdicts = new CopyVerdicts({ tasks: world.tasks, budget, lists, verifier });
    const outcomes = await Promise.allSettled(
      ['a', 'b', 'c'].map(
        (id) =>
          new Promise<VerdictResult>((verdict, failed) =>
            verdicts.verdictOf(queue, 0, taskName(`copy-${id}`).name, Date.now(), 5_000, { verdict, failed }),
          ),
      ),
    );
    // The first copy alone is read on its own (a listing does not pay yet); the others wait by listing.
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'rejected']);
    expect((outcomes[1] as PromiseRejectedResult).reason).toEqual(new Error('unexpected'));
  });

  it('lists a queue that is mostly copies: every verdict right, no GetTask per copy', async () => {
    const { results, verdicts, verifier } = await copiesDueNow(30, 0, (path) =>
      path.endsWith('-7') || path.endsWith('-8') ? 500 : 200,
    );
    expect(results.filter((r) => r.verdict === 'succeeded')).toHaveLength(28);
    // A copy listed while its retry runs shows no status for the attempt that failed.
    const failed = /HTTP status code 500|its next attempt is running/;
    expect(results.filter((r) => r.verdict === 'failed-again').map((r) => r.status)).toEqual([
      expect.stringMatching(failed),
      expect.stringMatching(failed),
    ]);
    // The first copy, alone then, is read on its own; the other 29 by listing.
    expect(verifier.reads).toBeLessThanOrEqual(5);
    expect(verdicts.listCalls).toBeGreaterThanOrEqual(2);
    expect(verdicts.listCalls).toBeLessThan(10);
    expect(callsOf(world.emulator, 'ListTasks').length).toBe(verdicts.listCalls);
  });

  it('confirms by one GetTask a copy whose first listing came after its window, never by the gap alone', async () => {
    // The budget's first three calls are spent: the first verdict listing comes 3 s after the copies
    // fall due, past their 1 s window. It misses each copy once; one GetTask each finds them gone.
    const { results, verdicts, verifier } = await copiesDueNow(10, 2_500, () => 200, {
      windowMs: 1_000,
      spent: 3,
    });
    expect(results).toEqual(Array.from({ length: 10 }, () => ({ verdict: 'succeeded' })));
    expect(verdicts.listCalls).toBe(3);
    // The first copy, read alone, and one read to confirm each of the others.
    expect(verifier.reads).toBeLessThanOrEqual(10 + 3);
    expect(callsOf(world.emulator, 'GetTask').length).toBe(verifier.reads);
  });

  it('keeps its listings within the list budget: a queue of three pages is listed at most every 3 s', async () => {
    const { results, verdicts } = await copiesDueNow(10, 2_500, () => 200);
    expect(results.every((r) => r.verdict === 'succeeded')).toBe(true);
    const starts = world.emulator.calls
      .filter((c) => c.method === 'ListTasks')
      .map((c) => c.realStartMs)
      .filter((ms, i, all) => i === 0 || ms - all[i - 1]! > 1_000);
    expect(starts.length).toBeGreaterThanOrEqual(2);
    expect(verdicts.listCalls).toBe(starts.length * 3);
    for (let i = 1; i < starts.length; i++) {
      expect(starts[i]! - starts[i - 1]!).toBeGreaterThanOrEqual((3 * 60_000) / LIST_CALLS_PER_MINUTE - 50);
    }
  });

  it('reads each copy on its own when the copies are few among many tasks', async () => {
    const { results, verdicts } = await copiesDueNow(3, 2_500, () => 200);
    expect(results).toEqual([{ verdict: 'succeeded' }, { verdict: 'succeeded' }, { verdict: 'succeeded' }]);
    expect(verdicts.listCalls).toBe(0);
    expect(callsOf(world.emulator, 'GetTask').length).toBeGreaterThanOrEqual(3);
  });
});
