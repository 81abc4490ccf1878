/**
 * Redrive's second reads by listing (docs/redrive.md "Batch calls"): before an original is deleted it must
 * be seen idle after its copy exists. The second reads asked of one queue within a short gathering are
 * answered by one BASIC listing of the queue when that is cheaper than a GetTask each and the run's list
 * budget allows; otherwise, and for every task the listing did not show, by a GetTask of its own. The
 * listing starts after every read it answers was asked, so what it shows was seen after each copy existed.
 */
import type { CloudTasksClient, Task } from '../cloud-tasks/client.js';
import type { QueueName, TaskName } from '../cloud-tasks/names.js';
import { OUT_OF_TIME, type Budget } from './budget.js';
import { listingPays, pagesOf, type ListBudget } from './list-budget.js';
import type { RedriveCalls, Stop } from './redrive-calls.js';

export interface SecondReadsDeps {
  readonly tasks: CloudTasksClient;
  /** The per-task reads (bounded by RERUN_REDRIVE_CONCURRENCY). */
  readonly calls: RedriveCalls;
  readonly budget: Budget;
  readonly lists: ListBudget;
  /** How long the first read asked of a queue waits for others to join it. */
  readonly gatherMs: number;
}

type Answer = Task | Stop;

/** The second reads asked of one queue and not yet answered. */
interface QueueReads {
  waiting: Map<string, { readonly name: TaskName; readonly answers: ((answer: Answer) => void)[] }>;
  /** Tasks in the queue when it was last listed (the plan's count, doubled for the copies, before that). */
  size: number;
  timer: NodeJS.Timeout | undefined;
  reading: boolean;
}

export class SecondReads {
  readonly #queues = new Map<string, QueueReads>();

  constructor(private readonly deps: SecondReadsDeps) {}

  /** The task as it is now, read after this call was made; `plannedSize`: the tasks the plan listed. */
  read(queue: QueueName, plannedSize: number, name: TaskName): Promise<Answer> {
    let reads = this.#queues.get(queue.name);
    if (!reads) {
      reads = { waiting: new Map(), size: 2 * plannedSize, timer: undefined, reading: false };
      this.#queues.set(queue.name, reads);
    }
    const queueReads = reads;
    return new Promise<Answer>((resolve) => {
      const waiting = queueReads.waiting.get(name.name);
      if (waiting) waiting.answers.push(resolve);
      else queueReads.waiting.set(name.name, { name, answers: [resolve] });
      this.#schedule(queue, queueReads);
    });
  }

  #schedule(queue: QueueName, reads: QueueReads): void {
    if (reads.timer !== undefined || reads.reading || reads.waiting.size === 0) return;
    reads.timer = setTimeout(() => void this.#answer(queue, reads), this.deps.gatherMs);
  }

  /** Answers every read waiting now: by one listing when it pays and fits the budget, else one by one. */
  async #answer(queue: QueueName, reads: QueueReads): Promise<void> {
    reads.timer = undefined;
    reads.reading = true;
    const waiting = reads.waiting;
    reads.waiting = new Map();
    try {
      const pages = pagesOf(reads.size);
      const listed =
        listingPays(waiting.size, reads.size) && this.deps.lists.tryTake(pages)
          ? await this.#list(queue, reads, pages, waiting)
          : undefined;
      await Promise.all(
        [...waiting.values()].map(async ({ name, answers }) => {
          // A task the listing did not show is read on its own: a paged listing is not a snapshot.
          const answer = listed?.get(name.name) ?? (await this.deps.calls.read(name, 'BASIC'));
          for (const send of answers) send(answer);
        }),
      );
    } finally {
      reads.reading = false;
      this.#schedule(queue, reads);
    }
  }

  /** The waiting tasks the listing shows; undefined when it failed or ran out of time. */
  async #list(
    queue: QueueName,
    reads: QueueReads,
    paid: number,
    waiting: ReadonlyMap<string, unknown>,
  ): Promise<Map<string, Task> | undefined> {
    const { tasks, budget, lists } = this.deps;
    const shown = new Map<string, Task>();
    const pages = tasks.listTasks(queue)[Symbol.asyncIterator]();
    let listedPages = 0;
    let size = 0;
    try {
      for (;;) {
        const page = await budget.race(pages.next());
        if (page === OUT_OF_TIME) return undefined;
        if (page.done) break;
        if (++listedPages > paid) lists.count();
        size += page.value.length;
        for (const task of page.value) if (waiting.has(task.name)) shown.set(task.name, task);
      }
    } catch {
      return undefined;
    } finally {
      void pages.return?.();
    }
    reads.size = size;
    return shown;
  }
}
