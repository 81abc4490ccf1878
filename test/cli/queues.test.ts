/**
 * `cloud-tasks-rerun queues`, run as a person would (the bin, under a pseudo-terminal), against the emulator:
 * a queue read to its end, and one too large for its share of the list calls, shown as sampled; queues
 * past the list calls allowed, shown as not read.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmulator, type Emulator } from '../../emulator/server.js';
import { failedTask, laterTask, queueName } from '../helpers/seeds.js';
import { startTarget, type Target } from '../helpers/target-server.js';
import { cliEnv, runCli, warmUp } from './run-cli.js';

// A rebuild (sources newer than the build) happens here, not inside a test that reads stderr.
beforeAll(warmUp, 120_000);

const ORDERS = queueName('orders');
const BIG = queueName('big');
const BIG_TASKS = 2500;
/** Five small queues, and more than a ListQueues page holds, each in a location of its own. */
const SMALL = [1, 2, 3, 4, 5].map((i) => `projects/test-project/locations/europe-west1/queues/small-${i}`);
const MANY = Array.from(
  { length: 1001 },
  (_, i) => `projects/test-project/locations/asia-east1/queues/q-${i}`,
);

let target: Target;
let emulator: Emulator;

beforeAll(async () => {
  target = await startTarget();
  emulator = await startEmulator({ port: 0 });
  const secret = { headers: { 'X-Secret': 'hunter2' }, body: 'card=4111' };
  emulator.load({
    queues: [
      {
        name: ORDERS,
        rateLimits: { maxDispatchesPerSecond: 5, maxConcurrentDispatches: 10 },
        tasks: [
          ...[1, 2, 3, 4].map((i) =>
            failedTask(ORDERS, `pay-${i}`, target.url, { httpStatus: 503, ...secret }),
          ),
          ...[1, 2].map((i) => failedTask(ORDERS, `lookup-${i}`, target.url, { httpStatus: 404, ...secret })),
          laterTask(ORDERS, 'later-1', target.url),
        ],
      },
      {
        name: BIG,
        tasks: Array.from({ length: BIG_TASKS }, (_, i) =>
          failedTask(BIG, `t-${i}`, target.url, { httpStatus: i % 2 === 0 ? 503 : 500 }),
        ),
      },
      ...SMALL.map((name) => ({ name, tasks: [failedTask(name, 'only', target.url, { httpStatus: 503 })] })),
      ...MANY.map((name) => ({ name, tasks: [] })),
    ],
  });
});
afterAll(async () => {
  await emulator.stop();
  await target.stop();
});

const callsOf = (method: string) => emulator.calls.filter((call) => call.method === method).length;
const listTaskCalls = () => callsOf('ListTasks');

describe('cloud-tasks-rerun queues', () => {
  it('shows each queue, samples the one too large for its list calls, and says how many calls it made', async () => {
    const before = listTaskCalls();
    const result = await runCli(
      ['queues', '--queue', ORDERS, '--queue', BIG, '--max-list-calls', '3'],
      cliEnv(emulator.host),
      {
        terminal: true,
      },
    );
    expect(result.code).toBe(0);
    const [orders, big, calls] = result.stdout.split(/\r?\n\r?\n/);
    expect(orders).toMatch(new RegExp(`^${ORDERS}  RUNNING\\r?\\n  rate 5/s, 10 concurrent, 100 attempts`));
    expect(orders).toMatch(/tasks 7, failing 6\r?\n/);
    expect(orders).toMatch(/last minute: 0 executed, 0 dispatches in flight, effective rate 5\/s/);
    // The seeds' first attempts are 59 minutes old.
    expect(orders).toMatch(/oldest failure 20\S+Z \((59|60)m ago\) {2}\S+\/tasks\/(pay|lookup)-\d/);
    expect(orders).not.toContain('sampled');
    const host = new URL(target.url).host;
    expect(orders).toMatch(
      new RegExp(
        `largest clusters:\\r?\\n {4}[0-9a-f]{8} +4  UNAVAILABLE 503  ${host}/work/\\{id\\}\\r?\\n {4}[0-9a-f]{8} +2  NOT_FOUND 404`,
      ),
    );
    expect(big).toContain('largest clusters (of the sample):');
    expect(big).toMatch(
      new RegExp(`tasks ${BIG_TASKS}, failing 2000 of 2000 listed \\(sampled: 2 list calls\\)`),
    );
    expect(calls).toMatch(/^3 list calls of at most 3 \(the project shares 600 a minute\)/);
    expect(listTaskCalls() - before).toBe(3);
    expect(result.stdout + result.stderr).not.toMatch(/hunter2|card=4111/);
  });

  it('--json gives the same data', async () => {
    const result = await runCli(
      ['queues', '--queue', ORDERS, '--queue', BIG, '--max-list-calls', '3', '--json'],
      cliEnv(emulator.host),
    );
    expect(result.code).toBe(0);
    const overview = JSON.parse(result.stdout);
    expect(overview).toMatchObject({ listCallLimit: 3, listCalls: 3 });
    expect(overview.queues[0]).toMatchObject({
      queue: ORDERS,
      state: 'RUNNING',
      rateLimits: { maxDispatchesPerSecond: 5, maxConcurrentDispatches: 10 },
      stats: { tasks: 7, executedLastMinute: 0, concurrentDispatches: 0, effectiveRate: 5 },
      tasks: 7,
      listed: 7,
      listCalls: 1,
      sampled: false,
      failing: 6,
    });
    expect(Date.now() - Date.parse(overview.queues[0].oldestFailure.time)).toBeGreaterThan(58 * 60_000);
    expect(overview.queues[1]).toMatchObject({ queue: BIG, tasks: BIG_TASKS, listed: 2000, sampled: true });
    expect(overview.queues[0].clusters.map((c: any) => [c.status, c.count])).toEqual([
      ['UNAVAILABLE 503', 4],
      ['NOT_FOUND 404', 2],
    ]);
    expect(result.stderr).toBe('');
  });

  it('shows the allowlist of RERUN_QUEUES, a pattern listed by ListQueues within the same calls', async () => {
    const result = await runCli(
      ['queues', '--json', '--max-list-calls', '10'],
      cliEnv(emulator.host, { RERUN_QUEUES: 'projects/test-project/locations/us-central1/queues/*' }),
    );
    expect(result.code).toBe(0);
    const overview = JSON.parse(result.stdout);
    expect(overview.queues.map((q: { queue: string }) => q.queue).sort()).toEqual([BIG, ORDERS]);
    // One ListQueues, one ListTasks for orders, three for big: read to its end.
    expect(overview.listCalls).toBe(5);
    expect(overview.queues.find((q: { queue: string }) => q.queue === BIG)).toMatchObject({
      listed: BIG_TASKS,
      sampled: false,
    });
  });

  it('reads no more queues than --max-list-calls allows, and names those it did not read', async () => {
    const before = listTaskCalls();
    const result = await runCli(
      ['queues', ...SMALL.flatMap((name) => ['--queue', name]), '--max-list-calls', '3'],
      cliEnv(emulator.host),
    );
    expect(result.code).toBe(0);
    expect(listTaskCalls() - before).toBe(3);
    const blocks = result.stdout.trimEnd().split('\n\n');
    expect(blocks.slice(0, 3).map((block) => block.split('\n')[0])).toEqual(
      SMALL.slice(0, 3).map((name) => `${name}  RUNNING`),
    );
    expect(blocks.slice(3)).toEqual([
      `${SMALL[3]}\n  not read: no list calls left of the 3 allowed (--max-list-calls)`,
      `${SMALL[4]}\n  not read: no list calls left of the 3 allowed (--max-list-calls)`,
      '3 list calls of at most 3 (the project shares 600 a minute)',
    ]);
  });

  it('counts the ListQueues pages of a pattern among the list calls, and stops them at the limit', async () => {
    const [queuesBefore, tasksBefore] = [callsOf('ListQueues'), listTaskCalls()];
    const small = await runCli(
      ['queues', '--json', '--max-list-calls', '3'],
      cliEnv(emulator.host, { RERUN_QUEUES: 'projects/test-project/locations/europe-west1/queues/*' }),
    );
    expect(small.code).toBe(0);
    expect([callsOf('ListQueues') - queuesBefore, listTaskCalls() - tasksBefore]).toEqual([1, 2]);
    const overview = JSON.parse(small.stdout);
    expect(overview.listCalls).toBe(3);
    expect(overview.queues.filter((q: { notRead?: string }) => q.notRead).length).toBe(3);

    // 1001 queues take two ListQueues pages: one call allows the first only.
    const many = await runCli(
      ['queues', '--max-list-calls', '1'],
      cliEnv(emulator.host, { RERUN_QUEUES: 'projects/test-project/locations/asia-east1/queues/*' }),
    );
    expect(many.code).toBe(0);
    expect([callsOf('ListQueues') - queuesBefore, listTaskCalls() - tasksBefore]).toEqual([2, 2]);
    expect(many.stdout).toContain(
      'projects/test-project/locations/asia-east1/queues/*\n  not read: ListQueues stopped, no list calls left of the 1 allowed (--max-list-calls): queues past those listed are not shown',
    );
    expect(many.stdout.match(/not read: no list calls left/g)).toHaveLength(1000);
    expect(many.stdout).toMatch(/\n1 list calls of at most 1 /);
  });

  it('lists a queue it cannot read with the reason (exit 1), and refuses one outside the allowlist (exit 2)', async () => {
    const missing = await runCli(['queues', '--queue', `${ORDERS}-typo`], cliEnv(emulator.host));
    expect(missing.code).toBe(1);
    expect(missing.stdout).toMatch(/orders-typo\n {2}not read: NOT_FOUND/);
    const outside = await runCli(['queues', '--queue', BIG], cliEnv(emulator.host, { RERUN_QUEUES: ORDERS }));
    expect(outside.code).toBe(2);
    expect(outside.stderr).toContain(`queues outside the allowlist (RERUN_QUEUES): ${BIG}`);
    const tooMany = await runCli(
      ['queues', '--queue', BIG, '--max-list-calls', '601'],
      cliEnv(emulator.host),
    );
    expect(tooMany.code).toBe(2);
    expect(tooMany.stderr).toContain('--max-list-calls must be 1 to 600');
  });
});
