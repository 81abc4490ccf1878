/**
 * Queued work (docs/execution.md "Queued mode", docs/claims.md "Queued work"): each queued control task
 * carries the last-attempt rule as the run applied it when the task was queued, and the request's
 * `maxRate`; and the queued control tasks fall due spread at the slowest rate the run keeps, after its own
 * slots, so the control queue delivers them no faster than the run would force them.
 */
import { describe, expect, it } from 'vitest';
import { targetPerTest } from '../helpers/target-server.js';
import { rerunServersPerTest, type RerunServer } from '../helpers/rerun-server.js';
import { failedTask, PROJECT, queueName } from '../helpers/seeds.js';

const ORDERS = queueName('orders');
const CONTROL = queueName('rerun-control');

const target = targetPerTest({ respond: () => 200 });
const servers = rerunServersPerTest();

interface ControlTask {
  readonly name: string;
  readonly scheduleMs: number;
  readonly body: string;
  readonly event: { tasks: string[]; lastAttempts: boolean; maxRate?: number };
}

/** A server whose control queue is paused (the test delivers its tasks), short on budget. */
async function serverWith(
  orders: { rateLimits: object; retryConfig?: object; tasks: object[] },
  budget: string,
): Promise<RerunServer> {
  const s = await servers.start({
    RERUN_QUEUES: ORDERS,
    RERUN_TIME_BUDGET: budget,
    RERUN_CONTROL_QUEUE: CONTROL,
    RERUN_SELF_URL: 'http://127.0.0.1:9/rerun',
    RERUN_INVOKER_SA: `rerun-invoker@${PROJECT}.iam.gserviceaccount.com`,
  });
  s.emulator.load({
    queues: [
      { name: ORDERS, ...orders },
      { name: CONTROL, state: 'PAUSED', tasks: [] },
    ],
  } as never);
  return s;
}

/** The request's control tasks (not the record of its first cutoff), in the order they fall due. */
async function queuedWork(s: RerunServer, requestId: string): Promise<ControlTask[]> {
  const response = await fetch(`${s.emulator.url}/v2/${CONTROL}/tasks?responseView=FULL`);
  const listed =
    (
      (await response.json()) as {
        tasks?: { name: string; scheduleTime: string; httpRequest: { url: string; body: string } }[];
      }
    ).tasks ?? [];
  return listed
    .filter((task) => task.httpRequest.url.endsWith(`requestId=${requestId}`))
    .map((task) => {
      const body = Buffer.from(task.httpRequest.body, 'base64').toString();
      return { name: task.name, scheduleMs: Date.parse(task.scheduleTime), body, event: JSON.parse(body) };
    })
    .sort((a, b) => a.scheduleMs - b.scheduleMs);
}

/** Delivers each control task as Cloud Tasks would, in the order given; answers each one's rows. */
async function deliver(s: RerunServer, work: readonly ControlTask[]): Promise<string[]> {
  const rows: string[] = [];
  for (const task of work) {
    const delivered = await s.post(task.body, {
      'X-CloudTasks-TaskName': task.name.split('/').pop()!,
      'X-CloudTasks-QueueName': 'rerun-control',
    });
    expect(delivered.status).toBe(200);
    for (const row of delivered.body.tasks as { task: string; outcome: string; skipReason?: string }[])
      rows.push(`${row.task.split('/').pop()}:${row.skipReason ?? row.outcome}`);
  }
  return rows;
}

function runTaskCounts(s: RerunServer): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const call of s.emulator.calls.filter((c) => c.method === 'RunTask')) {
    const id = call.name.split('/').pop()!;
    counts[id] = (counts[id] ?? 0) + 1;
  }
  return counts;
}

describe('queued work after a canary that passed', () => {
  it('carries the last-attempt rule lifted, as the run applied it; work queued before the gate does not', async () => {
    // Four attempts at most: the canaries (one attempt so far) have half left; the others (three so far)
    // are on their last. The queue's 0.2/s leaves one slot in a budget under 5 s: the rest is queued.
    const s = await serverWith(
      {
        rateLimits: { maxDispatchesPerSecond: 0.2 },
        retryConfig: { maxAttempts: 4 },
        tasks: [
          failedTask(ORDERS, 'c1', target.url, { attempts: 1 }),
          failedTask(ORDERS, 'c2', target.url, { attempts: 1 }),
          failedTask(ORDERS, 'l1', target.url),
          failedTask(ORDERS, 'l2', target.url),
          failedTask(ORDERS, 'l3', target.url),
        ],
      },
      '4500ms',
    );
    const { body } = await s.post({
      kind: 'fix-deployed',
      canary: { count: 2, wait: '4s' },
      breaker: false,
      verify: '0s',
    });
    expect(body.canary).toMatchObject({ passed: true });
    expect(body.counts).toMatchObject({ dispatched: 1, queued: 4 });
    const work = await queuedWork(s, body.requestId);
    expect(work).toHaveLength(4);
    const rule = Object.fromEntries(
      work.map((task) => [task.event.tasks[0]!.split('/').pop(), task.event.lastAttempts]),
    );
    const queuedCanary = ['c1', 'c2'].find((id) => id in rule)!;

    // Delivered, each queued task is forced: none is skipped as on its last attempt.
    const rows = await deliver(s, work);
    expect(rows.sort()).toEqual([
      `${queuedCanary}:dispatched`,
      'l1:dispatched',
      'l2:dispatched',
      'l3:dispatched',
    ]);
    expect(runTaskCounts(s)).toEqual({ c1: 1, c2: 1, l1: 1, l2: 1, l3: 1 });
    // The canary that found no slot was queued before the gate decided: the rule as the request set it.
    expect(rule).toEqual({ [queuedCanary]: false, l1: true, l2: true, l3: true });
  });
});

describe('queued work at a slow queue', () => {
  for (const { queueRate, maxRate } of [
    { queueRate: 0.2, maxRate: 0.2 },
    // The request's own rate alone is the slowest.
    { queueRate: 1, maxRate: 0.2 },
  ]) {
    it(`falls due spread at the slowest rate, after the run's own slots (queue ${queueRate}/s, maxRate ${maxRate})`, async () => {
      const ids = ['t0', 't1', 't2', 't3', 't4'];
      const s = await serverWith(
        {
          rateLimits: { maxDispatchesPerSecond: queueRate },
          tasks: ids.map((id) => failedTask(ORDERS, id, target.url)),
        },
        '4500ms',
      );
      const sentMs = Date.now();
      const { body } = await s.post({ kind: 'fix-deployed', breaker: false, verify: '0s', maxRate });
      expect(body.counts).toMatchObject({ dispatched: 1, queued: 4 });
      const work = await queuedWork(s, body.requestId);
      // One control task per queued task: a claim that found no slot left was withdrawn, not left as well.
      expect(work).toHaveLength(4);
      // The run forced one task at its first slot, at or after sentMs: the next falls due a slot later.
      expect(work[0]!.scheduleMs).toBeGreaterThanOrEqual(sentMs + 5_000);
      for (let i = 1; i < work.length; i++) {
        expect(work[i]!.scheduleMs - work[i - 1]!.scheduleMs).toBeGreaterThanOrEqual(5_000);
      }
      expect(work.map((task) => task.event.maxRate)).toEqual([maxRate, maxRate, maxRate, maxRate]);

      // Delivered in the order they fall due, each forces its own task, once.
      const rows = await deliver(s, work);
      expect(rows).toEqual(work.map((task) => `${task.event.tasks[0]!.split('/').pop()}:dispatched`));
      expect(runTaskCounts(s)).toEqual(Object.fromEntries(ids.map((id) => [id, 1])));
    });
  }
});
