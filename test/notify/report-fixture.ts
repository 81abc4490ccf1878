/** A run report to build notifications from, with the counts and fields a test cares about. */
import { emptyCounts, type RerunReport, type VerdictCounts } from '../../shared/run/settle.js';

type Counts = Partial<Omit<RerunReport['counts'], 'verdicts'>> & { verdicts?: VerdictCounts };

export const CUTOFF = '2026-11-22T10:00:00.000Z';
export const ORDERS_QUEUE = 'projects/p-1/locations/us-central1/queues/orders';

/** A finished run of request `req-1` over the orders queue; counts default to zero. */
export function reportWith(counts: Counts = {}, extra: Partial<RerunReport> = {}): RerunReport {
  return {
    runId: 'run-1',
    requestId: 'req-1',
    kind: 'fix-deployed',
    mode: 'run',
    dryRun: false,
    cutoff: CUTOFF,
    clusters: [],
    queues: [{ queue: ORDERS_QUEUE, state: 'RUNNING', rate: 1, scanned: 10, matched: 3, complete: true }],
    counts: {
      ...emptyCounts(),
      ...counts,
      verdicts: counts.verdicts ?? emptyCounts().verdicts,
    },
    skipped: {},
    tasks: [],
    durationMs: 12,
    ...extra,
  };
}

/** The continueWith of a run that left one task deferred. */
export const CONTINUE_WITH: NonNullable<RerunReport['continueWith']> = {
  requestId: 'req-1',
  cutoff: CUTOFF,
  deferred: 1,
  incompleteQueues: [],
  note: 'send the same request again',
};
