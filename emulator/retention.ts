/**
 * Cloud Tasks' task retention: every task is deleted 31 days after it was created, whatever its state, and
 * its name stays reserved like any deleted task's. One due-time heap and one clock timer for every task.
 * Tasks that end sooner (succeeded, failed for good, deleted) are swept from the heap in bulk each time it
 * has doubled, so a long run does not keep every finished task in memory for 31 days.
 */
import type { Clock, Timer } from './clock.js';
import { MinHeap } from './heap.js';
import type { TaskRecord } from './model.js';
import type { Store } from './store.js';

/** How long Cloud Tasks keeps a task: 31 days from its createTime. */
export const TASK_RETENTION_MS = 31 * 24 * 3_600_000;

// Below this many entries the heap is never swept: the sweep would cost more than the memory it frees.
const MIN_SWEEP_SIZE = 1024;

interface Expiry {
  readonly atMs: number;
  readonly task: TaskRecord;
}

export class Retention {
  readonly #heap = new MinHeap<Expiry>((a, b) => a.atMs < b.atMs);
  #timer: Timer | undefined;
  #timerAtMs = Number.POSITIVE_INFINITY;
  /** The heap's size after the last sweep: the next one comes when it has doubled. */
  #sweptSize = 0;

  constructor(
    private readonly deps: {
      clock: Clock;
      store: () => Store;
      retentionMs: number;
      log: (line: string) => void;
    },
  ) {
    if (!(deps.retentionMs > 0)) {
      throw new RangeError(
        `taskRetentionMs must be a positive number of milliseconds, not ${deps.retentionMs}`,
      );
    }
  }

  /**
   * Starts a new task's time. A task already past its retention (a seed's old createTime) is deleted at
   * once, so it is never seen nor dispatched.
   */
  track(task: TaskRecord): void {
    const atMs = task.createTimeMs + this.deps.retentionMs;
    if (atMs <= this.deps.clock.now()) return this.#delete(task, this.deps.clock.now());
    this.#sweep();
    this.#heap.push({ atMs, task });
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
      this.#delete(next.task, now);
    }
    this.#arm();
  }

  #delete(task: TaskRecord, nowMs: number): void {
    if (task.deleted) return;
    this.deps.store().removeTask(task, nowMs);
    this.deps.log(`task ${task.name} deleted: its retention (${this.deps.retentionMs} ms) ended`);
  }

  // Amortised O(1) per task: a sweep costs O(n) and comes only after the heap doubled since the last one.
  #sweep(): void {
    const size = this.#heap.size;
    if (size < MIN_SWEEP_SIZE || size < 2 * this.#sweptSize) return;
    this.#heap.retain((entry) => !entry.task.deleted);
    this.#sweptSize = this.#heap.size;
  }
}
