/**
 * The run report (docs/reports-and-logs.md): every matched task gets exactly one outcome, logged once and counted once.
 */
import type { ParkingReport } from './park.js';
import type { RedriveCallsTaken } from './redrive-path.js';
import type { ClusterSummary } from './clusters.js';
import type { Estimate } from './estimate.js';
import { operationFirst, operationLast, type Logger } from '../platform/log.js';
import type { SkipReason } from './select.js';
import { continueWithOf } from './undone.js';
import type { Verdict } from './verify.js';
import type { EventKind as Kind, RerunMode, RerunRequest } from '../triggers/events.js';

export const OUTCOMES = [
  'dispatched',
  'redriven',
  'gone',
  'failed',
  'skipped',
  'deferred',
  'queued',
  'held',
  'parked',
] as const;
export type Outcome = (typeof OUTCOMES)[number];

/** One task's row in the report. */
export interface TaskRow {
  readonly task: string;
  readonly outcome: Outcome;
  readonly skipReason?: SkipReason;
  /** For `dispatched` and `redriven` tasks once verified. */
  readonly verdict?: Verdict | undefined;
  /** The failed-again attempt's status (`UNAVAILABLE(14): HTTP status code 503`), or a verdict's note. */
  readonly status?: string;
  readonly error?: string;
  readonly canary?: boolean;
  /** A `redriven` task's copy, or a `parked` task's parked copy: the new task that carries its work. */
  readonly copy?: string;
  /** A `parked` task whose last attempt may have run during the move (docs/parking.md "The move"). */
  readonly possiblyDone?: true;
  /** What a dry run points out about the task (an unpark's: docs/parking.md "Unparking"). */
  readonly notes?: readonly string[];
}

/** The verdicts summed (docs/execution.md "Verdicts"). */
export interface VerdictCounts {
  succeeded: number;
  failedAgain: number;
  running: number;
}

/** One queue's line in the report. */
export interface QueueReport {
  queue: string;
  state?: string;
  /** The dispatch rate used for this queue (per second): the lowest of the limits that apply. */
  rate?: number;
  scanned: number;
  matched: number;
  /** False when the queue was not listed to its end (time budget, or an error). */
  complete: boolean;
  error?: string;
  /** The error is transient (unreachable, timeouts, quota): the queue is left undone, not done. */
  transient?: boolean;
  /** The listing started and broke off, whatever the error: the queue is left undone (docs/acknowledgement.md). */
  brokenOff?: true;
}

export interface RerunReport {
  runId: string;
  requestId: string;
  kind: Kind;
  mode: RerunMode;
  reason?: string;
  dryRun: boolean;
  cutoff: string;
  /** The event's cutoff was later than its delivery, and was brought back to it. */
  cutoffClamped?: true;
  queues: QueueReport[];
  /** The matched tasks' failure clusters, largest first (docs/selection.md "Failure clusters"). */
  clusters: ClusterSummary[];
  counts: Record<Outcome | 'matched', number> & { verdicts: VerdictCounts };
  skipped: Partial<Record<SkipReason, number>>;
  tasks: TaskRow[];
  truncated?: true;
  canary?: { tasks: string[]; passed: boolean };
  /** A dry run's estimate of how long each mode would take (docs/redrive.md "When to choose it"). */
  estimate?: Estimate;
  /** A redrive's calls: by batch, one per task, or one per task after batch calls were refused. */
  redriveCalls?: RedriveCallsTaken;
  /** What parking did, per home queue, when the run parked (docs/parking.md "Seeing them"). */
  parking?: ParkingReport[];
  /** The unpark that rode on this request (`includeParked`): its own report (docs/parking.md "Unparking"). */
  unparked?: RerunReport;
  /** The unpark that was to ride on this request could not be made: why (its tasks stay parked). */
  unparkError?: string;
  /** Present when work is left undone: send the same request again (its cutoff makes that safe). */
  continueWith?: {
    requestId: string;
    cutoff: string;
    deferred: number;
    incompleteQueues: string[];
    note: string;
  };
  durationMs: number;
}

/** The largest failure clusters on the run's last log line. */
const LOGGED_CLUSTERS = 5;

/** At most this many task rows are returned; counts are always complete. */
export const MAX_TASK_ROWS = 1000;

const MESSAGES: Record<Outcome, string> = {
  dispatched: 'task dispatched',
  redriven: 'task redriven',
  gone: 'task gone',
  failed: 'task failed',
  skipped: 'task skipped',
  deferred: 'task deferred',
  queued: 'task queued',
  held: 'task held',
  parked: 'task parked',
};

/** Counts of a report with nothing counted yet. */
export function emptyCounts(): RerunReport['counts'] {
  return {
    matched: 0,
    ...(Object.fromEntries(OUTCOMES.map((outcome) => [outcome, 0])) as Record<Outcome, number>),
    verdicts: { succeeded: 0, failedAgain: 0, running: 0 },
  };
}

/** Collects outcomes, logging one line per task. */
export class ReportBuilder {
  readonly counts: RerunReport['counts'] = emptyCounts();
  readonly skipped: RerunReport['skipped'] = {};
  readonly rows: TaskRow[] = [];
  private truncated = false;

  constructor(
    private readonly log: Logger,
    private readonly dryRun: boolean,
  ) {}

  /** Records the one outcome of a matched task. */
  record(row: TaskRow): void {
    this.counts.matched++;
    this.counts[row.outcome]++;
    if (row.verdict === 'succeeded') this.counts.verdicts.succeeded++;
    else if (row.verdict === 'failed-again') this.counts.verdicts.failedAgain++;
    else if (row.verdict === 'running') this.counts.verdicts.running++;
    if (row.skipReason) this.skipped[row.skipReason] = (this.skipped[row.skipReason] ?? 0) + 1;
    if (this.rows.length < MAX_TASK_ROWS) this.rows.push(row);
    else this.truncated = true;
    const level = row.outcome === 'failed' || row.verdict === 'failed-again' ? 'warn' : 'info';
    const message =
      this.dryRun && row.outcome === 'dispatched'
        ? 'task would be dispatched (dry run)'
        : MESSAGES[row.outcome];
    this.log[level]({ ...row, queue: queueOf(row.task), ...(this.dryRun && { dryRun: true }) }, message);
  }

  get isTruncated(): boolean {
    return this.truncated;
  }
}

/** The queue part of a task name. */
function queueOf(task: string): string {
  const index = task.lastIndexOf('/tasks/');
  return index < 0 ? task : task.slice(0, index);
}

/** A run's outcome in one word (docs/notifications.md "Outcome" defines each). */
export type RunOutcome = 'recovered' | 'partial' | 'incomplete' | 'failed';

/**
 * The run's outcome: `incomplete` when work is left (`continueWith`); `failed` when nothing succeeded and
 * something failed, failed again or was held; `recovered` when nothing failed, failed again, was held,
 * deferred or queued; `partial` otherwise. A forced task succeeded when its verdict says so, or, with verification
 * off (no verdict at all), when it was dispatched or redriven.
 */
export function runOutcomeOf(report: RerunReport): RunOutcome {
  if (report.continueWith) return 'incomplete';
  const { counts } = report;
  const { verdicts } = counts;
  const forced = counts.dispatched + counts.redriven;
  // With verification on, a forced task without a verdict (gone after what may have been its last
  // attempt) is not known to have succeeded.
  const verificationOff = verdicts.succeeded + verdicts.failedAgain + verdicts.running === 0;
  const succeeded = verificationOff ? forced : verdicts.succeeded;
  const failures = counts.failed + verdicts.failedAgain + counts.held;
  if (succeeded === 0 && failures > 0) return 'failed';
  // Queued tasks are still to run (in the control queue): their request ends later.
  if (failures === 0 && counts.deferred === 0 && counts.queued === 0) return 'recovered';
  return 'partial';
}

/** What the other stages give the report. */
export interface ReportParts {
  readonly report: ReportBuilder;
  readonly queues: readonly QueueReport[];
  readonly clusters: ClusterSummary[];
  readonly canary: RerunReport['canary'];
  readonly estimate: Estimate | undefined;
  readonly redriveCalls?: RedriveCallsTaken | undefined;
  readonly parking?: ParkingReport[] | undefined;
  readonly durationMs: number;
}

/** The run's report; continueWith is set exactly when work is left (undone.ts). */
export function reportOf(request: RerunRequest, runId: string, parts: ReportParts): RerunReport {
  const { report, canary, estimate } = parts;
  const { counts } = report;
  const cutoff = iso(request.cutoffMs);
  const queues = [...parts.queues];
  const continueWith = continueWithOf({ requestId: request.requestId, cutoff }, counts.deferred, queues);
  return {
    runId,
    requestId: request.requestId,
    kind: request.kind,
    mode: request.mode,
    ...(request.reason !== undefined && { reason: request.reason }),
    dryRun: request.dryRun,
    cutoff,
    ...(request.cutoffClamped && { cutoffClamped: true as const }),
    queues,
    clusters: parts.clusters,
    counts,
    skipped: report.skipped,
    tasks: report.rows,
    ...(report.isTruncated && { truncated: true as const }),
    ...(canary && { canary }),
    ...(estimate && { estimate }),
    ...(parts.redriveCalls && { redriveCalls: parts.redriveCalls }),
    ...(parts.parking && { parking: parts.parking }),
    ...(continueWith && { continueWith }),
    durationMs: parts.durationMs,
  };
}

/** The run's first line. */
export function logStarted(log: Logger, request: RerunRequest): void {
  log.info(
    {
      ...operationFirst(),
      kind: request.kind,
      requestId: request.requestId,
      mode: request.mode,
      cutoff: iso(request.cutoffMs),
      cutoffSource: request.cutoffSource,
      dryRun: request.dryRun,
      ...request.context,
    },
    'rerun started',
  );
}

/** The run's last line. */
export function logFinished(log: Logger, report: RerunReport): void {
  log.info(
    {
      ...operationLast(),
      outcome: runOutcomeOf(report),
      ...(report.dryRun && { dryRun: true }),
      counts: report.counts,
      skipped: report.skipped,
      queues: report.queues,
      clusters: report.clusters.slice(0, LOGGED_CLUSTERS),
      ...(report.continueWith && { continueWith: report.continueWith }),
      durationMs: report.durationMs,
    },
    'rerun finished',
  );
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}
