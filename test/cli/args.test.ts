import { describe, expect, it } from 'vitest';
import { parseCommand, UsageError } from '../../scripts/cli/args.js';

const Q = 'projects/p1/locations/us-central1/queues/orders';
const NOW = Date.parse('2026-12-01T12:00:00Z');

describe('parseCommand: flags map 1:1 to the event rerunHttp takes', () => {
  it('maps every flag to its event field', () => {
    const command = parseCommand(
      [
        'run',
        '--queue',
        Q,
        '--queue',
        `${Q}2`,
        '--task-id',
        'a',
        '--task-id',
        'b',
        '--task-id-glob',
        'order-*',
        '--url-prefix',
        'https://x/',
        '--response-code',
        '503',
        '--response-code',
        'UNAVAILABLE',
        '--min-attempts',
        '1',
        '--max-attempts',
        '9',
        '--failed-since',
        '2026-12-01T10:00:00Z',
        '--failed-until',
        '2026-12-01T11:00:00Z',
        '--created-before',
        '2026-12-01T11:30:00Z',
        '--created-after',
        '2026-11-30T00:00:00Z',
        '--deployed-at',
        '2026-12-01T11:45:00Z',
        '--reason',
        'fix 42',
        '--max-tasks',
        '50',
        '--max-rate',
        '0.5',
        '--canary',
        '3:30s',
        '--mode',
        'redrive',
        '--verify',
        '1m',
        '--request-id',
        'deploy-42',
        '--force',
        '--last-attempts',
        '--no-breaker',
        '--min-backoff-left',
        '2m',
      ],
      NOW,
    );
    expect(command).toMatchObject({ kind: 'rerun', name: 'run', url: undefined, json: false });
    expect(command.kind === 'rerun' && command.event).toEqual({
      kind: 'fix-deployed',
      queues: [Q, `${Q}2`],
      match: {
        taskIds: ['a', 'b'],
        taskIdGlob: 'order-*',
        urlPrefix: 'https://x/',
        responseCodes: [503, 'UNAVAILABLE'],
        minAttempts: 1,
        maxAttempts: 9,
        failedSince: '2026-12-01T10:00:00Z',
        failedUntil: '2026-12-01T11:00:00Z',
        createdBefore: '2026-12-01T11:30:00Z',
        createdAfter: '2026-11-30T00:00:00Z',
      },
      deployedAt: '2026-12-01T11:45:00Z',
      reason: 'fix 42',
      dryRun: false,
      maxTasks: 50,
      maxRate: 0.5,
      canary: { count: 3, wait: '30s' },
      mode: 'redrive',
      verify: '1m',
      requestId: 'deploy-42',
      force: true,
      lastAttempts: true,
      breaker: false,
      minBackoffLeft: '2m',
    });
  });

  it('plan is a dry run with only the fields given', () => {
    const command = parseCommand(['plan', '--queue', Q, '--canary', '2', '--json'], NOW);
    expect(command).toMatchObject({ kind: 'rerun', json: true });
    expect(command.kind === 'rerun' && command.event).toEqual({
      kind: 'fix-deployed',
      queues: [Q],
      dryRun: true,
      canary: { count: 2 },
    });
  });

  it.each([
    [
      ['plan', '--queue', Q, '--min-attempts', '5', '--max-attempts', '2'],
      /^--min-attempts: minAttempts is above maxAttempts/,
    ],
    [['plan', '--queue', Q, '--verify', 'later'], /^--verify: not a duration/],
    [['plan', '--queue', Q, '--response-code', 'SLOW'], /^--response-code: /],
    [['plan', '--queue', Q, '--max-rate', '0'], /^--max-rate must be a number above 0/],
    [['plan', '--queue', Q, 'extra'], /Unexpected argument 'extra'/],
    [['run', '--queue', Q, '--budget', 'long'], /^--budget: "long" is not a duration like 30s/],
    [['run', '--queue', Q, '--budget', '0s'], /^--budget: "0s" is not a duration/],
    [
      ['run', '--queue', Q, '--budget', '5m', '--url', 'https://r.example/'],
      /^--budget: a deployed rerunHttp/,
    ],
    [['status', '--request-id', 'r', '--control-queue', 'q'], /^--control-queue: "q" is not a queue name/],
  ])('names the flag at fault: %j', (argv, message) => {
    expect(() => parseCommand(argv, NOW)).toThrow(UsageError);
    expect(() => parseCommand(argv, NOW)).toThrow(message);
  });

  it('--budget is kept as typed for the run here (it becomes RERUN_TIME_BUDGET), not put in the event', () => {
    const command = parseCommand(['run', '--queue', Q, '--budget', '45m'], NOW);
    expect(command).toMatchObject({ kind: 'rerun', budget: '45m', args: ['--queue', Q, '--budget', '45m'] });
    expect(command.kind === 'rerun' && 'budget' in command.event).toBe(false);
    expect(parseCommand(['run', '--queue', Q], NOW)).toMatchObject({ budget: undefined });
  });

  it('unpark sends the unpark event: the selection, --possibly-done and --dry-run', () => {
    const command = parseCommand(
      [
        'unpark',
        '--queue',
        Q,
        '--task-id-glob',
        'ab*',
        '--response-code',
        '503',
        '--reason',
        'fix 42',
        '--possibly-done',
        '--dry-run',
        '--url',
        'https://rerun.example/',
        '--json',
      ],
      NOW,
    );
    expect(command).toMatchObject({
      kind: 'rerun',
      name: 'unpark',
      url: 'https://rerun.example/',
      json: true,
    });
    expect(command.kind === 'rerun' && command.event).toEqual({
      kind: 'unpark',
      queues: [Q],
      match: { taskIdGlob: 'ab*', responseCodes: [503] },
      reason: 'fix 42',
      possiblyDone: true,
      dryRun: true,
    });
    expect(parseCommand(['unpark', '--queue', Q], NOW)).toMatchObject({
      event: { kind: 'unpark', queues: [Q] },
    });
  });

  it('parked names home queues', () => {
    expect(parseCommand(['parked', '--queue', Q, '--queue', `${Q}2`, '--json'], NOW)).toEqual({
      kind: 'parked',
      queues: [Q, `${Q}2`],
      json: true,
    });
  });

  it.each([
    [['unpark', '--queue', Q, '--deployed-at', '2026-12-01T00:00:00Z'], /Unknown option '--deployed-at'/],
    [
      ['unpark', '--queue', `${Q}-parked`],
      /^--queue: ".*orders-parked" is a parking queue: name its home queue/,
    ],
    [['unpark', '--queue', Q, '--canary', 'x'], /^--canary must be a whole number/],
    [['parked'], /^--queue is required/],
    [['parked', '--queue', Q, '--url', 'https://rerun.example/'], /Unknown option '--url'/],
    [['parked', '--queue', `${Q}-parked`], /^--queue: ".*orders-parked" is a parking queue/],
  ])('unpark and parked name the flag at fault: %j', (argv, message) => {
    expect(() => parseCommand(argv, NOW)).toThrow(UsageError);
    expect(() => parseCommand(argv, NOW)).toThrow(message);
  });

  it('status and cancel take a request and where to ask', () => {
    expect(parseCommand(['cancel', '--request-id', 'r-1', '--url', 'https://rerun.example/'], NOW)).toEqual({
      kind: 'control',
      name: 'cancel',
      requestId: 'r-1',
      controlQueue: undefined,
      url: 'https://rerun.example/',
      json: false,
    });
  });
});
