/**
 * Child processes for process-level figures (CPU, peak RSS, import time): each runs on the same Node as the
 * bench, with a minimal environment, and reports one message over IPC.
 */
import { spawn } from 'node:child_process';
import { openSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { resolve } from 'node:path';
import { getHeapStatistics } from 'node:v8';

/** build/bench, where the compiled bench scripts live. */
export const BENCH_DIR = import.meta.dirname;
/** The project root (package.json `main` is the built functions entry). */
export const PROJECT_ROOT = resolve(BENCH_DIR, '../..');
/** Scratch space for the bench (git-ignored): compile caches, the bundle. */
export const SCRATCH_DIR = resolve(PROJECT_ROOT, '.bench-tmp');

/** The environment every child starts from: no npm variables, no metadata-server probe (we are off GCP). */
export function baseEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = { METADATA_SERVER_DETECTION: 'none' };
  for (const key of ['PATH', 'HOME', 'TMPDIR', 'LANG'] as const) {
    const value = process.env[key];
    if (value !== undefined) env[key] = value;
  }
  return { ...env, ...extra };
}

/**
 * Runs `build/bench/<script>` in a child Node and resolves with the first message it sends. Its stdout
 * (log lines) goes to /dev/null, or is appended to the file BENCH_CHILD_STDOUT names (what V8 prints
 * under `--trace-gc` or `--trace-opt`, given through BENCH_RECOVERY_NODE_FLAGS). Rejects if it exits
 * without a message or runs past `timeoutMs`.
 */
export function runChild<T>(
  script: string,
  args: readonly string[],
  env: Record<string, string>,
  timeoutMs = 120_000,
  execArgv: readonly string[] = [],
): Promise<T> {
  return new Promise<T>((done, fail) => {
    const child = spawn(process.execPath, [...execArgv, resolve(BENCH_DIR, script), ...args], {
      env,
      stdio: ['ignore', stdoutOf(process.env.BENCH_CHILD_STDOUT), 'pipe', 'ipc'],
    });
    let stderr = '';
    let result: { value: T } | undefined;
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-4000);
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      fail(new Error(`${script} ${args.join(' ')}: no result after ${timeoutMs} ms\n${stderr}`));
    }, timeoutMs);
    child.on('message', (message) => {
      result ??= { value: message as T };
    });
    child.on('error', (error) => {
      clearTimeout(timer);
      fail(error);
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (result) done(result.value);
      else
        fail(new Error(`${script} ${args.join(' ')} exited (${code ?? signal}) without a result\n${stderr}`));
    });
  });
}

/** Where a child's stdout goes: appended to `file`, or nowhere. */
function stdoutOf(file: string | undefined): 'ignore' | number {
  return file ? openSync(file, 'a') : 'ignore';
}

/** What a child measures of its own work (recovery-child.ts, calls-only-child.ts). */
export interface Measured {
  /** Real time (performance.timeOrigin + performance.now(), as the emulator's call record) of the start. */
  readonly sentRealMs: number;
  /** When the work was done. */
  readonly returnedRealMs: number;
  /** Heap in use before the work. */
  readonly heapBeforeKb: number;
  /** Highest heap in use seen while it ran (sampled every 10 ms). */
  readonly peakHeapKb: number;
  readonly rssBeforeKb: number;
  /** Peak RSS of the whole process (peakRssKb). */
  readonly maxRssKb: number;
  /** CPU time of the work (user + system). */
  readonly cpuMs: number;
}

/** Runs `work`, measuring its time, CPU, peak heap and the process's peak RSS. */
export async function measure<T>(work: () => Promise<T>): Promise<T & Measured> {
  const realNow = () => performance.timeOrigin + performance.now();
  const kb = (bytes: number) => Math.round(bytes / 1024);
  const before = process.memoryUsage();
  let peakHeap = before.heapUsed;
  // The heap's used size alone (getHeapStatistics is cheaper than memoryUsage, which reads the RSS too):
  // the sampling's own CPU counts toward the work's.
  const sampler = setInterval(() => {
    peakHeap = Math.max(peakHeap, getHeapStatistics().used_heap_size);
  }, 10);
  const cpu = process.cpuUsage();
  const sentRealMs = realNow();
  const result = await work();
  const returnedRealMs = realNow();
  const used = process.cpuUsage(cpu);
  clearInterval(sampler);
  peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed);
  return {
    ...result,
    sentRealMs,
    returnedRealMs,
    heapBeforeKb: kb(before.heapUsed),
    peakHeapKb: kb(peakHeap),
    rssBeforeKb: kb(before.rss),
    maxRssKb: peakRssKb(),
    cpuMs: Math.round((used.user + used.system) / 1000),
  };
}

/**
 * The process's own peak RSS: the kernel's high-water mark of its memory since it started (VmHWM in
 * /proc/self/status). Not getrusage's maxrss: on Linux that keeps the peak of the memory the process had
 * before its exec, which for a child is a copy of the bench's own (the emulator and its backlog) at the
 * spawn. Where there is no /proc, maxrss is all there is.
 */
export function peakRssKb(): number {
  try {
    const hwm = /^VmHWM:\s*(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (hwm) return Number(hwm[1]);
  } catch {
    // No /proc: not Linux.
  }
  return process.resourceUsage().maxRSS;
}

/** Sends the child's result to the bench and lets the process end. */
export function sendResult(result: object): void {
  if (!process.send) throw new Error('run this script through the bench (it reports over IPC)');
  // Exit at once: keep-alive sockets of the clients under test would otherwise hold the process open.
  process.send(result, () => process.exit(0));
}

/** A free TCP port on 127.0.0.1 (for servers started by the Functions Framework's own main). */
export function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.unref();
    server.on('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => done(port));
    });
  });
}
