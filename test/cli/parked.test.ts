/**
 * `cloud-tasks-rerun parked` and `unpark`, run as a person would (the bin), against the emulator: a home
 * queue's parked tasks shown without a body or header value, then brought home (docs/cli.md "unpark and
 * parked").
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmulator, type Emulator } from '../../emulator/server.js';
import { parkingQueueOf, parseQueueName, parseTaskName } from '../../shared/cloud-tasks/names.js';
import type { Task } from '../../shared/cloud-tasks/client.js';
import { parkedCopyOf, parkedNameOf } from '../../shared/run/park-rules.js';
import { listTasksFull } from '../helpers/http.js';
import { failedTask, queueName } from '../helpers/seeds.js';
import { startTarget, type Target } from '../helpers/target-server.js';
import { cliEnv, runCli, warmUp } from './run-cli.js';

beforeAll(warmUp, 120_000);

const ORDERS = queueName('orders');
const BILLING = queueName('billing');
const PARKING = parkingQueueOf(parseQueueName(ORDERS)!);
const SECRET = 'hunter2-in-a-header';
const BODY = 'card=4111';

let target: Target;
let emulator: Emulator;
let parkedName: string;

beforeAll(async () => {
  target = await startTarget();
  emulator = await startEmulator({ port: 0 });
  const original = failedTask(ORDERS, 'last', target.url, {
    attempts: 4,
    headers: { 'X-Secret': SECRET },
    body: BODY,
  }) as Task;
  const name = parkedNameOf(parseTaskName(original.name)!, PARKING);
  parkedName = name.name;
  emulator.load({
    queues: [
      { name: ORDERS, tasks: [] },
      { name: BILLING, tasks: [] },
      {
        name: PARKING.name,
        state: 'PAUSED',
        tasks: [
          parkedCopyOf(original, name, parseQueueName(ORDERS)!, Date.now(), false) as unknown as ReturnType<
            typeof failedTask
          >,
        ],
      },
    ],
  });
});
afterAll(async () => {
  await emulator.stop();
  await target.stop();
});

const env = () => cliEnv(emulator.host, { RERUN_QUEUES: `${ORDERS},${BILLING}` });

describe('cloud-tasks-rerun parked and unpark', () => {
  it('parked shows each parked task and its record, never a body or a header value', async () => {
    const text = await runCli(['parked', '--queue', ORDERS], env());
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(`${ORDERS}: 1 parked in ${PARKING.name}`);
    expect(text.stdout).toContain(`${ORDERS}/tasks/last`);
    expect(text.stdout).toContain('attempts 4');
    expect(text.stdout).toContain('parked 1x');
    const json = await runCli(['parked', '--queue', ORDERS, '--json'], env());
    const [view] = JSON.parse(json.stdout);
    expect(view.tasks).toEqual([
      expect.objectContaining({
        task: parkedName,
        attempts: 4,
        parkCount: 1,
        possiblyDone: false,
        deletedSoon: false,
      }),
    ]);
    for (const out of [text.stdout, json.stdout]) {
      expect(out).not.toContain(SECRET);
      expect(out).not.toContain(Buffer.from(BODY).toString('base64'));
    }
  });

  it('parked names a home queue without a parking queue, and exits 1', async () => {
    const result = await runCli(['parked', '--queue', BILLING], env());
    expect(result.code).toBe(1);
    expect(result.stdout).toContain('deploy.sh --park');
  });

  it('refuses bad input, naming the flag', async () => {
    const missing = await runCli(['parked'], env());
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('--queue');
    const bad = await runCli(['unpark', '--queue', 'orders'], env());
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--queue');
  });

  it('unpark --dry-run moves nothing; unpark brings the task home', async () => {
    const dry = await runCli(['unpark', '--queue', ORDERS, '--dry-run', '--json'], env());
    expect(JSON.parse(dry.stdout)).toMatchObject({ kind: 'unpark', dryRun: true, counts: { redriven: 1 } });
    expect(await listTasksFull(emulator.url, PARKING.name)).toHaveLength(1);

    const moved = await runCli(['unpark', '--queue', ORDERS, '--verify', '0s', '--json'], env());
    expect(moved.code).toBe(0);
    expect(JSON.parse(moved.stdout)).toMatchObject({ kind: 'unpark', counts: { redriven: 1 } });
    expect(await listTasksFull(emulator.url, PARKING.name)).toEqual([]);
    const [home] = await listTasksFull(emulator.url, ORDERS);
    expect(home!.httpRequest.headers['X-Secret']).toBe(SECRET);
    expect(home!.httpRequest.headers['X-Rerun-Original-Task']).toBe(`${ORDERS}/tasks/last`);
  });
});
