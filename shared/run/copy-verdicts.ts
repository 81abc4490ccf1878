/**
 * Redrive's verdicts (docs/redrive.md "Verdicts"): when a queue holds many copies awaiting their verdict,
 * one listing of the queue reads them all, in place of a GetTask per copy every interval. When the copies
 * are few among many tasks, each is read on its own (verify.ts). A paged listing is not a snapshot, so a
 * copy missing from one listing is taken as succeeded only once a second listing misses it too, or, when
 * its window has ended, a GetTask finds it gone: the breaker is never fed a success that was a listing's
 * gap.
 */
import type { CloudTasksClient, Task } from '../cloud-tasks/client.js';
import { parseTaskName, type QueueName } from '../cloud-tasks/names.js';
import type { Budget } from './budget.js';
import { listingPays, listPaid, pagesOf, type ListBudget } from './list-budget.js';
import {
  hasCompletedSince,
  readIntervalMs,
  tellWhenRead,
  type Verifier,
  type VerdictListener,
  type VerdictResult,
} from './verify.js';

/** Listings in a row that must miss a copy before it counts as succeeded. */
const MISSES_TO_SUCCEED = 2;
/** The first listing this long after the earliest copy falls due: most targets answer within it. */
const FIRST_LISTING_MS = 500;

/** One copy waiting for its verdict by listing. */
export interface WaitingCopy {
  /** A listing that started before this cannot judge the copy: it falls due then, and exists since. */
  readonly fromMs: number;
  readonly untilMs: number;
  misses: number;
  /** Told the verdict, or that the listing loop threw (nothing it expects throws). */
  readonly listener: VerdictListener;
}

/** What a listing leaves to one GetTask: a copy it missed whose window has ended. */
export const CONFIRM_BY_READ = 'confirm-by-read';

/**
 * What one listing says of the copies waiting (no I/O; it counts each copy's misses): a listed copy whose
 * attempt completed failed again; a copy missing from MISSES_TO_SUCCEED listings in a row succeeded. Once
 * a copy's window has ended, it is running, or, when the listings missed it, left to one read to confirm
 * (CONFIRM_BY_READ). A listing that started before a copy was due cannot judge it; `listing` undefined:
 * the listing failed. Returns the judgements given, by copy name.
 */
export function judgeListing(
  waiting: ReadonlyMap<string, WaitingCopy>,
  listing: { readonly tasks: ReadonlyMap<string, Task>; readonly fromMs: number } | undefined,
  nowMs: number,
): Map<string, VerdictResult | typeof CONFIRM_BY_READ> {
  const verdicts = new Map<string, VerdictResult | typeof CONFIRM_BY_READ>();
  for (const [name, copy] of waiting) {
    if (listing && copy.fromMs <= listing.fromMs) {
      const task = listing.tasks.get(name);
      copy.misses = task === undefined ? copy.misses + 1 : 0;
      if (task !== undefined && hasCompletedSince(task, NOT_ATTEMPTED)) {
        // Listed while its next attempt runs, the failed attempt's status is no longer shown.
        const status = task.lastAttempt?.responseStatus?.message ?? 'failed; its next attempt is running';
        verdicts.set(name, { verdict: 'failed-again', status });
        continue;
      }
      if (copy.misses >= MISSES_TO_SUCCEED) {
        verdicts.set(name, { verdict: 'succeeded' });
        continue;
      }
    }
    if (nowMs >= copy.untilMs) verdicts.set(name, copy.misses > 0 ? CONFIRM_BY_READ : { verdict: 'running' });
  }
  return verdicts;
}

/** The counts of a copy as it was made. */
const NOT_ATTEMPTED: Task = { name: '', dispatchCount: 0, responseCount: 0 };

/** A copy as it was made: not yet attempted. */
function unattempted(copy: string): Task {
  return { name: copy, dispatchCount: 0, responseCount: 0 };
}

export interface CopyVerdictsDeps {
  readonly tasks: CloudTasksClient;
  readonly budget: Budget;
  /** The run's list calls: a verdict listing waits until it fits. */
  readonly lists: ListBudget;
  /** Reads one copy back: for copies few among many tasks. */
  readonly verifier: Verifier;
}

/** The copies of one queue waiting for a verdict by listing, and the one loop that lists for them. */
interface QueueWatch {
  readonly waiting: Map<string, WaitingCopy>;
  /** Copies of the queue read back on their own right now (the others are `waiting`). */
  readAlone: number;
  /** Tasks in the queue the last time it was listed (the plan's count before that). */
  size: number;
  intervalMs: number;
  loop: Promise<void> | undefined;
}

export class CopyVerdicts {
  /** ListTasks calls made for verdicts. */
  listCalls = 0;
  readonly #watches = new Map<string, QueueWatch>();

  constructor(private readonly deps: CopyVerdictsDeps) {}

  /**
   * Reads back the copy named `copy`, of a queue that held `queueSize` tasks when planned (a ReadBack,
   * verify.ts): by listing when the queue's waiting copies outnumber its pages, else by reading it. Its
   * window starts when it falls due.
   */
  verdictOf(
    queue: QueueName,
    queueSize: number,
    copy: string,
    dueMs: number,
    windowMs: number,
    listener: VerdictListener,
  ): void {
    const watch = this.#watchOf(queue, queueSize);
    // This copy among those awaiting a verdict either way.
    const awaiting = watch.readAlone + watch.waiting.size + 1;
    if (!listingPays(awaiting, watch.size + awaiting)) {
      watch.readAlone++;
      const verdict = this.deps.verifier
        .verdictOf(parseTaskName(copy)!, unattempted(copy), windowMs, true, dueMs)
        .finally(() => watch.readAlone--);
      tellWhenRead(verdict, listener);
      return;
    }
    const { budget } = this.deps;
    const fromMs = Math.max(budget.now(), dueMs);
    const untilMs = Math.min(fromMs + windowMs, budget.deadlineMs);
    watch.intervalMs = Math.min(watch.intervalMs, readIntervalMs(windowMs));
    // A copy waiting by listing is this entry alone (thousands wait at once).
    watch.waiting.set(copy, { fromMs, untilMs, misses: 0, listener });
    watch.loop ??= this.#listUntilSettled(queue, watch)
      .catch((error: unknown) => {
        for (const waiting of watch.waiting.values()) waiting.listener.failed(error);
        watch.waiting.clear();
      })
      .finally(() => (watch.loop = undefined));
  }

  #watchOf(queue: QueueName, queueSize: number): QueueWatch {
    let watch = this.#watches.get(queue.name);
    if (!watch) {
      watch = {
        waiting: new Map(),
        readAlone: 0,
        size: queueSize,
        intervalMs: Number.POSITIVE_INFINITY,
        loop: undefined,
      };
      this.#watches.set(queue.name, watch);
    }
    return watch;
  }

  /** Lists the queue while copies wait, each listing no sooner than the earliest copy falls due. */
  async #listUntilSettled(queue: QueueName, watch: QueueWatch): Promise<void> {
    const { budget } = this.deps;
    let nextMs = budget.now();
    while (watch.waiting.size > 0) {
      let earliestMs = Number.POSITIVE_INFINITY;
      for (const copy of watch.waiting.values()) earliestMs = Math.min(earliestMs, copy.fromMs);
      const firstMs = earliestMs + Math.min(FIRST_LISTING_MS, watch.intervalMs);
      const pages = pagesOf(watch.size);
      const { lists } = this.deps;
      // A verdict listing leaves the list budget's whole burst to second reads, which cannot wait.
      await budget.sleepUntil(Math.max(nextMs, firstMs, lists.fitsAtMs(lists.burst)));
      // Another listing of the run took the budget meanwhile: wait again.
      if (!budget.isOver() && !lists.tryTake(pages, lists.burst)) continue;
      nextMs = budget.now() + watch.intervalMs;
      await this.#judge(queue, watch, pages);
    }
  }

  /** One listing of the queue, and the verdicts it gives (their own call: the listing is let go after). */
  async #judge(queue: QueueName, watch: QueueWatch, pages: number): Promise<void> {
    const { budget } = this.deps;
    const fromMs = budget.now();
    const listing = budget.isOver() ? undefined : await this.#list(queue, pages, watch.waiting);
    if (listing) watch.size = listing.size;
    const verdicts = judgeListing(watch.waiting, listing && { tasks: listing.shown, fromMs }, budget.now());
    if (budget.isOver()) for (const name of watch.waiting.keys()) verdicts.set(name, { verdict: 'running' });
    for (const [name, verdict] of verdicts) {
      const { listener } = watch.waiting.get(name)!;
      watch.waiting.delete(name);
      if (verdict !== CONFIRM_BY_READ) listener.verdict(verdict);
      else tellWhenRead(this.deps.verifier.lastRead(parseTaskName(name)!, unattempted(name), true), listener);
    }
  }

  /**
   * The waiting copies the listing shows, by name, and how many tasks it listed; undefined when the
   * listing failed or ran out of time (no verdict from it: the next interval lists again).
   */
  async #list(
    queue: QueueName,
    paid: number,
    waiting: ReadonlyMap<string, WaitingCopy>,
  ): Promise<{ shown: Map<string, Task>; size: number } | undefined> {
    const shown = new Map<string, Task>();
    let size = 0;
    const pages = await listPaid(this.deps, queue, paid, (page) => {
      this.listCalls++;
      size += page.length;
      for (const task of page) if (waiting.has(task.name)) shown.set(task.name, task);
    });
    return pages === undefined ? undefined : { shown, size };
  }
}
