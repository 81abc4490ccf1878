#!/usr/bin/env node
/**
 * `cloud-tasks-emulator [--port 8123] [--seed demo.json] [--quota 60] [--latency 0]`: starts the Cloud Tasks
 * emulator on 127.0.0.1, prints its address, logs each call and dispatch, and stops on SIGINT or SIGTERM.
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { readSeedFile, startEmulator, type Emulator, type EmulatorOptions } from './server.js';

const USAGE = `Usage: cloud-tasks-emulator [options]

  --port <n>      port on 127.0.0.1 (default 8123; 0 = any free port)
  --seed <file>   JSON file of queues and tasks to load at start
  --quota <n>     RunTask calls allowed per minute per project (default 60)
  --latency <ms>  milliseconds added before every answer (default 0)
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
  };
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
