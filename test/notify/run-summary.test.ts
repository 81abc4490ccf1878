import { describe, expect, it } from 'vitest';
import { MAX_FAILED_AGAIN_NAMES, requestEndMessage, runSummaryMessage } from '../../shared/notify/summary.js';
import { runOutcomeOf } from '../../shared/run/settle.js';
import { CONTINUE_WITH, CUTOFF, ORDERS_QUEUE, reportWith } from './report-fixture.js';

const Q = ORDERS_QUEUE;

const verdicts = (succeeded: number, failedAgain: number, running: number) => ({
  verdicts: { succeeded, failedAgain, running },
});
const continueWith = { continueWith: CONTINUE_WITH };

describe('runOutcomeOf', () => {
  it.each([
    ['every forced task succeeded', { dispatched: 3, ...verdicts(3, 0, 0) }, {}, 'recovered'],
    ['verification off: dispatched counts as succeeded', { dispatched: 3 }, {}, 'recovered'],
    ['nothing to do', { matched: 0 }, {}, 'recovered'],
    ['only skips and gone', { skipped: 2, gone: 1 }, {}, 'recovered'],
    ['still running is not a failure', { dispatched: 2, ...verdicts(1, 0, 1) }, {}, 'recovered'],
    ['some failed again', { dispatched: 3, ...verdicts(2, 1, 0) }, {}, 'partial'],
    [
      'verification on: a forced task without a verdict is not a success',
      { dispatched: 3, ...verdicts(0, 1, 0) },
      {},
      'failed',
    ],
    [
      'a permanent failure beside a success',
      { dispatched: 1, failed: 1, ...verdicts(1, 0, 0) },
      {},
      'partial',
    ],
    ['queued: the request goes on in the control queue', { queued: 5 }, {}, 'partial'],
    ['redriven and verified', { redriven: 4, ...verdicts(4, 0, 0) }, {}, 'recovered'],
    ['everything failed again', { dispatched: 2, ...verdicts(0, 2, 0) }, {}, 'failed'],
    ['canary failed, the rest held', { dispatched: 1, held: 5, ...verdicts(0, 1, 0) }, {}, 'failed'],
    ['only permanent failures', { failed: 2 }, {}, 'failed'],
    ['running only, one held', { dispatched: 1, held: 1, ...verdicts(0, 0, 1) }, {}, 'failed'],
    [
      'work left, even if all else succeeded',
      { dispatched: 1, deferred: 1, ...verdicts(1, 0, 0) },
      continueWith,
      'incomplete',
    ],
  ] as const)('%s', (_name, counts, extra, outcome) => {
    expect(runOutcomeOf(reportWith(counts, extra))).toBe(outcome);
  });
});

describe('runSummaryMessage', () => {
  it('carries what parking did: how many, from which queue, and why', () => {
    const parking = [
      { queue: Q, parkingQueue: `${Q}-parked`, why: 'at risk', atRisk: 2, parked: 2, possiblyDone: 0 },
    ];
    const message = runSummaryMessage(reportWith({ matched: 2, parked: 2 }, { parking }));
    expect(message.data.parking).toEqual(parking);
    expect(message.data.counts.parked).toBe(2);
    expect(runSummaryMessage(reportWith({ matched: 0 })).data).not.toHaveProperty('parking');
  });

  it('carries the summary as data and kind, requestId, runId, outcome as attributes', () => {
    const report = reportWith(
      { matched: 3, dispatched: 3, ...verdicts(2, 1, 0) },
      {
        reason: 'PR 42',
        skipped: { 'due-soon': 1 },
        tasks: [
          { task: `${Q}/tasks/a`, outcome: 'dispatched', verdict: 'succeeded' },
          { task: `${Q}/tasks/b`, outcome: 'dispatched', verdict: 'failed-again', status: 'UNAVAILABLE(14)' },
        ],
      },
    );
    const message = runSummaryMessage(report);
    expect(message.attributes).toEqual({
      event: 'run-finished',
      kind: 'fix-deployed',
      runId: 'run-1',
      requestId: 'req-1',
      outcome: 'partial',
    });
    expect(message.data).toEqual({
      event: 'run-finished',
      runId: 'run-1',
      requestId: 'req-1',
      kind: 'fix-deployed',
      mode: 'run',
      reason: 'PR 42',
      dryRun: false,
      outcome: 'partial',
      cutoff: '2026-11-22T10:00:00.000Z',
      counts: report.counts,
      skipped: { 'due-soon': 1 },
      queues: report.queues,
      clusters: [],
      failedAgain: [`${Q}/tasks/b`],
      durationMs: 12,
    });
    for (const value of Object.values(message.attributes)) expect(typeof value).toBe('string');
  });

  it('names at most 20 tasks that failed again, and says when there were more', () => {
    const tasks = Array.from({ length: 25 }, (_, i) => ({
      task: `${Q}/tasks/t${i}`,
      outcome: 'dispatched' as const,
      verdict: 'failed-again' as const,
    }));
    const { data } = runSummaryMessage(reportWith({ dispatched: 25, ...verdicts(0, 25, 0) }, { tasks }));
    expect(data.failedAgain).toHaveLength(MAX_FAILED_AGAIN_NAMES);
    expect(data.failedAgain[0]).toBe(`${Q}/tasks/t0`);
    expect(data.failedAgainTruncated).toBe(true);
    // Rows past the report's own limit still count: the counts say more failed again than rows show.
    const few = runSummaryMessage(
      reportWith({ dispatched: 30, ...verdicts(0, 30, 0) }, { tasks: tasks.slice(0, 3) }),
    );
    expect(few.data.failedAgain).toHaveLength(3);
    expect(few.data.failedAgainTruncated).toBe(true);
  });

  it('says so whenever it names fewer than failed again, under 20 too (rows past the report cap)', () => {
    const tasks = Array.from({ length: 3 }, (_, i) => ({
      task: `${Q}/tasks/t${i}`,
      outcome: 'dispatched' as const,
      verdict: 'failed-again' as const,
    }));
    const fewer = runSummaryMessage(reportWith({ dispatched: 10, ...verdicts(0, 10, 0) }, { tasks }));
    expect(fewer.data.failedAgain).toHaveLength(3);
    expect(fewer.data.failedAgainTruncated).toBe(true);
    const all = runSummaryMessage(reportWith({ dispatched: 3, ...verdicts(0, 3, 0) }, { tasks }));
    expect(all.data.failedAgain).toHaveLength(3);
    expect(all.data).not.toHaveProperty('failedAgainTruncated');
  });

  it('passes continueWith on, and never a row status, body or header', () => {
    const report = reportWith(
      { dispatched: 1, deferred: 1, ...verdicts(0, 1, 0) },
      {
        ...continueWith,
        tasks: [
          { task: `${Q}/tasks/b`, outcome: 'dispatched', verdict: 'failed-again', status: 'secret-status' },
        ],
      },
    );
    const { data, attributes } = runSummaryMessage(report);
    expect(data.continueWith).toEqual(continueWith.continueWith);
    expect(attributes['outcome']).toBe('incomplete');
    expect(JSON.stringify(data)).not.toContain('secret-status');
    expect(data).not.toHaveProperty('tasks');
  });

  it('says which mode the run used', () => {
    expect(runSummaryMessage(reportWith({}, { mode: 'redrive' })).data.mode).toBe('redrive');
  });
});

describe('requestEndMessage', () => {
  it("names the request that ended (its own kind, not its control task run's) and the run that saw it end", () => {
    const message = requestEndMessage(
      { ...reportWith({ dispatched: 1 }), requestId: 'req-9', kind: 'tasks' },
      'sweep',
    );
    expect(message.attributes).toEqual({
      event: 'request-ended',
      kind: 'sweep',
      runId: 'run-1',
      requestId: 'req-9',
    });
    expect(message.data).toEqual({
      event: 'request-ended',
      requestId: 'req-9',
      kind: 'sweep',
      cutoff: '2026-11-22T10:00:00.000Z',
      lastRunId: 'run-1',
    });
  });
});

describe('the run-finished message and failure clusters', () => {
  it('carries the five largest clusters of the report, in its order', () => {
    const clusters = Array.from({ length: 7 }, (_, i) => ({
      id: `0000000${i}`,
      status: 'UNAVAILABLE 503',
      target: `h.example/q${'x'.repeat(i)}/{id}`,
      count: 10 - i,
      oldestFailure: CUTOFF,
      newestFailure: CUTOFF,
      queues: [Q],
      sampleTask: `${Q}/tasks/t${i}`,
      attempts: { min: 1, max: 2 },
    }));
    const { data } = runSummaryMessage(reportWith({ dispatched: 1 }, { clusters }));
    expect(data.clusters.map((c) => c.id)).toEqual([
      '00000000',
      '00000001',
      '00000002',
      '00000003',
      '00000004',
    ]);
  });
});
