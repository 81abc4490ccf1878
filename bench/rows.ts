/** Turns each figure's results into table rows: value, anchor, ratio, goal and whether it is met. */
import type { VariantResult } from './cold-start.js';
import type { OverheadResult } from './overhead.js';
import type { PacingResult } from './pacing.js';
import {
  OWN_SCHEDULE_MS,
  type RecoveryResult,
  type RecoverySizeResult,
  type RedriveSizeResult,
} from './recovery.js';
import type { ScanSizeResult } from './scan.js';
import { pairedRatio, spreadOf, type Summary } from './stats.js';
import type { Row } from './table.js';

const ms = (s: Summary) => `${s.median.toFixed(0)} ms`;
const us = (s: Summary) => `${s.median.toFixed(1)} µs`;
const mb = (s: Summary) => `${s.median.toFixed(1)} MB`;
/** A growth in MB, with its sign. */
const signedMb = (value: number) => `${value >= 0 ? '+' : ''}${value.toFixed(1)} MB`;
const x = (value: number) => `${value.toFixed(2)}×`;
const pct = (s: Summary) => `${(spreadOf(s) * 100).toFixed(0)}%`;
const bytes = (n: number) =>
  n % 1000 === 0 ? `${n / 1000} KB` : n % 1024 === 0 ? `${n / 1024} KiB` : `${n} B`;
const size = (n: number) => (n >= 1000 && n % 1000 === 0 ? `${n / 1000}k` : String(n));

export function pacingRows(p: PacingResult): Row[] {
  const window = `${p.quota.limit} per ${p.quota.windowMs / 1000} s`;
  const who = p.requests === 1 ? 'one request' : `${p.requests} requests at once`;
  return [
    {
      figure: `1 pacing, ${who}: achieved / allowed RunTask rate (${p.tasks} tasks, quota ${window}, RERUN_MAX_RATE ${p.quota.ratePerSecond})`,
      value: `${p.achievedPerSecond.median.toFixed(2)}/s`,
      anchor: `${p.quota.ratePerSecond}/s allowed`,
      ratio: p.utilization.median.toFixed(3),
      goal: '≥ 0.95',
      met: p.utilization.median >= 0.95,
      spread: pct(p.utilization),
    },
    {
      figure: `1 pacing, ${who}: 429 RESOURCE_EXHAUSTED answers per run`,
      value: `${p.answers429.median} (max ${p.answers429.max})`,
      anchor: '-',
      ratio: '-',
      goal: '0',
      met: p.answers429.max === 0,
      spread: '-',
    },
    {
      figure: `1 pacing, ${who}: GetTask read-backs per verified task (verify on, target answers at once)`,
      value: p.readsPerVerifiedTask.median.toFixed(2),
      anchor: '1 read at the first read-back',
      ratio: '-',
      goal: '≤ 1 per task per 2 s',
      met: p.readsPerVerifiedTask.median <= 2,
      spread: '-',
    },
  ];
}

export function scanRows(results: readonly ScanSizeResult[]): Row[] {
  const rows: Row[] = [];
  const base = results[0];
  if (!base) return rows;
  for (const r of results) {
    const gct = r.cpuUsPerTask.gct;
    rows.push({
      figure: `2 scan ${size(r.size)}: CPU per listed task (dryRun, ${r.matched} matched)`,
      value: us(r.cpuUsPerTask.rerun),
      anchor: `bare fetch ${us(r.cpuUsPerTask.bare)}${gct ? `; @google-cloud/tasks ${us(gct)}` : ''}`,
      ratio: `${x(r.cpuRatioToBare.median)}${gct ? `; ${x(r.cpuUsPerTask.rerun.median / gct.median)}` : ''}`,
      goal: '-',
      met: undefined,
      spread: pct(r.cpuUsPerTask.rerun),
    });
    const growth = r.maxRssMb.rerun.median - base.maxRssMb.rerun.median;
    const isLast = r === results.at(-1) && r !== base;
    const gctRss = r.maxRssMb.gct;
    rows.push({
      figure: `2 scan ${size(r.size)}: peak RSS (bare fetch ${mb(r.maxRssMb.bare)}${gctRss ? `; @google-cloud/tasks ${mb(gctRss)}` : ''})`,
      value: mb(r.maxRssMb.rerun),
      anchor: `${size(base.size)}: ${mb(base.maxRssMb.rerun)}`,
      ratio: signedMb(growth),
      goal: isLast ? '≤ +30 MB' : '-',
      met: isLast ? growth <= 30 : undefined,
      spread: pct(r.maxRssMb.rerun),
    });
    const tuned = r.maxRssMb.rerunTuned;
    if (tuned && isLast) {
      const tunedGrowth = tuned.median - base.maxRssMb.rerun.median;
      rows.push({
        figure: `2 scan ${size(r.size)}: peak RSS, node ${r.tunedFlags.join(' ')} (CPU ${us(r.cpuUsPerTask.rerunTuned!)} per task)`,
        value: mb(tuned),
        anchor: `${size(base.size)}: ${mb(base.maxRssMb.rerun)}`,
        ratio: signedMb(tunedGrowth),
        goal: '≤ +30 MB',
        met: tunedGrowth <= 30,
        spread: pct(tuned),
      });
    }
    const retained = r.heapAfterGcMb.rerun.median - base.heapAfterGcMb.rerun.median;
    rows.push({
      figure: `2 scan ${size(r.size)}: heap after a full GC at the end (bare fetch ${mb(r.heapAfterGcMb.bare)})`,
      value: mb(r.heapAfterGcMb.rerun),
      anchor: `${size(base.size)}: ${mb(base.heapAfterGcMb.rerun)}`,
      ratio: signedMb(retained),
      goal: '-',
      met: undefined,
      spread: pct(r.heapAfterGcMb.rerun),
    });
  }
  const last = results.at(-1)!;
  if (last !== base) {
    // The fixed cost of a scan (JIT warm-up, first connection) dominates at 1k; the slope is the per-task cost.
    const slope = (pick: (r: ScanSizeResult) => number) =>
      (pick(last) * last.size - pick(base) * base.size) / (last.size - base.size);
    const ours = slope((r) => r.cpuUsPerTask.rerun.median);
    const bare = slope((r) => r.cpuUsPerTask.bare.median);
    rows.push({
      figure: `2 scan: marginal CPU per listed task, ${size(base.size)} -> ${size(last.size)}`,
      value: `${ours.toFixed(1)} µs`,
      anchor: `bare fetch ${bare.toFixed(1)} µs`,
      ratio: x(ours / bare),
      goal: '-',
      met: undefined,
      spread: '-',
    });
  }
  return rows;
}

export function coldStartRows(results: readonly VariantResult[]): Row[] {
  const byId = new Map(results.map((r) => [r.id, r]));
  const hello = byId.get('hello');
  const google = byId.get('googleClient');
  if (!hello || !google) return [];
  const rows: Row[] = [
    anchorRow('3 cold: anchor (a) bare Functions Framework, hello (GET)', hello),
    anchorRow('3 cold: anchor (b) @google-cloud/tasks REST fallback (getQueue + listTasks)', google),
  ];
  const measures = [
    ['import of the entry', (r: VariantResult) => r.importRuns, (r: VariantResult) => r.importMs],
    [
      'first answer (dryRun POST)',
      (r: VariantResult) => r.firstAnswerRuns,
      (r: VariantResult) => r.firstAnswerMs,
    ],
  ] as const;
  for (const ours of results.filter((r) => r !== hello && r !== google)) {
    for (const [what, runsOf, summaryOf] of measures) {
      // Paired: each round runs every variant once, so round-by-round ratios cancel the machine's drift.
      const toA = pairedRatio(runsOf(ours), runsOf(hello)).median;
      const toB = pairedRatio(runsOf(ours), runsOf(google)).median;
      rows.push({
        figure: `3 cold: ${what}, ${ours.label}`,
        value: ms(summaryOf(ours)),
        anchor: `(a) ${ms(summaryOf(hello))}; (b) ${ms(summaryOf(google))}`,
        ratio: `${x(toA)}; ${x(toB)}`,
        goal: '≤ 1.25× (a); ≤ 0.5× (b)',
        met: [toA <= 1.25, toB <= 0.5],
        spread: pct(summaryOf(ours)),
      });
    }
    // CPU to the first answer: tracked only (the goals are on time), but steady on a busy machine.
    if (Number.isFinite(ours.firstAnswerCpuMs.median)) {
      const cpuA = pairedRatio(ours.firstAnswerCpuRuns, hello.firstAnswerCpuRuns).median;
      const cpuB = pairedRatio(ours.firstAnswerCpuRuns, google.firstAnswerCpuRuns).median;
      rows.push({
        figure: `3 cold: server CPU to first answer, ${ours.label}`,
        value: ms(ours.firstAnswerCpuMs),
        anchor: `(a) ${ms(hello.firstAnswerCpuMs)}; (b) ${ms(google.firstAnswerCpuMs)}`,
        ratio: `${x(cpuA)}; ${x(cpuB)}`,
        goal: '-',
        met: undefined,
        spread: pct(ours.firstAnswerCpuMs),
      });
    }
  }
  return rows;
}

function anchorRow(figure: string, r: VariantResult): Row {
  return {
    figure,
    value: `import ${ms(r.importMs)}, first answer ${ms(r.firstAnswerMs)} (CPU ${ms(r.firstAnswerCpuMs)})`,
    anchor: '-',
    ratio: '-',
    goal: '-',
    met: undefined,
    spread: `${pct(r.importMs)}, ${pct(r.firstAnswerMs)}`,
  };
}

export function overheadRows(o: OverheadResult): Row[] {
  const anchor = `bare fetch ${us(o.cpuUsPerCall.fetch)}`;
  return [
    {
      figure: `4 overhead: CPU per RunTask call, our client (${o.calls} calls, ${o.concurrency} in flight)`,
      value: us(o.cpuUsPerCall.client),
      anchor,
      ratio: x(o.clientRatio.median),
      goal: '-',
      met: undefined,
      spread: pct(o.cpuUsPerCall.client),
    },
    {
      figure: `4 overhead: CPU per dispatched task, whole rerun (list, select, pace, run, log)`,
      value: us(o.cpuUsPerCall.rerun),
      anchor,
      ratio: x(o.rerunRatio.median),
      goal: '-',
      met: undefined,
      spread: pct(o.cpuUsPerCall.rerun),
    },
  ];
}

export function recoveryRows(r: RecoveryResult): Row[] {
  const rows: Row[] = [];
  const { run } = r;
  for (const s of [...r.sizes, ...(r.big ? [r.big] : [])]) rows.push(...recoverySizeRows(r, s));
  const base = r.sizes[0];
  const last = r.sizes.at(-1);
  if (base?.batch.peakHeapMb && last?.batch.peakHeapMb && last !== base) {
    // Each anchor's growth from the first size to the last.
    const growthOf = (pick: (d: RedriveSizeResult) => Summary | undefined) =>
      anchors(
        MEMORY_ANCHORS.map(([label, of]) => {
          const [from, to] = [of(base), of(last)];
          const [small, large] = [from && pick(from), to && pick(to)];
          return small && large && `${label}: ${signedMb(large.median - small.median)}`;
        }),
      );
    const memory = [
      ['peak heap', base.batch.peakHeapMb, last.batch.peakHeapMb, growthOf((d) => d.peakHeapMb)],
      ['peak RSS', base.batch.maxRssMb!, last.batch.maxRssMb!, growthOf((d) => d.maxRssMb)],
    ] as const;
    for (const [what, small, large, anchorGrowth] of memory) {
      const growth = large.median - small.median;
      rows.push({
        figure: `5 recovery: ${what} of the redriving process, batch, ${size(last.size)} vs ${size(base.size)} tasks (${bytes(base.bodyBytes)} bodies)`,
        value: mb(large),
        anchor: anchors([`${size(base.size)}: ${mb(small)}`, anchorGrowth]),
        ratio: `${signedMb(growth)} (${x(large.median / small.median)})`,
        goal:
          what === 'peak RSS' ? 'flat: at most 30 MB above' : `flat: ≈ 1× (not ${x(last.size / base.size)})`,
        met: what === 'peak RSS' ? growth <= 30 : undefined,
        spread: pct(large),
      });
    }
  }
  const big = r.big;
  if (base?.batch.maxRssMb && big?.batch.maxRssMb) {
    const growth = big.batch.maxRssMb.median - base.batch.maxRssMb.median;
    rows.push({
      figure: `5 recovery: peak RSS of the redriving process, batch, ${size(big.size)} tasks (${bytes(big.bodyBytes)} bodies) vs ${size(base.size)} (${bytes(base.bodyBytes)} bodies)`,
      value: mb(big.batch.maxRssMb),
      anchor: `${size(base.size)}: ${mb(base.batch.maxRssMb)}`,
      ratio: signedMb(growth),
      goal: '-',
      met: undefined,
      spread: pct(big.batch.maxRssMb),
    });
  }
  const window = `quota ${run.quota.limit} per ${run.quota.windowMs / 1000} s`;
  rows.push({
    figure: `5 recovery: run mode sample, achieved / allowed RunTask rate (${run.tasks} tasks, ${window}, RERUN_MAX_RATE ${run.quota.ratePerSecond})`,
    value: `${run.achievedPerSecond.median.toFixed(2)}/s`,
    anchor: run.sampleRecoveryMs
      ? `sample empty after ${sec(run.sampleRecoveryMs.median)}`
      : 'sample did not finish',
    ratio: run.utilization.median.toFixed(3),
    goal: '-',
    met: undefined,
    spread: pct(run.utilization),
  });
  return rows;
}

const sec = (msValue: number) => `${(msValue / 1000).toFixed(1)} s`;
/** The anchors that were measured, joined; '-' when none was. */
const anchors = (parts: readonly (string | false | undefined)[]) =>
  parts.filter((part): part is string => typeof part === 'string').join('; ') || '-';
/** BENCH_RECOVERY_CALLS_ONLY=1: the batch path's calls with none of the product's logic. */
const CALLS_ONLY_LABEL = 'calls only (the batch calls with no product logic, bench/calls-only-child.ts)';
/** The anchors whose memory growth is given beside the batch redrive's. */
const MEMORY_ANCHORS = [
  ['calls only', (s: RecoverySizeResult) => s.callsOnly],
  ['calls and duties', (s: RecoverySizeResult) => s.callsAndDuties],
] as const;
const CALLS_AND_DUTIES_LABEL =
  "calls and duties (the same calls, and the product's per-task duties a batch at a time: BENCH_CALLS_DUTIES=1)";

/** One size: batch redrive against run mode, the floor and the per-task path; calls, CPU and RSS of each. */
function recoverySizeRows(r: RecoveryResult, s: RecoverySizeResult): Row[] {
  const rows: Row[] = [];
  const { run, settings } = r;
  const { floor, batch, perTask, callsOnly, callsAndDuties } = s;
  const projected = (secs: number) =>
    secs >= 3600 ? `${(secs / 3600).toFixed(1)} h` : `${(secs / 60).toFixed(1)} min`;
  const at = `5 recovery ${size(s.size)}${s.bodyBytes === settings.bodyBytes ? '' : ` (${bytes(s.bodyBytes)} bodies)`}`;
  const perTaskLabel = 'per-task (RERUN_REDRIVE_BATCH=false)';
  const runS = r.projectedRunS[s.size]!;
  const ideal = 1.5 * ((s.size / settings.queueRatePerSecond) * 1000 + settings.armingDelayMs);
  const unfinished =
    batch.finishedRuns < batch.runs
      ? `; ${batch.runs - batch.finishedRuns} of ${batch.runs} runs unfinished`
      : '';
  rows.push({
    figure: `${at}: time to an empty queue, batch redrive (queue ${settings.queueRatePerSecond}/s, arming ${settings.armingDelayMs / 1000} s, ${settings.redriveConcurrency} calls in flight, verify ${settings.verify}${settings.controlQueue ? ', control queue' : ''}${settings.throughFramework ? ', through the Functions Framework' : ''}${unfinished})`,
    value: batch.recoveryMs ? sec(batch.recoveryMs.median) : 'did not finish',
    anchor: `run at 60/min, PROJECTED: ${projected(runS)} (sample utilization ${run.utilization.median.toFixed(3)}); doing nothing: ${projected(OWN_SCHEDULE_MS / 1000)} (the tasks' own schedule)`,
    ratio: batch.recoveryMs ? `run/redrive ${x(runS / (batch.recoveryMs.median / 1000))}` : '-',
    goal: `≤ 1.5 × (N / ${settings.queueRatePerSecond}/s + arming) = ${sec(ideal)}, ≥ 100× run, all recovered, 0 duplicates (seen: ${batch.recovered.min}, ${batch.duplicates.max})`,
    met:
      batch.recovered.min === s.size &&
      batch.duplicates.max === 0 &&
      batch.recoveryMs !== undefined &&
      batch.recoveryMs.median <= ideal &&
      runS / (batch.recoveryMs.median / 1000) >= 100,
    spread: batch.recoveryMs ? pct(batch.recoveryMs) : '-',
  });
  const time = (summary: Summary | undefined) => (summary ? sec(summary.median) : 'did not finish');
  const ratio = (value: Summary | undefined, anchor: Summary | undefined) =>
    value && anchor ? x(value.median / anchor.median) : '-';
  const spreadOfTime = (summary: Summary | undefined) => (summary ? pct(summary) : '-');
  rows.push({
    figure: `${at}: time to an empty queue, batch redrive vs the floor (the same emulator queue draining ${size(s.size)} tasks created due now through its store, no product, timed from the first create; created in ${floor.createMs.median.toFixed(0)} ms; ${floor.recovered.min} recovered, ${floor.duplicates.max} duplicates)${perTask ? ` and ${perTaskLabel}` : ''}`,
    value: time(batch.recoveryMs),
    anchor: `floor ${time(floor.emptyMs)}${perTask ? `; per-task ${time(perTask.recoveryMs)}` : ''}`,
    ratio: `batch/floor ${ratio(batch.recoveryMs, floor.emptyMs)}${perTask ? `; batch/per-task ${ratio(batch.recoveryMs, perTask.recoveryMs)}` : ''}`,
    goal: '-',
    met: undefined,
    spread: `batch ${spreadOfTime(batch.recoveryMs)}; floor ${spreadOfTime(floor.emptyMs)}${perTask ? `; per-task ${spreadOfTime(perTask.recoveryMs)}` : ''}`,
  });
  rows.push({
    figure: `${at}: request to the last copy's dispatch, batch redrive (the queue then waits only for the ${batch.ownRuns.median} tasks left to their own schedule) vs the floor's time to empty${perTask ? ` and ${perTaskLabel}` : ''}`,
    value: time(batch.lastCopyMs),
    anchor: `floor ${time(floor.emptyMs)}${perTask ? `; per-task ${time(perTask.lastCopyMs)}` : ''}`,
    ratio: `batch/floor ${ratio(batch.lastCopyMs, floor.emptyMs)}${perTask ? `; batch/per-task ${ratio(batch.lastCopyMs, perTask.lastCopyMs)}` : ''}`,
    goal: '-',
    met: undefined,
    spread: `batch ${spreadOfTime(batch.lastCopyMs)}${perTask ? `; per-task ${spreadOfTime(perTask.lastCopyMs)}` : ''}`,
  });
  // Each path's calls, and its goal (none for the calls-only anchor, which is no redrive).
  const paths: [string, RedriveSizeResult, string | undefined][] = [['batch redrive', batch, '0 RunTask']];
  if (perTask) paths.push([perTaskLabel, perTask, '≈ 4 + read-backs; 0 RunTask']);
  if (callsOnly) paths.push([CALLS_ONLY_LABEL, callsOnly, undefined]);
  if (callsAndDuties) paths.push([CALLS_AND_DUTIES_LABEL, callsAndDuties, undefined]);
  for (const [label, d, goal] of paths) {
    // Calls made once per run (GetQueue, the permission check) round to 0 per task: they are given in all.
    const methods = Object.entries(d.callsPerTaskByMethod).sort(([, a], [, b]) => b - a);
    const perTaskCalls = methods
      .filter(([, n]) => n >= 0.005)
      .map(([method, n]) => `${method} ${n.toFixed(2)}`);
    const inAll = methods
      .filter(([, n]) => n > 0 && n < 0.005)
      .map(([method, n]) => `${method} ${Math.round(n * s.size)}`);
    rows.push({
      figure: `${at}: Cloud Tasks calls per task, ${label} (emulator's call record: every method, batch and operation calls included)`,
      value: d.callsPerTask.median.toFixed(2),
      anchor: `${perTaskCalls.join(', ')}${inAll.length > 0 ? `; in all: ${inAll.join(', ')}` : ''}; RunTask ${d.runTaskCalls.max} in all`,
      ratio: '-',
      goal: goal ?? '-',
      met: goal === undefined ? undefined : d.runTaskCalls.max === 0,
      spread: pct(d.callsPerTask),
    });
  }
  if (batch.cpuMsPerTask) {
    const pace = (d: RedriveSizeResult) => `${d.createsPerSecond.median.toFixed(0)} copies/s`;
    rows.push({
      figure: `${at}: CPU of the redriving process per task, batch redrive; pace (queue allows ${settings.queueRatePerSecond}/s)`,
      value: `${batch.cpuMsPerTask.median.toFixed(2)} ms (${pace(batch)})`,
      anchor: anchors([
        perTask?.cpuMsPerTask && `per-task ${perTask.cpuMsPerTask.median.toFixed(2)} ms (${pace(perTask)})`,
        callsOnly?.cpuMsPerTask && `calls only ${callsOnly.cpuMsPerTask.median.toFixed(2)} ms`,
        callsAndDuties?.cpuMsPerTask &&
          `calls and duties ${callsAndDuties.cpuMsPerTask.median.toFixed(2)} ms`,
      ]),
      ratio: anchors([
        perTask?.cpuMsPerTask &&
          `batch/per-task ${x(batch.cpuMsPerTask.median / perTask.cpuMsPerTask.median)}`,
        callsOnly?.cpuMsPerTask &&
          `batch/calls only ${x(batch.cpuMsPerTask.median / callsOnly.cpuMsPerTask.median)}`,
        callsAndDuties?.cpuMsPerTask &&
          `batch/calls and duties ${x(batch.cpuMsPerTask.median / callsAndDuties.cpuMsPerTask.median)}`,
      ]),
      goal: '-',
      met: undefined,
      spread: pct(batch.cpuMsPerTask),
    });
  }
  if (batch.maxRssMb) {
    rows.push({
      figure: `${at}: peak RSS of the redriving process, batch redrive (peak heap ${mb(batch.peakHeapMb!)}${perTask?.peakHeapMb ? `; per-task ${mb(perTask.peakHeapMb)}` : ''})`,
      value: mb(batch.maxRssMb),
      anchor: anchors([
        perTask?.maxRssMb && `per-task ${mb(perTask.maxRssMb)}`,
        callsOnly?.maxRssMb && `calls only ${mb(callsOnly.maxRssMb)}`,
        callsAndDuties?.maxRssMb && `calls and duties ${mb(callsAndDuties.maxRssMb)}`,
      ]),
      ratio: perTask?.maxRssMb ? `batch/per-task ${x(batch.maxRssMb.median / perTask.maxRssMb.median)}` : '-',
      goal: '-',
      met: undefined,
      spread: pct(batch.maxRssMb),
    });
  }
  return rows;
}
