/**
 * The run (SPEC 5-7): queues -> streamed pages -> selection -> pacing -> RunTask -> one outcome per
 * matched task -> report.
 */
import type { CloudTasksClient, Queue, Task, CloudTasksError } from './cloud-tasks.js';
import { toCloudTasksError } from './cloud-tasks.js';
import type { Config } from './config.js';
import { controlTaskFor } from './control-tasks.js';
import type { RerunRequest } from './events.js';
import type { Logger } from './log.js';
import { isQueueAllowed, parseQueueName, parseTaskName, type QueueName, type TaskName } from './names.js';
import { Pacer, reserveSlot, type Semaphore } from './pace.js';
import { ReportBuilder, type QueueReport, type RerunReport, type TaskRow } from './report.js';
import { actionFor, backoffDelayMs, quotaWaitMs } from './retry.js';
import type { Scope } from './scope.js';
import { queueSkipReason, selectTask, type SkipReason } from './select.js';
import { setTimeout as sleep } from 'node:timers/promises';

/** What a run needs from its process. */
export interface RerunDeps {
  readonly config: Config;
  readonly tasks: CloudTasksClient;
  /** The process-wide RunTask pacer, at RERUN_MAX_RATE: shared by every request this process serves. */
  readonly pacer: Pacer;
  /** The process-wide bound on RunTask calls in flight (RERUN_CONCURRENCY). */
  readonly inFlight: Semaphore;
  /** Carries runId, reason and trace on every line. */
  readonly log: Logger;
  readonly now?: () => number;
}

/** Cloud Tasks could not be reached and nothing was dispatched: the same request is safe to send again. */
export class CloudTasksUnavailableError extends Error {
  override readonly name = 'CloudTasksUnavailableError';
}

/** Attempts of one RunTask whose answer was lost (and read back as not run) before it is given up. */
const MAX_RUN_ATTEMPTS = 3;
/** A progress line at most this often on long runs. */
const PROGRESS_INTERVAL_MS = 10_000;

interface QueueRun {
  readonly queue: QueueName;
  readonly report: QueueReport;
  readonly pacers: readonly Pacer[];
  skipReason: SkipReason | undefined;
}

/**
 * Runs one request over its scope and returns the report. Throws CloudTasksUnavailableError only when
 * Cloud Tasks was unreachable and no task was dispatched or queued.
 */
export async function runRerun(
  request: RerunRequest,
  scope: Scope,
  deps: RerunDeps,
  runId: string,
): Promise<RerunReport> {
  return new Run(request, scope, deps, runId).execute();
}

class Run {
  private readonly now: () => number;
  private readonly startMs: number;
  private readonly deadlineMs: number;
  private readonly cap: number;
  private readonly report: ReportBuilder;
  private readonly queues: QueueReport[] = [];
  private readonly seen = new Set<string>();
  private readonly running = new Set<Promise<void>>();
  /** Paces this request's own rate across its queues, when it asked for one. */
  private readonly requestPacer: Pacer | undefined;
  private reservedRuns = 0;
  private callsMade = 0;
  private unreachable: CloudTasksError | undefined;
  private scanStopped = false;
  private readonly canaries: { task: TaskName; settled: Promise<TaskRow> }[] = [];
  private canaryVerdict: 'pending' | 'passed' | 'failed' = 'pending';

  constructor(
    private readonly request: RerunRequest,
    private readonly scope: Scope,
    private readonly deps: RerunDeps,
    private readonly runId: string,
  ) {
    this.now = deps.now ?? Date.now;
    this.startMs = this.now();
    this.deadlineMs = this.startMs + deps.config.timeBudgetMs;
    this.cap = Math.min(request.maxTasks ?? deps.config.maxTasks, deps.config.maxTasks);
    this.report = new ReportBuilder(deps.log, request.dryRun);
    this.requestPacer = request.maxRatePerSecond ? new Pacer(request.maxRatePerSecond) : undefined;
    if (!request.canary || request.dryRun) this.canaryVerdict = 'passed';
  }

  async execute(): Promise<RerunReport> {
    const { log } = this.deps;
    log.info(
      {
        kind: this.request.kind,
        cutoff: iso(this.request.cutoffMs),
        dryRun: this.request.dryRun,
        ...this.request.context,
      },
      'rerun started',
    );
    const progress = setInterval(
      () => log.info({ counts: this.report.counts }, 'rerun progress'),
      PROGRESS_INTERVAL_MS,
    );
    progress.unref();
    try {
      for (const queue of await this.queueList()) {
        if (this.scanStopped) {
          this.queues.push({ queue: queue.name, scanned: 0, matched: 0, complete: false });
          continue;
        }
        await this.processQueue(queue);
      }
      await Promise.all(this.running);
      if (this.canaryVerdict === 'pending' && this.canaries.length > 0) await this.settleCanary();
    } finally {
      clearInterval(progress);
    }
    if (this.unreachable && this.callsMade === 0) {
      log.error({ err: this.unreachable }, 'Cloud Tasks unreachable; nothing was dispatched');
      throw new CloudTasksUnavailableError(this.unreachable.message, { cause: this.unreachable });
    }
    const result = this.result();
    log.info(
      {
        counts: result.counts,
        skipped: result.skipped,
        queues: result.queues,
        durationMs: result.durationMs,
      },
      'rerun finished',
    );
    return result;
  }

  /** The scope's queues, with allowlist patterns expanded by listing their location's queues. */
  private async queueList(): Promise<QueueName[]> {
    const queues = new Map(this.scope.queues.map((q) => [q.name, q]));
    for (const pattern of this.scope.patterns) {
      if (pattern.project === '*' || pattern.location === '*') {
        this.queues.push({
          queue: pattern.pattern,
          scanned: 0,
          matched: 0,
          complete: false,
          error: 'cannot list: name the project and location',
        });
        continue;
      }
      try {
        for await (const page of this.deps.tasks.listQueues(pattern)) {
          for (const { name } of page) {
            const queue = parseQueueName(name);
            if (queue && isQueueAllowed(queue, [pattern])) queues.set(queue.name, queue);
          }
        }
      } catch (error) {
        const report: QueueReport = { queue: pattern.pattern, scanned: 0, matched: 0, complete: false };
        this.queues.push(report);
        this.queueError(report, error);
      }
    }
    return [...queues.values()];
  }

  private async processQueue(queue: QueueName): Promise<void> {
    const report: QueueReport = { queue: queue.name, scanned: 0, matched: 0, complete: false };
    this.queues.push(report);
    let state: Queue;
    try {
      state = await this.deps.tasks.getQueue(queue);
    } catch (error) {
      this.queueError(report, error);
      return;
    }
    const queueRate = state.rateLimits?.maxDispatchesPerSecond;
    const pacers = [this.deps.pacer, this.requestPacer, queueRate ? new Pacer(queueRate) : undefined].filter(
      (p): p is Pacer => p !== undefined,
    );
    report.state = state.state ?? 'STATE_UNSPECIFIED';
    report.rate = Math.min(...pacers.map((p) => p.ratePerSecond));
    const run: QueueRun = {
      queue,
      report,
      pacers,
      skipReason: queueSkipReason(state.state, this.request.force),
    };
    try {
      for await (const page of this.pages(queue)) {
        for (const task of page) await this.consider(task, run);
        if (this.now() > this.deadlineMs) {
          this.scanStopped = true;
          return;
        }
      }
      report.complete = true;
    } catch (error) {
      this.queueError(report, error);
    }
  }

  /** Pages of the queue's tasks: listed, or for `tasks` requests read one by one (NOT_FOUND is `gone`). */
  private async *pages(queue: QueueName): AsyncIterable<Task[]> {
    const named = this.scope.tasksByQueue?.get(queue.name);
    if (!named) {
      yield* this.deps.tasks.listTasks(queue);
      return;
    }
    for (const task of named) {
      try {
        yield [await this.deps.tasks.getTask(task)];
      } catch (error) {
        const failure = toCloudTasksError(error);
        if (actionFor(failure) !== 'gone') throw failure;
        this.seen.add(task.name);
        this.report.record({ task: task.name, outcome: 'gone' });
      }
    }
  }

  private queueError(report: QueueReport, error: unknown): void {
    const failure = toCloudTasksError(error);
    report.error = failure.message;
    if (failure.status === 'UNAVAILABLE' || failure.status === 'DEADLINE_EXCEEDED')
      this.unreachable ??= failure;
    this.deps.log.error(
      { queue: report.queue, status: failure.status, error: failure.message },
      'queue failed',
    );
  }

  /** One listed task: match, safety rules, then the cap, the canary and the pacing decide its outcome. */
  private async consider(task: Task, run: QueueRun): Promise<void> {
    run.report.scanned++;
    const selection = selectTask(task, {
      match: this.request.match,
      cutoffMs: this.request.cutoffMs,
      minBackoffLeftMs: this.request.minBackoffLeftMs,
      nowMs: this.now(),
    });
    if (selection.kind === 'unmatched' || this.seen.has(task.name)) return;
    this.seen.add(task.name);
    run.report.matched++;
    const name = parseTaskName(task.name);
    if (!name || name.queueName !== run.queue.name) {
      this.report.record({ task: task.name, outcome: 'failed', error: 'invalid task name in the listing' });
      return;
    }
    const skip = selection.kind === 'skip' ? selection.reason : run.skipReason;
    if (skip) return this.report.record({ task: task.name, outcome: 'skipped', skipReason: skip });
    if (this.reservedRuns >= this.cap)
      return this.report.record({ task: task.name, outcome: 'skipped', skipReason: 'over-cap' });
    if (this.canaryVerdict === 'pending' && this.canaries.length >= (this.request.canary?.count ?? 0)) {
      await this.settleCanary();
    }
    if (this.canaryVerdict === 'failed') return this.report.record({ task: task.name, outcome: 'held' });
    this.reservedRuns++;
    if (this.request.dryRun) return this.report.record({ task: task.name, outcome: 'dispatched' });
    await this.dispatch(name, task.dispatchCount ?? 0, run);
  }

  /** Waits for a place in flight and a paced slot, then runs the task in the background. */
  private async dispatch(task: TaskName, dispatchCount: number, run: QueueRun): Promise<void> {
    await this.deps.inFlight.acquire();
    const slotMs = reserveSlot(run.pacers, this.now(), this.deadlineMs);
    if (slotMs === undefined) {
      this.deps.inFlight.release();
      return this.outOfTime(task);
    }
    const isCanary = this.canaryVerdict === 'pending';
    const work = sleep(slotMs - this.now())
      .then(() => this.runTask(task, dispatchCount, run, isCanary))
      .catch((error: unknown): TaskRow => ({ task: task.name, outcome: 'failed', error: String(error) }))
      .then((row) => {
        this.report.record(row);
        return row;
      })
      .finally(() => this.deps.inFlight.release());
    if (isCanary) this.canaries.push({ task, settled: work });
    const tracked: Promise<void> = work.then(() => void this.running.delete(tracked));
    this.running.add(tracked);
  }

  /**
   * One RunTask with the error rules of SPEC 6: NOT_FOUND is gone, quota waits for a new slot,
   * PERMISSION_DENIED stops the queue, a lost answer is read back before any resend.
   */
  private async runTask(
    task: TaskName,
    listedDispatchCount: number,
    run: QueueRun,
    canary: boolean,
  ): Promise<TaskRow> {
    const row = (fields: Omit<TaskRow, 'task'>): TaskRow => ({
      task: task.name,
      ...fields,
      ...(canary && { canary }),
    });
    for (let attempt = 1; ; attempt++) {
      if (run.skipReason === 'queue-permission-denied')
        return row({ outcome: 'skipped', skipReason: 'queue-permission-denied' });
      this.callsMade++;
      try {
        await this.deps.tasks.runTask(task);
        return row({ outcome: 'dispatched' });
      } catch (error) {
        const failure = toCloudTasksError(error);
        switch (actionFor(failure)) {
          case 'gone':
            return row({ outcome: 'gone' });
          case 'stop-queue':
            run.skipReason = 'queue-permission-denied';
            return row({ outcome: 'failed', error: failure.message });
          case 'fail':
            return row({ outcome: 'failed', error: failure.message });
          case 'wait-quota': {
            const nowMs = this.now();
            this.deps.pacer.pushBack(nowMs + quotaWaitMs(failure.retryDelayMs, nowMs));
            this.deps.log.warn(
              { task: task.name, retryDelayMs: failure.retryDelayMs },
              'RunTask quota exhausted; waiting',
            );
            break;
          }
          case 'retry': {
            const state = await this.readBack(task, listedDispatchCount);
            if (state === 'gone') return row({ outcome: 'gone' });
            if (state === 'ran') return row({ outcome: 'dispatched' });
            if (state === 'unknown' || attempt >= MAX_RUN_ATTEMPTS) {
              return row({
                outcome: 'failed',
                error: `${failure.message} (not resent: ${state === 'unknown' ? 'could not read the task back' : 'attempts used up'})`,
              });
            }
            await sleep(backoffDelayMs(attempt));
            break;
          }
        }
      }
      const slotMs = reserveSlot(run.pacers, this.now(), this.deadlineMs);
      if (slotMs === undefined) return this.queueOrDefer(task, row);
      await sleep(slotMs - this.now());
    }
  }

  /** After a lost answer: did the RunTask happen? NOT_FOUND means it ran and finished. */
  private async readBack(
    task: TaskName,
    listedDispatchCount: number,
  ): Promise<'gone' | 'ran' | 'not-run' | 'unknown'> {
    try {
      const current = await this.deps.tasks.getTask(task);
      return (current.dispatchCount ?? 0) > listedDispatchCount ? 'ran' : 'not-run';
    } catch (error) {
      return actionFor(toCloudTasksError(error)) === 'gone' ? 'gone' : 'unknown';
    }
  }

  /** Whether the task is gone from its queue (it succeeded, or failed for good). */
  private async isGone(task: TaskName): Promise<boolean> {
    try {
      await this.deps.tasks.getTask(task);
      return false;
    } catch (error) {
      return actionFor(toCloudTasksError(error)) === 'gone';
    }
  }

  /** Past the time budget: queued mode when configured, else deferred to a replay. */
  private async outOfTime(task: TaskName): Promise<void> {
    this.report.record(await this.queueOrDefer(task, (fields) => ({ task: task.name, ...fields })));
  }

  private async queueOrDefer(
    task: TaskName,
    row: (fields: Omit<TaskRow, 'task'>) => TaskRow,
  ): Promise<TaskRow> {
    const { controlQueue, selfUrl, invokerServiceAccount } = this.deps.config;
    if (!controlQueue || !selfUrl || !invokerServiceAccount || this.request.kind === 'tasks') {
      return row({ outcome: 'deferred' });
    }
    const control = controlTaskFor(
      {
        task: task.name,
        requestId: String(this.request.cutoffMs),
        cutoffMs: this.request.cutoffMs,
        mode: 'run',
        reason: this.request.reason,
      },
      { queue: controlQueue, selfUrl, invokerServiceAccount },
    );
    try {
      this.callsMade++;
      await this.deps.tasks.createTask(controlQueue, control);
      return row({ outcome: 'queued' });
    } catch (error) {
      const failure = toCloudTasksError(error);
      // ALREADY_EXISTS: a replay of this request queued it already (the name is a hash of task and cutoff).
      if (failure.status === 'ALREADY_EXISTS') return row({ outcome: 'queued' });
      return row({ outcome: 'deferred', error: failure.message });
    }
  }

  /** Waits for the canaries, then for `canary.wait`, and reads them back: NOT_FOUND means they succeeded. */
  private async settleCanary(): Promise<void> {
    const rows = await Promise.all(this.canaries.map((c) => c.settled));
    await sleep(this.request.canary?.waitMs ?? 0);
    let passed =
      rows.length > 0 && rows.every((row) => row.outcome === 'dispatched' || row.outcome === 'gone');
    for (const canary of this.canaries) {
      if (!passed) break;
      passed = await this.isGone(canary.task);
    }
    this.canaryVerdict = passed ? 'passed' : 'failed';
    this.deps.log[passed ? 'info' : 'warn'](
      { canaries: this.canaries.map((c) => c.task.name), passed },
      passed ? 'canary succeeded; going on' : 'canary failed; holding the rest',
    );
  }

  private result(): RerunReport {
    const deferred = this.report.counts.deferred;
    const cutoff = iso(this.request.cutoffMs);
    const incomplete = this.queues.some((q) => !q.complete && !q.error);
    return {
      runId: this.runId,
      kind: this.request.kind,
      ...(this.request.reason !== undefined && { reason: this.request.reason }),
      dryRun: this.request.dryRun,
      cutoff,
      queues: this.queues,
      counts: this.report.counts,
      skipped: this.report.skipped,
      tasks: this.report.rows,
      ...(this.report.isTruncated && { truncated: true as const }),
      ...(this.request.canary &&
        !this.request.dryRun && {
          canary: { tasks: this.canaries.map((c) => c.task.name), passed: this.canaryVerdict === 'passed' },
        }),
      ...((deferred > 0 || incomplete) && {
        continueWith: {
          cutoff,
          deferred,
          note: 'the time budget ran out: send the same event again with this cutoff (deployedAt, until or cutoff); tasks already rerun are skipped',
        },
      }),
      durationMs: this.now() - this.startMs,
    };
  }
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}
