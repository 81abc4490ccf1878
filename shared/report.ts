/**
 * The run report (SPEC 7): every matched task gets exactly one outcome, logged once and counted once.
 */
import type { Logger } from './log.js';
import type { EventKind } from './events.js';
import type { SkipReason } from './select.js';

export const OUTCOMES = ['dispatched', 'gone', 'failed', 'skipped', 'deferred', 'queued', 'held'] as const;
export type Outcome = (typeof OUTCOMES)[number];

/** One task's row in the report. */
export interface TaskRow {
  readonly task: string;
  readonly outcome: Outcome;
  readonly skipReason?: SkipReason;
  readonly error?: string;
  readonly canary?: boolean;
  readonly verdict?: 'succeeded' | 'failed-again' | 'running';
  readonly status?: string;
}

/** One queue's line in the report. */
export interface QueueReport {
  queue: string;
  state?: string;
  /** The dispatch rate used for this queue (per second): the lowest of the limits that apply. */
  rate?: number;
  scanned: number;
  matched: number;
  /** False when the time budget ended before the whole queue was listed. */
  complete: boolean;
  error?: string;
}

export interface RerunReport {
  runId: string;
  requestId?: string;
  kind: EventKind;
  reason?: string;
  dryRun: boolean;
  cutoff: string;
  queues: QueueReport[];
  counts: Record<Outcome | 'matched', number> & {
    redriven?: number;
    verdicts?: { succeeded: number; failedAgain: number; running: number };
  };
  skipped: Partial<Record<SkipReason, number>>;
  tasks: TaskRow[];
  truncated?: true;
  canary?: { tasks: string[]; passed: boolean };
  /** Present when work is left: send the same event again with this cutoff (it makes the replay safe). */
  continueWith?: { cutoff: string; deferred: number; note: string };
  durationMs: number;
}

/** At most this many task rows are returned; counts are always complete. */
export const MAX_TASK_ROWS = 1000;

const MESSAGES: Record<Outcome, string> = {
  dispatched: 'task dispatched',
  gone: 'task gone',
  failed: 'task failed',
  skipped: 'task skipped',
  deferred: 'task deferred',
  queued: 'task queued',
  held: 'task held',
};

/** Collects outcomes, logging one line per task. */
export class ReportBuilder {
  readonly counts: RerunReport['counts'] = {
    matched: 0,
    dispatched: 0,
    gone: 0,
    failed: 0,
    skipped: 0,
    deferred: 0,
    queued: 0,
    held: 0,
  };
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
    if (row.skipReason) this.skipped[row.skipReason] = (this.skipped[row.skipReason] ?? 0) + 1;
    if (this.rows.length < MAX_TASK_ROWS) this.rows.push(row);
    else this.truncated = true;
    const level = row.outcome === 'failed' ? 'warn' : 'info';
    const message =
      this.dryRun && row.outcome === 'dispatched'
        ? 'task would be dispatched (dry run)'
        : MESSAGES[row.outcome];
    this.log[level]({ ...row }, message);
  }

  get isTruncated(): boolean {
    return this.truncated;
  }
}
