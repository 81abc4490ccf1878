/**
 * Redrive's crash recovery with a control queue (docs/claims.md "A crash mid-redrive"): rerunHttp runs as
 * a real process, the emulator's control queue delivers each move's recovery task to it, and the emulator's
 * records and the target's requests judge: no task runs twice (original and copy), none is lost.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startEmulator, type Emulator } from '../../emulator/server.js';
import { listTasksFull, postJson } from '../helpers/http.js';
import { freePort, startRerunProcess, type RerunProcess } from '../helpers/rerun-process.js';
import { placesOf } from '../helpers/places.js';
import { controlQueue, failedTask, PROJECT, queueName } from '../helpers/seeds.js';
import { startTarget, type Target } from '../helpers/target-server.js';

const ORDERS = queueName('orders');
const CONTROL = queueName('rerun-control');
/**
 * The copies fall due this long after they are made, the recovery tasks halfway (the product's default is
 * 10 s). The crash test's recoveries go to a process just restarted: they get a little longer.
 */
const ARMING_MS = 3_000;
const CRASH_ARMING_MS = 8_000;

let target: Target;
let emulator: Emulator;
const processes: RerunProcess[] = [];

beforeEach(async () => {
  target = await startTarget({ respond: () => 200 });
  emulator = await startEmulator({ port: 0 });
});
afterEach(async () => {
  for (const child of processes.splice(0)) await child.kill();
  await emulator.stop();
  await target.stop();
});

type Json = Record<string, any>;

function load(count: number): string[] {
  const tasks = Array.from({ length: count }, (_, i) => failedTask(ORDERS, `t${i}`, target.url));
  emulator.load({
    queues: [{ name: ORDERS, rateLimits: { maxDispatchesPerSecond: 500 }, tasks }, controlQueue(CONTROL)],
  });
  return tasks.map((t) => t.name);
}

async function rerunProcess(port: number, armingMs = ARMING_MS, batch = false): Promise<RerunProcess> {
  const child = await startRerunProcess(port, {
    RERUN_QUEUES: ORDERS,
    RERUN_CONTROL_QUEUE: CONTROL,
    RERUN_SELF_URL: `http://127.0.0.1:${port}/`,
    RERUN_INVOKER_SA: `rerun-invoker@${PROJECT}.iam.gserviceaccount.com`,
    CLOUD_TASKS_EMULATOR_HOST: emulator.host,
    TEST_ARMING_MS: String(armingMs),
    RERUN_REDRIVE_BATCH: String(batch),
    ...(process.env.TEST_LOG && { TEST_LOG: '1' }),
  });
  processes.push(child);
  return child;
}

const post = postJson;
const listFull = (queue: string) => listTasksFull(emulator.url, queue);

/**
 * Per task, how often it has run or will run: the target's requests for it (the original's or a copy's),
 * copies still waiting in the queue, and the original if it is still there.
 */
async function judge(originals: readonly string[]) {
  const ran = target.requests.map((request) => `${ORDERS}/tasks/${request.path.split('/').pop()}`);
  return placesOf(originals, ran, await listFull(ORDERS));
}

function bodyOf(task: Json): Json {
  return JSON.parse(Buffer.from(task.httpRequest?.body ?? 'e30=', 'base64').toString('utf8')) as Json;
}

/** Waits until every copy made so far has fallen due and been answered. */
async function copiesSettled(armingMs = ARMING_MS): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, armingMs + 1_000));
  await expect
    .poll(
      async () =>
        (await listFull(ORDERS)).filter((t) => t.httpRequest?.headers?.['X-Rerun-Original-Task']).length,
      {
        timeout: 10_000,
        interval: 200,
      },
    )
    .toBe(0);
  await emulator.settled();
}

describe('redrive recovery', () => {
  it('a create whose answer was lost and that lands late: the move is finished, no task runs twice', async () => {
    const originals = load(30);
    const child = await rerunProcess(await freePort());
    // Every create in the queue loses its answer and lands 1.5 s later, after the run gave the task up.
    emulator.injectFault({ method: 'CreateTask', kind: 'late-landing', delayMs: 1_500, resources: [ORDERS] });
    const event = { kind: 'fix-deployed', mode: 'redrive', verify: '0s', requestId: 'late-1' };
    const first = await post(child.url, event);
    expect(first.body.counts.redriven).toBe(0);
    emulator.clearFaults();
    await copiesSettled();
    // The next delivery of the request finds nothing left to move.
    const again = await post(child.url, event);
    expect(again.status).toBe(200);
    await copiesSettled();
    expect(await judge(originals)).toEqual({ twice: 0, never: 0 });
    // Every recovery task is done; the claims of the tasks the first delivery left stay until they fall due.
    expect((await listFull(CONTROL)).filter((t) => bodyOf(t).kind === 'finish-move')).toEqual([]);
  }, 45_000);

  it.each([
    // Killed once copies are being made: one call per task, past 100 creates; by batch, after two batch
    // creates, while their originals wait for the second read that comes before any delete.
    ['one call per task', false, 300, 101, CRASH_ARMING_MS],
    ['by batch', true, 300, 2, CRASH_ARMING_MS],
    // Hundreds of moves under way (a run takes 1,000 of the 2,000 tasks) fall due within a few seconds: one
    // delivery's sweep must settle them before their copies arm (docs/claims.md "A crash mid-redrive").
    ['by batch, 800 moves under way', true, 2_000, 8, 6_000],
  ])(
    'a process killed with SIGKILL mid-redrive (%s), then the request again: none twice, none lost',
    async (_, batch, count, killAfterCreates, armingMs) => {
      const originals = load(count);
      const port = await freePort();
      const first = await rerunProcess(port, armingMs, batch);
      const event = {
        kind: 'fix-deployed',
        mode: 'redrive',
        verify: '0s',
        requestId: `crash-${count}`,
        deployedAt: new Date(Date.now() - 1_000).toISOString(),
      };
      const delivery = post(first.url, event).catch(() => undefined);
      const creates = () =>
        emulator.calls.filter(
          (c) => c.method === (batch ? 'BatchCreateTasks' : 'CreateTask') && c.name === ORDERS,
        ).length;
      await expect.poll(creates, { timeout: 20_000, interval: 5 }).toBeGreaterThanOrEqual(killAfterCreates);
      await first.kill();
      await delivery;
      const second = await rerunProcess(port, armingMs, batch);
      // The request comes again once the copies made before the crash have fallen due (as a redelivery
      // would): without the recovery tasks, those whose original was not deleted ran twice by now.
      await copiesSettled(armingMs);
      const again = await post(second.url, event);
      expect(again.status).toBe(200);
      await copiesSettled(armingMs);
      // Tasks whose claim the killed process holds are left to that claim (due later): still there, once.
      expect(await judge(originals)).toEqual({ twice: 0, never: 0 });
    },
    60_000,
  );
});
