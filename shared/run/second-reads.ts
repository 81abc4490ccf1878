/**
 * Redrive's second reads by listing (docs/redrive.md "Batch calls"): before an original is deleted it must
 * be seen idle after its copy exists. The second reads asked of one queue are gathered until the first of
 * them must be answered (its copy falls due soon), at most MAX_GATHER_MS, and answered by one BASIC listing
 * of the queue when that is cheaper than a GetTask each and the run's list budget allows; otherwise, and for
 * every task the listing did not show, by a GetTask of its own. A read that can wait for the budget to have
 * room waits for the next listing. The listing starts after every read it answers was asked, so what it
 * shows was seen after each copy existed.
 */
import type { CloudTasksClient, Task } from '../cloud-tasks/client.js';
import type { QueueName, TaskName } from '../cloud-tasks/names.js';
import type { Budget } from './budget.js';
import { listingPays, listPaid, pagesOf, type ListBudget } from './list-budget.js';
import type { RedriveCalls, Stop } from './redrive-calls.js';

export interface SecondReadsDeps {
  readonly tasks: CloudTasksClient;
  /** The per-task reads (bounded by RERUN_REDRIVE_CONCURRENCY). */
  readonly calls: RedriveCalls;
  readonly budget: Budget;
  readonly lists: ListBudget;
}

/** The longest the first read asked of a queue waits for others to join it. */
const MAX_GATHER_MS = 5_000;
/** A listing's page is taken to last this long until one was timed. */
const FIRST_PAGE_MS_GUESS = 100;
/**
 * The oldest a listed state may be when it answers a read. A listing that took longer than reckoned (a
 * queue larger than its first pages showed, slow pages) has first pages older than an attempt started
 * since may be: the tasks on them are read again one by one, since the move deletes the original on the
 * answer.
 */
const MAX_LISTED_AGE_MS = 3_000;

type Answer = Task | Stop;

/** A task as a listing showed it, and when its page came. */
interface Listed {
  readonly task: Task;
  readonly atMs: number;
}

/**
 * Who waits for a task's second read: told the answer once, or why there is none. An object rather than a
 * promise: thousands of moves wait for their second read at once, for seconds (docs/performance.md "Memory").
 */
export interface SecondReader {
  secondRead(answer: Answer): void;
  readFailed(error: unknown): void;
}

/** One task's second reads waiting, and when the first of them must be answered. */
interface WaitingRead {
  readonly name: TaskName;
  readonly readers: SecondReader[];
  answerByMs: number;
}

/** The second reads asked of one queue and not yet answered. */
interface QueueReads {
  waiting: Map<string, WaitingRead>;
  /** When the reads waiting must start being answered (a listing's time before the first must be done). */
  answerByMs: number;
  /** Tasks in the queue when it was last listed (the plan's count, doubled for the copies, before that). */
  size: number;
  /** How long a page of the last listing took. */
  pageMs: number;
  timer: NodeJS.Timeout | undefined;
  timerAtMs: number;
  reading: boolean;
}

export class SecondReads {
  readonly #queues = new Map<string, QueueReads>();

  constructor(private readonly deps: SecondReadsDeps) {}

  /**
   * Tells `reader` the task as it is now, read after this call was made, by `answerByMs` if it can be (a
   * read that cannot wait for a listing is made on its own); `plannedSize`: the tasks the plan listed.
   */
  read(
    queue: QueueName,
    plannedSize: number,
    name: TaskName,
    answerByMs: number,
    reader: SecondReader,
  ): void {
    let reads = this.#queues.get(queue.name);
    if (!reads) {
      reads = {
        waiting: new Map(),
        answerByMs: Number.POSITIVE_INFINITY,
        size: 2 * plannedSize,
        pageMs: FIRST_PAGE_MS_GUESS,
        timer: undefined,
        timerAtMs: Number.POSITIVE_INFINITY,
        reading: false,
      };
      this.#queues.set(queue.name, reads);
    }
    const waiting = reads.waiting.get(name.name);
    if (waiting) {
      waiting.readers.push(reader);
      waiting.answerByMs = Math.min(waiting.answerByMs, answerByMs);
    } else reads.waiting.set(name.name, { name, readers: [reader], answerByMs });
    reads.answerByMs = Math.min(reads.answerByMs, answerByMs);
    this.#schedule(queue, reads);
  }

  /** The answer starts once the first read waiting must be answered, less a listing's time. */
  #schedule(queue: QueueName, reads: QueueReads): void {
    if (reads.reading || reads.waiting.size === 0) return;
    const { budget } = this.deps;
    const nowMs = budget.now();
    if (reads.timer === undefined) reads.timerAtMs = nowMs + MAX_GATHER_MS;
    const atMs = Math.min(reads.timerAtMs, reads.answerByMs - pagesOf(reads.size) * reads.pageMs);
    if (reads.timer !== undefined && atMs >= reads.timerAtMs) return;
    clearTimeout(reads.timer);
    reads.timerAtMs = atMs;
    reads.timer = setTimeout(() => void this.#answer(queue, reads), Math.max(0, atMs - nowMs));
  }

  /**
   * Answers the reads waiting now: by one listing when it pays and fits the budget, else one by one. When
   * the budget has no room yet, the reads that can wait for it (and for a listing's time) wait for the
   * next listing, and only the others are read one by one.
   */
  async #answer(queue: QueueName, reads: QueueReads): Promise<void> {
    reads.timer = undefined;
    const waiting = reads.waiting;
    reads.waiting = new Map();
    reads.answerByMs = Number.POSITIVE_INFINITY;
    const pages = pagesOf(reads.size);
    let listed: Map<string, Listed> | undefined;
    if (listingPays(waiting.size, reads.size)) {
      if (this.deps.lists.tryTake(pages)) {
        reads.reading = true;
        try {
          listed = await this.#list(queue, reads, pages, waiting);
        } finally {
          reads.reading = false;
        }
      } else this.#waitForRoom(reads, waiting, pages);
    }
    // Reads asked from now on wait for a listing that starts after them; the rest are read one by one.
    this.#schedule(queue, reads);
    const nowMs = this.deps.budget.now();
    for (const read of waiting.values()) {
      const shown = listed?.get(read.name.name);
      // A task the listing did not show is read on its own: a paged listing is not a snapshot. So is one
      // whose page is too old (MAX_LISTED_AGE_MS).
      if (shown && nowMs - shown.atMs <= MAX_LISTED_AGE_MS) tell(read.readers, shown.task);
      else readAlone(this.deps.calls, read.name, read.readers);
    }
  }

  /** Moves the reads that can wait until the list budget has room for `pages`, and a listing, back to wait. */
  #waitForRoom(reads: QueueReads, waiting: Map<string, WaitingRead>, pages: number): void {
    const listedByMs = this.deps.lists.fitsAtMs() + pages * reads.pageMs;
    for (const [name, read] of waiting) {
      if (read.answerByMs < listedByMs) continue;
      waiting.delete(name);
      reads.waiting.set(name, read);
      reads.answerByMs = Math.min(reads.answerByMs, read.answerByMs);
    }
  }

  /** The waiting tasks the listing shows; undefined when it failed or ran out of time. */
  async #list(
    queue: QueueName,
    reads: QueueReads,
    paid: number,
    waiting: ReadonlyMap<string, unknown>,
  ): Promise<Map<string, Listed> | undefined> {
    const { budget } = this.deps;
    const shown = new Map<string, Listed>();
    const startMs = budget.now();
    let size = 0;
    const pages = await listPaid(this.deps, queue, paid, (page) => {
      size += page.length;
      const atMs = budget.now();
      for (const task of page) if (waiting.has(task.name)) shown.set(task.name, { task, atMs });
    });
    if (pages === undefined) return undefined;
    reads.size = size;
    reads.pageMs = (budget.now() - startMs) / Math.max(1, pages);
    return shown;
  }
}

/** Tells `readers` the task as a GetTask of its own (BASIC) reads it now. */
export function readAlone(calls: RedriveCalls, name: TaskName, readers: readonly SecondReader[]): void {
  calls
    .read(name, 'BASIC')
    .then((answer) => tell(readers, answer))
    .catch((error: unknown) => {
      for (const reader of readers) reader.readFailed(error);
    });
}

function tell(readers: readonly SecondReader[], answer: Answer): void {
  for (const reader of readers) reader.secondRead(answer);
}
