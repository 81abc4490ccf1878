/**
 * The move of one original into its copy (docs/claims.md "A crash mid-redrive"): the copy is created, the
 * original read again, and deleted only while idle; a copy that must not run beside its original is
 * withdrawn. When in doubt, a task is kept rather than lost.
 */
import type { CloudTasksError, Task } from '../cloud-tasks/client.js';
import { recordWithdrawn } from '../control/withdrawn-copies.js';
import { firstTaskOf, type CopyDeps, type CopyResult, type CopyShape } from './copy.js';
import { parseTaskName, type TaskName } from '../cloud-tasks/names.js';
import type { QueueRun } from './plan.js';
import type { RecoveryTasks } from './recovery-tasks.js';
import type { RedriveCalls, Stop } from './redrive-calls.js';
import { actionFor, isInDoubt } from '../cloud-tasks/retry.js';
import { hasAttemptUnderWay } from './select.js';
import type { SecondReader } from './second-reads.js';

/** A move's recovery task: its name (none without a control queue) and when it falls due. */
export interface Recovery {
  readonly name: string | undefined;
  readonly dueMs: number;
  /** Written by an earlier delivery whose move is not settled (found live), not by this one. */
  readonly earlier: boolean;
}

/** A move's copy, once it exists. */
export interface MovedCopy {
  readonly name: TaskName;
  /** When it falls due. */
  readonly dueMs: number;
  /**
   * Found under its name at this move's first try: another delivery of the request made it. An original
   * gone meanwhile was then most likely deleted by that delivery's move, so the copy is not withdrawn.
   */
  readonly madeElsewhere: boolean;
}

/** How a move's second half ends: with the task's result, or with what a stage threw. */
export interface MoveEnd {
  moved(result: CopyResult): void;
  failed(error: unknown): void;
}

/**
 * A move waiting for its original's second read: what its second half needs, in one object rather than a
 * chain of calls (docs/performance.md "Memory").
 */
class SecondHalf implements SecondReader {
  constructor(
    private readonly settle: (half: SecondHalf, again: Task | Stop) => void,
    readonly name: TaskName,
    readonly seenAttempts: number,
    readonly copy: MovedCopy,
    readonly recovery: Recovery,
    readonly end: MoveEnd,
  ) {}

  secondRead(again: Task | Stop): void {
    this.settle(this, again);
  }

  readFailed(error: unknown): void {
    this.end.failed(error);
  }
}

/** The original's delete is sent at least this long before its copy or its recovery task falls due. */
const DELETE_MARGIN_MS = 1_000;

export class Mover {
  /** Accounts whose tokens this run may not create tasks with: later tasks carrying them are not tried. */
  readonly #cannotActAs = new Set<string>();

  constructor(
    private readonly deps: Pick<CopyDeps, 'tasks' | 'budget' | 'armingDelayMs' | 'recovery'> & {
      shape: CopyShape;
      /** Where this run's moves' recovery tasks are deleted. */
      recoveries: Pick<RecoveryTasks, 'disarm'>;
    },
    private readonly calls: RedriveCalls,
    /** Tells `reader` the original as it is now, read after its copy exists, by `answerByMs` if it can be. */
    private readonly secondRead: (
      queue: QueueRun,
      name: TaskName,
      answerByMs: number,
      reader: SecondReader,
    ) => void,
  ) {}

  /** Whether this run may create a task carrying the account's token, as far as it knows. */
  mayActAs(account: string | undefined): boolean {
    return account === undefined || !this.#cannotActAs.has(account);
  }

  /**
   * The move's first half: creates the copy, due an arming delay after its slot, or after each try is sent
   * if that is later; once it exists (made now, or by an earlier try of this request), when it falls due.
   * The caller lets the original's body go once this returns: the second half needs only its attempts.
   */
  async copy(
    queue: QueueRun,
    original: Task,
    copyName: TaskName,
    account: string | undefined,
    slotMs: number,
    recovery: Recovery,
  ): Promise<Stop | MovedCopy> {
    const { budget, tasks, armingDelayMs } = this.deps;
    let dueMs = 0;
    // Whether a try before this one may have made the copy (its answer was not a clear refusal).
    let triedBefore = false;
    return this.calls.sendChange<Stop | MovedCopy>(
      () => {
        const dueAtMs = Math.max(budget.now(), slotMs) + armingDelayMs;
        const copy = this.deps.shape.taskOf(original, copyName, dueAtMs);
        dueMs = Date.parse(copy.scheduleTime!);
        return tasks.createTask(queue.queue, copy);
      },
      (failure) => {
        if (failure === undefined) return { name: copyName, dueMs, madeElsewhere: false };
        if (failure.status === 'ALREADY_EXISTS') {
          return this.#existingCopy(copyName, firstTaskOf(original), recovery, !triedBefore);
        }
        if (failure.status === 'PERMISSION_DENIED' && account !== undefined) {
          // Creating a task with a token needs iam.serviceAccounts.actAs on its account; the original stays.
          this.#cannotActAs.add(account);
          return { stop: { outcome: 'skipped', skipReason: 'cannot-act-as' } };
        }
        const action = actionFor(failure);
        if (action === 'stop-queue') queue.state.stop('queue-permission-denied');
        if (action !== 'retry' && action !== 'wait-quota' && !isInDoubt(failure)) {
          return { stop: { outcome: 'failed', error: `CreateTask: ${failure.message}` } };
        }
        // A named create is safe to send again: if the first one landed, the next answers ALREADY_EXISTS.
        triedBefore = true;
        return undefined;
      },
      // The copy may exist, or land later: the move's recovery settles it.
      (failure) => ({
        stop: { outcome: 'deferred', error: `CreateTask: ${failure.message}`, unsettled: true },
      }),
    );
  }

  /**
   * ALREADY_EXISTS: go on only if the task under the copy's name is this original's copy (made by another
   * delivery when `firstTry`, else perhaps by an earlier try of this one).
   */
  async #existingCopy(
    copyName: TaskName,
    first: string,
    recovery: Recovery,
    firstTry: boolean,
  ): Promise<Stop | MovedCopy> {
    const existing = await this.calls.read(copyName, 'FULL');
    if (!('stop' in existing)) {
      if (firstTaskOf(existing) === first) {
        const dueMs = Date.parse(existing.scheduleTime ?? '') || this.deps.budget.now();
        return { name: copyName, dueMs, madeElsewhere: firstTry };
      }
      return {
        stop: { outcome: 'failed', error: `a task not copied from this one holds the name ${copyName.name}` },
      };
    }
    if (existing.stop.outcome !== 'gone') return existing;
    // A parked task's home copy is never withdrawn (below): under its name, it ran. The move's second
    // half deletes the parked copy left behind (docs/parking.md "Limits").
    if (!this.deps.shape.originalRuns) {
      return { name: copyName, dueMs: this.deps.budget.now(), madeElsewhere: true };
    }
    // The name is a tombstone: an earlier delivery's copy already ran, or was withdrawn. Either way this
    // request cannot copy the task again, and deleting the original could lose it: it stays as it is.
    // With no earlier move left unsettled, that move ended with its original kept; this move's own
    // recovery task must read it so, or, when the record cannot be written, not be there to read it
    // (docs/claims.md "Withdrawn copies are recorded").
    const unrecorded = !recovery.earlier && (await this.#recordWithdrawn(copyName));
    if (unrecorded) await this.deps.recoveries.disarm(recovery);
    return {
      stop: {
        outcome: 'failed',
        error: `the copy's name ${copyName.name} was used by an earlier delivery of this request (its copy ran or was withdrawn); the task is left as it is: send a new request to redrive it`,
      },
    };
  }

  /**
   * The move's second half, with the copy made: the original, seen with `seenAttempts` attempts, is
   * deleted only while idle (DeleteTask does not stop an attempt). A settled move's recovery task is then
   * deleted (docs/claims.md "A crash mid-redrive": a move left unsettled keeps it), and `end` is told.
   */
  replace(
    queue: QueueRun,
    name: TaskName,
    seenAttempts: number,
    copy: MovedCopy,
    recovery: Recovery,
    end: MoveEnd,
  ): void {
    const half = new SecondHalf(this.#settle, name, seenAttempts, copy, recovery, end);
    this.secondRead(queue, name, Math.min(copy.dueMs, recovery.dueMs) - DELETE_MARGIN_MS, half);
  }

  readonly #settle = (half: SecondHalf, again: Task | Stop): void => {
    const { name, seenAttempts, copy, recovery, end } = half;
    this.#afterSecondRead(again, name, seenAttempts, copy, recovery)
      .then((result) =>
        'unsettled' in result ? result : this.deps.recoveries.disarm(recovery).then(() => result),
      )
      .then((result) => end.moved(result))
      .catch((error: unknown) => end.failed(error));
  };

  async #afterSecondRead(
    again: Task | Stop,
    name: TaskName,
    seenAttempts: number,
    copy: MovedCopy,
    recovery: Recovery,
  ): Promise<CopyResult> {
    const { name: copyName } = copy;
    if ('stop' in again) {
      const gone = again.stop.outcome === 'gone';
      if (await this.#recoveryMayHaveRun(recovery)) {
        // The copy stays: an original gone is taken as the recovery's delete (as the delete's NOT_FOUND
        // is); one that cannot be read is left to the recovery task (as when the delete gives up).
        if (gone) return { outcome: 'redriven', copy: copyName, dueMs: copy.dueMs };
        return {
          outcome: 'deferred',
          error: `the original could not be read again (${describe(again.stop)}); the copy ${copyName.name} stays, and the move's recovery task settles the move`,
          unsettled: true,
        };
      }
      if (gone) return this.#originalGone(copy);
      return this.#withdraw(
        copyName,
        {
          outcome: 'deferred',
          error: `the original could not be read again (${describe(again.stop)}); its copy was withdrawn`,
        },
        { originalMayBeIdle: true },
      );
    }
    const attempted = (again.dispatchCount ?? 0) > seenAttempts || hasAttemptUnderWay(again);
    if (attempted) {
      return this.#withdraw(
        copyName,
        {
          outcome: 'deferred',
          error: 'an attempt of the original started meanwhile; its copy was withdrawn',
        },
        { originalMayBeIdle: false },
      );
    }
    return this.#deleteOriginal(name, copy, recovery);
  }

  async #deleteOriginal(name: TaskName, copy: MovedCopy, recovery: Recovery): Promise<CopyResult> {
    const { name: copyName, dueMs } = copy;
    let answerLost = false;
    return this.calls.sendChange(
      () => this.deps.tasks.deleteTask(name),
      (failure) => {
        if (failure === undefined) return { outcome: 'redriven', copy: copyName, dueMs };
        if (failure.status === 'NOT_FOUND') {
          // After a lost answer, NOT_FOUND most likely means the first delete went through; once the
          // recovery task may have run, that its delivery deleted it: keep the copy.
          if (answerLost) return { outcome: 'redriven', copy: copyName, dueMs };
          return this.#recoveryMayHaveRun(recovery).then((mayHaveRun) =>
            mayHaveRun ? { outcome: 'redriven', copy: copyName, dueMs } : this.#originalGone(copy),
          );
        }
        if (!isInDoubt(failure)) {
          return this.#withdraw(
            copyName,
            { outcome: 'failed', error: `DeleteTask: ${failure.message}` },
            { originalMayBeIdle: true },
          );
        }
        // No answer, or a server-side error: the delete may have gone through (docs/cloud-tasks-calls.md).
        answerLost = true;
        return undefined;
      },
      (failure) => ({
        outcome: 'deferred',
        error: `the original could not be deleted (${failure.message}); the copy ${copyName.name} stays, and the move's recovery (or the next delivery of this request) deletes the original`,
        unsettled: true,
      }),
    );
  }

  /**
   * Whether the move's recovery task may have been delivered: its delivery may then have finished the move
   * (deleted the original, the copy being there), so withdrawing the copy could lose the task
   * (docs/claims.md "A crash mid-redrive"). Never, without a control queue. Before it is due by this
   * process's clock, the task itself is read: Cloud Tasks delivers it by its own clock, which may be ahead.
   * Gone (delivered and done), attempted, or unreadable: it may have run, and the copy is kept.
   */
  async #recoveryMayHaveRun(recovery: Recovery): Promise<boolean> {
    if (recovery.name === undefined) return false;
    if (this.deps.budget.now() >= recovery.dueMs) return true;
    const name = parseTaskName(recovery.name);
    if (!name) return true;
    const task = await this.calls.read(name, 'BASIC');
    return 'stop' in task || (task.dispatchCount ?? 0) > 0 || task.lastAttempt !== undefined;
  }

  /**
   * The original vanished during the move. One that may run finished (or was deleted): its copy must not
   * run too. One that cannot run, or whose copy another delivery made, was moved by that delivery under
   * the same copy name: the copy stays (when in doubt, a task is kept rather than lost).
   */
  #originalGone(copy: MovedCopy): Promise<CopyResult> {
    const gone: CopyResult = { outcome: 'gone' };
    return this.deps.shape.originalRuns && !copy.madeElsewhere
      ? this.#withdraw(copy.name, gone, { originalMayBeIdle: false })
      : Promise.resolve(gone);
  }

  /**
   * Deletes a copy that must not run (its original finished or is running, or could not be read or
   * deleted); `then` is the task's result. With a control queue, the record that the copy was withdrawn
   * is written first, so the move's recovery task does not take the copy's used name for a copy that ran
   * (docs/claims.md "Withdrawn copies are recorded"). When that record cannot be written and the original
   * may be idle, the copy stays and the recovery task settles the move.
   * A copy of a task that never runs by itself (a parked one) is kept: it runs once, and the move's
   * recovery task (or the same request sent again) finds its name used and deletes what is left behind.
   */
  async #withdraw(
    copyName: TaskName,
    then: CopyResult,
    { originalMayBeIdle }: { readonly originalMayBeIdle: boolean },
  ): Promise<CopyResult> {
    if (!this.deps.shape.originalRuns) {
      return {
        outcome: 'deferred',
        error: `the move stopped halfway; the copy ${copyName.name} stays, and its recovery task (or the same request sent again) deletes the task left behind`,
      };
    }
    const unrecorded = await this.#recordWithdrawn(copyName);
    if (unrecorded && originalMayBeIdle) {
      return {
        outcome: 'deferred',
        error: `the copy ${copyName.name} must be withdrawn, but its withdrawal could not be recorded (${unrecorded.message}): it stays, and the move's recovery task settles the move`,
        unsettled: true,
      };
    }
    const cannot = (failure: CloudTasksError): CopyResult => ({
      outcome: 'failed',
      error: `the copy ${copyName.name} could not be withdrawn (${failure.message}): the task may run twice`,
      unsettled: true,
    });
    return this.calls.sendChange(
      () => this.deps.tasks.deleteTask(copyName),
      (failure) =>
        failure === undefined || failure.status === 'NOT_FOUND'
          ? then
          : isInDoubt(failure)
            ? undefined
            : cannot(failure),
      cannot,
    );
  }

  /** With a control queue, records that the copy is withdrawn; the failure when it could not be. */
  async #recordWithdrawn(copyName: TaskName): Promise<CloudTasksError | undefined> {
    const { recovery: target, tasks, budget } = this.deps;
    if (!target) return undefined;
    const recorded = await this.calls.sendChange<CloudTasksError | 'recorded'>(
      async () => {
        const failure = await recordWithdrawn(tasks, target, copyName, budget.now());
        if (failure) throw failure;
      },
      (failure) => (failure === undefined ? 'recorded' : isInDoubt(failure) ? undefined : failure),
      (failure) => failure,
    );
    return recorded === 'recorded' ? undefined : recorded;
  }
}

function describe(result: CopyResult): string {
  return 'error' in result && result.error !== undefined ? result.error : result.outcome;
}
