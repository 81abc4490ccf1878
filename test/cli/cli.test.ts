import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startEmulator, type Emulator } from '../../emulator/server.js';
import { startRerunServer, type RerunServer } from '../helpers/rerun-server.js';
import { failedTask, laterTask, queueName } from '../helpers/seeds.js';
import { startTarget, type Target } from '../helpers/target-server.js';
import { cliEnv, runCli, warmUp } from './run-cli.js';

// A rebuild (sources newer than the build) happens here, not inside a test that reads stderr.
beforeAll(warmUp, 120_000);

const ORDERS = queueName('orders');
const BILLING = queueName('billing');
const CONTROL = queueName('rerun-control');
const CLEAR_LINE = '\x1b[2K';

let target: Target;
let emulator: Emulator;

beforeEach(async () => {
  target = await startTarget();
  emulator = await startEmulator({ port: 0, runTaskQuota: { limit: 6000, windowMs: 60_000 } });
});
afterEach(async () => {
  await emulator.stop();
  await target.stop();
});

function seedOrders(count: number, queue = ORDERS): void {
  const tasks = Array.from({ length: count }, (_, i) =>
    failedTask(queue, `order-${i + 1}`, target.url, {
      headers: { 'X-Secret': 'hunter2' },
      body: 'card=4111',
    }),
  );
  emulator.load({
    queues: [{ name: queue, tasks: [...tasks, laterTask(queue, 'later-1', target.url)] }],
  });
}

const runTaskCalls = () => emulator.calls.filter((call) => call.method === 'RunTask');

describe('cloud-tasks-rerun plan and run (in process, against the emulator)', () => {
  it('plan shows what would run and forces nothing (exit 0)', async () => {
    seedOrders(3);
    const result = await runCli(['plan', '--queue', ORDERS], cliEnv(emulator.host));
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^plan /);
    expect(result.stdout).toMatch(/would run/);
    expect(result.stdout).toMatch(/test-project\/us-central1\/orders\s+4\s+3\s+1/);
    expect(result.stdout).toContain('skipped: never-attempted 1');
    expect(runTaskCalls()).toHaveLength(0);
  });

  it('plan prints the failure clusters, and run --cluster forces only that cluster', async () => {
    seedOrders(3);
    emulator.load({
      queues: [
        {
          name: ORDERS,
          tasks: [1, 2].map((i) =>
            failedTask(ORDERS, `refund-${i}`, target.url, {
              httpStatus: 503,
              url: `${target.url}/refunds/r${i}x9`,
            }),
          ),
        },
      ],
    });
    const planned = await runCli(['plan', '--queue', ORDERS], cliEnv(emulator.host));
    expect(planned.code).toBe(0);
    expect(planned.stdout).toContain('failure clusters, largest first');
    const host = new URL(target.url).host;
    const rows = [...planned.stdout.matchAll(/^ {2}([0-9a-f]{8})\s+(\d+)\s+\d+\s+(\S+ \d{3})\s+(\S+)$/gm)];
    expect(rows.map((m) => [m[2], m[3], m[4]])).toEqual([
      ['3', 'INTERNAL 500', `${host}/work/{id}`],
      ['2', 'UNAVAILABLE 503', `${host}/refunds/{id}`],
    ]);
    const refunds = rows[1]![1]!;
    const result = await runCli(['run', '--queue', ORDERS, '--cluster', refunds], cliEnv(emulator.host));
    expect(result.code).toBe(0);
    expect(
      runTaskCalls()
        .map((call) => call.name.split('/').pop())
        .sort(),
    ).toEqual(['refund-1', 'refund-2']);
    const bad = await runCli(['run', '--queue', ORDERS, '--cluster', 'nope'], cliEnv(emulator.host));
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--cluster');
  });

  it('run forces the failed tasks, and without a terminal prints nothing until the summary (exit 0)', async () => {
    seedOrders(3);
    const result = await runCli(['run', '--queue', ORDERS, '--reason', 'fix 42'], cliEnv(emulator.host));
    expect(result.code).toBe(0);
    expect(runTaskCalls()).toHaveLength(3);
    const lastRunTaskMs = Math.max(...runTaskCalls().map((call) => call.realEndMs));
    expect(result.firstStdoutMs).toBeGreaterThan(lastRunTaskMs);
    expect(result.stdout).not.toContain('\x1b');
    expect(result.stdout).not.toContain('forced ');
    expect(result.stdout).toMatch(/^run /);
    expect(result.stdout).toMatch(/orders\s+4\s+3\s+1/);
    expect(result.stdout + result.stderr).not.toMatch(/hunter2|card=4111/);
  });

  it('--json prints the report and nothing else', async () => {
    seedOrders(2);
    const result = await runCli(['run', '--queue', ORDERS, '--json'], cliEnv(emulator.host));
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report.counts).toMatchObject({ matched: 3, dispatched: 2, skipped: 1 });
    expect(report.tasks).toHaveLength(3);
    expect(result.stderr).toBe('');
  });

  it('exits 1 when tasks failed, and lists them', async () => {
    seedOrders(2);
    emulator.injectFault({ method: 'RunTask', kind: 403 });
    const result = await runCli(['run', '--queue', ORDERS], cliEnv(emulator.host));
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/failed again or failed:\n {2}projects\/test-project\/.*\/tasks\/order-\d/);
  });

  it('exits 1 for a queue that does not exist, and says so', async () => {
    const typo = `${ORDERS}-typo`;
    const result = await runCli(['run', '--queue', typo], cliEnv(emulator.host));
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/queues not read to the end:\n {2}\S+orders-typo {2}NOT_FOUND/);
  });

  it('exits 3 when work is left, and prints the command that continues it with the cutoff', async () => {
    seedOrders(4);
    const result = await runCli(
      ['run', '--queue', ORDERS, '--max-tasks', '10'],
      cliEnv(emulator.host, { RERUN_MAX_RATE: '2', RERUN_TIME_BUDGET: '1200ms' }),
    );
    expect(result.code).toBe(3);
    const report = /--deployed-at (\S+)/.exec(result.stdout);
    expect(result.stdout).toMatch(/incomplete: [1-3] deferred. Continue with:/);
    expect(result.stdout).toContain(`cloud-tasks-rerun run --queue ${ORDERS} --max-tasks 10 --deployed-at`);
    expect(Date.parse(report?.[1] ?? '')).toBeLessThanOrEqual(Date.now());
  });

  it('exits 3 when Cloud Tasks cannot be reached (nothing dispatched)', async () => {
    const result = await runCli(
      ['run', '--queue', ORDERS],
      cliEnv('127.0.0.1:1', { RERUN_TIME_BUDGET: '2s' }),
    );
    expect(result.code).toBe(3);
    expect(result.stderr).toMatch(/nothing was dispatched, safe to run again/);
  });

  it.each([
    [['run', '--queue', ORDERS, '--qeue', 'x'], /Unknown option '--qeue'/],
    [['run', '--queue', 'projects/p/queues/q'], /--queue: "projects\/p\/queues\/q" is not a queue name/],
    [['run', '--queue', ORDERS, '--canary', '2:soon'], /--canary: "soon" is not a duration like 30s/],
    [['run', '--queue', ORDERS, '--max-tasks', 'many'], /--max-tasks must be a whole number, got "many"/],
    [['run', '--queue', ORDERS, '--failed-since', 'yesterday'], /--failed-since: /],
    [['run', '--queue', ORDERS, '--mode', 'fast'], /--mode: /],
    [['run', '--queue', ORDERS, '--task-id', 'a/b'], /--task-id: /],
    [['run', '--queue', ORDERS, '--url', 'ftp://x'], /--url: "ftp:\/\/x" is not an http\(s\) URL/],
    [['run'], /--queue is required/],
    [['rerun'], /unknown command "rerun": use plan, run, unpark, queues, parked, status, cancel/],
    [['status'], /--request-id is required/],
    [['cancel', '--request-id', 'a b'], /--request-id: /],
  ])('exits 2 and calls nothing for bad input: %j', async (args, message) => {
    seedOrders(1);
    const result = await runCli(args, cliEnv(emulator.host));
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(message);
    expect(result.stdout).toBe('');
    expect(emulator.calls).toHaveLength(0);
  });

  it('exits 2 for a queue outside RERUN_QUEUES, naming it, and calls nothing', async () => {
    seedOrders(1, BILLING);
    const result = await runCli(['run', '--queue', BILLING], cliEnv(emulator.host, { RERUN_QUEUES: ORDERS }));
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`queues outside the allowlist (RERUN_QUEUES): ${BILLING}`);
    expect(emulator.calls).toHaveLength(0);
  });

  it('exits 2 for a bad environment, naming the variable', async () => {
    const result = await runCli(
      ['plan', '--queue', ORDERS],
      cliEnv(emulator.host, { RERUN_MAX_RATE: 'fast' }),
    );
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('RERUN_MAX_RATE');
    expect(emulator.calls).toHaveLength(0);
  });

  it.each(['', 'plan', 'run', 'unpark', 'queues', 'parked', 'status', 'cancel'])(
    '--help of %j shows usage and examples',
    async (command) => {
      const result = await runCli([...(command ? [command] : []), '--help'], cliEnv(emulator.host));
      expect(result.code).toBe(0);
      expect(result.stdout).toContain(`Usage: cloud-tasks-rerun ${command || '<command>'}`);
      expect(result.stdout).toContain('Examples:');
    },
  );
});

describe('the progress line', () => {
  it('under a pseudo-terminal updates in place, then gives way to the summary', async () => {
    seedOrders(4);
    const result = await runCli(['run', '--queue', ORDERS], cliEnv(emulator.host, { RERUN_MAX_RATE: '4' }), {
      terminal: true,
    });
    expect(result.code).toBe(0);
    const draws = result.stdout.split(CLEAR_LINE).slice(1);
    const progress = draws.filter((draw) => draw.startsWith('forced '));
    expect(progress.length).toBeGreaterThanOrEqual(3);
    expect(progress.some((draw) => /^forced [1-3]\/4 .*\/s {2}~\d+s left/.test(draw))).toBe(true);
    // Never a line of its own: each draw is overwritten by the next.
    expect(progress.filter((draw) => draw.includes('\n'))).toEqual([]);
    expect(draws.at(-1)).toMatch(/^run .*orders\s+5\s+4\s+1/s);
  });
});

describe('Ctrl-C', () => {
  it('starts no new task, lets the ones under way finish, and prints the command that continues (exit 3)', async () => {
    // Enough tasks that the run is still going when the Ctrl-C lands, however slow the machine.
    seedOrders(20);
    let sent = false;
    const result = await runCli(['run', '--queue', ORDERS], cliEnv(emulator.host, { RERUN_MAX_RATE: '2' }), {
      terminal: true,
      onStdout: (text, child) => {
        if (!sent && /forced [2-4]\/20/.test(text)) {
          sent = true;
          child.stdin?.write('\x03');
        }
      },
    });
    expect(sent).toBe(true);
    expect(result.code).toBe(3);
    expect(result.stdout).toMatch(
      /interrupted: tasks already forced stay forced; the tasks under way finished\.[\s\S]*incomplete: \d+ deferred\. Continue with:\r?\n {2}cloud-tasks-rerun run --queue \S+ --deployed-at 20\d\d-/,
    );
    expect(runTaskCalls().length).toBeLessThan(20);
    // Every task has its row: forced, or deferred for the command that continues.
    const forced = Number(/orders\s+\d+\s+(\d+)\s+(\d+)/.exec(result.stdout)?.[1]);
    expect(forced).toBe(runTaskCalls().length);
  });
});

describe('cloud-tasks-rerun --url (a Functions Framework server of rerunHttp)', () => {
  let server: RerunServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('sends the event and shows the report the same way', async () => {
    server = await startRerunServer({ RERUN_QUEUES: ORDERS }, {}, emulator);
    seedOrders(2);
    const json = await runCli(
      ['plan', '--queue', ORDERS, '--url', server.url, '--json'],
      cliEnv('127.0.0.1:1'),
    );
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ dryRun: true, counts: { matched: 3, dispatched: 2 } });
    const run = await runCli(['run', '--queue', ORDERS, '--url', server.url], cliEnv('127.0.0.1:1'));
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^run .*orders\s+3\s+2\s+1/s);
    expect(runTaskCalls()).toHaveLength(2);
  });

  it('exits 2 when no ID token can be had for a remote URL, and sends nothing', async () => {
    const home = mkdtempSync(join(tmpdir(), 'rerun-home-'));
    const { GOOGLE_APPLICATION_CREDENTIALS: _adc, ...env } = cliEnv('127.0.0.1:1', { HOME: home });
    const result = await runCli(['plan', '--queue', ORDERS, '--url', 'https://rerun.invalid/'], env);
    rmSync(home, { recursive: true, force: true });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^cloud-tasks-rerun: --url: no ID token for https:\/\/rerun.invalid\/: /);
  });

  it('exits 3 naming the URL when nothing listens there: nothing was sent', async () => {
    const gone = await startTarget();
    await gone.stop();
    const result = await runCli(['run', '--queue', ORDERS, '--url', gone.url], cliEnv('127.0.0.1:1'));
    expect(result.code).toBe(3);
    expect(result.stderr).toBe(
      `cloud-tasks-rerun: --url: ${gone.url} could not be reached (ECONNREFUSED): nothing was sent, safe to run again\n`,
    );
    expect(result.stdout).toBe('');
  });

  it('exits 2 when the service refuses the credentials (401, as Cloud Run answers a bad ID token)', async () => {
    target.setRespond(() => 401);
    const result = await runCli(['run', '--queue', ORDERS, '--url', target.url], cliEnv('127.0.0.1:1'));
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('rerunHttp answered 401: 401');
    expect(target.requests).toHaveLength(1);
  });

  it('exits 2 with the service message for a queue it refuses', async () => {
    server = await startRerunServer({ RERUN_QUEUES: ORDERS }, {}, emulator);
    const result = await runCli(['run', '--queue', BILLING, '--url', server.url], cliEnv('127.0.0.1:1'));
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('rerunHttp answered 403: queues outside the allowlist');
  });

  it('status and cancel go to rerunHttp as events', async () => {
    server = await startRerunServer(
      {
        RERUN_QUEUES: ORDERS,
        RERUN_CONTROL_QUEUE: CONTROL,
        RERUN_SELF_URL: 'http://127.0.0.1:1/',
        RERUN_INVOKER_SA: 'rerun@test-project.iam.gserviceaccount.com',
      },
      {},
      emulator,
    );
    seedControl({ 'deploy-42': 2 });
    const env = cliEnv('127.0.0.1:1');
    const status = await runCli(['status', '--request-id', 'deploy-42', '--url', server.url, '--json'], env);
    expect(JSON.parse(status.stdout)).toEqual({ requestId: 'deploy-42', controlQueue: CONTROL, waiting: 2 });
    const cancel = await runCli(['cancel', '--request-id', 'deploy-42', '--url', server.url], env);
    expect(cancel.code).toBe(0);
    expect(cancel.stdout).toContain('cancelled 2 waiting control tasks');
    expect(emulator.calls.filter((call) => call.method === 'DeleteTask')).toHaveLength(2);
  });

  it('status on a rerunHttp without a control queue exits 2 with its message', async () => {
    server = await startRerunServer({ RERUN_QUEUES: ORDERS }, {}, emulator);
    const result = await runCli(['status', '--request-id', 'r1', '--url', server.url], cliEnv('127.0.0.1:1'));
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('rerunHttp answered 400: no control queue: set RERUN_CONTROL_QUEUE');
  });
});

/** Where cancel's record is sent when it falls due (docs/cli.md "status and cancel"). */
const CANCEL_TARGET = {
  RERUN_SELF_URL: 'https://rerun-http.example.run.app/',
  RERUN_INVOKER_SA: 'rerun@test-project.iam.gserviceaccount.com',
};

/** Control tasks of each request, due in an hour (waiting), their requestId in the URL as rerun names it. */
function seedControl(requests: Record<string, number>): void {
  const tasks = Object.entries(requests).flatMap(([requestId, count]) =>
    Array.from({ length: count }, (_, i) => ({
      name: `${CONTROL}/tasks/${requestId}-${i}`,
      httpRequest: { url: `${target.url}/?requestId=${requestId}`, httpMethod: 'POST' },
      scheduleTime: new Date(Date.now() + 3_600_000).toISOString(),
    })),
  );
  emulator.load({ queues: [{ name: CONTROL, tasks }] });
}

describe('cloud-tasks-rerun status and cancel (queued mode, in process)', () => {
  it('counts the waiting control tasks of a request, cancels them, and counts none after', async () => {
    seedControl({ 'deploy-42': 3, 'deploy-43': 1 });
    const env = cliEnv(emulator.host, { RERUN_CONTROL_QUEUE: CONTROL, ...CANCEL_TARGET });
    const before = await runCli(['status', '--request-id', 'deploy-42'], env);
    expect(before.code).toBe(0);
    expect(before.stdout).toBe(`request deploy-42: 3 control tasks in ${CONTROL} waiting\n`);
    const cancel = await runCli(['cancel', '--request-id', 'deploy-42', '--json'], env);
    expect(cancel.code).toBe(0);
    expect(JSON.parse(cancel.stdout)).toEqual({
      requestId: 'deploy-42',
      controlQueue: CONTROL,
      cancelled: 3,
      alreadyGone: 0,
    });
    const after = await runCli(['status', '--request-id', 'deploy-42', '--json'], env);
    expect(JSON.parse(after.stdout)).toMatchObject({ waiting: 0 });
    expect(emulator.task(`${CONTROL}/tasks/deploy-43-0`)).toBeDefined();
  });

  it('takes --control-queue, and exits 2 without one', async () => {
    seedControl({ r1: 1 });
    const given = await runCli(
      ['status', '--request-id', 'r1', '--control-queue', CONTROL],
      cliEnv(emulator.host),
    );
    expect(given.stdout).toContain('request r1: 1 control tasks');
    const missing = await runCli(['status', '--request-id', 'r1'], cliEnv(emulator.host));
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('--control-queue (or RERUN_CONTROL_QUEUE) is required');
  });

  it('cancel exits 2 without RERUN_SELF_URL and RERUN_INVOKER_SA, and deletes nothing', async () => {
    seedControl({ r1: 1 });
    const env = cliEnv(emulator.host, { RERUN_CONTROL_QUEUE: CONTROL });
    const result = await runCli(['cancel', '--request-id', 'r1'], env);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('RERUN_SELF_URL and RERUN_INVOKER_SA are required for cancel');
    expect(emulator.task(`${CONTROL}/tasks/r1-0`)).toBeDefined();
  });

  it('exits 1 for a control queue that does not exist: it could not be read', async () => {
    const env = cliEnv(emulator.host, { RERUN_CONTROL_QUEUE: `${CONTROL}-typo`, ...CANCEL_TARGET });
    for (const command of ['status', 'cancel']) {
      const result = await runCli([command, '--request-id', 'r1'], env);
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(/^cloud-tasks-rerun: Cloud Tasks: NOT_FOUND/);
      expect(result.stdout).toBe('');
    }
  });
});
