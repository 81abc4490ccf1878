/**
 * A control task that can never be carried out (its queue has left RERUN_QUEUES, its body fails the schema)
 * is answered 200 and dropped with one ERROR line saying why; the control queue never gives a task up, so
 * any other answer would bring it back forever (docs/events.md "Control tasks that can never be carried
 * out"). A direct caller still gets the 4xx. Judged by the emulator's own dispatch records, Cloud Tasks
 * delivering to a real rerunHttp.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startEmulator, type Emulator } from '../../emulator/server.js';
import { startRerunServer, type RerunServer } from '../helpers/rerun-server.js';
import { failedTask, PROJECT, queueName } from '../helpers/seeds.js';
import { startTarget, type Target } from '../helpers/target-server.js';

const ORDERS = queueName('orders');
const BILLING = queueName('billing');
const CONTROL = queueName('rerun-control');

let emulator: Emulator | undefined;
let server: RerunServer | undefined;
let target: Target | undefined;

afterEach(async () => {
  await server?.close();
  await emulator?.stop();
  await target?.stop();
  server = emulator = target = undefined;
});

/** A control task as rerun makes one, POSTing `event` to `url`. */
function controlTask(id: string, url: string, event: unknown) {
  return {
    name: `${CONTROL}/tasks/${id}`,
    httpRequest: {
      url: `${url}?requestId=deploy-1`,
      httpMethod: 'POST' as const,
      headers: { 'Content-Type': 'application/json' },
      body: Buffer.from(JSON.stringify(event)).toString('base64'),
    },
  };
}

const cutoff = new Date(Date.now() - 60_000).toISOString();
/** BILLING has left RERUN_QUEUES since these were queued. */
const outsideEvent = (i: number) => ({
  kind: 'tasks',
  tasks: [`${BILLING}/tasks/b${i}`],
  cutoff,
  requestId: 'deploy-1',
});
/** A body no version of rerun accepts: a task name that is not one. */
const badEvent = (i: number) => ({
  kind: 'tasks',
  tasks: [`not-a-task-${i}`],
  cutoff,
  requestId: 'deploy-1',
});

describe('control tasks that can never be carried out', () => {
  it('are answered 200 once each and dropped with an ERROR line naming why; the queue ends empty', async () => {
    emulator = await startEmulator({ port: 0 });
    server = await startRerunServer(
      {
        RERUN_QUEUES: ORDERS,
        RERUN_CONTROL_QUEUE: CONTROL,
        RERUN_SELF_URL: 'http://127.0.0.1:9/rerun',
        RERUN_INVOKER_SA: `rerun-invoker@${PROJECT}.iam.gserviceaccount.com`,
      },
      {},
      emulator,
    );
    const url = server.url;
    const tasks = [
      ...Array.from({ length: 20 }, (_, i) => controlTask(`outside-${i}`, url, outsideEvent(i))),
      ...Array.from({ length: 18 }, (_, i) => controlTask(`bad-${i}`, url, badEvent(i))),
    ];
    // As deploy.sh creates it: never gives a task up; short backoffs so a retry would show at once.
    emulator.load({
      queues: [
        {
          name: CONTROL,
          retryConfig: { maxAttempts: -1, minBackoff: '0.1s', maxBackoff: '0.2s' },
          tasks,
        },
      ],
    });
    const left = () => tasks.filter((task) => emulator?.task(task.name) !== undefined).length;
    await expect.poll(left, { timeout: 5_000, interval: 50 }).toBe(0);
    await emulator.settled();
    // Another second: a control task answered anything but 2xx would have come back by now.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const answers = emulator.dispatches.filter((d) => d.task.startsWith(`${CONTROL}/tasks/`));
    expect({ answers: answers.length, left: left() }).toEqual({ answers: 38, left: 0 });
    expect(answers.every((d) => d.status === 200)).toBe(true);
    const dropped = server.logs
      .lines()
      .filter((l) => l.message === 'control task dropped: it can never be carried out');
    expect(dropped).toHaveLength(38);
    expect(dropped.every((l) => l.severity === 'ERROR' && l.droppedControlTasks === 1)).toBe(true);
    const reasons: Record<string, number> = {};
    for (const { dropReason } of dropped)
      reasons[String(dropReason)] = (reasons[String(dropReason)] ?? 0) + 1;
    expect(reasons).toEqual({ QUEUE_NOT_ALLOWED: 20, INVALID_EVENT: 18 });
    // No body reaches a log line.
    expect(server.logs.lines().some((l) => JSON.stringify(l).includes('not-a-task'))).toBe(false);
  });

  it('a direct caller, or a queue other than the control queue, still gets the 4xx naming the field', async () => {
    emulator = await startEmulator({ port: 0 });
    server = await startRerunServer(
      {
        RERUN_QUEUES: ORDERS,
        RERUN_CONTROL_QUEUE: CONTROL,
        RERUN_SELF_URL: 'http://127.0.0.1:9/rerun',
        RERUN_INVOKER_SA: `rerun-invoker@${PROJECT}.iam.gserviceaccount.com`,
      },
      {},
      emulator,
    );
    const bad = await server.post(badEvent(0));
    expect(bad.status).toBe(400);
    expect(bad.body.error.details[0].fieldViolations[0].field).toBe('tasks[0]');
    expect((await server.post(outsideEvent(0))).status).toBe(403);
    const otherQueue = { 'X-CloudTasks-TaskName': 'x1', 'X-CloudTasks-QueueName': 'orders' };
    expect((await server.post(badEvent(0), otherQueue)).status).toBe(400);
    const control = { 'X-CloudTasks-TaskName': 'x2', 'X-CloudTasks-QueueName': 'rerun-control' };
    const dropped = await server.post(badEvent(0), control);
    expect(dropped).toMatchObject({
      status: 200,
      body: { dropped: { controlTask: 'x2', reason: 'INVALID_EVENT' } },
    });
  });
});

describe('a task from another queue (docs/configuration.md "RERUN_CONTROL_QUEUE")', () => {
  const fromDeploys = { 'X-CloudTasks-TaskName': 'deploy-123', 'X-CloudTasks-QueueName': 'deploys' };

  it('is answered as any caller: work left undone gets 200 with continueWith, not 503', async () => {
    target = await startTarget({ respond: () => 500 });
    emulator = await startEmulator({ port: 0 });
    emulator.load({
      queues: [
        { name: ORDERS, tasks: [failedTask(ORDERS, 'a', target.url)] },
        { name: BILLING, tasks: [] },
      ],
    });
    server = await startRerunServer({ RERUN_QUEUES: `${ORDERS},${BILLING}` }, {}, emulator);
    // BILLING cannot be listed: the run forces what it can and leaves BILLING undone.
    emulator.injectFault({ method: 'ListTasks', kind: 503, resources: [BILLING] });
    const answer = await server.post({ kind: 'fix-deployed', verify: '0s' }, fromDeploys);
    expect(answer.status).toBe(200);
    expect(answer.body.counts.dispatched).toBe(1);
    expect(answer.body.continueWith).toMatchObject({ incompleteQueues: [BILLING] });
  });

  it('with a control queue configured, queues what has no slot, as for any caller: it is no control task', async () => {
    target = await startTarget({ respond: () => 500 });
    emulator = await startEmulator({ port: 0 });
    emulator.load({
      queues: [
        { name: ORDERS, tasks: [failedTask(ORDERS, 'a', target.url), failedTask(ORDERS, 'b', target.url)] },
        { name: CONTROL, state: 'PAUSED', tasks: [] },
      ],
    } as never);
    server = await startRerunServer(
      {
        RERUN_QUEUES: ORDERS,
        // One RunTask every 10 s, process-wide: the first request takes the only slot within the budget.
        RERUN_MAX_RATE: '0.1',
        RERUN_TIME_BUDGET: '3s',
        RERUN_CONTROL_QUEUE: CONTROL,
        RERUN_SELF_URL: 'http://127.0.0.1:9/rerun',
        RERUN_INVOKER_SA: `rerun-invoker@${PROJECT}.iam.gserviceaccount.com`,
      },
      {},
      emulator,
    );
    const tasks = (id: string) => ({ kind: 'tasks', tasks: [`${ORDERS}/tasks/${id}`], verify: '0s' });
    const first = await server.post(tasks('a'));
    expect(first.body.counts).toMatchObject({ dispatched: 1 });
    // A control task's own delivery never queues more (its work would be deferred); this is no control task.
    const answer = await server.post(tasks('b'), fromDeploys);
    expect(answer.status).toBe(200);
    expect(answer.body.counts).toMatchObject({ dispatched: 0, queued: 1, deferred: 0 });
    expect(answer.body).not.toHaveProperty('continueWith');
  });
});
