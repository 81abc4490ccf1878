/**
 * A move's recovery (docs/claims.md "A crash mid-redrive"), one row of its table per test, against the
 * emulator: what is left of the original and its copy afterwards.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startEmulator, type Emulator } from '../../emulator/server.js';
import { createCloudTasksClient, type CloudTasksClient } from '../../shared/cloud-tasks/client.js';
import { parkingQueueOf, parseQueueName, parseTaskName } from '../../shared/cloud-tasks/names.js';
import {
  copyWithdrawnNameOf,
  type ControlTarget,
  type MoveRecovery,
} from '../../shared/control/control-tasks.js';
import { recordWithdrawn } from '../../shared/control/withdrawn-copies.js';
import { copyNameOf, copyOf } from '../../shared/run/copy.js';
import {
  homeCopyOf,
  homeNameOf,
  parkedCopyOf,
  parkedNameOf,
  possiblyDoneNameOf,
} from '../../shared/run/park-rules.js';
import { recoverMove } from '../../shared/run/recover-move.js';
import { failedTask, queueName } from '../helpers/seeds.js';

const ORDERS = queueName('orders');
const CONTROL = queueName('rerun-control');
/** The control queue the recovery tasks come from, where withdrawals are recorded. */
const CONTROL_TARGET: ControlTarget = {
  queue: parseQueueName(CONTROL)!,
  selfUrl: 'http://127.0.0.1:9/rerun',
  invokerServiceAccount: 'invoker@p.iam.gserviceaccount.com',
  writtenBy: 'test',
};
const ORIGINAL = `${ORDERS}/tasks/a`;
const COPY = copyNameOf(parseTaskName(ORIGINAL)!, 'r-1', Date.parse('2026-01-01T00:00:00Z'));
/** Long enough that nothing is dispatched during a test. */
const ARMING_MS = 60_000;

let emulator: Emulator;
let tasks: CloudTasksClient;

beforeEach(async () => {
  emulator = await startEmulator({ port: 0 });
  emulator.load({
    queues: [
      { name: ORDERS, tasks: [failedTask(ORDERS, 'a', 'http://127.0.0.1:9', { body: 'x=1' })] },
      { name: CONTROL, state: 'PAUSED', tasks: [] },
    ],
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

const recover = (m: MoveRecovery) => recoverMove(tasks, CONTROL_TARGET, m, ARMING_MS, Date.now);

/** Whether the control queue holds the record that the copy `copy` was withdrawn. */
const withdrawalRecorded = (copy = COPY.name): boolean =>
  emulator.task(copyWithdrawnNameOf(CONTROL_TARGET.queue, copy).name) !== undefined;

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

  it('copy there, original ran meanwhile: withdraws the copy, recorded first (the move is undone)', async () => {
    await makeCopy();
    expect(await recover(move(2))).toMatchObject({ done: true, outcome: 'undone' });
    expect(emulator.task(ORIGINAL)).toBeDefined();
    expect(emulator.task(COPY.name)).toBeUndefined();
    expect(withdrawalRecorded()).toBe(true);
  });

  it('a withdrawal that cannot be recorded is not made: not done, the copy stays', async () => {
    await makeCopy();
    emulator.injectFault({ method: 'CreateTask', kind: 503, resources: [CONTROL] });
    expect(await recover(move(2))).toMatchObject({ done: false });
    expect(emulator.task(COPY.name)).toBeDefined();
    emulator.clearFaults();
    expect(await recover(move(2))).toMatchObject({ done: true, outcome: 'undone' });
    expect(emulator.task(COPY.name)).toBeUndefined();
  });

  it('copy ran (its name used up), original idle, no withdrawal recorded: deletes the original', async () => {
    await makeCopy();
    // Gone as Cloud Tasks removes a copy once it has run: its name stays reserved.
    await tasks.deleteTask(COPY);
    expect(await recover(move())).toMatchObject({
      done: true,
      outcome: 'finished',
      why: expect.stringMatching(/ran/),
    });
    expect(emulator.task(ORIGINAL)).toBeUndefined();
    expect(withdrawalRecorded()).toBe(false);
  });

  it('copy withdrawn (its withdrawal recorded), original idle: keeps the original', async () => {
    await makeCopy();
    await recordWithdrawn(tasks, CONTROL_TARGET, COPY, Date.now());
    await tasks.deleteTask(COPY);
    expect(await recover(move())).toMatchObject({
      done: true,
      outcome: 'undone',
      why: 'the copy was withdrawn',
    });
    expect(emulator.task(ORIGINAL)).toBeDefined();
  });

  it("the record can't be read: not done, the original stays", async () => {
    await makeCopy();
    await tasks.deleteTask(COPY);
    emulator.injectFault({ method: 'GetTask', kind: 503, resources: [CONTROL] });
    expect(await recover(move())).toMatchObject({ done: false });
    expect(emulator.task(ORIGINAL)).toBeDefined();
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
    // A later move of the same task (the request sent again) reads its attempts as they are now: idle. The
    // record keeps it from taking the used name for a copy that ran.
    expect(withdrawalRecorded()).toBe(true);
    expect(await recover(move(3))).toMatchObject({ done: true, outcome: 'undone' });
    expect(emulator.task(ORIGINAL)).toBeDefined();
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

describe('recoverMove of an unpark (docs/parking.md "Unparking")', () => {
  const home = parseQueueName(ORDERS)!;
  const parking = parkingQueueOf(home);
  const PARKED = parkedNameOf(parseTaskName(ORIGINAL)!, parking);
  const HOME_COPY = homeNameOf(PARKED, home);
  const ACCOUNT = 'worker@p.iam.gserviceaccount.com';

  beforeEach(async () => {
    const original = failedTask(ORDERS, 'a', 'http://127.0.0.1:9', { body: 'x=1' });
    const withToken = {
      ...original,
      httpRequest: { ...original.httpRequest, oidcToken: { serviceAccountEmail: ACCOUNT } },
    };
    emulator.load({
      queues: [
        { name: ORDERS, tasks: [] },
        { name: parking.name, state: 'PAUSED', tasks: [] },
        { name: CONTROL, state: 'PAUSED', tasks: [] },
      ],
    });
    await tasks.createTask(parking, parkedCopyOf(withToken, PARKED, home, Date.now(), false));
  });

  const unpark = (): MoveRecovery => ({
    kind: 'finish-move',
    original: PARKED.name,
    copy: HOME_COPY.name,
    first: ORIGINAL,
    dispatchCount: 0,
  });

  async function makeHomeCopy(): Promise<void> {
    const parked = await tasks.getTask(PARKED, 'FULL');
    await tasks.createTask(home, homeCopyOf(parked, HOME_COPY, Date.now() + ARMING_MS));
  }

  it('home copy there: deletes the parked task (the unpark is finished)', async () => {
    await makeHomeCopy();
    expect(await recover(unpark())).toMatchObject({ done: true, outcome: 'finished' });
    expect(emulator.task(PARKED.name)).toBeUndefined();
    expect(emulator.task(HOME_COPY.name)).toBeDefined();
  });

  it('no home copy: makes it, its token back, then deletes the parked task', async () => {
    expect(await recover(unpark())).toMatchObject({ done: true, outcome: 'finished' });
    expect(emulator.task(PARKED.name)).toBeUndefined();
    const copy = emulator.task(HOME_COPY.name)!;
    expect(copy.httpRequest?.oidcToken?.serviceAccountEmail).toBe(ACCOUNT);
    expect(copy.httpRequest?.body).toBe(Buffer.from('x=1').toString('base64'));
    expect(copy.httpRequest?.headers?.['X-Rerun-Original-Task']).toBe(ORIGINAL);
  });

  it('the home copy was made and has run (its name used up): deletes the parked task, makes nothing', async () => {
    await makeHomeCopy();
    await tasks.deleteTask(HOME_COPY);
    expect(await recover(unpark())).toMatchObject({ done: true, outcome: 'finished' });
    expect(emulator.task(PARKED.name)).toBeUndefined();
    expect(emulator.task(HOME_COPY.name)).toBeUndefined();
  });

  it("a copy in a queue that is neither the original's nor its home: refused, nothing changed", async () => {
    const stray = { ...unpark(), copy: `${queueName('other')}/tasks/x` };
    expect(await recover(stray)).toMatchObject({ done: true, outcome: 'refused' });
    expect(emulator.task(PARKED.name)).toBeDefined();
  });
});

describe('recoverMove of a park (docs/parking.md "The move")', () => {
  const home = parseQueueName(ORDERS)!;
  const parking = parkingQueueOf(home);
  // A task of its own: the suite's `a` is seeded without a token.
  const PARKING_ORIGINAL = `${ORDERS}/tasks/p`;
  const PARKED = parkedNameOf(parseTaskName(PARKING_ORIGINAL)!, parking);
  const MARKED = possiblyDoneNameOf(PARKED);
  const ACCOUNT = 'worker@p.iam.gserviceaccount.com';

  function loadOriginal(running = false): void {
    const seeded = failedTask(ORDERS, 'p', 'http://127.0.0.1:9', { body: 'x=1' });
    const original = {
      ...seeded,
      httpRequest: { ...seeded.httpRequest, oidcToken: { serviceAccountEmail: ACCOUNT } },
      // An attempt under way: dispatched, no response yet.
      ...(running && { lastAttempt: { dispatchTime: seeded.lastAttempt.dispatchTime } }),
    };
    emulator.load({
      queues: [
        { name: ORDERS, tasks: [original] },
        { name: parking.name, state: 'PAUSED', tasks: [] },
      ],
    });
  }

  const park = (): MoveRecovery => ({
    kind: 'finish-move',
    original: PARKING_ORIGINAL,
    copy: PARKED.name,
    first: PARKING_ORIGINAL,
    dispatchCount: 3,
  });

  async function makeParkedCopy(): Promise<void> {
    const original = await tasks.getTask(parseTaskName(PARKING_ORIGINAL)!, 'FULL');
    await tasks.createTask(parking, parkedCopyOf(original, PARKED, home, Date.now(), false));
  }

  it('parked copy there, original idle: deletes the original (the park is finished)', async () => {
    loadOriginal();
    await makeParkedCopy();
    expect(await recover(park())).toMatchObject({ done: true, outcome: 'finished' });
    expect(emulator.task(PARKING_ORIGINAL)).toBeUndefined();
    expect(emulator.task(PARKED.name)?.httpRequest?.headers?.['X-Rerun-Possibly-Done']).toBeUndefined();
  });

  it('no parked copy, original idle: parks it (no token, its record in headers), then deletes it', async () => {
    loadOriginal();
    expect(await recover(park())).toMatchObject({ done: true, outcome: 'finished' });
    expect(emulator.task(PARKING_ORIGINAL)).toBeUndefined();
    const parked = emulator.task(PARKED.name)!;
    expect(parked.httpRequest?.oidcToken).toBeUndefined();
    expect(parked.httpRequest?.headers?.['X-Rerun-Oidc-Account']).toBe(ACCOUNT);
    expect(parked.httpRequest?.body).toBe(Buffer.from('x=1').toString('base64'));
  });

  it('parked copy there, original gone when it could have run: keeps the task, marked possibly done', async () => {
    loadOriginal();
    await makeParkedCopy();
    await tasks.deleteTask(parseTaskName(PARKING_ORIGINAL)!);
    expect(await recover(park())).toMatchObject({ done: true, outcome: 'finished' });
    expect(emulator.task(PARKED.name)).toBeUndefined();
    const marked = emulator.task(MARKED.name)!;
    expect(marked.httpRequest?.headers?.['X-Rerun-Possibly-Done']).toBe('true');
    expect(marked.httpRequest?.body).toBe(Buffer.from('x=1').toString('base64'));
  });

  it('parked copy there, original gone before it could run or expire: the move deleted it, nothing marked', async () => {
    loadOriginal();
    await makeParkedCopy();
    await tasks.deleteTask(parseTaskName(PARKING_ORIGINAL)!);
    const quietUntil = new Date(Date.now() + 10 * 60_000).toISOString();
    expect(await recover({ ...park(), quietUntil })).toMatchObject({ done: true, outcome: 'nothing-to-do' });
    expect(emulator.task(PARKED.name)).toBeDefined();
    expect(emulator.task(MARKED.name)).toBeUndefined();
  });

  it('parked copy there, original attempt under way: marked possibly done, the original deleted', async () => {
    loadOriginal(true);
    await makeParkedCopy();
    expect(await recover(park())).toMatchObject({ done: true, outcome: 'finished' });
    expect(emulator.task(PARKING_ORIGINAL)).toBeUndefined();
    expect(emulator.task(PARKED.name)).toBeUndefined();
    expect(emulator.task(MARKED.name)?.httpRequest?.headers?.['X-Rerun-Possibly-Done']).toBe('true');
  });

  it('a marked copy that cannot be made: not done (delivered again), never left plainly parked', async () => {
    loadOriginal();
    await makeParkedCopy();
    await tasks.deleteTask(parseTaskName(PARKING_ORIGINAL)!);
    emulator.injectFault({ method: 'CreateTask', kind: 403, resources: [parking.name] });
    expect(await recover(park())).toMatchObject({ done: false });
    expect(emulator.task(PARKED.name)).toBeDefined();
    emulator.clearFaults();
    expect(await recover(park())).toMatchObject({ done: true, outcome: 'finished' });
    expect(emulator.task(PARKED.name)).toBeUndefined();
    expect(emulator.task(MARKED.name)?.httpRequest?.headers?.['X-Rerun-Possibly-Done']).toBe('true');
  });

  it('no parked copy, original gone: uses the name up, parks nothing', async () => {
    loadOriginal();
    await tasks.deleteTask(parseTaskName(PARKING_ORIGINAL)!);
    expect(await recover(park())).toMatchObject({ done: true, outcome: 'undone' });
    expect(emulator.task(PARKED.name)).toBeUndefined();
    expect(emulator.task(MARKED.name)).toBeUndefined();
  });
});
