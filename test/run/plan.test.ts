import { ListBudget } from '../../shared/run/list-budget.js';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { BodyBytes } from '../../shared/cloud-tasks/body-bytes.js';
import type { CloudTasksClient, Task, TaskView } from '../../shared/cloud-tasks/client.js';
import { parseQueueName, parseTaskName } from '../../shared/cloud-tasks/names.js';
import { Pacer, QueueAttempts } from '../../shared/run/pace.js';
import { Plan, type PlanMode, type PlannedPage } from '../../shared/run/plan.js';
import { isQueueUndone } from '../../shared/run/undone.js';
import { resolveScope } from '../../shared/triggers/scope.js';
import { failedTask, inFlightTask, laterTask } from '../helpers/seeds.js';
import {
  configOf,
  ORDERS,
  queueName,
  queueRunOf,
  requestOf,
  silentLog,
  startWorld,
  type World,
} from './stage-fixtures.js';

const BILLING = queueName('billing');
const CONTROL = queueName('control');

let world: World;
beforeEach(async () => {
  world = await startWorld();
});
afterEach(async () => {
  await world.stop();
});

function runMode(own: ReadonlySet<string> = new Set(), readsBodies = false): PlanMode {
  return {
    readsBodies,
    canary: undefined,
    startsAttemptsAgain: false,
    bypassesDispatchLimit: true,
    pacersOf: (queue) => queue.pacers,
    isOwnWork: (task) => own.has(task),
  };
}

function planOf(
  event: Record<string, unknown> = {},
  mode = runMode(),
  allow = ORDERS,
  tasks: CloudTasksClient = world.tasks,
) {
  const request = requestOf(event);
  const config = configOf({ RERUN_QUEUES: allow });
  const resolved = resolveScope(request, config.allowlist, parseQueueName(CONTROL));
  if (!resolved.ok) throw new Error(`refused ${resolved.refused.join()}`);
  const deps = {
    tasks,
    pacer: new Pacer(50),
    queueAttempts: new QueueAttempts(),
    log: silentLog(),
    now: Date.now,
    mode,
    lists: new ListBudget(Date.now),
  };
  return new Plan(request, resolved.scope, deps);
}

async function allPages(plan: Plan) {
  const [name] = await plan.queueNames();
  const queue = (await plan.openQueue(name!))!;
  const pages: PlannedPage[] = [];
  for await (const page of plan.pages(queue)) pages.push(page);
  return { queue, candidates: pages.flatMap((p) => p.candidates), rows: pages.flatMap((p) => p.rows) };
}

describe('Plan', () => {
  it('refuses a request naming a parking queue: it is reached only through its home queue', () => {
    const request = requestOf({ queues: [`${ORDERS}-parked`] });
    const config = configOf({ RERUN_QUEUES: queueName('*') });
    expect(resolveScope(request, config.allowlist)).toEqual({ ok: false, refused: [`${ORDERS}-parked`] });
  });

  it("expands a queue pattern by listing the location's queues, leaving out the control and parking queues", async () => {
    world.emulator.load({
      queues: [{ name: ORDERS }, { name: BILLING }, { name: CONTROL }, { name: `${ORDERS}-parked` }],
    });
    const pattern = queueName('*');
    const plan = planOf({ queues: undefined }, runMode(), pattern);
    expect((await plan.queueNames()).map((q) => q.name).sort()).toEqual([BILLING, ORDERS]);
  });

  it('a queue pattern whose listing breaks off after a page is undone, whatever the error', async () => {
    world.emulator.load({ queues: [{ name: ORDERS }, { name: BILLING }] });
    // Page 1 as the emulator lists it; page 2 answered INVALID_ARGUMENT (as an expired page token is).
    world.emulator.injectFault({ method: 'ListQueues', kind: 400, after: 1, times: 1 });
    const brokenOff: CloudTasksClient = {
      ...world.tasks,
      listQueues: async function* (parent) {
        for await (const page of world.tasks.listQueues(parent)) yield page;
        yield* world.tasks.listQueues(parent);
      },
    };
    const pattern = queueName('*');
    const plan = planOf({ queues: undefined }, runMode(), pattern, brokenOff);
    expect((await plan.queueNames()).map((q) => q.name).sort()).toEqual([BILLING, ORDERS]);
    const [report] = plan.queueReports;
    expect(report).toMatchObject({ queue: pattern, complete: false, brokenOff: true });
    expect(report!.error).toMatch(/INVALID_ARGUMENT/);
    expect(isQueueUndone(report!)).toBe(true);
  });

  it('reports the state and the lowest rate of a queue it opens; a serial queue is skipped unless force', async () => {
    world.emulator.load({
      queues: [{ name: ORDERS, rateLimits: { maxDispatchesPerSecond: 5, maxConcurrentDispatches: 1 } }],
    });
    const plan = planOf({ maxRate: 2 });
    const queue = (await plan.openQueue(parseQueueName(ORDERS)!))!;
    expect(queue.report).toMatchObject({ queue: ORDERS, state: 'RUNNING', rate: 2 });
    expect(queue.skipReason).toBe('queue-serial');
    const redrive = { ...runMode(), bypassesDispatchLimit: false };
    expect((await planOf({}, redrive).openQueue(parseQueueName(ORDERS)!))!.skipReason).toBeUndefined();
  });

  it('a queue gone for good is reported with its error and is not opened', async () => {
    const plan = planOf();
    expect(await plan.openQueue(parseQueueName(ORDERS)!)).toBeUndefined();
    expect(plan.queueReports).toEqual([
      expect.objectContaining({ queue: ORDERS, complete: false, error: expect.any(String) }),
    ]);
    expect(plan.queueReports[0]!.transient).toBeUndefined();
    expect(plan.unreachable).toBeUndefined();
  });

  it('splits each page into candidates and rows; unmatched tasks and its own copies are not counted', async () => {
    const url = world.target.url;
    world.emulator.load({
      queues: [
        {
          name: ORDERS,
          tasks: [
            failedTask(ORDERS, 'a', url),
            failedTask(ORDERS, 'b', url),
            failedTask(ORDERS, 'late', url, { dispatchedMs: 60_000 }),
            laterTask(ORDERS, 'never', url),
            failedTask(ORDERS, 'copy', url),
          ],
        },
      ],
    });
    const { queue, candidates, rows } = await allPages(
      planOf({}, runMode(new Set([`${ORDERS}/tasks/copy`]))),
    );
    expect(candidates.map((c) => c.name.task).sort()).toEqual(['a', 'b']);
    expect(rows.map((r) => [r.task.split('/').pop(), r.skipReason])).toEqual(
      expect.arrayContaining([
        ['late', 'after-cutoff'],
        ['never', 'never-attempted'],
      ]),
    );
    expect(queue.report).toMatchObject({ scanned: 5, matched: 4, complete: true });
  });

  it('lists bodies past a small first page only while a page of them stays small; else reads each task alone', async () => {
    const views: TaskView[] = [];
    const recording: CloudTasksClient = {
      ...world.tasks,
      listTasks: (queue, view) => {
        views.push(view ?? 'BASIC');
        return world.tasks.listTasks(queue, view);
      },
    };
    const withBodies = async (queue: string, bodyBytes: number) => {
      views.length = 0;
      const body = 'x'.repeat(bodyBytes);
      const tasks = Array.from({ length: 70 }, (_, i) =>
        failedTask(queue, `t${i}`, 'http://127.0.0.1:9', { body }),
      );
      world.emulator.load({ queues: [{ name: queue, tasks }] });
      const plan = planOf({ queues: [queue] }, runMode(new Set(), true), queue, recording);
      const [name] = await plan.queueNames();
      const pages: PlannedPage[] = [];
      for await (const page of plan.pages((await plan.openQueue(name!))!)) pages.push(page);
      return pages;
    };
    // 1 KB bodies: the first FULL page is 50 tasks, and the rest come FULL too.
    const small = await withBodies(ORDERS, 1_000);
    expect(views).toEqual(['FULL']);
    expect(small.map((page) => page.listedNames.length)).toEqual([50, 20]);
    expect(small[1]!.candidates.every((candidate) => candidate.full !== undefined)).toBe(true);
    // 60 KB bodies: 500 a page would be 40 MB; past the first page, listed without them, each read alone.
    const large = await withBodies(BILLING, 60_000);
    expect(views).toEqual(['FULL', 'BASIC']);
    expect(large[0]!.bodyBytes).toBe(50 * 80_000); // in base64
    expect(large.slice(1).flatMap((page) => page.candidates)).toHaveLength(20);
    expect(large.slice(1).every((page) => page.candidates.every((c) => c.full === undefined))).toBe(true);
  });

  it("lets go of every listed body but the candidates' at once: its own copies', skips' and others'", async () => {
    const url = world.target.url;
    const body = 'x'.repeat(10_000);
    const tasks = [
      ...Array.from({ length: 30 }, (_, i) => failedTask(ORDERS, `t${i}`, url, { body })),
      ...Array.from({ length: 5 }, (_, i) => failedTask(ORDERS, `copy${i}`, url, { body })),
      ...Array.from({ length: 5 }, (_, i) =>
        failedTask(ORDERS, `late${i}`, url, { body, dispatchedMs: 60_000 }),
      ),
    ];
    world.emulator.load({ queues: [{ name: ORDERS, tasks }] });
    const bodyOf = (task: Task) => task.httpRequest?.body;
    const listed: Task[] = [];
    const recording: CloudTasksClient = {
      ...world.tasks,
      listTasks: async function* (queue, view) {
        for await (const page of world.tasks.listTasks(queue, view)) yield (listed.push(...page), page);
      },
    };
    const letGo = new Set<unknown>();
    const spy = vi.spyOn(BodyBytes.prototype, 'letGo').mockImplementation(function (this: BodyBytes) {
      letGo.add(this);
    });
    try {
      const own = new Set(Array.from({ length: 5 }, (_, i) => `${ORDERS}/tasks/copy${i}`));
      const { candidates, rows } = await allPages(planOf({}, runMode(own, true), ORDERS, recording));
      expect(candidates).toHaveLength(30);
      expect(rows.map((row) => row.skipReason)).toEqual(Array(5).fill('after-cutoff'));
      const kept = new Set(candidates.map((candidate) => bodyOf(candidate.full!.take()!)));
      const others = listed.map(bodyOf).filter((listedBody) => !kept.has(listedBody));
      expect(others).toHaveLength(10);
      expect(others.every((other) => other instanceof BodyBytes)).toBe(true);
      expect(letGo).toEqual(new Set(others));
    } finally {
      spy.mockRestore();
    }
  });

  it("fails a listed task whose name is not a task of the listed queue's, and plans the others", async () => {
    const url = world.target.url;
    world.emulator.load({
      queues: [{ name: ORDERS, tasks: ['a', 'b', 'c'].map((id) => failedTask(ORDERS, id, url)) }],
    });
    const renamed: Record<string, string> = {
      [`${ORDERS}/tasks/b`]: `${BILLING}/tasks/b`,
      [`${ORDERS}/tasks/c`]: `${ORDERS}/tasks/c d`,
    };
    const renaming: CloudTasksClient = {
      ...world.tasks,
      listTasks: async function* (queue, view) {
        for await (const page of world.tasks.listTasks(queue, view)) {
          yield page.map((task) => ({ ...task, name: renamed[task.name] ?? task.name }));
        }
      },
    };
    const { candidates, rows } = await allPages(planOf({}, runMode(), ORDERS, renaming));
    expect(candidates.map((candidate) => candidate.name)).toEqual([parseTaskName(`${ORDERS}/tasks/a`)]);
    expect(rows).toEqual([
      { task: `${BILLING}/tasks/b`, outcome: 'failed', error: 'invalid task name in the listing' },
      { task: `${ORDERS}/tasks/c d`, outcome: 'failed', error: 'invalid task name in the listing' },
    ]);
  });

  it('a task listed again (a listing is no snapshot) is matched once: one candidate or one row', async () => {
    const url = world.target.url;
    world.emulator.load({
      queues: [
        {
          name: ORDERS,
          tasks: [failedTask(ORDERS, 'a', url), inFlightTask(ORDERS, 'running', url)],
        },
      ],
    });
    const twice: CloudTasksClient = {
      ...world.tasks,
      listTasks: async function* (queue, view) {
        for await (const page of world.tasks.listTasks(queue, view)) {
          yield page;
          yield page;
        }
      },
    };
    const { queue, candidates, rows } = await allPages(planOf({}, runMode(), ORDERS, twice));
    expect(candidates.map((candidate) => candidate.name.name)).toEqual([`${ORDERS}/tasks/a`]);
    expect(rows.map((row) => row.task)).toEqual([`${ORDERS}/tasks/running`]);
    expect(queue.report).toMatchObject({ matched: 2 });
  });

  it('a listing that breaks off on page 2 marks the queue broken off (undone), whatever the error', async () => {
    const idle = Array.from({ length: 1001 }, (_, i) => laterTask(ORDERS, `t${i}`, world.target.url));
    world.emulator.load({ queues: [{ name: ORDERS, tasks: idle }] });
    world.emulator.injectFault({ method: 'ListTasks', kind: 400, after: 1, times: 1 });
    const { queue } = await allPages(planOf());
    expect(queue.report).toMatchObject({ complete: false, brokenOff: true, scanned: 1000 });
  });

  it('a listing refused at its first page is as its error says: permanent (not permitted) done, a server error undone', async () => {
    world.emulator.load({ queues: [{ name: ORDERS, tasks: [failedTask(ORDERS, 'a', world.target.url)] }] });
    world.emulator.injectFault({ method: 'ListTasks', kind: 403, times: 1 });
    const denied = await allPages(planOf());
    expect(denied.queue.report.brokenOff).toBeUndefined();
    expect(isQueueUndone(denied.queue.report)).toBe(false);
    world.emulator.injectFault({ method: 'ListTasks', kind: 500, times: 1 });
    const internal = await allPages(planOf());
    expect(isQueueUndone(internal.queue.report)).toBe(true);
  });

  it('a queue whose GetQueue is answered INTERNAL is undone, as a task whose read is', async () => {
    world.emulator.load({ queues: [{ name: ORDERS }] });
    world.emulator.injectFault({ method: 'GetQueue', kind: 500, times: 1 });
    const plan = planOf();
    expect(await plan.openQueue(parseQueueName(ORDERS)!)).toBeUndefined();
    expect(isQueueUndone(plan.queueReports[0]!)).toBe(true);
  });

  it('a queue the budget left no time for is reported incomplete', () => {
    const plan = planOf();
    plan.notReached(parseQueueName(ORDERS)!);
    expect(plan.queueReports).toEqual([{ queue: ORDERS, scanned: 0, matched: 0, complete: false }]);
  });

  it('lifts the last-attempt rule for a mode whose tasks start their attempts again', () => {
    const redrive = { ...runMode(), startsAttemptsAgain: true };
    const queue = queueRunOf();
    expect(planOf().rulesFor(queue, false).allowLastAttempt).toBe(false);
    expect(planOf({}, redrive).rulesFor(queue, false).allowLastAttempt).toBe(true);
  });
});
