/**
 * Pure: what a finished run tells the world (docs/notifications.md "Outcome"). The run's outcome in one
 * word, and the Pub/Sub message that carries its summary: counts, queues, verdicts, a bounded list of the
 * tasks that failed again; never a task body, header or status text.
 */
import { runOutcomeOf, type RerunReport, type RunOutcome } from '../run/settle.js';

/** At most this many names of tasks that failed again go into a message. */
export const MAX_FAILED_AGAIN_NAMES = 20;
/** The largest failure clusters a message carries. */
export const MAX_NOTIFIED_CLUSTERS = 5;

/** The JSON a run-finished message carries. */
export interface RunSummary {
  readonly event: 'run-finished';
  readonly runId: string;
  readonly requestId: string;
  readonly kind: string;
  readonly mode: RerunReport['mode'];
  readonly reason?: string;
  readonly dryRun: boolean;
  readonly outcome: RunOutcome;
  readonly cutoff: string;
  readonly counts: RerunReport['counts'];
  readonly skipped: RerunReport['skipped'];
  readonly queues: RerunReport['queues'];
  /** The MAX_NOTIFIED_CLUSTERS largest failure clusters of the matched tasks. */
  readonly clusters: RerunReport['clusters'];
  /** What parking did, per home queue, when the run parked (docs/parking.md "Seeing them"). */
  readonly parking?: RerunReport['parking'];
  readonly continueWith?: RerunReport['continueWith'];
  /** Up to MAX_FAILED_AGAIN_NAMES task names whose forced attempt failed again. */
  readonly failedAgain: string[];
  /** True when more tasks failed again than are named (`counts.verdicts.failedAgain` has them all). */
  readonly failedAgainTruncated?: true;
  readonly durationMs: number;
}

/** The JSON a request-ended message carries (queued mode: the last control task of a request). */
export interface RequestEnd {
  readonly event: 'request-ended';
  readonly requestId: string;
  readonly kind: string;
  readonly reason?: string;
  readonly cutoff: string;
  /** The run of the control task that found no more work of the request waiting. */
  readonly lastRunId: string;
}

/** A Pub/Sub message before encoding: JSON data and string attributes. */
export interface SummaryMessage<Data> {
  readonly data: Data;
  readonly attributes: Readonly<Record<string, string>>;
}

/** The run-finished message of a report: its summary as data, and attributes to filter on. */
export function runSummaryMessage(report: RerunReport): SummaryMessage<RunSummary> {
  const outcome = runOutcomeOf(report);
  const failedAgain = report.tasks.filter((row) => row.verdict === 'failed-again').map((row) => row.task);
  const named = failedAgain.slice(0, MAX_FAILED_AGAIN_NAMES);
  // Fewer named than failed again: past the name limit, or past the report's rows (docs/reports-and-logs.md "The report").
  const failedAgainCount = Math.max(failedAgain.length, report.counts.verdicts.failedAgain);
  const data: RunSummary = {
    event: 'run-finished',
    runId: report.runId,
    requestId: report.requestId,
    kind: report.kind,
    mode: report.mode,
    ...(report.reason !== undefined && { reason: report.reason }),
    dryRun: report.dryRun,
    outcome,
    cutoff: report.cutoff,
    counts: report.counts,
    skipped: report.skipped,
    queues: report.queues,
    clusters: report.clusters.slice(0, MAX_NOTIFIED_CLUSTERS),
    ...(report.parking && { parking: report.parking }),
    ...(report.continueWith && { continueWith: report.continueWith }),
    failedAgain: named,
    ...(named.length < failedAgainCount && { failedAgainTruncated: true as const }),
    durationMs: report.durationMs,
  };
  return { data, attributes: attributesOf(data, { outcome }) };
}

/**
 * The request-ended message: which request ended (`kind` is the request's own, not its control task's
 * `tasks`), and the run that saw it end.
 */
export function requestEndMessage(report: RerunReport, kind: string): SummaryMessage<RequestEnd> {
  const data: RequestEnd = {
    event: 'request-ended',
    requestId: report.requestId,
    kind,
    ...(report.reason !== undefined && { reason: report.reason }),
    cutoff: report.cutoff,
    lastRunId: report.runId,
  };
  return { data, attributes: attributesOf({ ...data, runId: report.runId }, {}) };
}

function attributesOf(
  data: { event: string; kind: string; runId: string; requestId: string },
  extra: Record<string, string>,
): Record<string, string> {
  return { event: data.event, kind: data.kind, runId: data.runId, requestId: data.requestId, ...extra };
}
