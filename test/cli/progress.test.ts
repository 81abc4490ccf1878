import { describe, expect, it } from 'vitest';
import { formatSeconds, logLineSink, ProgressTracker } from '../../scripts/cli/progress.js';

const task = (id: string) => `projects/p1/locations/l/queues/q/tasks/${id}`;

describe('ProgressTracker', () => {
  it('counts each task once, its verdict once, and estimates the time left at the recent rate', () => {
    const tracker = new ProgressTracker(10);
    expect(tracker.line(0)).toBe('forced 0/10  succeeded 0  failed again 0  running 0  held 0  -/s');
    tracker.observe({ message: 'rerun started' }, 0);
    tracker.observe({ task: task('a'), outcome: 'dispatched' }, 0);
    tracker.observe({ task: task('a'), outcome: 'dispatched', verdict: 'succeeded' }, 500);
    tracker.observe({ task: task('b'), outcome: 'dispatched' }, 1000);
    tracker.observe({ task: task('b'), verdict: 'failed-again' }, 1500);
    tracker.observe({ task: task('c'), outcome: 'held' }, 1600);
    tracker.observe({ task: task('d'), outcome: 'redriven', verdict: 'running' }, 2000);
    expect(tracker.line(2000)).toBe(
      'forced 3/10  succeeded 1  failed again 1  running 1  held 1  1.0/s  ~7s left',
    );
  });

  it('without a total shows no time left', () => {
    const tracker = new ProgressTracker();
    tracker.observe({ task: task('a'), outcome: 'dispatched' }, 0);
    tracker.observe({ task: task('b'), outcome: 'dispatched' }, 500);
    expect(tracker.line(1000)).toBe('forced 2  succeeded 0  failed again 0  running 0  held 0  1.0/s');
  });

  it('shows the budget left, or the time elapsed when there is no budget', () => {
    const bounded = new ProgressTracker(undefined, { startMs: 1000, budgetMs: 600_000 });
    expect(bounded.line(76_000)).toMatch(/ {2}budget 8m45s left$/);
    expect(bounded.line(900_000)).toMatch(/ {2}budget 0s left$/);
    const unbounded = new ProgressTracker(undefined, { startMs: 1000, budgetMs: Number.POSITIVE_INFINITY });
    expect(unbounded.line(3_662_000)).toMatch(/ {2}61m01s elapsed$/);
  });
});

describe('logLineSink', () => {
  it('parses JSON lines split across writes, and skips what is not JSON', async () => {
    const lines: unknown[] = [];
    const sink = logLineSink((line) => lines.push(line));
    await new Promise<void>((resolve) => sink.write('{"task":"a"}\n{"ta', () => resolve()));
    await new Promise<void>((resolve) => sink.write('sk":"b"}\nnot json\n', () => resolve()));
    expect(lines).toEqual([{ task: 'a' }, { task: 'b' }]);
  });
});

it.each([
  [0.2, '1s'],
  [59, '59s'],
  [75, '1m15s'],
  [3600, '60m00s'],
])('formatSeconds(%d) = %s', (seconds, text) => expect(formatSeconds(seconds)).toBe(text));
