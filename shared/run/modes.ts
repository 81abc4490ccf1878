/**
 * What differs between run, redrive and a dry run: one object per mode, handed to the stages
 * (docs/architecture.md "Modes"). A mode says what the plan's rules make of it, the pace a task keeps, how
 * a claimed task is acted on and read back, and what a task gets when no slot is left in the budget. This
 * file's modeOf is the one place that looks at the request's mode and dryRun.
 */
import type { Budget } from './budget.js';
import type { CloudTasksClient } from '../cloud-tasks/client.js';
import type { Config } from '../platform/config.js';
import type { ControlTarget, ControlWork } from '../control/control-tasks.js';
import { Copier, type CopyListener, type CopyResult, type CopyShape } from './copy.js';
import { CopyVerdicts } from './copy-verdicts.js';
import { Enqueuer } from './enqueue.js';
import { estimateOf, LoadCollector, type Estimate } from './estimate.js';
import { Forcer, type ForcePolicy, type ForceResult } from './force.js';
import type { ListBudget } from './list-budget.js';
import type { ParkResult } from './park.js';
import type { Logger } from '../platform/log.js';
import type { QueueName } from '../cloud-tasks/names.js';
import { Semaphore, type Pacer } from './pace.js';
import type { Candidate, Listing, PlanMode, QueueRun, TaskUnderWay } from './plan.js';
import { homeCopy, parkedListing } from './unpark.js';
import { checkRedrivePermissions } from './redrive-permissions.js';
import { batchPath, perTaskPath, type RedriveCallsTaken, type RedrivePath } from './redrive-path.js';
import type { RerunMode, RerunRequest } from '../triggers/events.js';
import { isLastAttempt } from './select.js';
import type { TaskRow } from './settle.js';
import { tellWhenRead, Verifier, type ReadBack } from './verify.js';

/** The result of an act that forced nothing. */
export type Unforced = Exclude<
  ForceResult | CopyResult | ParkResult,
  { outcome: 'dispatched' } | { outcome: 'redriven' }
>;

/** A claimed task acted on: forced (its row, and how to read its forced attempt back), or not. */
export type Acted =
  | {
      readonly forced: true;
      readonly row: Omit<TaskRow, 'task'>;
      /** Reads the forced attempt back. */
      readonly verify: ReadBack;
    }
  | { readonly forced: false; readonly result: Unforced };

/** Told how a claimed task's act ended: an object, not a promise, as thousands are acted on at once. */
export interface ActListener {
  acted(acted: Acted): void;
  actFailed(error: unknown): void;
  /**
   * The task no longer needs its place among the tasks under way, before its act ends (a redrive's copy
   * exists: the rest of its move holds no body). Optional to call: the place is given up when the act ends.
   */
  forced(): void;
}

/** Tells `done` how an act given as a promise ended. */
export function tellActed(act: Promise<Acted>, done: ActListener): void {
  act.then((acted) => done.acted(acted)).catch((error: unknown) => done.actFailed(error));
}

/** How a task is carried out once admitted (flow.ts: claim, act, release, verify). */
export interface Acting {
  /** The place the task holds from before its claim to its verdict; undefined when none is left in time. */
  enter(queue: QueueRun): Promise<(() => void) | undefined>;
  /** The pacers a task of the queue waits for. */
  pacersOf(queue: Pick<QueueRun, 'pacers' | 'copyPacers'>): readonly Pacer[];
  /** Reserves the task's paced slot; undefined when none is left in the budget. */
  reserve(queue: QueueRun): number | undefined;
  /** At the slot: the fresh read, the rules, and the act; `done` is told how it ended. */
  act(candidate: TaskUnderWay, slotMs: number, policy: ForcePolicy, done: ActListener): void;
  /** No slot left in the budget: what the task of `queue` gets instead. */
  noSlot(task: string, queue: QueueRun): Promise<Omit<TaskRow, 'task'>>;
  /** Whether noSlot queues the task at its own paced slot (docs/claims.md "Queued work"). */
  readonly queuesAtSlot?: boolean;
}

export interface Mode extends PlanMode {
  readonly name: RerunMode;
  /** The outcome of a task this mode forces. */
  readonly forcedOutcome: 'dispatched' | 'redriven';
  /** Tasks under way at once: enough to keep the calls in flight busy. */
  readonly concurrency: number;
  readonly acting: Acting;
  /** Before any task is touched (redrive: its permissions on every queue). */
  prepare(queues: readonly QueueName[]): Promise<void>;
  /** The row of an admitted task that is not carried out (a dry run's), else undefined. */
  rowAtOnce(candidate: Candidate): TaskRow | undefined;
  /** A dry run's estimate, at `nowMs`. */
  estimate(nowMs: number): Estimate | undefined;
  /** Queues worked on at once: each has its own dispatch rate (redrive), or all share one quota (run). */
  readonly queuesAtOnce: number;
  /** How a redrive made its calls, for the report; undefined for the other modes. */
  redriveCalls(): RedriveCallsTaken | undefined;
  /**
   * The client the run's claims are written to the control queue with: by batch where the mode makes its
   * own writes by batch (docs/redrive.md "Batch calls"), else one call each.
   */
  readonly claimWrites: CloudTasksClient;
}

export interface ModeDeps {
  readonly config: Config;
  readonly tasks: CloudTasksClient;
  readonly pacer: Pacer;
  readonly inFlight: Semaphore;
  /** The process's bytes of bodies held by redrive's tasks read on their own. */
  readonly bodies: Semaphore;
  readonly log: Logger;
  readonly budget: Budget;
  readonly now: () => number;
  readonly armingDelayMs: number;
  /** The run's list calls. */
  readonly lists: ListBudget;
  /** The control queue, when there is one. */
  readonly control: ControlTarget | undefined;
  /** Whether what has no slot may go to the control queue (not from a control task's own delivery). */
  readonly mayEnqueue: boolean;
  readonly work: Omit<ControlWork, 'task'>;
}

/** The request's mode. */
export function modeOf(request: RerunRequest, deps: ModeDeps): Mode {
  const { config, tasks, budget, control } = deps;
  // Redrive's reads, creates and deletes, the read-backs and the enqueues share one bound.
  const calls = new Semaphore(config.redriveConcurrency);
  const verifier = new Verifier({ tasks, reads: calls, budget });
  const base =
    request.kind === 'unpark'
      ? unparkModeOf(request, deps, calls, verifier)
      : request.mode === 'redrive'
        ? redriveModeOf(request, deps, calls, verifier)
        : new RunTaskMode(
            tasks,
            new Forcer({ tasks, pacer: deps.pacer, inFlight: deps.inFlight, budget, log: deps.log }),
            verifier,
            control && deps.mayEnqueue ? new Enqueuer(tasks, control, deps.work, calls, deps.now) : undefined,
            budget,
            request.canary,
            config.concurrency,
          );
  return request.dryRun ? new DryRunMode(base, deps.armingDelayMs) : base;
}

/** The request's or the deployment's choice of path (docs/redrive.md "Batch calls"); the request's wins. */
function redriveModeOf(
  request: RerunRequest,
  deps: ModeDeps,
  calls: Semaphore,
  verifier: Verifier,
): RedriveMode {
  const { config, tasks, budget, log, lists, armingDelayMs } = deps;
  const path =
    (request.redriveBatch ?? config.redriveBatch)
      ? batchPath({ tasks, budget, log, lists, calls, armingDelayMs })
      : perTaskPath(tasks, config.redriveConcurrency);
  log.info({ redriveCalls: path.taken() }, 'redrive path');
  return redriveOn(request, deps, { calls, verifier, path, recovery: deps.control });
}

/**
 * Unpark (docs/parking.md "Unparking"): a redrive of each home queue's parked tasks, one call per task (the
 * batch path's second reads list the queue the copies go to, not the parking queue), each move with its
 * recovery task as any redrive's.
 */
function unparkModeOf(
  request: RerunRequest,
  deps: ModeDeps,
  calls: Semaphore,
  verifier: Verifier,
): RedriveMode {
  const { config, tasks } = deps;
  return redriveOn(request, deps, {
    calls,
    verifier,
    path: perTaskPath(tasks, config.redriveConcurrency),
    recovery: deps.control,
    shape: homeCopy(tasks),
    listing: parkedListing({ possiblyDone: request.possiblyDone }),
  });
}

/** A redrive on its path: the copier, the verdicts, and (unpark) what is moved and where it is listed. */
function redriveOn(
  request: RerunRequest,
  deps: ModeDeps,
  parts: {
    readonly calls: Semaphore;
    readonly verifier: Verifier;
    readonly path: RedrivePath;
    readonly recovery: ControlTarget | undefined;
    readonly shape?: CopyShape;
    readonly listing?: Listing;
  },
): RedriveMode {
  const { tasks, budget, lists, armingDelayMs } = deps;
  const { calls, verifier, path, recovery, shape, listing } = parts;
  const copier = new Copier(
    { ...path.copy, calls, bodies: deps.bodies, budget, armingDelayMs, recovery, shape },
    deps.work,
  );
  const verdicts = new CopyVerdicts({ tasks, budget, lists, verifier });
  return new RedriveMode(tasks, copier, verdicts, path, request.canary, listing);
}

/** Redrive works on this many queues at once, within the run's list budget. */
const REDRIVE_QUEUES_AT_ONCE = 4;

type Canary = Mode['canary'];

/** Mode run: RunTask, within the queue's maxConcurrentDispatches; what has no slot goes to the control queue. */
export class RunTaskMode implements Mode, Acting {
  readonly name = 'run';
  readonly forcedOutcome = 'dispatched';
  /** A forced attempt counts toward the task's own attempts: the last-attempt rule holds. */
  readonly startsAttemptsAgain = false;
  /** RunTask dispatches past the queue's maxConcurrentDispatches: the run keeps that limit itself. */
  readonly bypassesDispatchLimit = true;
  readonly readsBodies = false;
  /** Every queue shares the RunTask quota: one at a time. */
  readonly queuesAtOnce = 1;
  readonly acting: Acting = this;

  constructor(
    readonly claimWrites: CloudTasksClient,
    private readonly forcer: Forcer,
    private readonly verifier: Verifier,
    private readonly enqueuer: Enqueuer | undefined,
    private readonly budget: Budget,
    readonly canary: Canary,
    readonly concurrency: number,
  ) {}

  async prepare(): Promise<void> {}

  pacersOf(queue: Pick<QueueRun, 'pacers'>): readonly Pacer[] {
    return queue.pacers;
  }

  isOwnWork(): boolean {
    return false;
  }

  rowAtOnce(): undefined {
    return undefined;
  }

  estimate(): undefined {
    return undefined;
  }

  redriveCalls(): undefined {
    return undefined;
  }

  /** A place among the queue's forced attempts still running, held until the verdict. */
  async enter(queue: QueueRun): Promise<(() => void) | undefined> {
    const { attemptsRunning } = queue;
    const entered = await attemptsRunning.acquire(this.budget.deadlineMs, this.budget.now());
    return entered ? () => attemptsRunning.release() : undefined;
  }

  reserve(queue: QueueRun): number | undefined {
    return this.forcer.reserve(queue);
  }

  act(candidate: TaskUnderWay, slotMs: number, policy: ForcePolicy, done: ActListener): void {
    tellActed(this.#act(candidate, slotMs, policy), done);
  }

  async #act(candidate: TaskUnderWay, slotMs: number, policy: ForcePolicy): Promise<Acted> {
    const result = await this.forcer.force(candidate, slotMs, policy);
    if (result.outcome !== 'dispatched') return { forced: false, result };
    const { fresh } = result;
    return {
      forced: true,
      row: { outcome: 'dispatched' },
      verify: (windowMs, listener) => {
        // A task gone after what may have been its last attempt could have failed: no verdict then.
        const onLastAttempt = isLastAttempt(fresh, candidate.queue.retry, this.budget.now());
        tellWhenRead(this.verifier.verdictOf(candidate.name, fresh, windowMs, !onLastAttempt), listener);
      },
    };
  }

  get queuesAtSlot(): boolean {
    return this.enqueuer !== undefined;
  }

  /** The control queue takes the task, at the queue's pace, else a later delivery. */
  async noSlot(task: string, queue: QueueRun): Promise<Omit<TaskRow, 'task'>> {
    return this.enqueuer ? this.enqueuer.enqueue(task, this.pacersOf(queue)) : { outcome: 'deferred' };
  }
}

/**
 * Mode redrive: copy and delete; Cloud Tasks dispatches the copies itself, within the queue's
 * maxConcurrentDispatches and at the queue's own rate. What has no slot is deferred, not queued: the
 * control queue runs at the RunTask quota, and the next delivery goes on at the queue's own rate.
 */
export class RedriveMode implements Mode, Acting {
  readonly name = 'redrive';
  readonly forcedOutcome = 'redriven';
  /** A copy is a new task, with attempts from zero. */
  readonly startsAttemptsAgain = true;
  /** Cloud Tasks dispatches the copies itself, within the queue's limits. */
  readonly bypassesDispatchLimit = false;
  readonly queuesAtOnce = REDRIVE_QUEUES_AT_ONCE;
  readonly acting: Acting = this;
  readonly readsBodies: boolean;
  readonly concurrency: number;
  readonly claimWrites: CloudTasksClient;

  constructor(
    private readonly tasks: CloudTasksClient,
    private readonly copier: Copier,
    private readonly verdicts: CopyVerdicts,
    private readonly path: RedrivePath,
    readonly canary: Canary,
    /** Unpark's: the parked tasks of each queue's parking queue. */
    readonly listing?: Listing | undefined,
  ) {
    this.readsBodies = path.readsBodies;
    this.concurrency = path.concurrency;
    // By batch on the batch path, as the moves' recovery tasks are (docs/redrive.md "Batch calls").
    this.claimWrites = path.copy.tasks;
  }

  redriveCalls(): RedriveCallsTaken {
    return this.path.taken();
  }

  /** Without redrive's permissions nothing is created or deleted (redrive-permissions.ts). */
  async prepare(queues: readonly QueueName[]): Promise<void> {
    await checkRedrivePermissions(this.tasks, queues);
  }

  pacersOf(queue: Pick<QueueRun, 'copyPacers'>): readonly Pacer[] {
    return queue.copyPacers;
  }

  /** The copies this run made: listed later in the same queue, they are not its work. */
  isOwnWork(task: string): boolean {
    return this.copier.copies.has(task);
  }

  rowAtOnce(): undefined {
    return undefined;
  }

  estimate(): undefined {
    return undefined;
  }

  /** Cloud Tasks dispatches the copies itself, within maxConcurrentDispatches: no place to hold. */
  enter(): Promise<() => void> {
    return NO_PLACE;
  }

  reserve(queue: QueueRun): number | undefined {
    return this.copier.reserve(queue);
  }

  act(candidate: TaskUnderWay, slotMs: number, policy: ForcePolicy, done: ActListener): void {
    this.copier.copy(candidate, slotMs, policy, new CopyEnd(this.verdicts, candidate, done));
  }

  noSlot(): Promise<Omit<TaskRow, 'task'>> {
    return Promise.resolve({ outcome: 'deferred' });
  }
}

/** The place a redriven task holds: none. */
const NO_PLACE: Promise<() => void> = Promise.resolve(() => undefined);

/**
 * How a redrive's move ended, told to the flow as the task's act: one object per task, for the seconds its
 * move waits for its second read (docs/performance.md "Memory").
 */
class CopyEnd implements CopyListener {
  constructor(
    private readonly verdicts: CopyVerdicts,
    private readonly candidate: TaskUnderWay,
    private readonly done: ActListener,
  ) {}

  copied(): void {
    this.done.forced();
  }

  moved(result: CopyResult): void {
    this.done.acted(this.#acted(result));
  }

  failed(error: unknown): void {
    this.done.actFailed(error);
  }

  #acted(result: CopyResult): Acted {
    if (result.outcome !== 'redriven') return { forced: false, result };
    const { dueMs } = result;
    // The copy's name alone: thousands of copies may await their verdicts at once.
    const copy = result.copy.name;
    const { queue, report } = this.candidate.queue;
    return {
      forced: true,
      row: { outcome: 'redriven', copy },
      // The copy has no attempt yet; its first one falls due at the end of the arming delay.
      verify: (windowMs, listener) =>
        this.verdicts.verdictOf(queue, report.scanned, copy, dueMs, windowMs, listener),
    };
  }
}

/**
 * A dry run of either mode: nothing is claimed or forced. Each admitted task is counted as the mode would
 * force it, into the estimate of how long each mode would take; no canaries (nothing to verify).
 */
export class DryRunMode implements Mode {
  readonly canary = undefined;
  readonly #loads = new LoadCollector();

  constructor(
    private readonly base: Mode,
    private readonly armingDelayMs: number,
  ) {}

  get name(): RerunMode {
    return this.base.name;
  }
  get forcedOutcome(): 'dispatched' | 'redriven' {
    return this.base.forcedOutcome;
  }
  get concurrency(): number {
    return this.base.concurrency;
  }
  get startsAttemptsAgain(): boolean {
    return this.base.startsAttemptsAgain;
  }
  get bypassesDispatchLimit(): boolean {
    return this.base.bypassesDispatchLimit;
  }
  /** A dry run copies nothing: no bodies. */
  readonly readsBodies = false;
  get queuesAtOnce(): number {
    return this.base.queuesAtOnce;
  }
  get listing(): Listing | undefined {
    return this.base.listing;
  }
  get claimWrites(): CloudTasksClient {
    return this.base.claimWrites;
  }
  /** Never reached: every admitted task gets its row at once. */
  get acting(): Acting {
    return this.base.acting;
  }

  prepare(queues: readonly QueueName[]): Promise<void> {
    return this.base.prepare(queues);
  }

  pacersOf(queue: Pick<QueueRun, 'pacers' | 'copyPacers'>): readonly Pacer[] {
    return this.base.pacersOf(queue);
  }

  isOwnWork(task: string): boolean {
    return this.base.isOwnWork(task);
  }

  rowAtOnce(candidate: Candidate): TaskRow {
    this.#loads.add(candidate);
    const notes = this.base.listing?.notesOf(candidate) ?? [];
    return { task: candidate.name.name, outcome: this.forcedOutcome, ...(notes.length > 0 && { notes }) };
  }

  redriveCalls(): undefined {
    return undefined;
  }

  estimate(nowMs: number): Estimate {
    return estimateOf(this.#loads.loads(nowMs), { mode: this.name, armingDelayMs: this.armingDelayMs });
  }
}
