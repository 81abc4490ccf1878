/**
 * Runs the `cloud-tasks-rerun` bin as a person would: a child process (the bin shim, then the built CLI),
 * its stdout, stderr and exit code; optionally under a pseudo-terminal (util-linux `script`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const BIN = fileURLToPath(new URL('../../bin/cloud-tasks-rerun.js', import.meta.url));

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** performance-free wall clock (Date.now()) of the first byte on stdout; undefined if none. */
  firstStdoutMs: number | undefined;
}

/** Test defaults: no credentials, a fast pace, logs silent. */
export function cliEnv(emulatorHost: string, env: Record<string, string> = {}): NodeJS.ProcessEnv {
  const { RERUN_QUEUES: _queues, RERUN_CONTROL_QUEUE: _control, ...inherited } = process.env;
  return {
    ...inherited,
    METADATA_SERVER_DETECTION: 'none',
    CLOUD_TASKS_EMULATOR_HOST: emulatorHost,
    RERUN_MAX_RATE: '100',
    ...env,
  };
}

/** Runs the bin with `args`; with `terminal`, under a pseudo-terminal of `script` (stdout is then the pty's). */
export function runCli(
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  options: { terminal?: boolean; onStdout?: (text: string, child: ChildProcess) => void } = {},
): Promise<CliResult> {
  const command = [process.execPath, BIN, ...args];
  const [file, argv] = options.terminal
    ? ['script', ['-qfec', `exec ${command.map(shellQuote).join(' ')}`, '/dev/null']]
    : [process.execPath, [BIN, ...args]];
  // Under `script`, stdin is the terminal's keyboard: a Ctrl-C written there interrupts the command. `exec`:
  // the bin replaces script's shell, which would otherwise die of that SIGINT itself (a non-interactive dash,
  // the /bin/sh script runs when SHELL is unset) and make script answer 130 whatever the bin does.
  const child = spawn(file, argv, { env, stdio: [options.terminal ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
  const result: CliResult = { code: null, stdout: '', stderr: '', firstStdoutMs: undefined };
  child.stdout?.on('data', (chunk: Buffer) => {
    result.firstStdoutMs ??= Date.now();
    result.stdout += chunk.toString();
    options.onStdout?.(result.stdout, child);
  });
  child.stderr?.on('data', (chunk: Buffer) => (result.stderr += chunk.toString()));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ ...result, code }));
  });
}

/** Runs the bin once, so a rebuild the shim finds due happens before the tests that read its output. */
export async function warmUp(): Promise<void> {
  const result = await runCli(['--version'], process.env);
  if (result.code !== 0)
    throw new Error(`cloud-tasks-rerun --version exited ${result.code}: ${result.stderr}`);
}

function shellQuote(arg: string): string {
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}
