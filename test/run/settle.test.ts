import { describe, expect, it } from 'vitest';
import {
  logFinished,
  MAX_TASK_ROWS,
  ReportBuilder,
  reportOf,
  type QueueReport,
} from '../../shared/run/settle.js';
import { capturedLog, ORDERS, requestOf, silentLog } from './stage-fixtures.js';

const T = `${ORDERS}/tasks/t`;
const done: QueueReport = { queue: ORDERS, scanned: 3, matched: 3, complete: true };

function parts(report: ReportBuilder, queues: QueueReport[] = [done]) {
  return { report, queues, clusters: [], canary: undefined, estimate: undefined, durationMs: 5 };
}

describe('ReportBuilder', () => {
  it('counts each outcome, verdict and skip reason once, and logs one line per task with its queue', () => {
    const { log, lines } = capturedLog();
    const report = new ReportBuilder(log, false);
    report.record({ task: T, outcome: 'dispatched', verdict: 'failed-again', status: 'INTERNAL(13)' });
    report.record({ task: T, outcome: 'skipped', skipReason: 'after-cutoff' });
    report.record({ task: T, outcome: 'skipped', skipReason: 'after-cutoff' });
    expect(report.counts).toMatchObject({ matched: 3, dispatched: 1, skipped: 2 });
    expect(report.counts.verdicts).toEqual({ succeeded: 0, failedAgain: 1, running: 0 });
    expect(report.skipped).toEqual({ 'after-cutoff': 2 });
    const taskLines = lines();
    expect(taskLines.map((l) => l.message)).toEqual(['task dispatched', 'task skipped', 'task skipped']);
    expect(taskLines[0]).toMatchObject({ severity: 'WARNING', queue: ORDERS, task: T });
  });

  it('keeps at most MAX_TASK_ROWS rows, while the counts stay complete', () => {
    const report = new ReportBuilder(silentLog(), false);
    for (let i = 0; i <= MAX_TASK_ROWS; i++) report.record({ task: `${T}${i}`, outcome: 'gone' });
    expect(report.rows).toHaveLength(MAX_TASK_ROWS);
    expect(report.isTruncated).toBe(true);
    expect(report.counts.gone).toBe(MAX_TASK_ROWS + 1);
  });

  it('says "would be dispatched" on a dry run', () => {
    const { log, lines } = capturedLog();
    new ReportBuilder(log, true).record({ task: T, outcome: 'dispatched' });
    expect(lines()[0]).toMatchObject({ message: 'task would be dispatched (dry run)', dryRun: true });
  });
});

describe('reportOf', () => {
  it('sets continueWith exactly when work is left: a task deferred', () => {
    const request = requestOf();
    const report = new ReportBuilder(silentLog(), false);
    report.record({ task: T, outcome: 'dispatched' });
    expect(reportOf(request, 'run-1', parts(report)).continueWith).toBeUndefined();
    report.record({ task: T, outcome: 'deferred' });
    const continued = reportOf(request, 'run-1', parts(report));
    expect(continued.continueWith).toMatchObject({
      requestId: request.requestId,
      cutoff: new Date(request.cutoffMs).toISOString(),
      deferred: 1,
      incompleteQueues: [],
    });
  });

  it('or a queue undone; a queue gone for good is not', () => {
    const report = new ReportBuilder(silentLog(), false);
    const queues: QueueReport[] = [
      { queue: 'a', scanned: 0, matched: 0, complete: false, error: 'queue not found' },
      { queue: 'b', scanned: 1000, matched: 0, complete: false, error: '500', brokenOff: true },
    ];
    expect(reportOf(requestOf(), 'r', parts(report, queues)).continueWith?.incompleteQueues).toEqual(['b']);
  });

  it('carries the request, the estimate and the canary summary as given', () => {
    const request = requestOf({ dryRun: true, reason: 'fix' });
    const estimate = { runSeconds: 1, redriveSeconds: 2, backoffLeftSeconds: 3 };
    const canary = { tasks: [T], passed: true };
    const report = reportOf(request, 'r', {
      ...parts(new ReportBuilder(silentLog(), true)),
      estimate,
      canary,
    });
    expect(report).toMatchObject({
      runId: 'r',
      dryRun: true,
      reason: 'fix',
      estimate,
      canary,
      durationMs: 5,
    });
    expect(report.queues).toEqual([done]);
  });
});

describe('logFinished', () => {
  it("logs the run's outcome in one word, with continueWith when work is left", () => {
    const { log, lines } = capturedLog();
    const report = new ReportBuilder(silentLog(), false);
    report.record({ task: T, outcome: 'deferred' });
    logFinished(log, reportOf(requestOf(), 'r', parts(report)));
    expect(lines()[0]).toMatchObject({ message: 'rerun finished', outcome: 'incomplete' });
    expect(lines()[0]!.continueWith).toBeDefined();
  });
});
