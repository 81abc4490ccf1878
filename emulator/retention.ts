/**
 * Cloud Tasks' task retention: every task is deleted 31 days after it was created, whatever its state, and
 * its name stays reserved like any deleted task's. One due-time heap and one clock timer for every task.
 */
import type { Clock, Timer } from './clock.js';
import { MinHeap } from './heap.js';
import type { TaskRecord } from './model.js';
import type { Store } from './store.js';

/** How long Cloud Tasks keeps a task: 31 days from its createTime. */
export const TASK_RETENTION_MS = 31 * 24 * 3_600_000;

interface Expiry {
  readonly atMs: number;
  readonly task: TaskRecord;
}

export class Retention {
  readonly #heap = new MinHeap<Expiry>((a, b) => a.atMs < b.atMs);
  #timer: Timer | undefined;
  #timerAtMs = Number.POSITIVE_INFINITY;

  constructor(
    private readonly deps: {
      clock: Clock;
      store: () => Store;
      retentionMs: number;
      log: (line: string) => void;
    },
  ) {}

  /** Starts a new task's time. */
  track(task: TaskRecord): void {
    this.#heap.push({ atMs: task.createTimeMs + this.deps.retentionMs, task });
    this.#arm();
  }

  stop(): void {
    this.#timer?.cancel();
    this.#timer = undefined;
  }

  #arm(): void {
    const next = this.#heap.peek();
    if (!next || next.atMs >= this.#timerAtMs) return;
    this.#timer?.cancel();
    this.#timerAtMs = next.atMs;
    this.#timer = this.deps.clock.setTimeout(
      () => this.#expire(),
      Math.max(0, next.atMs - this.deps.clock.now()),
    );
  }

  #expire(): void {
    this.#timer = undefined;
    this.#timerAtMs = Number.POSITIVE_INFINITY;
    const now = this.deps.clock.now();
    for (let next = this.#heap.peek(); next && next.atMs <= now; next = this.#heap.peek()) {
      this.#heap.pop();
      if (next.task.deleted) continue;
      this.deps.store().removeTask(next.task, now);
      this.deps.log(`task ${next.task.name} deleted: 31 days after its creation`);
    }
    this.#arm();
  }
}
