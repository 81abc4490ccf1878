import { describe, expect, it } from 'vitest';
import { Gate } from '../../shared/run/gate.js';
import { Hold } from '../../shared/run/hold.js';
import type { TaskRow } from '../../shared/run/settle.js';
import { candidateOf, capturedLog, ORDERS, queueRunOf } from './stage-fixtures.js';

const queue = queueRunOf({ retry: { maxAttempts: 10, maxRetryDurationMs: 0 } });
const now = () => Date.now();

function gate(canary?: { count: number; waitMs: number }) {
  const hold = new Hold();
  const { log, lines } = capturedLog();
  return { gate: new Gate(canary, { log, now, hold, random: () => 0 }), hold, lines };
}

const row = (task: string, fields: Partial<TaskRow>): Promise<TaskRow> =>
  Promise.resolve({ task, outcome: 'dispatched', ...fields });

describe('Gate', () => {
  it('without canaries lets every candidate go', () => {
    const { gate: g } = gate();
    expect(g.isChoosing).toBe(false);
    expect(g.admit(candidateOf('a', queue))).toBe('go');
    expect(g.summary).toBeUndefined();
  });

  it('chooses canaries only among tasks with half their attempts left; the rest wait', () => {
    const { gate: g } = gate({ count: 2, waitMs: 1000 });
    expect(g.admit(candidateOf('old', queue, { dispatchCount: 6 }))).toBe('wait');
    expect(g.admit(candidateOf('a', queue, { dispatchCount: 5 }))).toBe('canary');
    expect(g.isFull).toBe(false);
    expect(g.admit(candidateOf('b', queue))).toBe('canary');
    expect(g.isFull).toBe(true);
    expect(g.admit(candidateOf('c', queue))).toBe('wait');
    expect(g.takeWaiting().map((c) => c.name.task)).toEqual(['old', 'c']);
    expect(g.takeWaiting()).toEqual([]);
  });

  it('opens once every forced canary succeeded: the rest go, and the last-attempt rule may be lifted', async () => {
    const { gate: g, hold } = gate({ count: 2, waitMs: 1000 });
    g.admit(candidateOf('a', queue));
    g.admit(candidateOf('b', queue));
    g.track(row('a', { verdict: 'succeeded' }));
    g.track(row('b', { outcome: 'redriven', verdict: 'succeeded' }));
    await g.settle();
    expect(g.passed).toBe(true);
    expect(hold.isHeld).toBe(false);
    expect(g.admit(candidateOf('c', queue))).toBe('go');
    expect(g.summary?.passed).toBe(true);
  });

  it('holds the rest the moment a canary did not succeed (failed again, or still running)', async () => {
    for (const verdict of ['failed-again', 'running'] as const) {
      const { gate: g, hold, lines } = gate({ count: 2, waitMs: 1000 });
      g.admit(candidateOf('a', queue));
      g.admit(candidateOf('b', queue));
      g.track(row('a', { verdict: 'succeeded' }));
      g.track(row('b', { verdict }));
      await g.settle();
      expect(g.failed).toBe(true);
      expect(hold.isHeld).toBe(true);
      expect(g.admit(candidateOf('c', queue))).toBe('held');
      expect(lines().some((l) => l.message === 'canary did not succeed; holding the rest')).toBe(true);
    }
  });

  it('holds the rest when no candidate could be chosen as a canary', async () => {
    const { gate: g, hold, lines } = gate({ count: 1, waitMs: 1000 });
    expect(g.admit(candidateOf('old', queue, { dispatchCount: 9 }))).toBe('wait');
    await g.settle();
    expect(hold.isHeld).toBe(true);
    expect(lines().some((l) => String(l.message).startsWith('no candidate has half'))).toBe(true);
  });

  it('leaves the rest undone, not held, when no canary was forced and none failed', async () => {
    const { gate: g, hold, lines } = gate({ count: 2, waitMs: 1000 });
    g.admit(candidateOf('a', queue));
    g.admit(candidateOf('b', queue));
    expect(g.admit(candidateOf('c', queue))).toBe('wait');
    g.track(row('a', { outcome: 'gone' }));
    g.track(row('b', { outcome: 'skipped', skipReason: 'claimed' }));
    await g.settle();
    expect(hold.isHeld).toBe(false);
    expect(g.failed).toBe(false);
    expect(g.takeWaiting().map((c) => g.admit(c))).toEqual(['deferred']);
    expect(g.admit(candidateOf('d', queue))).toBe('deferred');
    expect(g.summary).toEqual({ tasks: [`${ORDERS}/tasks/a`, `${ORDERS}/tasks/b`], passed: false });
    expect(
      lines().some((l) => l.message === 'no canary was forced; the rest are left for the next delivery'),
    ).toBe(true);
  });

  it('holds the rest when a canary that was not forced failed', async () => {
    const { gate: g, hold } = gate({ count: 2, waitMs: 1000 });
    g.admit(candidateOf('a', queue));
    g.admit(candidateOf('b', queue));
    g.track(row('a', { outcome: 'gone' }));
    g.track(row('b', { outcome: 'failed', error: 'PERMISSION_DENIED' }));
    await g.settle();
    expect(hold.isHeld).toBe(true);
    expect(g.admit(candidateOf('c', queue))).toBe('held');
  });

  it('with nothing come to it, judges nothing: no line, no summary', async () => {
    const { gate: g, hold, lines } = gate({ count: 2, waitMs: 1000 });
    await g.settle();
    expect(hold.isHeld).toBe(false);
    expect(g.summary).toBeUndefined();
    expect(lines()).toEqual([]);
  });

  it('shuffles a page while choosing, and leaves it in order after', async () => {
    const { gate: g } = gate({ count: 1, waitMs: 1000 });
    const page = ['a', 'b', 'c'].map((id) => candidateOf(id, queue));
    // random() = 0 swaps each item with the first: a b c -> c a b... the order changes.
    expect(g.order([...page]).map((c) => c.name.task)).not.toEqual(['a', 'b', 'c']);
    g.admit(page[0]!);
    g.track(row('a', { verdict: 'succeeded' }));
    await g.settle();
    expect(g.order([...page]).map((c) => c.name.task)).toEqual(['a', 'b', 'c']);
  });
});
