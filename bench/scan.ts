/**
 * Figure 2, scan: queues of 1k, 10k and 100k tasks, 98% not matching. Each listing runs in a fresh child
 * process against the emulator in this one, so the child's CPU and peak RSS are the client's alone.
 */
import { startEmulator } from '../emulator/server.js';
import { baseEnv, runChild } from './child.js';
import type { ScanChildResult, ScanMode } from './scan-child.js';
import { pairedRatio, summarize, type Summary } from './stats.js';
import { queueName, scanQueue } from './world.js';

export interface ScanOptions {
  readonly runs: number;
  readonly sizes: readonly number[];
  /** Also list with @google-cloud/tasks (REST fallback): the alternative's cost, for comparison. */
  readonly withGoogleClient: boolean;
  /**
   * V8 flags of a tuned variant of the product's scan (e.g. `--max-semi-space-size=4`), to see whether the
   * peak RSS is retention or the young generation's sizing; empty to skip it.
   */
  readonly tunedFlags: readonly string[];
}

/** What is measured: the product, the bare fetch anchor, @google-cloud/tasks, the product with V8 flags. */
export type ScanSubject = 'rerun' | 'bare' | 'gct' | 'rerunTuned';

type PerSubject = { rerun: Summary; bare: Summary } & Partial<Record<'gct' | 'rerunTuned', Summary>>;

export interface ScanSizeResult {
  readonly size: number;
  /** CPU microseconds per listed task. */
  readonly cpuUsPerTask: PerSubject;
  /** rerun / bare, paired run by run. */
  readonly cpuRatioToBare: Summary;
  readonly maxRssMb: PerSubject;
  /** RSS once set up, before the scan. */
  readonly rssBeforeMb: PerSubject;
  /** Heap in use after a full GC at the end of the scan, its result still held. */
  readonly heapAfterGcMb: PerSubject;
  readonly wallMs: PerSubject;
  readonly matched: number;
  readonly tunedFlags: readonly string[];
  /** The emulator's side: time to load the seed, and its median time to answer one ListTasks page. */
  readonly emulator: { seedMs: number; listPageMs: number };
}

const TARGET = 'http://127.0.0.1:9';

const MODE_OF: Record<ScanSubject, ScanMode> = {
  rerun: 'rerun',
  bare: 'bare',
  gct: 'gct',
  rerunTuned: 'rerun',
};

export async function benchScan(
  options: ScanOptions,
  progress: (line: string) => void,
): Promise<ScanSizeResult[]> {
  const subjects: ScanSubject[] = ['rerun', 'bare'];
  if (options.withGoogleClient) subjects.push('gct');
  if (options.tunedFlags.length > 0) subjects.push('rerunTuned');
  const results: ScanSizeResult[] = [];
  for (const size of options.sizes) {
    const queue = queueName(`scan-${size}`);
    const seed = scanQueue(queue, size, TARGET);
    const seededAtMs = Date.now();
    const seedStart = performance.now();
    const emulator = await startEmulator({ port: 0, seed });
    const seedMs = performance.now() - seedStart;
    const event = {
      kind: 'fix-deployed',
      queues: [queue],
      deployedAt: new Date(seededAtMs - 5 * 60_000).toISOString(),
      match: { urlPrefix: `${TARGET}/orders/` },
      dryRun: true,
    };
    const env = baseEnv({
      CLOUD_TASKS_EMULATOR_HOST: emulator.host,
      RERUN_QUEUES: queue,
      RERUN_MAX_TASKS: '100000',
      LOG_LEVEL: 'info',
      BENCH_EVENT: JSON.stringify(event),
    });
    const bySubject = new Map<ScanSubject, ScanChildResult[]>(subjects.map((s) => [s, []]));
    try {
      for (let run = 0; run < options.runs; run++) {
        // Rotate the order so no subject always runs first (warm caches, a busy neighbour).
        for (let i = 0; i < subjects.length; i++) {
          const subject = subjects[(run + i) % subjects.length]!;
          // --expose-gc only exposes gc() for the retained-heap figure; it changes no GC behaviour.
          const flags = ['--expose-gc', ...(subject === 'rerunTuned' ? options.tunedFlags : [])];
          const result = await runChild<ScanChildResult>(
            'scan-child.js',
            [MODE_OF[subject], queue],
            env,
            300_000,
            flags,
          );
          if (result.listed !== size) throw new Error(`scan ${subject}: listed ${result.listed} of ${size}`);
          bySubject.get(subject)!.push(result);
        }
        progress(`scan ${size}: run ${run + 1}/${options.runs}`);
      }
    } finally {
      const pages = emulator.calls.filter((call) => call.method === 'ListTasks');
      await emulator.stop();
      if (bySubject.get('rerun')!.length === options.runs) {
        results.push(finish(size, bySubject, options.tunedFlags, seedMs, pages));
      }
    }
  }
  return results;
}

function finish(
  size: number,
  bySubject: Map<ScanSubject, ScanChildResult[]>,
  tunedFlags: readonly string[],
  seedMs: number,
  pages: readonly { realStartMs: number; realEndMs: number }[],
): ScanSizeResult {
  const per = (pick: (r: ScanChildResult) => number): PerSubject => {
    const of = (subject: ScanSubject) => {
      const runs = bySubject.get(subject);
      return runs && runs.length > 0 ? summarize(runs.map(pick)) : undefined;
    };
    const gct = of('gct');
    const rerunTuned = of('rerunTuned');
    return { rerun: of('rerun')!, bare: of('bare')!, ...(gct && { gct }), ...(rerunTuned && { rerunTuned }) };
  };
  const cpuPerTask = (r: ScanChildResult) => r.cpuUs / r.listed;
  return {
    size,
    cpuUsPerTask: per(cpuPerTask),
    cpuRatioToBare: pairedRatio(
      bySubject.get('rerun')!.map(cpuPerTask),
      bySubject.get('bare')!.map(cpuPerTask),
    ),
    maxRssMb: per((r) => r.maxRssKb / 1024),
    rssBeforeMb: per((r) => r.rssBeforeKb / 1024),
    heapAfterGcMb: per((r) => r.heapAfterGcKb / 1024),
    wallMs: per((r) => r.wallMs),
    matched: bySubject.get('rerun')![0]?.matched ?? 0,
    tunedFlags,
    emulator: {
      seedMs,
      listPageMs: pages.length > 0 ? summarize(pages.map((p) => p.realEndMs - p.realStartMs)).median : NaN,
    },
  };
}
