/**
 * The run (SPEC 5-7), as stages with one job each:
 *   plan     queues -> pages -> candidates and skips (plan.ts, pure selection in select.ts)
 *   gate     canaries first; the breaker and a failed canary hold the rest (gate.ts)
 *   claim    one run at a time per task, here and across instances (claims.ts)
 *   force    paced slot, fresh read, RunTask and its error rules (force.ts)
 *   copy     redrive instead of force: FULL read, copy, second read, delete (copy.ts)
 *   enqueue  what the budget leaves no slot for goes to the control queue (enqueue.ts)
 *   verify   dispatched -> verdict (verify.ts)
 *   settle   one row, one log line and the counts per task (report.ts)
 * This file wires them: it owns no rule of its own.
 */
import { Budget } from './budget.js';
import type { CloudTasksClient } from '../cloud-tasks/client.js';
import { Claimer, type Claim, type ClaimEnd, type ClaimRegistry } from './claim.js';
import type { Config } from '../platform/config.js';
import type { ControlTarget } from '../control/control-tasks.js';
import { Copier, DEFAULT_ARMING_DELAY_MS, type CopyResult } from './copy.js';
import { Enqueuer } from './enqueue.js';
import { estimateOf, type Estimate, type QueueLoad } from './estimate.js';
import type { RerunRequest } from '../triggers/events.js';
import { Forcer, type ForcePolicy, type ForceResult } from './force.js';
import { Gate } from './gate.js';
import { operationFirst, operationLast, type Logger } from '../platform/log.js';
import { hasSlot, rateOf, Semaphore, type Pacer, type QueueAttempts } from './pace.js';
import { Plan, type Candidate, type QueueRun } from './plan.js';
import { checkRedrivePermissions } from './redrive-permissions.js';
import { undoneQueues } from './undone.js';
import { ReportBuilder, runOutcomeOf, type RerunReport, type TaskRow } from './settle.js';
import type { Scope } from '../triggers/scope.js';
import { isLastAttempt } from './select.js';
import { Breaker, Verifier, type Verdict } from './verify.js';

/** What a run needs from its process. */
export interface RerunDeps {
  readonly config: Config;
  readonly tasks: CloudTasksClient;
  /** The process-wide RunTask pacer, at RERUN_MAX_RATE: shared by every request this process serves. */
  readonly pacer: Pacer;
  /** The process-wide bound on RunTask calls in flight (RERUN_CONCURRENCY). */
  readonly inFlight: Semaphore;
  /** The process-wide bounds on forced attempts running, per queue (maxConcurrentDispatches). */
  readonly queueAttempts: QueueAttempts;
  /** The process-wide claim registry. */
  readonly claims: ClaimRegistry;
  /** Carries runId, reason and trace on every line. */
  readonly log: Logger;
  /** The claim this delivery is, when a control task delivers it (its X-CloudTasks-TaskName). */
  readonly ownClaimId?: string | undefined;
  /** How far ahead a redrive copy is due (default 10 s; tests shorten it). */
  readonly redriveArmingDelayMs?: number | undefined;
  readonly now?: () => number;
  /** Aborted to stop early (the command line's Ctrl-C): no new task starts, started ones finish. */
  readonly stop?: AbortSignal | undefined;
}

/** Cloud Tasks could not be reached and nothing was dispatched: the same request is safe to send again. */
export class CloudTasksUnavailableError extends Error {
  override readonly name = 'CloudTasksUnavailableError';
}

/** A progress line at most this often on long runs. */
const PROGRESS_INTERVAL_MS = 10_000;
/** How long after the run's budget a claim that this run carries out falls due. */
const CLAIM_MARGIN_MS = 60_000;

/**
 * Runs one request over its scope and returns the report. Throws CloudTasksUnavailableError only when
 * Cloud Tasks was unreachable and nothing was dispatched or queued.
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
  readonly #budget: Budget;
  readonly #cap: number;
  readonly #report: ReportBuilder;
  readonly #plan: Plan;
  readonly #gate: Gate;
  readonly #breaker: Breaker;
  readonly #claimer: Claimer;
  readonly #forcer: Forcer;
  readonly #copier: Copier;
  readonly #armingDelayMs: number;
  readonly #verifier: Verifier;
  readonly #enqueuer: Enqueuer | undefined;
  /** Names that reached the claim stage: a task listed twice is forced once. */
  readonly #seen = new Set<string>();
  readonly #running = new Set<Promise<void>>();
  /** Bounds tasks between planning and their outcome, so a long listing never piles up in memory. */
  readonly #pending: Semaphore;
  #reserved = 0;
  /** Aborted once the rest is held (breaker, failed canary): tasks waiting for a slot stop waiting. */
  readonly #holding = new AbortController();
  /** Whether anything was forced or queued (an unreachable Cloud Tasks is then no longer "safe to resend"). */
  #touched = false;
  /** A dry run's tasks that would be forced, by queue, and the latest of their next attempts: its estimate. */
  readonly #wouldForce = new Map<QueueRun, { tasks: number; latestDueMs: number }>();

  constructor(
    private readonly request: RerunRequest,
    private readonly scope: Scope,
    private readonly deps: RerunDeps,
    private readonly runId: string,
  ) {
    const { config, tasks, log } = deps;
    const now = deps.now ?? Date.now;
    this.#budget = new Budget(config.timeBudgetMs, now, deps.stop);
    // Tasks waiting for their slot wake, find the budget over, and are deferred.
    deps.stop?.addEventListener('abort', () => this.#holding.abort(), { once: true });
    this.#cap = Math.min(request.maxTasks ?? config.maxTasks, config.maxTasks);
    this.#report = new ReportBuilder(log, request.dryRun);
    this.#breaker = new Breaker(request.breaker);
    this.#gate = new Gate(request.dryRun ? undefined : request.canary, log, now);
    const control = controlTargetOf(config);
    const work = {
      requestId: request.requestId,
      cutoffMs: request.cutoffMs,
      mode: request.mode,
      reason: request.reason,
      requestKind: request.kind,
      force: request.force,
      lastAttempts: request.lastAttempts,
      verifyMs: request.verifyMs,
      minBackoffLeftMs: request.minBackoffLeftMs,
    };
    this.#claimer = new Claimer(
      { registry: deps.claims, tasks, control, ownClaimId: deps.ownClaimId, log, now },
      work,
      this.#budget.deadlineMs + CLAIM_MARGIN_MS,
    );
    this.#forcer = new Forcer({
      tasks,
      pacer: deps.pacer,
      inFlight: deps.inFlight,
      budget: this.#budget,
      log,
    });
    const calls = new Semaphore(config.redriveConcurrency);
    this.#armingDelayMs = deps.redriveArmingDelayMs ?? DEFAULT_ARMING_DELAY_MS;
    this.#copier = new Copier(
      { tasks, calls, budget: this.#budget, armingDelayMs: this.#armingDelayMs, recovery: control },
      work,
    );
    this.#plan = new Plan(request, scope, {
      tasks,
      pacer: deps.pacer,
      queueAttempts: deps.queueAttempts,
      log,
      now,
      ownCopies: this.#copier.copies,
    });
    this.#verifier = new Verifier({ tasks, reads: calls, budget: this.#budget });
    this.#enqueuer =
      control && deps.ownClaimId === undefined ? new Enqueuer(tasks, control, work, calls, now) : undefined;
    // Enough tasks under way to keep the calls in flight busy: RunTask's few, or redrive's many.
    const concurrency = request.mode === 'redrive' ? config.redriveConcurrency : config.concurrency;
    this.#pending = new Semaphore(Math.max(8, concurrency * 4));
  }

  async execute(): Promise<RerunReport> {
    const { log } = this.deps;
    log.info(
      {
        ...operationFirst(),
        kind: this.request.kind,
        requestId: this.request.requestId,
        mode: this.request.mode,
        cutoff: iso(this.request.cutoffMs),
        cutoffSource: this.request.cutoffSource,
        dryRun: this.request.dryRun,
        ...this.request.context,
      },
      'rerun started',
    );
    const progress = setInterval(
      () => log.info({ counts: this.#report.counts }, 'rerun progress'),
      PROGRESS_INTERVAL_MS,
    );
    progress.unref();
    try {
      await this.#planAndForce();
      if (this.#gate.isChoosing) await this.#openGate();
      await this.#drain();
    } finally {
      clearInterval(progress);
    }
    const { unreachable } = this.#plan;
    if (unreachable && !this.#touched) {
      log.error({ err: unreachable }, 'Cloud Tasks unreachable; nothing was dispatched');
      throw new CloudTasksUnavailableError(unreachable.message, { cause: unreachable });
    }
    const result = this.#result();
    log.info(
      {
        ...operationLast(),
        outcome: runOutcomeOf(result),
        ...(result.dryRun && { dryRun: true }),
        counts: result.counts,
        skipped: result.skipped,
        queues: result.queues,
        ...(result.continueWith && { continueWith: result.continueWith }),
        durationMs: result.durationMs,
      },
      'rerun finished',
    );
    return result;
  }

  async #planAndForce(): Promise<void> {
    const queueNames = await this.#plan.queueNames();
    // Redrive's permissions first: without them nothing is created or deleted (SPEC 6).
    if (this.request.mode === 'redrive') await checkRedrivePermissions(this.deps.tasks, queueNames);
    for (const queueName of queueNames) {
      if (this.#budget.isOver()) {
        this.#plan.queueReports.push({ queue: queueName.name, scanned: 0, matched: 0, complete: false });
        continue;
      }
      const queue = await this.#plan.openQueue(queueName);
      if (!queue) continue;
      for await (const page of this.#plan.pages(queue)) {
        for (const row of page.rows) this.#report.record(row);
        for (const candidate of this.#gate.order(page.candidates)) await this.#admit(candidate);
        if (this.#budget.isOver()) break;
      }
    }
  }

  /** One candidate: the cap and the canary gate, then its pipeline in the background. */
  async #admit(candidate: Candidate): Promise<void> {
    const task = candidate.name.name;
    if (this.#seen.has(task)) return;
    if (this.#reserved >= this.#cap) {
      return this.#report.record({ task, outcome: 'skipped', skipReason: 'over-cap' });
    }
    switch (this.#gate.admit(candidate)) {
      case 'wait':
        return;
      case 'held':
        this.#seen.add(task);
        return this.#report.record({ task, outcome: 'held' });
      case 'canary':
        await this.#start(candidate, true);
        if (this.#gate.isFull) await this.#openGate();
        return;
      case 'go':
        return this.#start(candidate, false);
    }
  }

  async #start(candidate: Candidate, canary: boolean): Promise<void> {
    const task = candidate.name.name;
    this.#seen.add(task);
    this.#reserved++;
    if (this.request.dryRun) {
      const load = this.#wouldForce.get(candidate.queue) ?? { tasks: 0, latestDueMs: 0 };
      const dueMs = Date.parse(candidate.listed.scheduleTime ?? '') || 0;
      this.#wouldForce.set(candidate.queue, {
        tasks: load.tasks + 1,
        latestDueMs: Math.max(load.latestDueMs, dueMs),
      });
      return this.#report.record({
        task,
        outcome: this.request.mode === 'redrive' ? 'redriven' : 'dispatched',
      });
    }
    await this.#pending.acquire();
    let pendingHeld = true;
    const forced = (): void => {
      if (pendingHeld) this.#pending.release();
      pendingHeld = false;
    };
    const work = this.#carryOut(candidate, canary, forced).finally(forced);
    if (canary) this.#gate.track(work);
    const tracked: Promise<void> = work.then(() => void this.#running.delete(tracked));
    this.#running.add(tracked);
  }

  /** Waits for the canaries' verdicts, then admits what waited for them (held if they did not succeed). */
  async #openGate(): Promise<void> {
    await this.#gate.settle();
    if (this.#gate.failed) this.#holding.abort();
    for (const candidate of this.#gate.takeWaiting()) await this.#admit(candidate);
  }

  async #drain(): Promise<void> {
    while (this.#running.size > 0) await Promise.all(this.#running);
  }

  /** claim -> force -> verify for one task, ending in its one row. */
  async #carryOut(candidate: Candidate, canary: boolean, forced: () => void): Promise<void> {
    const row = await this.#outcomeOf(candidate, canary, forced);
    const settled: TaskRow = canary ? { ...row, canary } : row;
    this.#report.record(settled);
    if (canary) this.#gate.canarySettled(settled);
  }

  /** `forced` is called once the task no longer needs its pending place (verification needs none). */
  async #outcomeOf(candidate: Candidate, canary: boolean, forced: () => void): Promise<TaskRow> {
    const task = candidate.name.name;
    if (this.#isHeld()) return { task, outcome: 'held' };
    return this.request.mode === 'redrive'
      ? this.#redrive(candidate, canary, forced)
      : this.#run(candidate, canary, forced);
  }

  /** Mode run: the queue's concurrency place, the RunTask slot, the claim, RunTask, the verdict. */
  async #run(candidate: Candidate, canary: boolean, forced: () => void): Promise<TaskRow> {
    const task = candidate.name.name;
    const { queue } = candidate;
    if (!(await queue.attemptsRunning.acquire(this.#budget.deadlineMs, this.#budget.now()))) {
      return { task, ...(await this.#queueOrDefer(task)) };
    }
    try {
      const claimed = await this.#claimWithSlot(task, queue.pacers, () => this.#forcer.reserve(queue));
      if (!('claim' in claimed)) return claimed;
      const { slotMs } = claimed;
      this.#touched = true;
      const result = await this.#forcer.force(candidate, slotMs, this.#policyFor(canary));
      forced();
      await this.#claimer.release(claimed.claim, claimEndOf(result));
      if (result.outcome !== 'dispatched') return rowOf(task, claimed.claim, result);
      const windowMs = this.#verifyWindowMs(canary);
      if (windowMs <= 0) return { task, outcome: 'dispatched' };
      const onLastAttempt = isLastAttempt(result.fresh, queue.retry, this.#budget.now());
      const verdict = await this.#verifier.verdictOf(candidate.name, result.fresh, windowMs, !onLastAttempt);
      this.#recordVerdict(verdict.verdict);
      return { task, outcome: 'dispatched', ...verdict };
    } finally {
      // Held until the verdict: forced attempts still running count against maxConcurrentDispatches.
      queue.attemptsRunning.release();
    }
  }

  /**
   * Mode redrive: the copy slot, the claim, copy and delete, then the copy's verdict. Cloud Tasks
   * dispatches the copies itself, within the queue's maxConcurrentDispatches.
   */
  async #redrive(candidate: Candidate, canary: boolean, forced: () => void): Promise<TaskRow> {
    const task = candidate.name.name;
    // No slot left in the budget: deferred, not queued. The control queue runs at the RunTask quota, and
    // the next delivery of the request goes on at the queue's own rate.
    const { queue } = candidate;
    const claimed = await this.#claimWithSlot(
      task,
      queue.copyPacers,
      () => this.#copier.reserve(queue),
      false,
    );
    if (!('claim' in claimed)) return claimed;
    const { slotMs } = claimed;
    this.#touched = true;
    const result = await this.#copier.copy(candidate, slotMs, this.#policyFor(canary));
    forced();
    await this.#claimer.release(claimed.claim, claimEndOf(result));
    if (result.outcome !== 'redriven') return rowOf(task, claimed.claim, result);
    const row: TaskRow = { task, outcome: 'redriven', copy: result.copy.name };
    const windowMs = this.#verifyWindowMs(canary);
    if (windowMs <= 0) return row;
    // The copy has no attempt yet; its first one falls due at the end of the arming delay.
    const verdict = await this.#verifier.verdictOf(
      result.copy,
      { name: result.copy.name, dispatchCount: 0, responseCount: 0 },
      windowMs,
      true,
      result.dueMs,
    );
    this.#recordVerdict(verdict.verdict);
    return { ...row, ...verdict };
  }

  /**
   * The claim and the task's paced slot, or the row of a task that cannot have them. The slot is reserved
   * only once the task is claimed, so a task another run holds never uses up a slot of the shared pacer.
   * No slot left in the budget: queued (with `queue`) or deferred; a claim already made then stays for the
   * control queue to carry out.
   */
  async #claimWithSlot(
    task: string,
    pacers: readonly Pacer[],
    reserve: () => number | undefined,
    queue = true,
  ): Promise<{ claim: Claim; slotMs: number } | TaskRow> {
    const noSlot = async (): Promise<TaskRow> =>
      queue ? { task, ...(await this.#queueOrDefer(task)) } : { task, outcome: 'deferred' };
    if (!hasSlot(pacers, this.#budget.now(), this.#budget.deadlineMs)) return noSlot();
    const claimed = await this.#claim(task);
    if (!('claim' in claimed)) return claimed;
    const slotMs = reserve();
    if (slotMs !== undefined) return { claim: claimed.claim, slotMs };
    // Another run took the last slot meanwhile.
    await this.#claimer.release(claimed.claim, 'left-to-control-queue');
    return claimed.claim.controlTask !== undefined ? { task, outcome: 'queued' } : noSlot();
  }

  /** The claim, or the row of a task that cannot be claimed now. */
  async #claim(task: string): Promise<{ claim: Claim } | TaskRow> {
    const claim = await this.#claimer.claim(task);
    switch (claim.kind) {
      case 'claimed':
        return { claim: claim.claim };
      case 'taken':
        return { task, outcome: 'skipped', skipReason: 'claimed' };
      case 'unavailable':
        return { task, outcome: 'deferred', error: claim.error };
      case 'in-doubt':
        return {
          task,
          outcome: 'deferred',
          error: 'an earlier RunTask lost its answer moments ago and may still run it',
        };
    }
  }

  #policyFor(canary: boolean): ForcePolicy {
    return {
      rulesFor: (q) => this.#plan.rulesFor(q, this.request.lastAttempts || this.#gate.passed),
      isHeld: () => !canary && this.#isHeld(),
      heldSignal: canary ? undefined : this.#holding.signal,
    };
  }

  #verifyWindowMs(canary: boolean): number {
    return canary ? (this.request.canary?.waitMs ?? 0) : this.request.verifyMs;
  }

  #recordVerdict(verdict: Verdict | undefined): void {
    if (this.#breaker.record(verdict)) this.#breakerTripped();
  }

  #isHeld(): boolean {
    return this.#gate.failed || this.#breaker.isTripped;
  }

  #breakerTripped(): void {
    this.#holding.abort();
    const { succeeded, failedAgain } = this.#breaker.figures;
    this.deps.log.warn(
      { succeeded, failedAgain, breaker: this.request.breaker },
      'breaker tripped: too many reruns failed again; the rest are held. Fix the cause and send the request again (tasks already rerun are past the cutoff), or send it with "breaker": false',
    );
  }

  /** No slot left in the budget: the control queue takes the task, else a later delivery. */
  async #queueOrDefer(task: string): Promise<Omit<TaskRow, 'task'>> {
    if (!this.#enqueuer) return { outcome: 'deferred' };
    const result = await this.#enqueuer.enqueue(task);
    if (result.outcome === 'queued') this.#touched = true;
    return result;
  }

  #estimate(): Estimate {
    const nowMs = this.#budget.now();
    const loads: QueueLoad[] = [...this.#wouldForce].map(([queue, { tasks, latestDueMs }]) => ({
      tasks,
      backoffLeftSeconds: Math.max(0, latestDueMs - nowMs) / 1000,
      runRatePerSecond: rateOf(queue.pacers)!,
      copyRatePerSecond: rateOf(queue.copyPacers),
    }));
    return estimateOf(loads, {
      mode: this.request.mode,
      armingDelayMs: this.#armingDelayMs,
    });
  }

  #result(): RerunReport {
    const counts = this.#report.counts;
    const cutoff = iso(this.request.cutoffMs);
    const undone = undoneQueues(this.#plan.queueReports);
    return {
      runId: this.runId,
      requestId: this.request.requestId,
      kind: this.request.kind,
      mode: this.request.mode,
      ...(this.request.reason !== undefined && { reason: this.request.reason }),
      dryRun: this.request.dryRun,
      cutoff,
      ...(this.request.cutoffClamped && { cutoffClamped: true as const }),
      queues: this.#plan.queueReports,
      counts,
      skipped: this.#report.skipped,
      tasks: this.#report.rows,
      ...(this.#report.isTruncated && { truncated: true as const }),
      ...(this.#gate.summary && { canary: this.#gate.summary }),
      ...(this.request.dryRun && { estimate: this.#estimate() }),
      ...((counts.deferred > 0 || undone.length > 0) && {
        continueWith: {
          requestId: this.request.requestId,
          cutoff,
          deferred: counts.deferred,
          incompleteQueues: undone.map((q) => q.queue),
          note: `work is left undone: send the same request again (requestId ${this.request.requestId}, or the same event with this cutoff as deployedAt, until or cutoff); tasks already rerun are skipped`,
        },
      }),
      durationMs: this.#budget.now() - this.#budget.startMs,
    };
  }
}

function controlTargetOf(config: Config): ControlTarget | undefined {
  const { controlQueue, selfUrl, invokerServiceAccount } = config;
  return controlQueue && selfUrl && invokerServiceAccount
    ? { queue: controlQueue, selfUrl, invokerServiceAccount }
    : undefined;
}

/**
 * How the claim ends: a task left undone stays claimed for the control queue to carry out, and a RunTask
 * answer in doubt keeps the task claimed until its late attempt shows.
 */
function claimEndOf(result: ForceResult | CopyResult): ClaimEnd {
  if (result.outcome !== 'deferred') return 'done';
  return 'why' in result && result.why === 'lost-answer' ? 'lost-answer' : 'left-to-control-queue';
}

type Unforced = Exclude<ForceResult | CopyResult, { outcome: 'dispatched' } | { outcome: 'redriven' }>;

/** The row of a task not forced: queued when its claim stays in the control queue to carry it out. */
function rowOf(task: string, claim: Claim, result: Unforced): TaskRow {
  const handedOver = claimEndOf(result) !== 'done' && claim.controlTask !== undefined;
  return handedOver ? { task, outcome: 'queued' } : { task, ...rowFieldsOf(result) };
}

function rowFieldsOf(result: Unforced): Omit<TaskRow, 'task'> {
  switch (result.outcome) {
    case 'skipped':
      return { outcome: 'skipped', skipReason: result.skipReason };
    case 'failed':
      return { outcome: 'failed', error: result.error };
    case 'deferred':
      return { outcome: 'deferred', ...(result.error !== undefined && { error: result.error }) };
    default:
      return { outcome: result.outcome };
  }
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}
