/**
 * `cloud-tasks-rerun parked` and `unpark`, run as a person would (the bin), against the emulator: a home
 * queue's parked tasks shown without a body or header value, then brought home (docs/cli.md "unpark and
 * parked").
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmulator, type Emulator } from '../../emulator/server.js';
import { parkingQueueOf, parseQueueName, parseTaskName } from '../../shared/cloud-tasks/names.js';
import type { Task } from '../../shared/cloud-tasks/client.js';
import { parkedCopyOf, parkedNameOf, TASK_RETENTION_MS } from '../../shared/run/park-rules.js';
import { listTasksFull } from '../helpers/http.js';
import { failedTask, queueName } from '../helpers/seeds.js';
import { startTarget, type Target } from '../helpers/target-server.js';
import { cliEnv, runCli, warmUp } from './run-cli.js';

beforeAll(warmUp, 120_000);

const DAY = 24 * 3_600_000;
const ORDERS = queueName('orders');
/** Its parked task was parked 29 days ago: Cloud Tasks deletes it within 3 days. */
const MAIL = queueName('mail');
/** Its parking queue is RUNNING (and empty). */
const SMS = queueName('sms');
/** No parking queue. */
const BILLING = queueName('billing');
const PARKING = parkingQueueOf(parseQueueName(ORDERS)!);
const SECRET = 'hunter2-in-a-header';
const BODY = 'card=4111';

let target: Target;
let emulator: Emulator;
let parkedName: string;

/** The parked copy of a failed task of `home`, as a sweep with park makes it, created `createdMs`. */
function parkedSeed(home: string, id: string, createdMs: number) {
  const original = failedTask(home, id, target.url, {
    attempts: 4,
    httpStatus: 503,
    headers: { 'X-Secret': SECRET },
    body: BODY,
  }) as Task;
  const homeQueue = parseQueueName(home)!;
  const name = parkedNameOf(parseTaskName(original.name)!, parkingQueueOf(homeQueue));
  const copy = parkedCopyOf(original, name, homeQueue, createdMs, false);
  return { ...copy, createTime: new Date(createdMs).toISOString() } as unknown as ReturnType<
    typeof failedTask
  >;
}

beforeAll(async () => {
  target = await startTarget();
  emulator = await startEmulator({ port: 0 });
  const orders = parkedSeed(ORDERS, 'last', Date.now());
  parkedName = orders.name;
  emulator.load({
    queues: [
      { name: ORDERS, tasks: [] },
      { name: MAIL, tasks: [] },
      { name: SMS, tasks: [] },
      { name: BILLING, tasks: [] },
      { name: PARKING.name, state: 'PAUSED', tasks: [orders] },
      {
        name: parkingQueueOf(parseQueueName(MAIL)!).name,
        state: 'PAUSED',
        tasks: [parkedSeed(MAIL, 'welcome', Date.now() - 29 * DAY)],
      },
      { name: parkingQueueOf(parseQueueName(SMS)!).name, tasks: [] },
    ],
  });
});
afterAll(async () => {
  await emulator.stop();
  await target.stop();
});

const env = () => cliEnv(emulator.host, { RERUN_QUEUES: [ORDERS, MAIL, SMS, BILLING].join(',') });
const idOf = (name: string) => name.split('/tasks/')[1]!;

describe('cloud-tasks-rerun parked', () => {
  it('shows each parked task and its record, never a body or a header value', async () => {
    const text = await runCli(['parked', '--queue', ORDERS], env());
    expect(text.code).toBe(0);
    const [head, line, ...rest] = text.stdout.trimEnd().split('\n');
    expect(head).toBe(`${ORDERS}: 1 parked in ${PARKING.name}`);
    expect(rest).toEqual([]);
    expect(line).toMatch(
      new RegExp(
        `^  ${idOf(parkedName)}  from last  parked 20\\S+Z \\(1x\\)  attempts 4  last 14 UNAVAILABLE\\(14\\): HTTP status code 503  deleted by 20\\S+Z$`,
      ),
    );

    const json = await runCli(['parked', '--queue', ORDERS, '--json'], env());
    expect(json.code).toBe(0);
    const views = JSON.parse(json.stdout);
    expect(views).toEqual([
      { queue: ORDERS, parkingQueue: PARKING.name, state: 'PAUSED', tasks: [expect.any(Object)] },
    ]);
    const [task] = views[0].tasks;
    expect(task).toEqual({
      task: parkedName,
      originalTask: `${ORDERS}/tasks/last`,
      parkedAt: expect.stringMatching(/Z$/),
      attempts: 4,
      lastStatus: { code: 14, message: 'UNAVAILABLE(14): HTTP status code 503' },
      parkCount: 1,
      possiblyDone: false,
      deletedBy: expect.stringMatching(/Z$/),
      deletedSoon: false,
    });
    // Cloud Tasks deletes a task 31 days after its creation: the parked copy's, when it was parked.
    const [listed] = await listTasksFull(emulator.url, PARKING.name);
    expect(Date.parse(task.deletedBy)).toBe(Date.parse(listed!.createTime) + TASK_RETENTION_MS);

    for (const out of [text.stdout, json.stdout]) {
      expect(out).not.toContain(SECRET);
      expect(out).not.toContain(Buffer.from(BODY).toString('base64'));
      expect(out).not.toContain(BODY);
    }
  });

  it('flags a task Cloud Tasks deletes within 3 days, and warns of a parking queue not PAUSED', async () => {
    const text = await runCli(['parked', '--queue', MAIL, '--queue', SMS], env());
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/from welcome {2}.*deleted by 20\S+Z {2}\[deleted soon\]\n/);
    expect(text.stdout).toContain(`${SMS}: 0 parked in ${SMS}-parked`);
    expect(text.stdout).toContain(`warning: ${SMS}-parked is RUNNING, not PAUSED`);
    const json = JSON.parse((await runCli(['parked', '--queue', MAIL, '--json'], env())).stdout);
    expect(json[0].tasks).toEqual([expect.objectContaining({ deletedSoon: true })]);
  });

  it('names a home queue without a parking queue, and deploy.sh --park; exits 1', async () => {
    const result = await runCli(['parked', '--queue', BILLING], env());
    expect(result.code).toBe(1);
    expect(result.stdout).toContain(`no parking queue ${BILLING}-parked (deploy.sh --park creates it)`);
    const json = await runCli(['parked', '--queue', BILLING, '--queue', ORDERS, '--json'], env());
    expect(json.code).toBe(1);
    const views = JSON.parse(json.stdout);
    expect(views[0]).toMatchObject({
      queue: BILLING,
      tasks: [],
      error: expect.stringContaining('no parking'),
    });
    expect(views[1].tasks).toHaveLength(1);
  });
});

describe('cloud-tasks-rerun parked and unpark refuse bad input, naming the flag', () => {
  it.each([
    [['parked'], '--queue is required'],
    [['parked', '--queue', ORDERS, '--dry-run'], "Unknown option '--dry-run'"],
    [['parked', '--queue', 'orders'], '--queue: "orders" is not a queue name'],
    [['parked', '--queue', PARKING.name], `--queue: "${PARKING.name}" is a parking queue`],
    [['parked', '--queue', queueName('elsewhere')], 'queues outside the allowlist (RERUN_QUEUES)'],
    [['unpark', '--queue', 'orders'], '--queue: "orders" is not a queue name'],
    [['unpark', '--queue', PARKING.name], `--queue: "${PARKING.name}" is a parking queue`],
    [['unpark', '--queue', ORDERS, '--mode', 'run'], "Unknown option '--mode'"],
    [
      ['unpark', '--queue', ORDERS, '--deployed-at', '2026-12-01T00:00:00Z'],
      "Unknown option '--deployed-at'",
    ],
    [['unpark', '--queue', ORDERS, '--possibly-done=yes'], '--possibly-done'],
    [['unpark', '--queue', ORDERS, '--min-attempts', 'few'], '--min-attempts must be a whole number'],
  ])('%j', async (args, message) => {
    const result = await runCli(args, env());
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain(message);
    expect(result.stderr).toContain(`Run "cloud-tasks-rerun ${args[0]} --help" for the flags.`);
  });
});

describe('cloud-tasks-rerun unpark', () => {
  it('--dry-run moves nothing; unpark brings the task home and empties the parking queue', async () => {
    const dry = await runCli(['unpark', '--queue', ORDERS, '--dry-run', '--json'], env());
    expect(dry.code).toBe(0);
    expect(JSON.parse(dry.stdout)).toMatchObject({ kind: 'unpark', dryRun: true, counts: { redriven: 1 } });
    const dryText = await runCli(['unpark', '--queue', ORDERS, '--dry-run'], env());
    expect(dryText.stdout).toMatch(/^unpark \(dry run\) /);
    // The parked task counts in its home queue's row.
    expect(dryText.stdout).toMatch(
      /queue {2,}matched {2}redriven\ntest-project\/us-central1\/orders +1 +1\n/,
    );
    expect(await listTasksFull(emulator.url, PARKING.name)).toHaveLength(1);
    expect(await listTasksFull(emulator.url, ORDERS)).toEqual([]);

    const moved = await runCli(['unpark', '--queue', ORDERS, '--verify', '0s', '--json'], env());
    expect(moved.code).toBe(0);
    expect(JSON.parse(moved.stdout)).toMatchObject({
      kind: 'unpark',
      counts: { redriven: 1 },
      tasks: [{ task: parkedName, outcome: 'redriven' }],
    });
    expect(await listTasksFull(emulator.url, PARKING.name)).toEqual([]);
    const home = await listTasksFull(emulator.url, ORDERS);
    expect(home).toHaveLength(1);
    // The copy is the original again: its own headers, and the first task's name.
    expect(home[0]!.httpRequest.headers['X-Secret']).toBe(SECRET);
    expect(home[0]!.httpRequest.headers['X-Rerun-Original-Task']).toBe(`${ORDERS}/tasks/last`);
    expect(home[0]!.httpRequest.headers['X-Rerun-Parked-At']).toBeUndefined();

    const parked = await runCli(['parked', '--queue', ORDERS], env());
    expect(parked.stdout.trimEnd()).toBe(`${ORDERS}: 0 parked in ${PARKING.name}`);
  });
});
