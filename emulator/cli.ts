#!/usr/bin/env node
/**
 * `cloud-tasks-emulator [--port 8123] [--seed demo.json] [--quota 60] [--latency 0] [--dedup-window 1h]
 * [--permissions ...] [--act-as ...]`: starts the Cloud Tasks emulator on 127.0.0.1, prints its address, logs each call and dispatch, and stops on SIGINT or SIGTERM.
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { parseDurationMs } from '../shared/platform/duration.js';
import { readSeedFile, startEmulator, type Emulator, type EmulatorOptions } from './server.js';

const USAGE = `Usage: cloud-tasks-emulator [options]

  --port <n>      port on 127.0.0.1 (default 8123; 0 = any free port)
  --seed <file>   JSON file of queues and tasks to load at start
  --quota <n>     RunTask calls allowed per minute per project (default 60)
  --latency <ms>  milliseconds added before every answer (default 0)
  --dedup-window <duration>
                  how long a finished or deleted task's name stays reserved (default 1h)
  --permissions [<queue>=]<p1,p2,...>
                  the permissions the caller holds: on every queue, or (repeatable) on one queue;
                  default every permission
  --act-as <sa1,sa2,...>
                  the service accounts the caller may act as (default any)
  --quiet         do not log calls and dispatches
  --help          show this help`;

/** The emulator options a command line asks for, or the usage text when it asks for help. */
export async function optionsFromArgs(args: readonly string[]): Promise<EmulatorOptions | { help: string }> {
  const { values } = parseArgs({
    args: [...args],
    options: {
      port: { type: 'string', default: '8123' },
      seed: { type: 'string' },
      quota: { type: 'string', default: '60' },
      latency: { type: 'string', default: '0' },
      'dedup-window': { type: 'string', default: '1h' },
      permissions: { type: 'string', multiple: true },
      'act-as': { type: 'string' },
      quiet: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) return { help: USAGE };
  const options: EmulatorOptions = {
    port: wholeNumber('--port', values.port),
    runTaskQuota: { limit: wholeNumber('--quota', values.quota), windowMs: 60_000 },
    latencyMs: wholeNumber('--latency', values.latency),
    dedupWindowMs: duration('--dedup-window', values['dedup-window']),
  };
  if (values.permissions) options.permissions = permissionGrant(values.permissions);
  if (values['act-as'] !== undefined) options.actAs = commaList(values['act-as']);
  if (!values.quiet) options.log = (line) => console.log(line);
  if (values.seed !== undefined) options.seed = await readSeedFile(values.seed);
  return options;
}

/**
 * Starts the emulator from command-line arguments and prints where it listens.
 * @throws Error on a bad flag, an unreadable seed or a port in use.
 */
export async function runCli(args: readonly string[]): Promise<Emulator | undefined> {
  const options = await optionsFromArgs(args);
  if ('help' in options) {
    console.log(options.help);
    return undefined;
  }
  const emulator = await startEmulator(options);
  console.log(`Cloud Tasks emulator listening on ${emulator.url}`);
  console.log(`  export CLOUD_TASKS_EMULATOR_HOST=${emulator.host}`);
  return emulator;
}

function wholeNumber(flag: string, text: string): number {
  const value = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(value))
    throw new Error(`${flag} must be a whole number, got "${text}"`);
  return value;
}

function duration(flag: string, text: string): number {
  const ms = parseDurationMs(text);
  if (ms === undefined) throw new Error(`${flag} must be a duration like 90s, 30m or 24h, got "${text}"`);
  return ms;
}

// `a,b` for every queue; `projects/.../queues/q=a,b` for one queue (the others keep every permission).
function permissionGrant(flags: readonly string[]): NonNullable<EmulatorOptions['permissions']> {
  const perQueue = flags.filter((f) => f.includes('='));
  if (perQueue.length === 0) {
    if (flags.length > 1) throw new Error('--permissions without <queue>= may be given only once');
    return commaList(flags[0]!);
  }
  if (perQueue.length !== flags.length)
    throw new Error('--permissions: give either one list for every queue or <queue>=<list> for each');
  const grant: Record<string, string[]> = {};
  for (const flag of perQueue) {
    const at = flag.indexOf('=');
    grant[flag.slice(0, at)] = commaList(flag.slice(at + 1));
  }
  return grant;
}

function commaList(text: string): string[] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

function isMain(): boolean {
  const entry = process.argv[1];
  if (entry === undefined) return false;
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMain()) {
  runCli(process.argv.slice(2)).then(
    (emulator) => {
      if (!emulator) return;
      const shutdown = () => {
        emulator.stop().then(
          () => process.exit(0),
          () => process.exit(1),
        );
      };
      process.once('SIGINT', shutdown);
      process.once('SIGTERM', shutdown);
    },
    (err: unknown) => {
      console.error(`cloud-tasks-emulator: ${err instanceof Error ? err.message : String(err)}`);
      process.exit(2);
    },
  );
}
