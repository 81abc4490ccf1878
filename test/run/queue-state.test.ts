import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startEmulator, type Emulator } from '../../emulator/server.js';
import { createCloudTasksClient, type CloudTasksClient } from '../../shared/cloud-tasks/client.js';
import { parseQueueName } from '../../shared/cloud-tasks/names.js';
import { QUEUE_RECHECK_MS, QueueState } from '../../shared/run/queue-state.js';
import { queueName } from '../helpers/seeds.js';

const ORDERS = queueName('orders');
const queue = parseQueueName(ORDERS)!;

let emulator: Emulator;
let tasks: CloudTasksClient;
let nowMs: number;
const now = () => nowMs;

beforeEach(async () => {
  emulator = await startEmulator({ port: 0 });
  emulator.load({ queues: [{ name: ORDERS, tasks: [] }] });
  tasks = createCloudTasksClient({ emulatorHost: emulator.host });
  nowMs = 1_000_000;
});
afterEach(async () => {
  await emulator.stop();
});

const getQueueCalls = () => emulator.calls.filter((c) => c.method === 'GetQueue').length;
const pause = () =>
  fetch(`${emulator.url}/v2/${ORDERS}:pause`, { method: 'POST', body: '{}' }).then((r) => r.status);

async function opened(force = false): Promise<QueueState> {
  return new QueueState(
    { tasks, now },
    queue,
    { force, bypassesDispatchLimit: true },
    await tasks.getQueue(queue),
  );
}

describe('QueueState', () => {
  it('answers from the state it was opened with until it is QUEUE_RECHECK_MS old, then reads again', async () => {
    const state = await opened();
    expect(await pause()).toBe(200);
    const calls = getQueueCalls();
    expect(await state.skipReason()).toBeUndefined();
    nowMs += QUEUE_RECHECK_MS - 1;
    expect(await state.skipReason()).toBeUndefined();
    expect(getQueueCalls()).toBe(calls);
    nowMs += 1;
    expect(await state.skipReason()).toBe('queue-paused');
    expect(getQueueCalls()).toBe(calls + 1);
  });

  it('shares one read among the tasks that ask at once', async () => {
    const state = await opened();
    await pause();
    const calls = getQueueCalls();
    nowMs += QUEUE_RECHECK_MS;
    const answers = await Promise.all(Array.from({ length: 10 }, () => state.skipReason()));
    expect(answers).toEqual(Array(10).fill('queue-paused'));
    expect(getQueueCalls()).toBe(calls + 1);
  });

  it('with force, a paused queue is not a reason to stop', async () => {
    const state = await opened(true);
    await pause();
    nowMs += QUEUE_RECHECK_MS;
    expect(await state.skipReason()).toBeUndefined();
  });

  it('keeps the last state when the queue cannot be read', async () => {
    const state = await opened();
    emulator.injectFault({ method: 'GetQueue', kind: 403 });
    nowMs += QUEUE_RECHECK_MS;
    expect(await state.skipReason()).toBeUndefined();
  });
});
