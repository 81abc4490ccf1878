/**
 * The run (docs/architecture.md): one request over its scope, as stages with one job and one state each:
 *   plan       queues -> pages -> candidates and skips (plan.ts, pure selection in select.ts)
 *   admission  at most the task cap (admission.ts)
 *   gate       canaries first; a failed canary holds the rest (gate.ts, hold.ts)
 *   flow       per task: claim (claim.ts), act, release, verify (verify.ts), written once (flow.ts)
 *   mode       what run, redrive and a dry run do differently: force (force.ts), copy (copy.ts),
 *              enqueue (enqueue.ts), or estimate (estimate.ts) (modes.ts)
 *   breaker    too many verdicts failed again: the rest are held (breaker.ts)
 *   parking    failed tasks at risk of being dropped, moved to their parking queue (park.ts)
 *   settle     one row, one log line and the counts per task; the report (settle.ts, undone.ts)
 * This file wires them: it owns no rule and no state of its own.
 */
import { Breaker } from './breaker.js';
import { Admission, type Place } from './admission.js';
import { Budget } from './budget.js';
import type { CloudTasksClient } from '../cloud-tasks/client.js';
import { Claimer, type ClaimRegistry } from './claim.js';
import { ClusterCollector } from './clusters.js';
import type { Config } from '../platform/config.js';
import { controlTargetOf, type ControlWork } from '../control/control-tasks.js';
import { DEFAULT_ARMING_DELAY_MS } from './copy.js';
import type { RerunRequest } from '../triggers/events.js';
import { TaskFlow } from './flow.js';
import { Gate } from './gate.js';
import { Hold } from './hold.js';
import { ListBudget } from './list-budget.js';
import type { Logger } from '../platform/log.js';
import { modeOf, type Mode } from './modes.js';
import { Semaphore, type Pacer, type QueueAttempts } from './pace.js';
import { NO_PARKING, Parking, type ParkingStage } from './park.js';
import { Plan, type Candidate } from './plan.js';
import { RedriveCheckError, RedriveForbiddenError } from './redrive-permissions.js';
import { logFinished, logStarted, ReportBuilder, reportOf, type RerunReport } from './settle.js';
import type { Scope } from '../triggers/scope.js';
import type { QueueName } from '../cloud-tasks/names.js';

/** The parts of a process that every run it serves shares. */
export interface ProcessParts {
  readonly config: Config;
  readonly tasks: CloudTasksClient;
  /** The process-wide RunTask pacer, at RERUN_MAX_RATE: shared by every request this process serves. */
  readonly pacer: Pacer;
  /** The process-wide bound on RunTask calls in flight (RERUN_CONCURRENCY). */
  readonly inFlight: Semaphore;
  /** The process-wide bounds on forced attempts running, per queue (maxConcurrentDispatches). */
  readonly queueAttempts: QueueAttempts;
  /** Which tasks some run of this process is forcing right now (docs/claims.md "Where a claim lives"). */
  readonly claims: ClaimRegistry;
  /** The bytes of bodies held by redrive's tasks read on their own (docs/redrive.md "Bodies held"). */
  readonly bodies: Semaphore;
  readonly log: Logger;
}

/** What a run needs from its process; its logger carries runId, reason and trace on every line. */
export interface RerunDeps extends ProcessParts {
  /** The claim this delivery is, when a control task delivers it (its X-CloudTasks-TaskName). */
  readonly ownClaimId?: string | undefined;
  /** That control task's X-CloudTasks-TaskRetryCount (docs/claims.md "One delivery at a time"). */
  readonly ownClaimRetryCount?: string | undefined;
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
/** The largest failure clusters a report lists. */
const MAX_REPORTED_CLUSTERS = 50;
/** How long after the run's budget a claim that this run carries out falls due. */
const CLAIM_MARGIN_MS = 60_000;

/**
 * Runs one request over its scope and returns the report. Throws CloudTasksUnavailableError only when
 * Cloud Tasks was unreachable and nothing was dispatched or queued. `logOf` gives a run's logger by its
 * runId: the unpark that may ride on the request is a run of its own (docs/parking.md "Unparking").
 */
export async function runRerun(
  request: RerunRequest,
  scope: Scope,
  deps: Omit<RerunDeps, 'log'>,
  runId: string,
  logOf: (runId: string) => Logger,
): Promise<RerunReport> {
  const report = await new Run(request, scope, { ...deps, log: logOf(runId) }, runId).execute();
  if (!(request.includeParked ?? deps.config.park)) return report;
  // The queues' parked tasks come home after the run, within what is left of its budget.
  const { config } = deps;
  const left = { ...config, timeBudgetMs: Math.max(0, config.timeBudgetMs - report.durationMs) };
  const unparkId = `${runId}-unpark`;
  const log = logOf(unparkId);
  let unparked: RerunReport;
  try {
    unparked = await new Run(unparkOf(request), scope, { ...deps, config: left, log }, unparkId).execute();
  } catch (error) {
    // The run's report stands, whatever became of the unpark: its tasks stay parked, safe, for the next.
    const refused =
      error instanceof RedriveForbiddenError ||
      error instanceof RedriveCheckError ||
      error instanceof CloudTasksUnavailableError;
    if (!refused) throw error;
    log.error({ err: error }, 'unpark not done; the parked tasks stay parked');
    return { ...report, unparkError: (error as Error).message };
  }
  return {
    ...report,
    unparked,
    ...(!report.continueWith && unparked.continueWith && { continueWith: unparked.continueWith }),
  };
}

/** The unpark that rides on a fix-deployed or closed-incident request: the same identity, scope and match. */
function unparkOf(request: RerunRequest): RerunRequest {
  return {
    ...request,
    kind: 'unpark',
    mode: 'redrive',
    park: false,
    possiblyDone: false,
    includeParked: false,
  };
}

class Run {
  readonly #budget: Budget;
  readonly #report: ReportBuilder;
  readonly #admission: Admission;
  readonly #mode: Mode;
  readonly #gate: Gate;
  readonly #plan: Plan;
  readonly #flow: TaskFlow;
  readonly #clusters = new ClusterCollector();
  readonly #parking: ParkingStage;

  constructor(
    private readonly request: RerunRequest,
    scope: Scope,
    private readonly deps: RerunDeps,
    private readonly runId: string,
  ) {
    const { config, log } = deps;
    const now = deps.now ?? Date.now;
    const budget = new Budget(config.timeBudgetMs, now, deps.stop);
    const hold = new Hold(deps.stop);
    const report = new ReportBuilder(log, request.dryRun);
    const control = controlTargetOf(config, runId);
    // The last-attempt rule as the run applies it now: lifted once the canaries passed (docs/execution.md
    // "Canary"); queued work carries it as it stood when written (docs/claims.md "Queued work").
    const allowsLastAttempts = (): boolean => request.lastAttempts || gate.passed;
    const work = controlWorkOf(request, allowsLastAttempts);
    const lists = new ListBudget(now);
    const armingDelayMs = deps.redriveArmingDelayMs ?? DEFAULT_ARMING_DELAY_MS;
    const mode = modeOf(request, {
      ...deps,
      budget,
      now,
      lists,
      armingDelayMs,
      control,
      mayEnqueue: deps.ownClaimId === undefined,
      work,
    });
    const gate = new Gate(mode.canary, { log, now, hold });
    const plan = new Plan(request, scope, { ...deps, now, mode, lists });
    // A parked task's claim stays in this process: a control task carries out `tasks` of allowlisted
    // queues only, and a parking queue is never one (docs/parking.md "Limits").
    const claimControl = mode.listing ? undefined : control;
    const claimer = new Claimer(
      {
        ...deps,
        tasks: mode.claimWrites,
        registry: deps.claims,
        control: claimControl,
        ownClaimId: deps.ownClaimId,
        now,
      },
      work,
      budget.deadlineMs + CLAIM_MARGIN_MS,
    );
    this.#flow = new TaskFlow({
      acting: mode.acting,
      claimer,
      budget,
      hold,
      report,
      breaker: new Breaker(request.breaker, log),
      rulesFor: (queue) => plan.rulesFor(queue, allowsLastAttempts()),
      verifyMs: request.verifyMs,
      canaryWaitMs: mode.canary?.waitMs ?? 0,
      concurrency: mode.concurrency,
    });
    this.#parking = parksAtRisk(request, config)
      ? new Parking({
          tasks: deps.tasks,
          budget,
          log,
          report,
          // In this process's registry only: a claim left in the control queue would be forced, not parked.
          claimer: new Claimer(
            { ...deps, registry: deps.claims, control: undefined, ownClaimId: undefined, now },
            work,
            budget.deadlineMs + CLAIM_MARGIN_MS,
          ),
          calls: new Semaphore(config.redriveConcurrency),
          recovery: control,
          recoveryDelayMs: armingDelayMs / 2,
          sweepPeriodMs: config.sweepPeriodMs,
          dryRun: request.dryRun,
          cutoffMs: request.cutoffMs,
        })
      : NO_PARKING;
    this.#admission = new Admission(Math.min(request.maxTasks ?? config.maxTasks, config.maxTasks));
    this.#budget = budget;
    this.#report = report;
    this.#mode = mode;
    this.#gate = gate;
    this.#plan = plan;
  }

  async execute(): Promise<RerunReport> {
    const { log } = this.deps;
    logStarted(log, this.request);
    const progress = setInterval(
      () => log.info({ counts: this.#report.counts }, 'rerun progress'),
      PROGRESS_INTERVAL_MS,
    );
    progress.unref();
    try {
      await this.#planAndForce();
      if (this.#gate.isChoosing) await this.#openGate();
      await this.#flow.drain();
      await this.#parking.drain();
    } finally {
      clearInterval(progress);
    }
    const { unreachable } = this.#plan;
    if (unreachable && !this.#flow.hasActed && !this.#parking.hasActed) {
      log.error({ err: unreachable }, 'Cloud Tasks unreachable; nothing was dispatched');
      throw new CloudTasksUnavailableError(unreachable.message, { cause: unreachable });
    }
    const report = reportOf(this.request, this.runId, {
      report: this.#report,
      queues: this.#plan.queueReports,
      clusters: this.#clusters.largest(MAX_REPORTED_CLUSTERS),
      canary: this.#gate.summary,
      estimate: this.#mode.estimate(this.#budget.now()),
      redriveCalls: this.#mode.redriveCalls(),
      parking: this.#parking.reports,
      durationMs: this.#budget.now() - this.#budget.startMs,
    });
    logFinished(log, report);
    return report;
  }

  /** The queues, as many at once as the mode works on (docs/redrive.md "Many queues"). */
  async #planAndForce(): Promise<void> {
    const queueNames = await this.#plan.queueNames();
    await this.#mode.prepare(queueNames);
    const next = queueNames.values();
    const worker = async (): Promise<void> => {
      for (const queueName of next) await this.#planAndForceQueue(queueName);
    };
    await Promise.all(Array.from({ length: Math.min(this.#mode.queuesAtOnce, queueNames.length) }, worker));
  }

  async #planAndForceQueue(queueName: QueueName): Promise<void> {
    if (this.#budget.isOver()) return this.#plan.notReached(queueName);
    const queue = await this.#plan.openQueue(queueName);
    if (!queue) return;
    await this.#parking.open(queue);
    for await (const listed of this.#plan.pages(queue)) {
      for (const task of listed.matched) this.#clusters.add(task, queueName.name);
      const page = await this.#parking.sift(listed, queue);
      for (const row of page.rows) this.#report.record(row);
      for (const candidate of this.#gate.order(page.candidates)) await this.#admit(candidate);
      if (this.#budget.isOver()) break;
    }
  }

  /** One candidate: a place under the cap and the canary gate, then its flow in the background. */
  async #admit(candidate: Candidate): Promise<void> {
    const task = candidate.name.name;
    const place = await this.#admission.enter();
    if (!place) return this.#report.record({ task, outcome: 'skipped', skipReason: 'over-cap' });
    const admitted = this.#gate.admit(candidate);
    if (admitted !== 'canary' && admitted !== 'go') place.giveBack();
    switch (admitted) {
      case 'wait':
        return;
      case 'held':
        return this.#report.record({ task, outcome: 'held' });
      case 'deferred':
        return this.#report.record({ task, outcome: 'deferred' });
      case 'canary':
        await this.#start(candidate, place, true);
        if (this.#gate.isFull) await this.#openGate();
        return;
      case 'go':
        return this.#start(candidate, place, false);
    }
  }

  /** The place is used once the task is acted on (at once in a dry run), else given back. */
  async #start(candidate: Candidate, place: Place, canary: boolean): Promise<void> {
    const row = this.#mode.rowAtOnce(candidate);
    if (row) {
      place.use();
      return this.#report.record(row);
    }
    const started = await this.#flow.start(candidate, canary, place);
    if (started.row) this.#gate.track(started.row);
  }

  /** Waits for the canaries' verdicts, then admits what waited for them (held if they did not succeed). */
  async #openGate(): Promise<void> {
    await this.#gate.settle();
    for (const candidate of this.#gate.takeWaiting()) await this.#admit(candidate);
  }
}

/**
 * Whether the run parks what is at risk (docs/parking.md): when the request says so, or a sweep where the
 * deployment parks; never when the request forces last attempts instead.
 */
function parksAtRisk(request: RerunRequest, config: Config): boolean {
  return !request.lastAttempts && (request.park ?? (request.kind === 'sweep' && config.park));
}

/**
 * The request's options a claim or control task carries, for every task; `lastAttempts` is read each time
 * a control task is written: the rule as the run applies it then.
 */
function controlWorkOf(request: RerunRequest, allowsLastAttempts: () => boolean): Omit<ControlWork, 'task'> {
  const { requestId, cutoffMs, mode, reason, kind, force, verifyMs, minBackoffLeftMs, clusters } = request;
  return {
    requestId,
    cutoffMs,
    mode,
    reason,
    requestKind: kind,
    force,
    get lastAttempts() {
      return allowsLastAttempts();
    },
    verifyMs,
    minBackoffLeftMs,
    clusters,
    maxRatePerSecond: request.maxRatePerSecond,
  };
}
