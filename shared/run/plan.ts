/**
 * The plan stage (docs/selection.md): which queues a request covers, each queue's state and limits, and its tasks page
 * by page as they arrive, each page split into candidates and skips by the pure selection rules.
 */
import { QueueState } from './queue-state.js';
import { retryPolicyOf, type RetryPolicy } from './park-rules.js';
import type { ListBudget } from './list-budget.js';
import { bodyBytesOf, letBodyGo } from '../cloud-tasks/body-bytes.js';
import {
  FIRST_FULL_TASK_PAGE_SIZE,
  FULL_TASK_PAGE_SIZE,
  MAX_FULL_PAGE_BODY_BYTES,
  toCloudTasksError,
  type CloudTasksClient,
  type CloudTasksError,
  type Queue,
  type Task,
} from '../cloud-tasks/client.js';
import type { RerunRequest } from '../triggers/events.js';
import type { Logger } from '../platform/log.js';
import {
  isParkingQueue,
  isQueueAllowed,
  parseQueueName,
  taskNameOfQueue,
  type QueueName,
  type TaskName,
} from '../cloud-tasks/names.js';
import { Pacer, rateOf, type QueueAttempts, type Semaphore } from './pace.js';
import type { QueueReport, TaskRow } from './settle.js';
import { actionFor, outcomeOfFailedRead } from '../cloud-tasks/retry.js';
import type { Scope } from '../triggers/scope.js';
import { queueSkipReason, selectTask, type SelectionRules, type SkipReason } from './select.js';

/** One queue of the run: its limits, and the state every later stage of its tasks shares. */
export interface QueueRun {
  readonly queue: QueueName;
  /** Where its tasks are listed: the queue itself, or (unpark) its parking queue. */
  readonly listed: QueueName;
  readonly report: QueueReport;
  /** The process's RunTask pacer, the request's and the queue's own rate. */
  readonly pacers: readonly Pacer[];
  /** Redrive's pace: the request's and the queue's own rate, without the RunTask quota. */
  readonly copyPacers: readonly Pacer[];
  /** The queue's RetryConfig: the last-attempt rule's limits, and parking's backoffs. */
  readonly retry: RetryPolicy;
  /** A rule that skips every task of the queue (paused, disabled, serial). */
  readonly skipReason: SkipReason | undefined;
  /** The due-soon rule holds unless the queue, as last read, is PAUSED and the request says `force`. */
  readonly dueSoonApplies: boolean;
  /** Forced attempts still running count against the queue's maxConcurrentDispatches (docs/execution.md "Queue concurrency"). */
  readonly attemptsRunning: Semaphore;
  /** The queue's state, read again as the run goes (paused or disabled meanwhile, or stopped). */
  readonly state: QueueState;
  /** The queue sends its HTTP tasks elsewhere than their own URL (`httpTarget.uriOverride`). */
  readonly overridesUrl: boolean;
}

/** A matched task that passed the rules on its listed state. */
export interface Candidate {
  readonly name: TaskName;
  /** The task as listed, without body and headers. */
  readonly listed: Task;
  readonly queue: QueueRun;
  /** With a FULL listing: the task with its body and headers, for the copy stage to take once. */
  readonly full?: Handover<Task> | undefined;
}

/**
 * A candidate once its flow starts: what acting on it needs. Its listed state stays behind with the plan
 * and the gate, so a task under way for seconds holds only its name, its queue and (until copied) its body
 * (docs/performance.md "Memory").
 */
export type TaskUnderWay = Pick<Candidate, 'name' | 'queue' | 'full'>;

/**
 * The task under way without what was listed of it, so that the mode reads it afresh; a listed body is
 * let go (docs/claims.md "Reserved names").
 */
export function listedStateDropped(candidate: TaskUnderWay): TaskUnderWay {
  const listed = candidate.full?.take();
  if (listed) letBodyGo(listed);
  return { name: candidate.name, queue: candidate.queue };
}

/** A value handed over once: taken, it is no longer held here (a page's bodies live until copied). */
export class Handover<T> {
  #value: T | undefined;
  constructor(value: T) {
    this.#value = value;
  }
  take(): T | undefined {
    const value = this.#value;
    this.#value = undefined;
    return value;
  }
}

/** One page, split. */
export interface PlannedPage {
  readonly candidates: Candidate[];
  /** Outcomes known from the listing alone (skips, gone, invalid names). */
  readonly rows: TaskRow[];
  /** Every matched task of the page, as listed (candidates and skips): what failure clusters count. */
  readonly matched: Task[];
  /** The name of every task the page listed. */
  readonly listedNames: string[];
  /** The bytes of the bodies the page listed (FULL view): what it holds until their copies exist. */
  readonly bodyBytes: number;
}

export interface PlanDeps {
  readonly tasks: CloudTasksClient;
  /** The process-wide RunTask pacer. */
  readonly pacer: Pacer;
  /** The process-wide bounds on forced attempts running, per queue. */
  readonly queueAttempts: QueueAttempts;
  readonly log: Logger;
  readonly now: () => number;
  readonly mode: PlanMode;
  /** The run's list calls: the selection's listing counts toward them. */
  readonly lists: ListBudget;
}

/** What the plan asks of the run's mode (modes.ts). */
export interface PlanMode {
  /** Canaries may lift the last-attempt rule: it then waits for the fresh read. */
  readonly canary: { readonly count: number; readonly waitMs: number } | undefined;
  /** A copy starts its attempts again: the last-attempt rule is for RunTask only (docs/redrive.md "Per task"). */
  readonly startsAttemptsAgain: boolean;
  /** RunTask bypasses the queue's maxConcurrentDispatches: a serial queue is then forced only with force. */
  readonly bypassesDispatchLimit: boolean;
  /** The pacers a task of the queue waits for. */
  pacersOf(queue: Pick<QueueRun, 'pacers' | 'copyPacers'>): readonly Pacer[];
  /** A listed task this run made itself (a redrive's copy): not its work. */
  isOwnWork(task: string): boolean;
  /** Whether the mode needs each task's body and headers (redrive, by batch: docs/redrive.md "Batch calls"). */
  readonly readsBodies: boolean;
  /** Where the tasks are listed when not in the queue itself (unpark: docs/parking.md "Unparking"). */
  readonly listing?: Listing | undefined;
}

/** A listing of other tasks than the queue's own: its parking queue's, in the FULL view. */
export interface Listing {
  queueOf(queue: QueueName): QueueName;
  /** The task as the selection rules read it (a parked task: its original's recorded values). */
  asSelected(task: Task): Task;
  /** The listing's own rule: why a matched task stays where it is. */
  skipReasonOf(task: Task): SkipReason | undefined;
  /** What a dry run points out about a candidate before it is moved. */
  notesOf(candidate: Candidate): string[];
}

/**
 * A FULL listing of a queue goes on past its first page only when most of that page's tasks are
 * candidates (and their bodies small: MAX_FULL_PAGE_BODY_BYTES); otherwise the queue is listed again in the
 * BASIC view and each candidate read on its own.
 */
const CANDIDATES_PER_PAGE_TO_LIST_BODIES = 0.5;

/** The plan of one request: its queues, their pages, and the queue errors met on the way. */
export class Plan {
  /** Paces this request's own rate across its queues, when it asked for one. */
  readonly #requestPacer: Pacer | undefined;
  readonly #queueReports: QueueReport[] = [];
  /** The first "cannot reach Cloud Tasks" error, if any. */
  #unreachable: CloudTasksError | undefined;
  /** Every matched task listed so far: each has one outcome, however often it is listed. */
  readonly #matchedNames = new Set<string>();

  constructor(
    private readonly request: RerunRequest,
    private readonly scope: Scope,
    private readonly deps: PlanDeps,
  ) {
    this.#requestPacer = request.maxRatePerSecond ? new Pacer(request.maxRatePerSecond) : undefined;
  }

  /** Each queue's line of the report, in the order met. */
  get queueReports(): readonly QueueReport[] {
    return this.#queueReports;
  }

  /** The first "cannot reach Cloud Tasks" error, if any. */
  get unreachable(): CloudTasksError | undefined {
    return this.#unreachable;
  }

  /** A queue the budget left no time to open: reported incomplete (undone). */
  notReached(queue: QueueName): void {
    this.#newReport(queue.name);
  }

  /** The scope's queues, with allowlist patterns expanded by listing their location's queues. */
  async queueNames(): Promise<QueueName[]> {
    const queues = new Map(this.scope.queues.map((q) => [q.name, q]));
    for (const pattern of this.scope.patterns) {
      if (pattern.project === '*' || pattern.location === '*') {
        this.#newReport(pattern.pattern).error = 'cannot list: name the project and location';
        continue;
      }
      let listed = false;
      try {
        for await (const page of this.deps.tasks.listQueues(pattern)) {
          listed = true;
          for (const { name } of page) {
            const queue = parseQueueName(name);
            if (
              queue &&
              queue.name !== this.scope.controlQueue &&
              !isParkingQueue(queue) &&
              isQueueAllowed(queue, [pattern])
            )
              queues.set(queue.name, queue);
          }
        }
      } catch (error) {
        // Broken off once a page came, whatever the error: the later pages' queues were never opened.
        const report = this.#newReport(pattern.pattern);
        if (listed) report.brokenOff = true;
        this.#queueFailed(report, error);
      }
    }
    return [...queues.values()];
  }

  /** Reads the queue's state and limits; undefined (and the queue reported incomplete) when it cannot. */
  async openQueue(queue: QueueName): Promise<QueueRun | undefined> {
    const report = this.#newReport(queue.name);
    let state: Queue;
    try {
      state = await this.deps.tasks.getQueue(queue);
    } catch (error) {
      this.#queueFailed(report, error);
      return undefined;
    }
    const queueRate = state.rateLimits?.maxDispatchesPerSecond;
    const queuePacer = queueRate ? new Pacer(queueRate) : undefined;
    const copyPacers = [this.#requestPacer, queuePacer].filter((p): p is Pacer => p !== undefined);
    const pacers = [this.deps.pacer, ...copyPacers];
    report.state = state.state ?? 'STATE_UNSPECIFIED';
    const { mode } = this.deps;
    const rate = rateOf(mode.pacersOf({ pacers, copyPacers }));
    if (rate !== undefined) report.rate = rate;
    const rule = { force: this.request.force, bypassesDispatchLimit: mode.bypassesDispatchLimit };
    const concurrencyOf = (read: Queue): number =>
      read.rateLimits?.maxConcurrentDispatches ?? Number.MAX_SAFE_INTEGER;
    const dueSoonAppliesTo = (read: Queue): boolean => !(read.state === 'PAUSED' && this.request.force);
    const attemptsRunning = this.deps.queueAttempts.of(queue.name, concurrencyOf(state));
    let dueSoonApplies = dueSoonAppliesTo(state);
    // Each state read again brings the queue's rate, concurrency and state (docs/execution.md "Pacing").
    const onRead = (read: Queue): void => {
      const readRate = read.rateLimits?.maxDispatchesPerSecond;
      if (readRate) queuePacer?.setRate(readRate);
      attemptsRunning.setLimit(concurrencyOf(read));
      dueSoonApplies = dueSoonAppliesTo(read);
    };
    return {
      queue,
      listed: mode.listing?.queueOf(queue) ?? queue,
      report,
      pacers,
      copyPacers,
      retry: retryPolicyOf(state),
      skipReason: queueSkipReason(state, rule.force, rule.bypassesDispatchLimit),
      get dueSoonApplies(): boolean {
        return dueSoonApplies;
      },
      attemptsRunning,
      state: new QueueState(this.deps, queue, rule, state, onRead),
      // IF_NOT_EXISTS leaves a task that has its own URL (every HTTP task) where it is.
      overridesUrl:
        state.httpTarget?.uriOverride !== undefined &&
        state.httpTarget.uriOverride.uriOverrideEnforceMode !== 'IF_NOT_EXISTS',
    };
  }

  /** The queue's pages, split into candidates and rows. A listing that breaks off marks the queue incomplete. */
  async *pages(run: QueueRun): AsyncIterable<PlannedPage> {
    let listed = false;
    try {
      for await (const page of this.#taskPages(run)) {
        listed = true;
        yield page;
      }
      run.report.complete = true;
    } catch (error) {
      // A home queue without a parking queue has nothing parked (docs/parking.md "Unparking").
      if (!listed && this.deps.mode.listing && toCloudTasksError(error).status === 'NOT_FOUND') {
        run.report.complete = true;
        return;
      }
      // Broken off once it started, whatever the error; refused at its first page, as the error says.
      if (listed) run.report.brokenOff = true;
      this.#queueFailed(run.report, error);
    }
  }

  /** The per-task rules on a task's state, listed or fresh. */
  rulesFor(run: QueueRun, allowLastAttempt: boolean): SelectionRules {
    return {
      match: this.request.match,
      clusters: this.request.clusters,
      cutoffMs: this.request.cutoffMs,
      minBackoffLeftMs: this.request.minBackoffLeftMs,
      dueSoonApplies: run.dueSoonApplies,
      retry: run.retry,
      allowLastAttempt: allowLastAttempt || this.deps.mode.startsAttemptsAgain,
      nowMs: this.deps.now(),
    };
  }

  async *#taskPages(run: QueueRun): AsyncIterable<PlannedPage> {
    const named = this.scope.tasksByQueue?.get(run.queue.name);
    if (!named) {
      const { mode } = this.deps;
      if (mode.listing) yield* this.#list(run, 'FULL');
      else yield* mode.readsBodies ? this.#listWithBodies(run) : this.#list(run, 'BASIC');
      return;
    }
    for (const task of named) {
      try {
        yield this.#split([await this.deps.tasks.getTask(task)], run, 'BASIC');
      } catch (error) {
        const failure = toCloudTasksError(error);
        if (actionFor(failure) === 'stop-queue') throw failure;
        run.report.matched++;
        const outcome = outcomeOfFailedRead(failure);
        yield {
          candidates: [],
          matched: [],
          listedNames: [],
          bodyBytes: 0,
          rows: [{ task: task.name, outcome, ...(outcome !== 'gone' && { error: failure.message }) }],
        };
      }
    }
  }

  async *#list(
    run: QueueRun,
    view: 'BASIC' | 'FULL',
    seen?: ReadonlySet<string>,
  ): AsyncIterable<PlannedPage> {
    for await (const page of this.deps.tasks.listTasks(run.listed, view)) {
      this.deps.lists.count();
      yield this.#split(seen ? page.filter((task) => !seen.has(task.name)) : page, run, view);
    }
  }

  /**
   * The queue listed with bodies (docs/redrive.md "Batch calls"), when its first page shows that most of its
   * tasks are candidates and that a page of their bodies stays small; else listed again without them,
   * leaving out the first page's tasks.
   */
  async *#listWithBodies(run: QueueRun): AsyncIterable<PlannedPage> {
    const pages = this.#list(run, 'FULL')[Symbol.asyncIterator]();
    try {
      const first = await pages.next();
      if (first.done) return;
      const firstPage = first.value;
      const listed = firstPage.listedNames;
      yield firstPage;
      const bodiesFit = firstPage.bodyBytes * FULL_TASK_PAGE_SIZE <= MAX_FULL_PAGE_BODY_BYTES * listed.length;
      const bodiesPay =
        bodiesFit &&
        (listed.length < FIRST_FULL_TASK_PAGE_SIZE ||
          firstPage.candidates.length >= CANDIDATES_PER_PAGE_TO_LIST_BODIES * listed.length);
      if (bodiesPay) {
        for (;;) {
          const next = await pages.next();
          if (next.done) return;
          yield next.value;
        }
      }
      yield* this.#list(run, 'BASIC', new Set(listed));
    } finally {
      await pages.return?.();
    }
  }

  #split(page: readonly Task[], run: QueueRun, view: 'BASIC' | 'FULL'): PlannedPage {
    // The last-attempt rule waits for the fresh read when canaries may lift it.
    const rules = this.rulesFor(run, this.request.lastAttempts || this.deps.mode.canary !== undefined);
    const split: Omit<PlannedPage, 'bodyBytes'> = { candidates: [], rows: [], matched: [], listedNames: [] };
    let bodyBytes = 0;
    for (const full of page) {
      split.listedNames.push(full.name);
      if (view === 'FULL') bodyBytes += bodyBytesOf(full);
      run.report.scanned++;
      const candidate = this.#candidateOf(full, run, view, rules, split);
      if (candidate) split.candidates.push(candidate);
      // Only a candidate's body goes on: the others' are freed now, not when the collector finds them
      // (the copies a redrive made list in FULL too; docs/redrive.md "Bodies held").
      else if (view === 'FULL') letBodyGo(full);
    }
    return { ...split, bodyBytes };
  }

  /** The listed task as a candidate, or undefined with its row (if matched) in `split`. */
  #candidateOf(
    full: Task,
    run: QueueRun,
    view: 'BASIC' | 'FULL',
    rules: SelectionRules,
    split: Pick<PlannedPage, 'rows' | 'matched'>,
  ): Candidate | undefined {
    const { listing } = this.deps.mode;
    const task = listing ? listing.asSelected(full) : view === 'FULL' ? withoutBody(full) : full;
    if (this.deps.mode.isOwnWork(task.name)) return undefined;
    const selection = selectTask(task, rules);
    if (selection.kind === 'unmatched') return undefined;
    // A listing is no snapshot: a task listed again (on a later page, or named twice) has its outcome.
    if (this.#matchedNames.has(task.name)) return undefined;
    this.#matchedNames.add(task.name);
    run.report.matched++;
    split.matched.push(task);
    const name = taskNameOfQueue(run.listed, task.name);
    if (!name) {
      split.rows.push({ task: task.name, outcome: 'failed', error: 'invalid task name in the listing' });
      return undefined;
    }
    const skip =
      (selection.kind === 'skip' ? selection.reason : run.skipReason) ?? listing?.skipReasonOf(full);
    if (skip) {
      split.rows.push({ task: task.name, outcome: 'skipped', skipReason: skip });
      return undefined;
    }
    return { name, listed: task, queue: run, full: view === 'FULL' ? new Handover(full) : undefined };
  }

  #newReport(queue: string): QueueReport {
    const report: QueueReport = { queue, scanned: 0, matched: 0, complete: false };
    this.#queueReports.push(report);
    return report;
  }

  #queueFailed(report: QueueReport, error: unknown): void {
    const failure = toCloudTasksError(error);
    report.error = failure.message;
    // A queue whose read failed is left for later as a task's failed read is (retry.ts).
    if (outcomeOfFailedRead(failure) === 'deferred') {
      report.transient = true;
      if (actionFor(failure) === 'retry' || failure.status === 'DEADLINE_EXCEEDED')
        this.#unreachable ??= failure;
    }
    this.deps.log.error(
      { queue: report.queue, status: failure.status, error: failure.message },
      'queue failed',
    );
  }
}

/** The task without its body and headers: what a BASIC listing shows. */
function withoutBody(task: Task): Task {
  const { httpRequest, appEngineHttpRequest } = task;
  const strip = <R extends { body?: unknown; headers?: Record<string, string> }>(request: R): R => {
    const { body: _body, headers: _headers, ...rest } = request;
    return rest as R;
  };
  return {
    ...task,
    ...(httpRequest && { httpRequest: strip(httpRequest) }),
    ...(appEngineHttpRequest && { appEngineHttpRequest: strip(appEngineHttpRequest) }),
  };
}
