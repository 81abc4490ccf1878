/**
 * Figure 3, cold start. Each variant starts as Cloud Functions starts it: `node <functions-framework main>
 * --target --source --port` (not npx), METADATA_SERVER_DETECTION=none, in a fresh process per run.
 *   first answer  spawn -> the first HTTP answer, polling every few milliseconds until the port answers
 *   import        a fresh `node` importing the entry module, timed around the import inside the child
 * Variants run in rotated order every round, so drift and neighbours hit all of them alike.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, resolve } from 'node:path';
import { startEmulator } from '../emulator/server.js';
import { BENCH_DIR, PROJECT_ROOT, SCRATCH_DIR, baseEnv, freePort, runChild } from './child.js';
import type { ImportChildResult } from './import-child.js';
import { summarize, type Summary } from './stats.js';
import { benchQueue, failedTask, laterTask, queueName } from './world.js';

const FRAMEWORK_MAIN = resolve(
  dirname(createRequire(import.meta.url).resolve('@google-cloud/functions-framework')),
  'main.js',
);

/** One way of serving a function. */
export interface Variant {
  readonly id: string;
  readonly label: string;
  /** `--source`: a directory with a package.json `main`, or a file. */
  readonly source: string;
  /** The module `import` time is measured on. */
  readonly module: string;
  readonly target: string;
  /** GET answers the hello function; POST sends `body` as JSON. */
  readonly request: { method: 'GET' } | { method: 'POST'; body: object };
  readonly env: Record<string, string>;
  /** A NODE_COMPILE_CACHE directory, primed by one unmeasured start. */
  readonly compileCache?: boolean;
}

export interface VariantResult {
  readonly id: string;
  readonly label: string;
  readonly firstAnswerMs: Summary;
  readonly importMs: Summary;
  readonly importRssMb: Summary;
  /** Process start -> import done: node's own boot plus the import. */
  readonly importSinceStartMs: Summary;
  /**
   * CPU time of the server process (all its threads) from spawn to its first answer, from /proc: much less
   * sensitive than wall time to a busy neighbour on a shared machine. NaN where /proc is missing.
   */
  readonly firstAnswerCpuMs: Summary;
  /** Per run, in round order (for paired ratios). */
  readonly firstAnswerRuns: number[];
  readonly firstAnswerCpuRuns: number[];
  readonly importRuns: number[];
}

export interface ColdStartWorld {
  readonly queue: string;
  readonly emulatorHost: string;
  stop(): Promise<void>;
}

/** An emulator with one small queue (20 tasks, 5 failed) for the POST variants to read. */
export async function startColdStartWorld(): Promise<ColdStartWorld> {
  const queue = queueName('cold-start');
  const target = 'http://127.0.0.1:9';
  const tasks = Array.from({ length: 20 }, (_, i) =>
    i < 5
      ? failedTask(queue, `order-${i}`, `${target}/orders/${i}`)
      : laterTask(queue, `report-${i}`, `${target}/reports/${i}`),
  );
  const emulator = await startEmulator({ port: 0, seed: benchQueue(queue, tasks) });
  return { queue, emulatorHost: emulator.host, stop: () => emulator.stop() };
}

/** The variants: (a) the bare framework, (b) @google-cloud/tasks, and the product (built entry). */
export function coreVariants(world: ColdStartWorld): Variant[] {
  const emulatorEnv = { CLOUD_TASKS_EMULATOR_HOST: world.emulatorHost };
  const ours = {
    source: PROJECT_ROOT,
    module: resolve(PROJECT_ROOT, 'build/functions/index.js'),
    target: 'rerunHttp',
    request: { method: 'POST', body: { kind: 'fix-deployed', queues: [world.queue], dryRun: true } },
    env: { ...emulatorEnv, RERUN_QUEUES: world.queue, LOG_LEVEL: 'info' },
  } as const;
  return [
    {
      id: 'hello',
      label: '(a) bare Functions Framework, hello',
      source: resolve(BENCH_DIR, 'fixtures/hello.js'),
      module: resolve(BENCH_DIR, 'fixtures/hello.js'),
      target: 'hello',
      request: { method: 'GET' },
      env: {},
    },
    {
      id: 'googleClient',
      label: '(b) @google-cloud/tasks REST fallback',
      source: resolve(BENCH_DIR, 'fixtures/google-client.js'),
      module: resolve(BENCH_DIR, 'fixtures/google-client.js'),
      target: 'googleClientRerun',
      request: { method: 'POST', body: { queues: [world.queue] } },
      env: emulatorEnv,
    },
    { id: 'ours', label: 'cloud-tasks-rerun (build/)', ...ours },
    { id: 'oursCompileCache', label: 'cloud-tasks-rerun + NODE_COMPILE_CACHE', ...ours, compileCache: true },
  ];
}

/** Measures every variant `runs` times, rotating the order each round. */
export async function benchColdStart(
  variants: readonly Variant[],
  runs: number,
  progress: (line: string) => void,
): Promise<VariantResult[]> {
  const answers = new Map<string, FirstAnswer[]>(variants.map((v) => [v.id, []]));
  const imports = new Map<string, ImportChildResult[]>(variants.map((v) => [v.id, []]));
  const envs = new Map(variants.map((v) => [v.id, envOf(v)]));
  // Prime the compile caches (and the OS page cache for everyone) with one unmeasured start each.
  for (const variant of variants) {
    await firstAnswer(variant, envs.get(variant.id)!);
    await runChild<ImportChildResult>('import-child.js', [variant.module], envs.get(variant.id)!);
  }
  for (let run = 0; run < runs; run++) {
    for (let i = 0; i < variants.length; i++) {
      const variant = variants[(run + i) % variants.length]!;
      const env = envs.get(variant.id)!;
      answers.get(variant.id)!.push(await firstAnswer(variant, env));
      imports
        .get(variant.id)!
        .push(await runChild<ImportChildResult>('import-child.js', [variant.module], env));
    }
    progress(`cold start: run ${run + 1}/${runs}`);
  }
  return variants.map((variant) => {
    const importRuns = imports.get(variant.id)!;
    const answerRuns = answers.get(variant.id)!;
    return {
      id: variant.id,
      label: variant.label,
      firstAnswerMs: summarize(answerRuns.map((r) => r.wallMs)),
      firstAnswerCpuMs: summarize(answerRuns.map((r) => r.cpuMs)),
      importMs: summarize(importRuns.map((r) => r.importMs)),
      importRssMb: summarize(importRuns.map((r) => r.maxRssKb / 1024)),
      importSinceStartMs: summarize(importRuns.map((r) => r.sinceStartMs)),
      firstAnswerRuns: answerRuns.map((r) => r.wallMs),
      firstAnswerCpuRuns: answerRuns.map((r) => r.cpuMs),
      importRuns: importRuns.map((r) => r.importMs),
    };
  });
}

function envOf(variant: Variant): Record<string, string> {
  if (!variant.compileCache) return baseEnv(variant.env);
  const dir = resolve(SCRATCH_DIR, `compile-cache-${variant.id}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  return baseEnv({ ...variant.env, NODE_COMPILE_CACHE: dir });
}

interface FirstAnswer {
  readonly wallMs: number;
  readonly cpuMs: number;
}

/** Spawns the framework on a free port and times spawn -> first HTTP answer; the process is then killed. */
async function firstAnswer(variant: Variant, env: Record<string, string>): Promise<FirstAnswer> {
  const port = await freePort();
  const startMs = performance.now();
  const child = spawn(
    process.execPath,
    [FRAMEWORK_MAIN, `--target=${variant.target}`, `--source=${variant.source}`, `--port=${port}`],
    { env, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-4000)));
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  let exitedEarly = false;
  void exited.then(() => (exitedEarly = true));
  try {
    for (;;) {
      const status = await ask(port, variant.request);
      if (status !== undefined) {
        const wallMs = performance.now() - startMs;
        const cpuMs = child.pid === undefined ? NaN : processCpuMs(child.pid);
        if (status !== 200) throw new Error(`${variant.id}: first answer was HTTP ${status}\n${stderr}`);
        return { wallMs, cpuMs };
      }
      if (exitedEarly) throw new Error(`${variant.id}: the framework exited before answering\n${stderr}`);
      if (performance.now() - startMs > 30_000)
        throw new Error(`${variant.id}: no answer in 30 s\n${stderr}`);
      await new Promise((done) => setTimeout(done, 5));
    }
  } finally {
    child.kill('SIGKILL');
    await exited;
  }
}

/** User + system CPU of a live process, from /proc/PID/stat (clock ticks of 10 ms on Linux). */
function processCpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return NaN;
  }
}

/** One request; the status, or undefined if nothing listens yet. */
function ask(port: number, how: Variant['request']): Promise<number | undefined> {
  return new Promise((done) => {
    const body = how.method === 'POST' ? JSON.stringify(how.body) : undefined;
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method: how.method,
        path: '/',
        headers:
          body === undefined
            ? {}
            : { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) },
      },
      (res) => {
        res.resume();
        res.on('end', () => done(res.statusCode));
      },
    );
    req.on('error', () => done(undefined));
    req.end(body);
  });
}
