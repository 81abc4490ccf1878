/**
 * What a finished run prints: a table of outcomes and verdicts by queue, the tasks that failed again, the
 * command that continues an incomplete run; and the exit code. Pure; the report is read defensively
 * (fields a core does not send count as 0).
 */

import { parkingQueueOf, parseQueueName } from '../../shared/cloud-tasks/names.js';
import { OUTCOMES } from '../../shared/run/settle.js';

type TaskRow = NonNullable<ReportView['tasks']>[number];

/** The report fields the command line reads (docs/reports-and-logs.md "The report"). */
export interface ReportView {
  runId?: string | undefined;
  /** The event's kind: an `unpark` report's tasks are parked tasks, listed in their parking queues. */
  kind?: string | undefined;
  requestId?: string | undefined;
  dryRun?: boolean | undefined;
  cutoff?: string | undefined;
  queues?:
    | {
        queue: string;
        state?: string | undefined;
        rate?: number | undefined;
        scanned?: number | undefined;
        matched?: number;
        error?: string | undefined;
        transient?: boolean | undefined;
      }[]
    | undefined;
  /** `Record<outcome | 'matched', number>` and `verdicts: {succeeded, failedAgain, running}`; read by countOf. */
  counts?: object | undefined;
  skipped?: Record<string, number> | undefined;
  tasks?:
    | {
        task: string;
        outcome: string;
        verdict?: string | undefined;
        status?: string | undefined;
        error?: string;
        /** What a dry run points out about the task (an unpark's). */
        notes?: readonly string[] | undefined;
      }[]
    | undefined;
  truncated?: boolean | undefined;
  clusters?:
    | {
        id: string;
        status: string;
        target: string;
        count: number;
        newestFailure?: string | undefined;
        attempts?: { min: number; max: number } | undefined;
      }[]
    | undefined;
  continueWith?: { cutoff: string; deferred?: number | undefined; note?: string } | undefined;
  durationMs?: number | undefined;
}

/** The process exit codes (docs/cli.md "Exit codes"). */
export const EXIT = { done: 0, failed: 1, badInput: 2, incomplete: 3 } as const;

const COLUMNS = ['matched', ...OUTCOMES];
/** Failure clusters a plan prints; --json has them all. */
const SHOWN_CLUSTERS = 10;
const VERDICTS = [
  ['succeeded', 'succeeded'],
  ['failedAgain', 'failed-again'],
  ['running', 'running'],
] as const;

const VERDICT_KEYS = new Set<string>(VERDICTS.map(([key]) => key));

/** A count of the report (a verdict's under `counts.verdicts`); absent or not a number = 0. */
export function countOf(report: ReportView, key: string): number {
  const counts = report.counts as
    { [key: string]: unknown; verdicts?: { [key: string]: unknown } } | undefined;
  const value = VERDICT_KEYS.has(key) ? counts?.verdicts?.[key] : counts?.[key];
  return typeof value === 'number' ? value : 0;
}

/**
 * 1 when a task failed, failed again or was held, or a queue could not be read for good (a name that does
 * not exist, a permission missing): it wins, a person must look. Else 3 when work is left (continueWith);
 * else 0.
 */
export function exitCodeOf(report: ReportView): number {
  if (['failed', 'failedAgain', 'held'].some((key) => countOf(report, key) > 0)) return EXIT.failed;
  if (report.queues?.some((queue) => queue.error !== undefined && !queue.transient)) return EXIT.failed;
  if (report.continueWith) return EXIT.incomplete;
  return EXIT.done;
}

/**
 * The summary: a header, the table by queue (from the rows, with the totals from the counts), the tasks
 * that failed again, and the command to continue with. `command` is the invocation to repeat.
 */
export function formatSummary(report: ReportView, command: readonly string[]): string {
  const rows = report.tasks ?? [];
  // An unpark lists each home queue's tasks in its parking queue: they count in the home queue's row.
  const homes = new Map<string, string>();
  for (const { queue } of report.queues ?? []) {
    const home = parseQueueName(queue);
    if (home) homes.set(parkingQueueOf(home).name, queue);
  }
  const queueOf = (task: string): string => {
    const queue = task.split('/tasks/')[0] ?? task;
    return homes.get(queue) ?? queue;
  };
  const queues = [
    ...new Set([...(report.queues ?? []).map((q) => q.queue), ...rows.map((r) => queueOf(r.task))]),
  ];
  // Only the columns that count something (matched always): the table stays narrow.
  const columns = [
    ...COLUMNS.map((key) => ({ key, label: key, of: (row: TaskRow) => row.outcome === key })),
    ...VERDICTS.map(([key, label]) => ({ key, label, of: (row: TaskRow) => row.verdict === label })),
  ]
    .filter(({ key }) => key === 'matched' || countOf(report, key) > 0)
    .map((column) =>
      report.dryRun && column.key === 'dispatched' ? { ...column, label: 'would run' } : column,
    );
  const header = ['queue', ...columns.map(({ label }) => label)];
  const body = queues.map((queue) => {
    const mine = rows.filter((row) => queueOf(row.task) === queue);
    const matched = report.queues?.find((q) => q.queue === queue)?.matched ?? mine.length;
    return [
      shortQueue(queue),
      ...columns.map(({ key, of }) => String(key === 'matched' ? matched : mine.filter(of).length)),
    ];
  });
  const totals = ['total', ...columns.map(({ key }) => String(countOf(report, key)))];
  const lines = [
    `${titleOf(report)} ${report.runId ?? ''}${report.requestId ? ` (request ${report.requestId})` : ''}: cutoff ${report.cutoff ?? '?'}, ${((report.durationMs ?? 0) / 1000).toFixed(1)}s`,
    '',
    ...table([header, ...body, ...(queues.length > 1 ? [totals] : [])]),
  ];
  const unread = (report.queues ?? []).filter((queue) => queue.error !== undefined);
  if (unread.length > 0) {
    lines.push('', 'queues not read to the end:');
    for (const queue of unread) lines.push(`  ${queue.queue}  ${queue.error}`);
  }
  const clusters = report.clusters ?? [];
  if (report.dryRun && clusters.length > 0) {
    lines.push('', 'failure clusters, largest first (select with --cluster ID):');
    const shown = clusters.slice(0, SHOWN_CLUSTERS);
    const counts = table([
      ['cluster', 'tasks', 'attempts'],
      ...shown.map((c) => [c.id, String(c.count), attemptsOf(c.attempts)]),
    ]);
    const statusWidth = Math.max('status'.length, ...shown.map((c) => c.status.length));
    lines.push(`  ${counts[0]}  ${'status'.padEnd(statusWidth)}  target`);
    shown.forEach((c, i) => lines.push(`  ${counts[i + 1]}  ${c.status.padEnd(statusWidth)}  ${c.target}`));
    if (clusters.length > SHOWN_CLUSTERS)
      lines.push(`  (${clusters.length - SHOWN_CLUSTERS} more with --json)`);
  }
  const skipped = Object.entries(report.skipped ?? {});
  if (skipped.length > 0)
    lines.push('', `skipped: ${skipped.map(([reason, n]) => `${reason} ${n}`).join(', ')}`);
  const noted = rows.filter((row) => (row.notes ?? []).length > 0);
  if (noted.length > 0) {
    lines.push('', 'notes:');
    for (const row of noted) for (const note of row.notes ?? []) lines.push(`  ${row.task}  ${note}`);
  }
  const failedAgain = rows.filter((row) => row.verdict === 'failed-again' || row.outcome === 'failed');
  if (failedAgain.length > 0) {
    lines.push('', 'failed again or failed:');
    for (const row of failedAgain) lines.push(`  ${row.task}  ${row.status ?? row.error ?? row.outcome}`);
  }
  if (report.truncated) lines.push('', `(the report lists ${rows.length} tasks; the counts cover all)`);
  if (report.continueWith) {
    lines.push(
      '',
      `incomplete: ${report.continueWith.deferred ?? 0} deferred. Continue with:`,
      `  ${formatCommand(continueCommand(command, report))}`,
    );
  }
  return lines.join('\n');
}

/** What the summary's first line calls the run. */
function titleOf(report: ReportView): string {
  if (report.kind === 'unpark') return report.dryRun ? 'unpark (dry run)' : 'unpark';
  return report.dryRun ? 'plan' : 'run';
}

/**
 * The same command again with the report's cutoff (and requestId): a replay that forces nothing twice. An
 * unpark has no cutoff (nor `--deployed-at`): its requestId alone continues it, and a parked task's home
 * copy is named from the parked task, so none goes home twice.
 */
export function continueCommand(command: readonly string[], report: ReportView): string[] {
  const kept: string[] = [];
  for (let i = 0; i < command.length; i++) {
    const arg = command[i] ?? '';
    if (arg === '--deployed-at' || arg === '--request-id') i++;
    else if (!arg.startsWith('--deployed-at=') && !arg.startsWith('--request-id=')) kept.push(arg);
  }
  const cutoff = command[1] === 'unpark' ? undefined : (report.continueWith?.cutoff ?? report.cutoff);
  return [
    ...kept,
    ...(cutoff ? ['--deployed-at', cutoff] : []),
    ...(report.requestId ? ['--request-id', report.requestId] : []),
  ];
}

/** An attempt range as `4`, or `2-9`. */
function attemptsOf(attempts: { min: number; max: number } | undefined): string {
  if (!attempts) return '';
  return attempts.min === attempts.max ? `${attempts.min}` : `${attempts.min}-${attempts.max}`;
}

function table(rows: readonly string[][]): string[] {
  const widths =
    rows[0]?.map((_, column) => Math.max(...rows.map((row) => (row[column] ?? '').length))) ?? [];
  return rows.map((row) =>
    row
      .map((cell, column) =>
        column === 0 ? cell.padEnd(widths[column] ?? 0) : cell.padStart(widths[column] ?? 0),
      )
      .join('  ')
      .trimEnd(),
  );
}

/** `projects/P/locations/L/queues/Q` as `P/L/Q`: the table stays narrow. */
function shortQueue(queue: string): string {
  const [, project, , location, , id] = queue.split('/');
  return id === undefined ? queue : `${project}/${location}/${id}`;
}

/** A command line as a shell would take it back (arguments quoted where they need it). */
export function formatCommand(args: readonly string[]): string {
  return args.map(quote).join(' ');
}

function quote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}
