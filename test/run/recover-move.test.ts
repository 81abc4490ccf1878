/**
 * A move's recovery (docs/claims.md "A crash mid-redrive"), one row of its table per test, against the
 * emulator: what is left of the original and its copy afterwards.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startEmulator, type Emulator } from '../../emulator/server.js';
import { createCloudTasksClient, type CloudTasksClient } from '../../shared/cloud-tasks/client.js';
import { parseQueueName, parseTaskName } from '../../shared/cloud-tasks/names.js';
import type { MoveRecovery } from '../../shared/control/control-tasks.js';
import { copyNameOf, copyOf } from '../../shared/run/copy.js';
import { recoverMove } from '../../shared/run/recover-move.js';
import { failedTask, queueName } from '../helpers/seeds.js';

const ORDERS = queueName('orders');
const ORIGINAL = `${ORDERS}/tasks/a`;
const COPY = copyNameOf(parseTaskName(ORIGINAL)!, 'r-1', Date.parse('2026-01-01T00:00:00Z'));
/** Long enough that nothing is dispatched during a test. */
const ARMING_MS = 60_000;

let emulator: Emulator;
let tasks: CloudTasksClient;

beforeEach(async () => {
  emulator = await startEmulator({ port: 0 });
  emulator.load({
    queues: [{ name: ORDERS, tasks: [failedTask(ORDERS, 'a', 'http://127.0.0.1:9', { body: 'x=1' })] }],
  });
  tasks = createCloudTasksClient({ emulatorHost: emulator.host, timeoutMs: 1_000 });
});
afterEach(async () => {
  await emulator.stop();
});

/** The move as the run wrote it when it read the original (3 attempts, as seeded). */
const move = (dispatchCount = 3): MoveRecovery => ({
  kind: 'finish-move',
  original: ORIGINAL,
  copy: COPY.name,
  first: ORIGINAL,
  dispatchCount,
});

const recover = (m: MoveRecovery) => recoverMove(tasks, m, ARMING_MS, Date.now);

async function makeCopy(): Promise<void> {
  const original = await tasks.getTask(parseTaskName(ORIGINAL)!, 'FULL');
  await tasks.createTask(parseQueueName(ORDERS)!, copyOf(original, COPY, Date.now() + ARMING_MS));
}

/** Whether a create under the copy's name is refused (the name is taken or reserved). */
async function copyNameTaken(): Promise<boolean> {
  const answer = await fetch(`${emulator.url}/v2/${ORDERS}/tasks`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ task: { name: COPY.name, httpRequest: { url: 'http://127.0.0.1:9/' } } }),
  });
  return answer.status === 409;
}

describe('recoverMove', () => {
  it('copy there, original idle: deletes the original (the move is finished)', async () => {
    await makeCopy();
    expect(await recover(move())).toMatchObject({ done: true, outcome: 'finished' });
    expect(emulator.task(ORIGINAL)).toBeUndefined();
    expect(emulator.task(COPY.name)).toBeDefined();
  });

  it('copy there, original ran meanwhile: deletes the copy (the move is undone)', async () => {
    await makeCopy();
    expect(await recover(move(2))).toMatchObject({ done: true, outcome: 'undone' });
    expect(emulator.task(ORIGINAL)).toBeDefined();
    expect(emulator.task(COPY.name)).toBeUndefined();
  });

  it('copy there, original gone: nothing to do, the copy stays', async () => {
    await makeCopy();
    await tasks.deleteTask(parseTaskName(ORIGINAL)!);
    expect(await recover(move())).toMatchObject({ done: true, outcome: 'nothing-to-do' });
    expect(emulator.task(COPY.name)).toBeDefined();
  });

  it('no copy, original idle: makes the copy from the original, then deletes the original', async () => {
    expect(await recover(move())).toMatchObject({ done: true, outcome: 'finished' });
    expect(emulator.task(ORIGINAL)).toBeUndefined();
    const copy = emulator.task(COPY.name)!;
    expect(copy.httpRequest?.body).toBe(Buffer.from('x=1').toString('base64'));
    expect(copy.httpRequest?.headers?.['X-Rerun-Original-Task']).toBe(ORIGINAL);
  });

  it('no copy, original ran: uses the name up, so a create still in flight cannot land', async () => {
    // The run's create lost its answer and lands 300 ms later.
    emulator.injectFault({ method: 'CreateTask', kind: 'late-landing', delayMs: 300, times: 1 });
    await expect(makeCopy()).rejects.toMatchObject({ answerLost: true });
    expect(await recover(move(2))).toMatchObject({ done: true, outcome: 'undone' });
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(emulator.task(COPY.name)).toBeUndefined();
    expect(emulator.task(ORIGINAL)).toBeDefined();
    expect(await copyNameTaken()).toBe(true);
  });

  it('no copy, original gone: uses the name up', async () => {
    await tasks.deleteTask(parseTaskName(ORIGINAL)!);
    expect(await recover(move())).toMatchObject({ done: true, outcome: 'undone' });
    expect(emulator.task(COPY.name)).toBeUndefined();
    expect(await copyNameTaken()).toBe(true);
  });

  it('a stranger under the name: refused, nothing changed', async () => {
    expect(await copyNameTaken()).toBe(false);
    expect(await recover(move())).toMatchObject({ done: true, outcome: 'refused' });
    expect(emulator.task(ORIGINAL)).toBeDefined();
    expect(emulator.task(COPY.name)).toBeDefined();
  });

  it('a call that fails for a reason that may pass: not done, so the recovery is delivered again', async () => {
    emulator.injectFault({ method: 'GetTask', kind: 503 });
    expect(await recover(move())).toMatchObject({ done: false });
    emulator.clearFaults();
    expect(await recover(move())).toMatchObject({ done: true, outcome: 'finished' });
  });
});
