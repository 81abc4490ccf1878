import { describe, expect, it } from 'vitest';
import { continueCommand, exitCodeOf, formatSummary, type ReportView } from '../../scripts/cli/summary.js';

const Q = 'projects/p1/locations/us-central1/queues/orders';
const B = 'projects/p1/locations/us-central1/queues/billing';
const counts = (extra: Record<string, unknown>) => ({ matched: 1, dispatched: 1, ...extra });

describe('exitCodeOf', () => {
  it.each<[string, ReportView, number]>([
    ['all done', { counts: counts({}) }, 0],
    ['an older core without verdicts', { counts: { dispatched: 3 } }, 0],
    ['a running verdict is done', { counts: counts({ verdicts: { running: 2 } }) }, 0],
    ['failed', { counts: counts({ failed: 1 }) }, 1],
    ['failed again', { counts: counts({ verdicts: { succeeded: 1, failedAgain: 1 } }) }, 1],
    ['held', { counts: counts({ held: 4 }) }, 1],
    ['incomplete', { counts: counts({ deferred: 2 }), continueWith: { cutoff: 'c' } }, 3],
    ['failed wins over incomplete', { counts: counts({ failed: 1 }), continueWith: { cutoff: 'c' } }, 1],
    [
      'a queue that cannot be read for good',
      { counts: counts({}), queues: [{ queue: Q, error: 'NOT_FOUND: Queue does not exist' }] },
      1,
    ],
    [
      'a queue left unread for now',
      {
        counts: counts({}),
        queues: [{ queue: Q, error: 'UNAVAILABLE', transient: true }],
        continueWith: { cutoff: 'c' },
      },
      3,
    ],
  ])('%s', (_, report, code) => expect(exitCodeOf(report)).toBe(code));
});

describe('continueCommand', () => {
  it('replaces the cutoff and adds the requestId', () => {
    const report = { requestId: 'r-9', continueWith: { cutoff: '2026-12-01T10:00:00.000Z' } };
    expect(
      continueCommand(
        ['cloud-tasks-rerun', 'run', '--queue', Q, '--deployed-at', 'x', '--request-id=old'],
        report,
      ),
    ).toEqual([
      'cloud-tasks-rerun',
      'run',
      '--queue',
      Q,
      '--deployed-at',
      '2026-12-01T10:00:00.000Z',
      '--request-id',
      'r-9',
    ]);
  });
});

describe('continueCommand of an unpark', () => {
  it('adds the requestId and no --deployed-at (an unpark takes no cutoff)', () => {
    const report = { requestId: 'r-9', continueWith: { cutoff: '2026-12-01T10:00:00.000Z' } };
    expect(continueCommand(['cloud-tasks-rerun', 'unpark', '--queue', Q, '--possibly-done'], report)).toEqual(
      ['cloud-tasks-rerun', 'unpark', '--queue', Q, '--possibly-done', '--request-id', 'r-9'],
    );
  });
});

describe('formatSummary', () => {
  const report: ReportView = {
    runId: 'run-1',
    requestId: 'req-1',
    cutoff: '2026-12-01T10:00:00.000Z',
    durationMs: 2500,
    queues: [
      { queue: Q, matched: 3 },
      { queue: B, matched: 1 },
    ],
    counts: {
      matched: 4,
      dispatched: 3,
      redriven: 0,
      held: 1,
      verdicts: { succeeded: 2, failedAgain: 1, running: 0 },
    },
    tasks: [
      { task: `${Q}/tasks/a`, outcome: 'dispatched', verdict: 'succeeded' },
      {
        task: `${Q}/tasks/b`,
        outcome: 'dispatched',
        verdict: 'failed-again',
        status: 'UNAVAILABLE(14): HTTP status code 503',
      },
      { task: `${Q}/tasks/c`, outcome: 'held' },
      { task: `${B}/tasks/d`, outcome: 'dispatched', verdict: 'succeeded' },
    ],
  };

  it('tables outcomes and verdicts by queue (only columns that count), and lists the tasks that failed again', () => {
    expect(formatSummary(report, ['cloud-tasks-rerun', 'run'])).toBe(
      [
        'run run-1 (request req-1): cutoff 2026-12-01T10:00:00.000Z, 2.5s',
        '',
        'queue                   matched  dispatched  held  succeeded  failed-again',
        'p1/us-central1/orders         3           2     1          1             1',
        'p1/us-central1/billing        1           1     0          1             0',
        'total                         4           3     1          2             1',
        '',
        'failed again or failed:',
        `  ${Q}/tasks/b  UNAVAILABLE(14): HTTP status code 503`,
      ].join('\n'),
    );
  });

  it("an unpark: its parked tasks count in their home queue's row; a dry run prints its notes", () => {
    const parking = 'projects/p1/locations/us-central1/queues/orders-parked';
    const unpark: ReportView = {
      kind: 'unpark',
      runId: 'run-2',
      dryRun: true,
      cutoff: '2026-12-01T10:00:00.000Z',
      durationMs: 100,
      queues: [{ queue: Q, matched: 2 }],
      counts: { matched: 2, redriven: 1, skipped: 1 },
      skipped: { 'possibly-done': 1 },
      tasks: [
        { task: `${parking}/tasks/aa`, outcome: 'redriven', notes: ['the home queue now overrides the URL'] },
        { task: `${parking}/tasks/bb`, outcome: 'skipped' },
      ],
    };
    expect(formatSummary(unpark, ['cloud-tasks-rerun', 'unpark'])).toBe(
      [
        'unpark (dry run) run-2: cutoff 2026-12-01T10:00:00.000Z, 0.1s',
        '',
        'queue                  matched  redriven  skipped',
        'p1/us-central1/orders        2         1        1',
        '',
        'skipped: possibly-done 1',
        '',
        'notes:',
        `  ${parking}/tasks/aa  the home queue now overrides the URL`,
      ].join('\n'),
    );
  });

  it('never prints a row field it does not know (bodies and headers stay out)', () => {
    const rows = [{ task: `${Q}/tasks/a`, outcome: 'failed', error: 'PERMISSION_DENIED', body: 'secret' }];
    expect(formatSummary({ ...report, tasks: rows }, [])).not.toContain('secret');
  });
});
