/**
 * A run from a terminal has no time budget and no service timeout; a pipeline step keeps the budget; Ctrl-C
 * lets the tasks under way finish. The bin runs under a clock FAST_CLOCK times faster (fast-clock.ts), so
 * a run of a minute by its own clock takes seconds; the emulator keeps the wall clock.
 */
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startEmulator, type Emulator } from '../../emulator/server.js';
import { failedTask, queueName } from '../helpers/seeds.js';
import { startTarget, type Target } from '../helpers/target-server.js';
import { cliEnv, runCli, warmUp } from './run-cli.js';

// A rebuild (sources newer than the build) happens here, not inside a test that reads stderr.
beforeAll(warmUp, 120_000);

const ORDERS = queueName('orders');
const FAST = 20;

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

function seedOrders(count: number, rateLimits?: { maxDispatchesPerSecond: number }, prefix = 'order'): void {
  const tasks = Array.from({ length: count }, (_, i) => failedTask(ORDERS, `${prefix}-${i + 1}`, target.url));
  emulator.load({ queues: [{ name: ORDERS, ...(rateLimits && { rateLimits }), tasks }] });
}

/** The environment of a person who set neither a budget nor a service timeout, on a clock FAST times faster. */
function fastEnv(env: Record<string, string> = {}): NodeJS.ProcessEnv {
  const {
    RERUN_TIME_BUDGET: _budget,
    RERUN_SERVICE_TIMEOUT: _timeout,
    ...inherited
  } = cliEnv(emulator.host, {
    RERUN_MAX_RATE: '1',
    NODE_OPTIONS: `--disable-warning=ExperimentalWarning --import=${new URL('fast-clock.ts', import.meta.url).href}`,
    FAST_CLOCK: String(FAST),
  });
  return { ...inherited, ...env };
}

const runTaskCalls = () => emulator.calls.filter((call) => call.method === 'RunTask');
/** The seconds the summary's first line says the run took (by the run's own clock). */
const runSeconds = (stdout: string) => Number(/cutoff \S+, (\d+\.\d)s/.exec(stdout)?.[1]);

describe('the time budget of a run from the command line', () => {
  it('on a terminal: none; a run past 50 s finishes every task (exit 0), no service timeout asked for', async () => {
    seedOrders(60);
    const result = await runCli(['run', '--queue', ORDERS, '--verify', '0s'], fastEnv(), { terminal: true });
    expect(result.code).toBe(0);
    expect(runTaskCalls()).toHaveLength(60);
    expect(runSeconds(result.stdout)).toBeGreaterThan(55);
    expect(result.stdout).toMatch(/orders\s+60\s+60/);
    expect(result.stdout).not.toMatch(/incomplete|deferred|RERUN_/);
    // The progress line counts the time elapsed, there being no budget to count down.
    expect(result.stdout).toMatch(/forced \d+\/60 .* \d+s elapsed/);
  });

  it('without a terminal: the default 50 s; the same run stops at it and prints the command that continues (exit 3)', async () => {
    seedOrders(60);
    const result = await runCli(['run', '--queue', ORDERS, '--verify', '0s'], fastEnv());
    expect(result.code).toBe(3);
    const forced = runTaskCalls().length;
    expect(forced).toBeGreaterThan(40);
    expect(forced).toBeLessThan(55);
    expect(runSeconds(result.stdout)).toBeLessThan(55);
    expect(result.stdout).toMatch(/incomplete: \d+ deferred. Continue with:/);
    expect(result.stderr).not.toMatch(/RERUN_|budget|timeout/i);
  });

  it('a budget set with --budget (or RERUN_TIME_BUDGET) holds on a terminal, shown counting down, with no service timeout', async () => {
    seedOrders(30);
    const result = await runCli(
      ['run', '--queue', ORDERS, '--verify', '0s', '--budget', '10m'],
      fastEnv({ RERUN_TIME_BUDGET: '20s' }),
      { terminal: true },
    );
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/forced \d+\/30 .* budget 9m\d\ds left/);
    seedOrders(30, undefined, 'again');
    const env = await runCli(
      ['run', '--queue', ORDERS, '--verify', '0s'],
      fastEnv({ RERUN_TIME_BUDGET: '2m' }),
      {
        terminal: true,
      },
    );
    expect(env.code).toBe(0);
    expect(env.stdout).toMatch(/budget 1m\d\ds left/);
  });

  it('--budget goes with a run here only: with --url it is bad input', async () => {
    const result = await runCli(
      ['run', '--queue', ORDERS, '--budget', '10m', '--url', 'http://127.0.0.1:1/'],
      fastEnv(),
    );
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('--budget: a deployed rerunHttp (--url) keeps its own budget');
  });
});

describe('Ctrl-C during a redrive', () => {
  it('lets the copies under way finish with their deletes: no original is left beside its copy (exit 3)', async () => {
    seedOrders(40, { maxDispatchesPerSecond: 2 });
    emulator.setLatency(30);
    let sent = false;
    const args = ['run', '--queue', ORDERS, '--mode', 'redrive', '--verify', '0s'];
    const result = await runCli(args, fastEnv(), {
      terminal: true,
      onStdout: (text, child) => {
        if (!sent && /forced ([3-9]|[1-3][0-9])\/40/.test(text)) {
          sent = true;
          child.stdin?.write('\x03');
        }
      },
    });
    expect(sent).toBe(true);
    const before = await tasksOf(ORDERS);
    expect(before.copies.length).toBeGreaterThan(0);
    expect(before.originals.length).toBeGreaterThan(0);
    expect(before.copies.filter((copy) => before.originals.includes(copy.original))).toEqual([]);
    expect(result.code).toBe(3);
    expect(result.stdout).toContain('stopping: no new task starts; the tasks under way finish');
    expect(result.stdout).toMatch(
      /interrupted: tasks already forced stay forced; the tasks under way finished\.[\s\S]*incomplete: \d+ deferred. Continue with:\r?\n {2}cloud-tasks-rerun run --queue \S+ --mode redrive --verify 0s --deployed-at 20\S+ --request-id \S+/,
    );

    // The command it printed finishes the rest: every original replaced by one copy.
    const again =
      /Continue with:\r?\n {2}cloud-tasks-rerun (.+?)\r?\n/.exec(result.stdout)?.[1]?.split(' ') ?? [];
    const rest = await runCli(again, fastEnv());
    expect(rest.code).toBe(0);
    const after = await tasksOf(ORDERS);
    expect(after.originals).toEqual([]);
    expect(new Set(after.copies.map((copy) => copy.original)).size).toBe(40);
    expect(after.copies).toHaveLength(40);
  });
});

/** The queue's tasks as the emulator holds them: originals, and copies with the original each names. */
async function tasksOf(queue: string): Promise<{ originals: string[]; copies: { original: string }[] }> {
  const response = await fetch(`${emulator.url}/v2/${queue}/tasks?responseView=FULL&pageSize=1000`);
  const { tasks = [] } = (await response.json()) as {
    tasks?: { name: string; httpRequest: { headers?: Record<string, string> } }[];
  };
  const originals: string[] = [];
  const copies: { original: string }[] = [];
  for (const task of tasks) {
    const original = task.httpRequest.headers?.['X-Rerun-Original-Task'];
    if (original === undefined) originals.push(task.name);
    else copies.push({ original });
  }
  return { originals, copies };
}
