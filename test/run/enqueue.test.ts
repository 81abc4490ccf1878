import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseQueueName } from '../../shared/cloud-tasks/names.js';
import { Enqueuer } from '../../shared/run/enqueue.js';
import { Semaphore } from '../../shared/run/pace.js';
import { callsOf, ORDERS, queueName, startWorld, type World } from './stage-fixtures.js';

const CONTROL = queueName('control');
const TARGET = {
  queue: parseQueueName(CONTROL)!,
  selfUrl: 'http://127.0.0.1:9/',
  invokerServiceAccount: 'invoker@test-project.iam.gserviceaccount.com',
  writtenBy: 'run-1',
};
const WORK = {
  requestId: 'r-1',
  cutoffMs: Date.now(),
  mode: 'run' as const,
  reason: undefined,
  requestKind: 'fix-deployed' as const,
  force: false,
  lastAttempts: false,
  verifyMs: 0,
  minBackoffLeftMs: 0,
};

let world: World;
beforeEach(async () => {
  world = await startWorld();
});
afterEach(async () => {
  await world.stop();
});

const enqueuer = () => new Enqueuer(world.tasks, TARGET, WORK, new Semaphore(4), Date.now);
const controlTasks = () =>
  [...world.emulator.calls].filter((c) => c.method === 'CreateTask' && c.status === 200);

describe('Enqueuer', () => {
  it('hands a task to the control queue: one control task, due now, aimed at rerunHttp', async () => {
    world.emulator.load({ queues: [{ name: CONTROL }] });
    expect(await enqueuer().enqueue(`${ORDERS}/tasks/a`, [])).toEqual({ outcome: 'queued' });
    expect(callsOf(world.emulator, 'CreateTask')).toEqual([CONTROL]);
    const listed = [];
    for await (const page of world.tasks.listTasks(TARGET.queue)) listed.push(...page);
    expect(listed).toHaveLength(1);
    expect(Date.parse(listed[0]!.scheduleTime!)).toBeLessThanOrEqual(Date.now() + 1_000);
    expect(listed[0]!.httpRequest?.url).toMatch(/^http:\/\/127\.0\.0\.1:9\//);
  });

  it('enqueues a task once for its request: a second delivery finds it queued', async () => {
    world.emulator.load({ queues: [{ name: CONTROL }] });
    expect(await enqueuer().enqueue(`${ORDERS}/tasks/a`, [])).toEqual({ outcome: 'queued' });
    expect(await enqueuer().enqueue(`${ORDERS}/tasks/a`, [])).toEqual({ outcome: 'queued' });
    expect(controlTasks()).toHaveLength(1);
  });

  it('defers the task, naming the error, when the control queue cannot take it', async () => {
    const result = await enqueuer().enqueue(`${ORDERS}/tasks/a`, []);
    expect(result).toMatchObject({ outcome: 'deferred', error: expect.any(String) });
  });
});
