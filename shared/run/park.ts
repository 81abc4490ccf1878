/**
 * The parking stage (docs/parking.md): the failed tasks of a page that Cloud Tasks may drop before the
 * next sweep are taken out of the run and moved into their queue's PAUSED parking queue, where they wait
 * for the fix. Parking forces nothing: no canary, no breaker and no due-soon rule holds it back. Each task
 * goes through the same flow as any other (claim, act, release), with this stage's act, and gets one row,
 * `parked`.
 *
 * The move (docs/parking.md "The move"): the original read in the FULL view, the parked copy created
 * under a name derived from the original alone, the original read again and deleted. An original whose
 * attempt started meanwhile (or which vanished) may have been done: its parked copy is kept, marked so.
 * The task's body and headers live only in the act's locals; they never reach a row or a log line.
 */
import type { Budget } from './budget.js';
import type { Claimer } from './claim.js';
import { toCloudTasksError, type CloudTasksClient, type NewTask, type Task } from '../cloud-tasks/client.js';
import { firstTaskOf } from './copy.js';
import { hasAttemptUnderWay, type SkipReason } from './select.js';
import { TaskFlow } from './flow.js';
import { Breaker } from './breaker.js';
import { Hold } from './hold.js';
import { tellActed, type Acted, type Acting, type ActListener } from './modes.js';
import type { ForcePolicy } from './force.js';
import type { Logger } from '../platform/log.js';
import { parkingQueueOf, parseTaskName, type QueueName, type TaskName } from '../cloud-tasks/names.js';
import type { ControlTarget } from '../control/control-tasks.js';
import { RecoveryTasks } from './recovery-tasks.js';
import {
  isAtRisk,
  mayHaveVanishedByItself,
  parkedCopyOf,
  parkedNameOf,
  possiblyDoneNameOf,
  quietUntilOf,
  shortestLifeMs,
  TASK_RETENTION_MS,
  type RetryPolicy,
} from './park-rules.js';
import type { Semaphore } from './pace.js';
import type { PlannedPage, QueueRun, TaskUnderWay } from './plan.js';
import { RedriveCalls, type Stop } from './redrive-calls.js';
import type { ReportBuilder } from './settle.js';
import { isInDoubt } from '../cloud-tasks/retry.js';

/** Parking's line in the report, per home queue. */
export interface ParkingReport {
  queue: string;
  parkingQueue: string;
  /** Why its tasks were parked: what "at risk" meant for this run (docs/parking.md "At risk"). */
  why: string;
  /** Tasks found at risk of being dropped before the next sweep. */
  atRisk: number;
  parked: number;
  /** Parked while their last attempt may have run (docs/parking.md "The move"). */
  possiblyDone: number;
  /**
   * Parked copies that Cloud Tasks deletes within EXPIRY_WARNING_MS (31 days after they were parked): an
   * alert, not a re-park (docs/parking.md "Parking queues").
   */
  expiringSoon?: number;
  /** Why a periodic sweep cannot protect this queue's tasks (docs/parking.md "Where parking cannot work"). */
  cannotProtect?: string;
}

/** What became of one task parked. */
export type ParkResult =
  | { readonly outcome: 'parked'; readonly parkedAs: TaskName; readonly possiblyDone: boolean }
  | { readonly outcome: 'gone' }
  | { readonly outcome: 'skipped'; readonly skipReason: SkipReason }
  | { readonly outcome: 'failed'; readonly error: string }
  | { readonly outcome: 'deferred'; readonly error?: string };

/** Parked copies this close to their 31 days are counted and logged at each parking run. */
export const EXPIRY_WARNING_MS = 3 * 24 * 3_600_000;

/** A parked copy is moved this far past the next sweep at most: time for a late or long sweep. */
export const PARK_MARGIN_MS = 5 * 60_000;

export interface ParkingDeps {
  readonly tasks: CloudTasksClient;
  readonly budget: Budget;
  readonly log: Logger;
  readonly report: ReportBuilder;
  readonly claimer: Claimer;
  /** Bounds the stage's calls in flight (shared with the run's other Cloud Tasks calls). */
  readonly calls: Semaphore;
  /** Where each move's recovery task is written (the control queue), when there is one. */
  readonly recovery: ControlTarget | undefined;
  /** How long after a move starts its recovery task falls due (half a redrive's arming delay). */
  readonly recoveryDelayMs: number;
  /** The period of the sweep that comes next (RERUN_SWEEP_PERIOD). */
  readonly sweepPeriodMs: number;
  /** A dry run records what would be parked and moves nothing. */
  readonly dryRun: boolean;
  /** The request's cutoff: a failure after it is not this request's. */
  readonly cutoffMs: number;
}

/** Parking off: every page goes on as it is. */
export const NO_PARKING = {
  open: (): Promise<void> => Promise.resolve(),
  sift: (page: PlannedPage): Promise<PlannedPage> => Promise.resolve(page),
  drain: (): Promise<void> => Promise.resolve(),
  hasActed: false,
  reports: undefined,
};

export type ParkingStage = Parking | typeof NO_PARKING;

/** Tasks parked at once. */
const PARK_CONCURRENCY = 8;

/** Why a move marked possibly done is not settled: its plain parked copy could not be deleted. */
const PLAIN_COPY_LEFT =
  'the task is parked marked possibly done, but its plain parked copy could not be deleted: its recovery task deletes it (without a control queue, delete it by hand before any unpark)';

export class Parking {
  readonly #flow: TaskFlow;
  readonly #act: ParkActing;
  readonly #reports = new Map<string, ParkingReport>();
  /** Tasks taken for parking: a task listed twice is parked once. */
  readonly #taken = new Set<string>();

  constructor(private readonly deps: ParkingDeps) {
    const { tasks, budget, calls, log, report, claimer } = deps;
    const redriveCalls = new RedriveCalls({ tasks, calls, budget });
    this.#act = new ParkActing(
      redriveCalls,
      new RecoveryTasks({ tasks, budget, target: deps.recovery }, redriveCalls),
      deps.recoveryDelayMs,
      tasks,
      budget,
      (queue) => this.#reportOf(queue),
    );
    // Its own breaker and hold, never fed or held: parking forces nothing, so nothing stops it.
    this.#flow = new TaskFlow({
      acting: this.#act,
      claimer,
      budget,
      breaker: new Breaker(undefined, log),
      hold: new Hold(),
      report,
      rulesFor: () => {
        throw new Error('parking reads no selection rules on the fresh state');
      },
      verifyMs: 0,
      canaryWaitMs: 0,
      concurrency: PARK_CONCURRENCY,
    });
  }

  /**
   * A queue opened: its line in the report, and its parked copies near their 31 days, counted and logged
   * as a warning (an alert can be set on it). A missing parking queue holds none.
   */
  async open(queue: QueueRun): Promise<void> {
    const report = this.#reportOf(queue);
    const soonMs = this.deps.budget.now() + EXPIRY_WARNING_MS;
    const parking = parkingQueueOf(queue.queue);
    let expiring = 0;
    try {
      for await (const page of this.deps.tasks.listTasks(parking, 'BASIC')) {
        for (const task of page) {
          const createdMs = Date.parse(task.createTime ?? '');
          if (!(createdMs + TASK_RETENTION_MS > soonMs)) expiring++;
        }
      }
    } catch (error) {
      const failure = toCloudTasksError(error);
      if (failure.status !== 'NOT_FOUND') {
        this.deps.log.warn(
          { queue: report.queue, parkingQueue: parking.name, error: failure.message },
          'parking queue not listed',
        );
      }
      return;
    }
    if (expiring === 0) return;
    report.expiringSoon = expiring;
    this.deps.log.warn(
      { queue: report.queue, parkingQueue: parking.name, expiringSoon: expiring },
      'parked tasks near their 31 days',
    );
  }

  get reports(): ParkingReport[] {
    return [...this.#reports.values()];
  }

  /**
   * Takes the page's failed tasks at risk out of it (their candidates and skip rows) and parks them in the
   * background; the rest of the page goes on.
   */
  async sift(page: PlannedPage, queue: QueueRun): Promise<PlannedPage> {
    const report = this.#reportOf(queue);
    const untilMs = this.deps.budget.now() + this.deps.sweepPeriodMs + PARK_MARGIN_MS;
    const policy = policyOf(queue);
    const atRisk = page.matched.filter(
      (task) =>
        !this.#taken.has(task.name) &&
        this.#hasFailed(task) &&
        isAtRisk(task, policy, this.deps.budget.now(), untilMs),
    );
    if (atRisk.length === 0) return page;
    const names = new Set(atRisk.map((task) => task.name));
    const rest: PlannedPage = {
      ...page,
      candidates: page.candidates.filter((candidate) => !names.has(candidate.name.name)),
      rows: page.rows.filter((row) => !names.has(row.task)),
    };
    for (const task of atRisk) {
      this.#taken.add(task.name);
      report.atRisk++;
      const name = parseTaskName(task.name)!;
      if (this.deps.dryRun) {
        // As it would be parked: the row and the queue's count agree.
        report.parked++;
        this.deps.report.record({ task: task.name, outcome: 'parked' });
      } else await this.#flow.start({ name, listed: task, queue }, false);
    }
    return rest;
  }

  drain(): Promise<void> {
    return this.#flow.drain();
  }

  /** Whether a task was taken on to be parked: a run that did so has done something. */
  get hasActed(): boolean {
    return this.#flow.hasActed;
  }

  /** Failed, and before the request's cutoff: what parking may save. */
  #hasFailed(task: Task): boolean {
    const last = task.lastAttempt;
    if (last?.dispatchTime === undefined || last.responseTime === undefined) return false;
    return (last.responseStatus?.code ?? 0) !== 0 && Date.parse(last.dispatchTime) < this.deps.cutoffMs;
  }

  #reportOf(queue: QueueRun): ParkingReport {
    const home = queue.queue.name;
    let report = this.#reports.get(home);
    if (!report) {
      const withinMin = Math.round((this.deps.sweepPeriodMs + PARK_MARGIN_MS) / 60_000);
      report = {
        queue: home,
        parkingQueue: parkingQueueOf(queue.queue).name,
        why: `failed tasks that Cloud Tasks may drop within ${withinMin} min (the sweep period and a 5-minute margin), by an attempt that uses up their retries or by their 31 days`,
        atRisk: 0,
        parked: 0,
        possiblyDone: 0,
      };
      const lifeMs = shortestLifeMs(queue.retry);
      if (lifeMs < this.deps.sweepPeriodMs) {
        report.cannotProtect = `a task can go from its first failure to its drop in ${Math.round(lifeMs / 1000)} s, less than the sweep period of ${Math.round(this.deps.sweepPeriodMs / 1000)} s: a sweep may never see it failed`;
        this.deps.log.warn(
          { queue: home, cannotProtect: report.cannotProtect },
          'parking cannot protect this queue',
        );
      }
      this.#reports.set(home, report);
    }
    return report;
  }
}

/** A paused or disabled home queue makes no attempts: only the 31 days put its tasks at risk. */
function policyOf(queue: QueueRun): RetryPolicy {
  const { state } = queue.report;
  return state === 'PAUSED' || state === 'DISABLED' ? { ...queue.retry, maxAttempts: -1 } : queue.retry;
}

/** Parking's act, as the flow calls it: no place to hold, no pace, the move. */
class ParkActing implements Acting {
  constructor(
    private readonly calls: RedriveCalls,
    private readonly recoveries: RecoveryTasks,
    private readonly recoveryDelayMs: number,
    private readonly tasks: CloudTasksClient,
    private readonly budget: Budget,
    private readonly reportOf: (queue: QueueRun) => ParkingReport,
  ) {}

  enter(): Promise<() => void> {
    return Promise.resolve(() => undefined);
  }

  pacersOf(): readonly [] {
    return [];
  }

  reserve(): number {
    return this.budget.now();
  }

  noSlot(): Promise<{ outcome: 'deferred' }> {
    return Promise.resolve({ outcome: 'deferred' });
  }

  act(candidate: TaskUnderWay, _slotMs: number, _policy: ForcePolicy, done: ActListener): void {
    tellActed(this.#act(candidate), done);
  }

  async #act(candidate: TaskUnderWay): Promise<Acted> {
    const result = await this.#park(candidate);
    if (result.outcome === 'parked') {
      const report = this.reportOf(candidate.queue);
      report.parked++;
      if (result.possiblyDone) report.possiblyDone++;
    }
    return { forced: false, result };
  }

  async #park(candidate: TaskUnderWay): Promise<ParkResult> {
    const { name, queue } = candidate;
    const parking = parkingQueueOf(queue.queue);
    const refused = await parkingRefusal(this.tasks, parking);
    if (refused) return refused;
    const original = await this.calls.read(name, 'FULL');
    if ('stop' in original) return unmoved(original);
    if (hasAttemptUnderWay(original)) return { outcome: 'skipped', skipReason: 'in-flight' };
    const parkedName = parkedNameOf(name, parking);
    // docs/claims.md "A crash mid-redrive": a move left halfway is settled by its recovery task.
    const recovery = await this.recoveries.arm(
      {
        original: name.name,
        copy: parkedName.name,
        first: firstTaskOf(original),
        dispatchCount: original.dispatchCount ?? 0,
        quietUntil: quietUntilOf(original),
      },
      this.budget.now() + this.recoveryDelayMs,
    );
    if ('stop' in recovery) return unmoved(recovery);
    const result = await this.#move(original, name, parkedName, queue);
    if (result.outcome === 'parked') await this.recoveries.disarm(recovery);
    return result;
  }

  /** The copy, the second read, and the original's delete (or the copy marked possibly done). */
  async #move(original: Task, name: TaskName, parkedName: TaskName, queue: QueueRun): Promise<ParkResult> {
    const parking = parkingQueueOf(queue.queue);
    const created = await this.#create(parking, parkedName, firstTaskOf(original), () =>
      parkedCopyOf(original, parkedName, queue.queue, this.budget.now(), false),
    );
    if (created) return created;
    const again = await this.calls.read(name, 'BASIC');
    if ('stop' in again && again.stop.outcome !== 'gone') {
      // The parked copy stays: the move's recovery task, or else the next sweep, finishes the move.
      return {
        outcome: 'deferred',
        error:
          'the original could not be read again; its recovery task (or the next sweep) finishes the move',
      };
    }
    // Gone while it could not run or expire by itself: another move (a sweep beside this one, or this
    // move's recovery) deleted it, and this parked copy is the task.
    const movedByOther = () => !mayHaveVanishedByItself(quietUntilOf(original), this.budget.now());
    const running = !('stop' in again) && hasAttemptUnderWay(again);
    if ('stop' in again && movedByOther())
      return { outcome: 'parked', parkedAs: parkedName, possiblyDone: false };
    if ('stop' in again || running) {
      const marked = await this.#markPossiblyDone(parking, parkedName, original, queue.queue);
      if ('stop' in marked) return marked.stop;
      const deleted = running ? await this.#deleteOriginal(name) : 'deleted';
      if (deleted !== 'deleted' && deleted !== 'vanished') return deleted;
      return { outcome: 'parked', parkedAs: marked, possiblyDone: true };
    }
    // Idle: an attempt that ran and failed since the first read left it here, so it was not done either.
    const deleted = await this.#deleteOriginal(name);
    if (deleted === 'vanished' && !movedByOther()) {
      const marked = await this.#markPossiblyDone(parking, parkedName, original, queue.queue);
      if ('stop' in marked) return marked.stop;
      return { outcome: 'parked', parkedAs: marked, possiblyDone: true };
    }
    if (deleted !== 'deleted' && deleted !== 'vanished') return deleted;
    return { outcome: 'parked', parkedAs: parkedName, possiblyDone: false };
  }

  /** Creates a parked copy; undefined once it exists (made now, or by an earlier run that parked this task). */
  async #create(
    parking: QueueName,
    parkedName: TaskName,
    first: string,
    copy: () => NewTask,
  ): Promise<ParkResult | undefined> {
    return this.calls
      .sendChange<ParkResult | 'made'>(
        () => this.tasks.createTask(parking, copy()),
        (failure) => {
          if (failure === undefined) return 'made';
          if (failure.status === 'ALREADY_EXISTS') return this.#existing(parkedName, first);
          if (isInDoubt(failure)) return undefined;
          return { outcome: 'failed', error: `CreateTask in the parking queue: ${failure.message}` };
        },
        (failure) => ({ outcome: 'deferred', error: `CreateTask in the parking queue: ${failure.message}` }),
      )
      .then((result) => (result === 'made' ? undefined : result));
  }

  /** ALREADY_EXISTS: the move goes on only if the task under the name was parked from this one. */
  async #existing(parkedName: TaskName, first: string): Promise<ParkResult | 'made'> {
    const existing = await this.calls.read(parkedName, 'FULL');
    if (!('stop' in existing)) {
      return firstTaskOf(existing) === first
        ? 'made'
        : { outcome: 'failed', error: `a task not parked from this one holds the name ${parkedName.name}` };
    }
    if (existing.stop.outcome !== 'gone') return unmoved(existing);
    return {
      outcome: 'failed',
      error: `the parked copy's name ${parkedName.name} was used before (the task was parked and taken out again); the task is left as it is`,
    };
  }

  /** Replaces the parked copy by one marked as possibly done: created first, the plain one deleted after. */
  async #markPossiblyDone(
    parking: QueueName,
    parkedName: TaskName,
    original: Task,
    home: QueueName,
  ): Promise<TaskName | { stop: ParkResult }> {
    const marked = possiblyDoneNameOf(parkedName);
    const created = await this.#create(parking, marked, firstTaskOf(original), () =>
      parkedCopyOf(original, marked, home, this.budget.now(), true),
    );
    if (created) return { stop: created };
    const plainGone = await this.#deletePlainCopy(parkedName);
    return plainGone ? { stop: plainGone } : marked;
  }

  /**
   * Deletes the plain parked copy once its marked one exists; a result when it may still be there. Left
   * beside the marked copy, it would be unparked as not done: the move is not settled, and its recovery
   * task stays armed to finish it.
   */
  async #deletePlainCopy(parkedName: TaskName): Promise<ParkResult | undefined> {
    return this.calls
      .sendChange<ParkResult | 'gone'>(
        () => this.tasks.deleteTask(parkedName),
        (failure) => {
          if (failure === undefined || failure.status === 'NOT_FOUND') return 'gone';
          if (isInDoubt(failure)) return undefined;
          return { outcome: 'failed', error: `${PLAIN_COPY_LEFT} (DeleteTask: ${failure.message})` };
        },
        (failure) => ({ outcome: 'deferred', error: `${PLAIN_COPY_LEFT} (DeleteTask: ${failure.message})` }),
      )
      .then((result) => (result === 'gone' ? undefined : result));
  }

  /** Deletes the original: `vanished` when it was already gone (it may have been done). */
  async #deleteOriginal(name: TaskName): Promise<'deleted' | 'vanished' | ParkResult> {
    let answerLost = false;
    return this.calls.sendChange<'deleted' | 'vanished' | ParkResult>(
      () => this.tasks.deleteTask(name),
      (failure) => {
        if (failure === undefined) return 'deleted';
        if (failure.status === 'NOT_FOUND') return answerLost ? 'deleted' : 'vanished';
        if (!isInDoubt(failure)) {
          return {
            outcome: 'failed',
            error: `DeleteTask: ${failure.message}; the parked copy stays, the original too`,
          };
        }
        answerLost = true;
        return undefined;
      },
      (failure) => ({
        outcome: 'deferred',
        error: `the original could not be deleted (${failure.message}); its parked copy stays, and its recovery task (or the next sweep) finishes the move`,
      }),
    );
  }
}

/** A read that stopped the move before anything was made: its result (a read never ends `redriven`). */
function unmoved({ stop }: Stop): ParkResult {
  switch (stop.outcome) {
    case 'gone':
    case 'skipped':
      return stop;
    case 'deferred':
      return { outcome: 'deferred', ...(stop.error !== undefined && { error: stop.error }) };
    case 'failed':
      return { outcome: 'failed', error: stop.error };
    default:
      return { outcome: 'failed', error: `a read ended ${stop.outcome}` };
  }
}

/** The parking queue must exist and be PAUSED, read again before each park (docs/parking.md "Parking queues"). */
export async function parkingRefusal(
  tasks: CloudTasksClient,
  parking: QueueName,
): Promise<Extract<ParkResult, { outcome: 'failed' | 'deferred' }> | undefined> {
  try {
    const state = (await tasks.getQueue(parking)).state;
    if (state === 'PAUSED') return undefined;
    return {
      outcome: 'failed',
      error: `the parking queue ${parking.name} is ${state ?? 'in no known state'}, not PAUSED: its tasks would be dispatched; nothing was moved (pause it: gcloud tasks queues pause)`,
    };
  } catch (error) {
    const failure = toCloudTasksError(error);
    if (failure.status === 'NOT_FOUND') {
      return {
        outcome: 'failed',
        error: `the parking queue ${parking.name} does not exist (deploy.sh --park creates it); nothing was moved`,
      };
    }
    return { outcome: 'deferred', error: `the parking queue could not be read (${failure.message})` };
  }
}
