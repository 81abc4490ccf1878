/**
 * `npm run bench`: the four figures of issue 6 and a fifth, recovery (redrive beside run), each the median
 * of several runs beside an anchor measured in the same run. Prints a table, then one `BENCH_JSON {...}`
 * line. Figures are printed, never asserted.
 *
 * Knobs (environment): BENCH_RUNS (runs per figure, default 3; cold start uses BENCH_COLD_RUNS, default 9),
 * BENCH_ONLY (comma list of pacing,scan,cold,overhead,recovery), BENCH_SCAN_SIZES (default
 * 1000,10000,100000), BENCH_SCAN_GOOGLE=0 (skip the @google-cloud/tasks listing), BENCH_SCAN_TUNED (V8
 * flags of a tuned scan variant, default --max-semi-space-size=4; empty to skip), BENCH_PACING_TASKS
 * (default 80), BENCH_PACING_RATE (default 10 per second), BENCH_OVERHEAD_CALLS (default 2000),
 * BENCH_RECOVERY_SIZES (redriven backlogs, default 2000,10000), BENCH_RECOVERY_RUN_TASKS (run mode's
 * sample, default 60), BENCH_RECOVERY_ARMING_MS (redrive's arming delay, default 1000),
 * BENCH_RECOVERY_VERIFY (the request's verify, e.g. 0s; default the product's), BENCH_RECOVERY_LATENCY_MS
 * (added to every emulator answer, default 30), BENCH_RECOVERY_CONCURRENCY (RERUN_REDRIVE_CONCURRENCY,
 * default 32), BENCH_RECOVERY_TIMEOUT_S (every wait of one recovery run, default 360; the request's
 * RERUN_TIME_BUDGET is the larger of 300 s and this less 120 s), BENCH_RECOVERY_NODE_FLAGS (Node and V8
 * flags of the redriving child, e.g. `--cpu-prof`; default none), BENCH_RECOVERY_CALLS_ONLY=1 (adds a third
 * anchor at each size: the batch path's calls made with none of the product's logic, calls-only-child.ts),
 * BENCH_RECOVERY_DUTIES=1 (adds a fourth, "calls and duties": those calls and the product's per-task duties a
 * batch at a time, calls-only-child.ts with BENCH_CALLS_DUTIES=1; measured even with BENCH_RECOVERY_PER_TASK=0),
 * BENCH_RECOVERY_CONTROL=1 (the product's redrives write claims and recovery tasks to a control queue, as
 * deploy.sh deploys them; its calls count with the rest), BENCH_RECOVERY_FRAMEWORK=1 (the product's requests
 * are served by a Functions Framework server in the child, as deployed, instead of calling the core).
 * Every recovery size runs a floor (the emulator alone draining the N tasks created due now), the batch
 * redrive (the product's default) and the per-task redrive (RERUN_REDRIVE_BATCH=false);
 * BENCH_RECOVERY_PER_TASK=0 leaves the per-task redrive (and calls only) out, for a quick run.
 * BENCH_RECOVERY_BIG (e.g. 100000; default none) adds one size, floor and batch redrive only, with
 * BENCH_RECOVERY_BIG_BODY_BYTES bodies (default 1024) and BENCH_RECOVERY_BIG_TIMEOUT_S for every wait of
 * its runs (default 1800).
 */
import { coldStartRows, overheadRows, pacingRows, recoveryRows, scanRows } from './rows.js';
import { benchColdStart, coreVariants, startColdStartWorld, type VariantResult } from './cold-start.js';
import { benchOverhead, type OverheadResult } from './overhead.js';
import { benchPacing, type PacingResult } from './pacing.js';
import { benchRecovery, type RecoveryResult } from './recovery.js';
import { benchScan, type ScanSizeResult } from './scan.js';
import { bundleVariant } from './bundle.js';
import { renderTable, type Row } from './table.js';

const env = process.env;
const int = (name: string, fallback: number) => {
  const value = env[name] === undefined || env[name] === '' ? fallback : Number(env[name]);
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a positive integer`);
  return value;
};
const runs = int('BENCH_RUNS', 3);
const only = new Set(
  (env.BENCH_ONLY ?? 'pacing,scan,cold,overhead,recovery').split(',').map((s) => s.trim()),
);
const progress = (line: string) => process.stderr.write(`bench: ${line}\n`);

if (!process.version.startsWith('v22.')) {
  progress(`WARNING: running on Node ${process.version}; the figures are meant for Node 22 (npm run bench)`);
}

const startedMs = performance.now();
const rows: Row[] = [];
const figures: {
  pacing?: PacingResult[];
  scan?: ScanSizeResult[];
  coldStart?: VariantResult[];
  bundle?: { bundled: boolean; note: string };
  overhead?: OverheadResult;
  recovery?: RecoveryResult;
} = {};

if (only.has('pacing')) {
  progress('pacing...');
  figures.pacing = [];
  for (const requests of [1, 2]) {
    const result = await benchPacing({
      runs,
      tasks: int('BENCH_PACING_TASKS', 80),
      ratePerSecond: int('BENCH_PACING_RATE', 10),
      windowMs: 6000,
      latencyMs: 30,
      requests,
    });
    figures.pacing.push(result);
    rows.push(...pacingRows(result));
  }
}

if (only.has('scan')) {
  progress('scan...');
  const sizes = (env.BENCH_SCAN_SIZES ?? '1000,10000,100000').split(',').map(Number);
  if (!sizes.every((n) => Number.isInteger(n) && n > 0))
    throw new Error('BENCH_SCAN_SIZES: positive integers');
  const tunedFlags = (env.BENCH_SCAN_TUNED ?? '--max-semi-space-size=4').split(' ').filter(Boolean);
  figures.scan = await benchScan(
    { runs, sizes, withGoogleClient: env.BENCH_SCAN_GOOGLE !== '0', tunedFlags },
    progress,
  );
  rows.push(...scanRows(figures.scan));
}

if (only.has('cold')) {
  progress('cold start...');
  const world = await startColdStartWorld();
  try {
    const variants = coreVariants(world);
    const bundle = await bundleVariant(variants.find((v) => v.id === 'ours')!);
    figures.bundle = { bundled: bundle.variant !== undefined, note: bundle.note };
    if (bundle.variant) {
      variants.push(bundle.variant, {
        ...bundle.variant,
        id: 'oursBundleCompileCache',
        label: `${bundle.variant.label} + NODE_COMPILE_CACHE`,
        compileCache: true,
      });
    } else progress(bundle.note);
    figures.coldStart = await benchColdStart(variants, int('BENCH_COLD_RUNS', 9), progress);
    rows.push(...coldStartRows(figures.coldStart));
  } finally {
    await world.stop();
  }
}

if (only.has('overhead')) {
  progress('overhead...');
  figures.overhead = await benchOverhead(
    { runs, calls: int('BENCH_OVERHEAD_CALLS', 2000), concurrency: 64 },
    progress,
  );
  rows.push(...overheadRows(figures.overhead));
}

if (only.has('recovery')) {
  progress('recovery...');
  const sizes = (env.BENCH_RECOVERY_SIZES ?? '2000,10000').split(',').map(Number);
  if (!sizes.every((n) => Number.isInteger(n) && n > 0))
    throw new Error('BENCH_RECOVERY_SIZES: positive integers');
  figures.recovery = await benchRecovery(
    {
      runs,
      sizes,
      bodyBytes: 10_000,
      armingDelayMs: int('BENCH_RECOVERY_ARMING_MS', 1000),
      latencyMs: Number(env.BENCH_RECOVERY_LATENCY_MS || 30),
      redriveConcurrency: int('BENCH_RECOVERY_CONCURRENCY', 32),
      verify: env.BENCH_RECOVERY_VERIFY || undefined,
      timeoutMs: int('BENCH_RECOVERY_TIMEOUT_S', 360) * 1000,
      childFlags: (env.BENCH_RECOVERY_NODE_FLAGS ?? '').split(' ').filter(Boolean),
      perTask: env.BENCH_RECOVERY_PER_TASK !== '0',
      callsOnly: env.BENCH_RECOVERY_CALLS_ONLY === '1',
      callsAndDuties: env.BENCH_RECOVERY_DUTIES === '1',
      controlQueue: env.BENCH_RECOVERY_CONTROL === '1',
      throughFramework: env.BENCH_RECOVERY_FRAMEWORK === '1',
      runSample: { tasks: int('BENCH_RECOVERY_RUN_TASKS', 60), ratePerSecond: 10, windowMs: 6000 },
      big: env.BENCH_RECOVERY_BIG
        ? {
            size: int('BENCH_RECOVERY_BIG', 100_000),
            bodyBytes: int('BENCH_RECOVERY_BIG_BODY_BYTES', 1024),
            timeoutMs: int('BENCH_RECOVERY_BIG_TIMEOUT_S', 1800) * 1000,
          }
        : undefined,
    },
    progress,
  );
  rows.push(...recoveryRows(figures.recovery));
}

const totalS = (performance.now() - startedMs) / 1000;
console.log(
  `\ncloud-tasks-rerun bench: Node ${process.version}, ${runs} runs per figure, ${totalS.toFixed(0)} s\n`,
);
console.log(renderTable(rows));
console.log(
  `\nBENCH_JSON ${JSON.stringify({
    node: process.version,
    date: new Date().toISOString(),
    runs,
    durationS: Math.round(totalS),
    rows,
    figures,
  })}`,
);
