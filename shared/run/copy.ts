/**
 * The copy stage: one claimed task, read in the FULL view, copied into a new task of its queue due after
 * a short arming delay, and deleted only while idle (a move that stops halfway: docs/claims.md "A crash
 * mid-redrive"). Cloud Tasks then dispatches the copy
 * at the queue's own rate: no RunTask quota is used. The copy's name is a hash of the original, the
 * requestId and the cutoff, so a named create is safe to send again: ALREADY_EXISTS means an earlier
 * delivery (or an earlier try) made it. When in doubt, a task is kept rather than lost.
 *
 * The task's body and headers live only in this stage's locals while it is being copied: they never reach
 * a row, a log line or the caller.
 */
import {
  toCloudTasksError,
  type CloudTasksClient,
  type CloudTasksError,
  type NewTask,
  type Task,
} from '../cloud-tasks/client.js';
import { OUT_OF_TIME, type Budget } from './budget.js';
import { createUnderFreeName } from '../control/claim-names.js';
import { claimIdOf, moveRecoveryTaskFor, type ControlTarget } from '../control/control-tasks.js';
import type { ForcePolicy } from './force.js';
import { parseTaskName, type TaskName } from '../cloud-tasks/names.js';
import { reserveSlot, type Semaphore } from './pace.js';
import type { Candidate, QueueRun } from './plan.js';
import { actionFor, backoffDelayMs, isInDoubt, outcomeOfFailedRead } from '../cloud-tasks/retry.js';
import { selectTask, type SkipReason } from './select.js';
import { sendWithRetries } from '../platform/google-api.js';

/** The header a copy carries: the name of the first task of the chain (kept as it is on a copy's copy). */
export const ORIGINAL_TASK_HEADER = 'X-Rerun-Original-Task';

/** How far ahead a copy is due by default: time to delete the original before the copy is dispatched. */
export const DEFAULT_ARMING_DELAY_MS = 10_000;

/** Tries of a create or delete whose answer was transient, before the task is left for a later delivery. */
const MAX_CHANGE_ATTEMPTS = 3;

/** What became of one redriven task. */
export type CopyResult =
  /** The original is deleted; `copy` is due at `dueMs`, with no attempt yet. */
  | { readonly outcome: 'redriven'; readonly copy: TaskName; readonly dueMs: number }
  | { readonly outcome: 'gone' }
  | { readonly outcome: 'skipped'; readonly skipReason: SkipReason }
  | { readonly outcome: 'held' }
  | { readonly outcome: 'failed'; readonly error: string; readonly unsettled?: true }
  /** Left for a later delivery (the original is untouched, or the next delivery finds the copy). */
  | { readonly outcome: 'deferred'; readonly error?: string; readonly unsettled?: true };

export interface CopyDeps {
  readonly tasks: CloudTasksClient;
  /** Bounds redrive's reads, creates and deletes in flight across the run (RERUN_REDRIVE_CONCURRENCY). */
  readonly calls: Semaphore;
  readonly budget: Budget;
  readonly armingDelayMs: number;
  /** Where each move's recovery task is written (the control queue), when there is one. */
  readonly recovery?: ControlTarget | undefined;
}

/** A move's recovery task: its name (none without a control queue) and when it falls due. */
interface Recovery {
  readonly name: string | undefined;
  readonly dueMs: number;
}

/**
 * The copy's name: a hex SHA-256 of the original's full name, the requestId and the cutoff, the
 * same ID as the task's claim, which lives in the control queue.
 */
export function copyNameOf(original: TaskName, requestId: string, cutoffMs: number): TaskName {
  return parseTaskName(
    `${original.queueName}/tasks/${claimIdOf({ task: original.name, requestId, cutoffMs })}`,
  )!;
}

/** The first task of a chain of copies: what the task's own header names, else the task itself. */
export function firstTaskOf(task: Task): string {
  return headerOf(task, ORIGINAL_TASK_HEADER) ?? task.name;
}

/** The task to create: the fields stored on the original, its header naming the first task, due at `dueMs`. */
export function copyOf(original: Task, name: TaskName, dueMs: number): NewTask {
  const first = firstTaskOf(original);
  const withHeader = (headers: Record<string, string> | undefined): Record<string, string> =>
    headerOf(original, ORIGINAL_TASK_HEADER) === undefined
      ? { ...headers, [ORIGINAL_TASK_HEADER]: first }
      : { ...headers };
  const { httpRequest, appEngineHttpRequest, dispatchDeadline } = original;
  return {
    name: name.name,
    ...(httpRequest && { httpRequest: { ...httpRequest, headers: withHeader(httpRequest.headers) } }),
    ...(appEngineHttpRequest && {
      appEngineHttpRequest: { ...appEngineHttpRequest, headers: withHeader(appEngineHttpRequest.headers) },
    }),
    scheduleTime: new Date(dueMs).toISOString(),
    ...(dispatchDeadline && { dispatchDeadline }),
  };
}

/** The service account whose token the task carries (creating it needs iam.serviceAccounts.actAs on it). */
export function tokenAccountOf(task: Task): string | undefined {
  const http = task.httpRequest;
  return http?.oidcToken?.serviceAccountEmail ?? http?.oauthToken?.serviceAccountEmail;
}

/** A header of the task's request, matched case-blind. */
export function headerOf(task: Task, header: string): string | undefined {
  const headers = task.httpRequest?.headers ?? task.appEngineHttpRequest?.headers ?? {};
  const key = Object.keys(headers).find((k) => k.toLowerCase() === header.toLowerCase());
  return key === undefined ? undefined : headers[key];
}

/** A step's failure, as the result the task ends with. */
type Stop = { readonly stop: CopyResult };

export class Copier {
  /** Accounts whose tokens this run may not create tasks with: later tasks carrying them are not tried. */
  readonly #cannotActAs = new Set<string>();
  /** The names of the copies this run creates: a later listing page shows them, and they are not its work. */
  readonly copies = new Set<string>();

  constructor(
    private readonly deps: CopyDeps,
    private readonly request: { readonly requestId: string; readonly cutoffMs: number },
  ) {}

  /** The task's paced slot (the request's and the queue's own rate); undefined when none is left in the budget. */
  reserve(queue: QueueRun): number | undefined {
    const { budget } = this.deps;
    return reserveSlot(queue.copyPacers, budget.now(), budget.deadlineMs);
  }

  /** At the task's slot: the FULL read and the rules, the copy, the second read, the original's delete. */
  async copy(candidate: Candidate, slotMs: number, policy: ForcePolicy): Promise<CopyResult> {
    const { budget } = this.deps;
    await budget.sleepUntil(slotMs, policy.heldSignal);
    if (policy.isHeld()) return { outcome: 'held' };
    if (budget.isOver()) return { outcome: 'deferred' };
    const { name, queue } = candidate;
    const fresh = await this.#read(name, 'FULL');
    if ('stop' in fresh) return fresh.stop;
    const selection = selectTask(fresh, policy.rulesFor(queue));
    if (selection.kind === 'unmatched') return { outcome: 'skipped', skipReason: 'no-longer-matches' };
    if (selection.kind === 'skip') return { outcome: 'skipped', skipReason: selection.reason };
    const account = tokenAccountOf(fresh);
    if (account !== undefined && this.#cannotActAs.has(account)) {
      return { outcome: 'skipped', skipReason: 'cannot-act-as' };
    }
    if (queue.stoppedBy) return { outcome: 'skipped', skipReason: queue.stoppedBy };
    const stateSkip = await queue.state.skipReason();
    if (stateSkip) return { outcome: 'skipped', skipReason: stateSkip };
    if (policy.isHeld()) return { outcome: 'held' };
    const copyName = copyNameOf(name, this.request.requestId, this.request.cutoffMs);
    this.copies.add(copyName.name);
    const recovery = await this.#armRecovery(name, fresh, copyName);
    if ('stop' in recovery) return recovery.stop;
    const result = await this.#move(queue, name, fresh, copyName, account, recovery);
    // docs/claims.md "A crash mid-redrive": a move left unsettled keeps its recovery task.
    if (recovery.name !== undefined && !('unsettled' in result)) await this.#disarm(recovery.name);
    return result;
  }

  /** The copy, then the original's delete. */
  async #move(
    queue: QueueRun,
    name: TaskName,
    fresh: Task,
    copyName: TaskName,
    account: string | undefined,
    recovery: Recovery,
  ): Promise<CopyResult> {
    const created = await this.#create(queue, fresh, copyName, account);
    if ('stop' in created) return created.stop;
    return this.#replace(name, fresh, copyName, created.dueMs, recovery);
  }

  /**
   * With a control queue, the move's recovery task, written before the copy and due halfway through the
   * copy's arming delay: if this run stops anywhere in the move, its delivery finishes or undoes it
   * (recover-move.ts). Without one, nothing comes back in time (docs/claims.md "Limits").
   */
  async #armRecovery(name: TaskName, fresh: Task, copyName: TaskName): Promise<Stop | Recovery> {
    const { recovery: target, tasks, calls, budget, armingDelayMs } = this.deps;
    if (!target) return { name: undefined, dueMs: Number.POSITIVE_INFINITY };
    const dueMs = budget.now() + armingDelayMs / 2;
    const move = {
      original: name.name,
      copy: copyName.name,
      first: firstTaskOf(fresh),
      dispatchCount: fresh.dispatchCount ?? 0,
    };
    const written = await createUnderFreeName(
      tasks,
      target.queue,
      (generation) => moveRecoveryTaskFor(move, target, dueMs, generation),
      (call) => calls.with(call),
    );
    if (written.kind === 'created') return { name: written.name, dueMs };
    // Another delivery's recovery task for this move is live: it may fall due any time now.
    if (written.kind === 'exists') return { name: written.name, dueMs: budget.now() };
    return {
      stop: {
        outcome: 'deferred',
        error: `the move's recovery task could not be written (${written.error.message}); nothing was moved`,
      },
    };
  }

  /** Deletes the recovery task of a settled move; left in place, it falls due and finds nothing to do. */
  async #disarm(recoveryTask: string): Promise<void> {
    const name = parseTaskName(recoveryTask);
    if (name) await this.#change(() => this.deps.tasks.deleteTask(name));
  }

  /** With the copy made: the original is deleted only while idle (DeleteTask does not stop an attempt). */
  async #replace(
    name: TaskName,
    fresh: Task,
    copyName: TaskName,
    dueMs: number,
    recovery: Recovery,
  ): Promise<CopyResult> {
    const again = await this.#read(name, 'BASIC');
    if ('stop' in again) {
      if (again.stop.outcome === 'gone') return this.#withdraw(copyName, { outcome: 'gone' });
      return this.#withdraw(copyName, {
        outcome: 'deferred',
        error: `the original could not be read again (${describe(again.stop)}); its copy was withdrawn`,
      });
    }
    const attempted =
      (again.dispatchCount ?? 0) > (fresh.dispatchCount ?? 0) ||
      (again.lastAttempt?.dispatchTime !== undefined && again.lastAttempt.responseTime === undefined);
    if (attempted) {
      return this.#withdraw(copyName, {
        outcome: 'deferred',
        error: 'an attempt of the original started meanwhile; its copy was withdrawn',
      });
    }
    return this.#deleteOriginal(name, copyName, dueMs, recovery);
  }

  async #deleteOriginal(
    name: TaskName,
    copyName: TaskName,
    dueMs: number,
    recovery: Recovery,
  ): Promise<CopyResult> {
    let answerLost = false;
    return this.#sendChange(
      () => this.deps.tasks.deleteTask(name),
      (failure) => {
        if (failure === undefined) return { outcome: 'redriven', copy: copyName, dueMs };
        if (failure.status === 'NOT_FOUND') {
          // After a lost answer, NOT_FOUND most likely means the first delete went through; once the
          // recovery task is due, that its delivery deleted it: keep the copy.
          if (answerLost || this.deps.budget.now() >= recovery.dueMs) {
            return { outcome: 'redriven', copy: copyName, dueMs };
          }
          return this.#withdraw(copyName, { outcome: 'gone' });
        }
        if (!isInDoubt(failure)) {
          return this.#withdraw(copyName, { outcome: 'failed', error: `DeleteTask: ${failure.message}` });
        }
        answerLost ||= failure.answerLost || failure.status === 'DEADLINE_EXCEEDED';
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
   * Creates the copy, due an arming delay after each try is sent; once it exists (made now, or by an
   * earlier try of this request), when it falls due.
   */
  async #create(
    queue: QueueRun,
    original: Task,
    copyName: TaskName,
    account: string | undefined,
  ): Promise<Stop | { dueMs: number }> {
    const { budget, tasks, armingDelayMs } = this.deps;
    let dueMs = 0;
    return this.#sendChange<Stop | { dueMs: number }>(
      () => {
        const copy = copyOf(original, copyName, budget.now() + armingDelayMs);
        dueMs = Date.parse(copy.scheduleTime!);
        return tasks.createTask(queue.queue, copy);
      },
      (failure) => {
        if (failure === undefined) return { dueMs };
        if (failure.status === 'ALREADY_EXISTS') return this.#existingCopy(copyName, firstTaskOf(original));
        if (failure.status === 'PERMISSION_DENIED' && account !== undefined) {
          // Creating a task with a token needs iam.serviceAccounts.actAs on its account; the original stays.
          this.#cannotActAs.add(account);
          return { stop: { outcome: 'skipped', skipReason: 'cannot-act-as' } };
        }
        const action = actionFor(failure);
        if (action === 'stop-queue') queue.stoppedBy = 'queue-permission-denied';
        if (action !== 'retry' && action !== 'wait-quota' && !isInDoubt(failure)) {
          return { stop: { outcome: 'failed', error: `CreateTask: ${failure.message}` } };
        }
        // A named create is safe to send again: if the first one landed, the next answers ALREADY_EXISTS.
        return undefined;
      },
      // The copy may exist, or land later: the move's recovery settles it.
      (failure) => ({
        stop: { outcome: 'deferred', error: `CreateTask: ${failure.message}`, unsettled: true },
      }),
    );
  }

  /** ALREADY_EXISTS: go on only if the task under the copy's name is this original's copy. */
  async #existingCopy(copyName: TaskName, first: string): Promise<Stop | { dueMs: number }> {
    const existing = await this.#read(copyName, 'FULL');
    if (!('stop' in existing)) {
      if (firstTaskOf(existing) === first) {
        return { dueMs: Date.parse(existing.scheduleTime ?? '') || this.deps.budget.now() };
      }
      return {
        stop: { outcome: 'failed', error: `a task not copied from this one holds the name ${copyName.name}` },
      };
    }
    if (existing.stop.outcome !== 'gone') return existing;
    // The name is a tombstone: an earlier delivery's copy already ran, or was withdrawn. Either way this
    // request cannot copy the task again, and deleting the original could lose it: it stays as it is.
    return {
      stop: {
        outcome: 'failed',
        error: `the copy's name ${copyName.name} was used by an earlier delivery of this request (its copy ran or was withdrawn); the task is left as it is: send a new request to redrive it`,
      },
    };
  }

  /** Deletes a copy that must not run (its original finished, or is running); `then` is the task's result. */
  async #withdraw(copyName: TaskName, then: CopyResult): Promise<CopyResult> {
    const cannot = (failure: CloudTasksError): CopyResult => ({
      outcome: 'failed',
      error: `the copy ${copyName.name} could not be withdrawn (${failure.message}): the task may run twice`,
      unsettled: true,
    });
    return this.#sendChange(
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

  /** A read (the client retries transient failures), raced against the budget. */
  async #read(name: TaskName, view: 'BASIC' | 'FULL'): Promise<Task | Stop> {
    const { calls, budget, tasks } = this.deps;
    if (!(await calls.acquire(budget.deadlineMs, budget.now()))) return { stop: { outcome: 'deferred' } };
    try {
      const task = await budget.race(tasks.getTask(name, view));
      return task === OUT_OF_TIME ? { stop: { outcome: 'deferred' } } : task;
    } catch (error) {
      const failure = toCloudTasksError(error);
      const outcome = outcomeOfFailedRead(failure);
      return { stop: outcome === 'gone' ? { outcome } : { outcome, error: failure.message } };
    } finally {
      calls.release();
    }
  }

  /**
   * A create or delete, not raced against the budget (a call sent is let answer; the client's timeout
   * bounds it); its failure, or undefined on success.
   */
  async #change(call: () => Promise<unknown>): Promise<CloudTasksError | undefined> {
    const { calls } = this.deps;
    await calls.acquire();
    try {
      await call();
      return undefined;
    } catch (error) {
      return toCloudTasksError(error);
    } finally {
      calls.release();
    }
  }

  /**
   * Sends a create or delete until `settle` gives its result from the failure (undefined: success).
   * `settle` answers undefined where the change may be sent again (retry.ts); it is, after backoff, up to
   * MAX_CHANGE_ATTEMPTS and within the budget (the one resend loop, shared/platform/google-api.ts);
   * otherwise `giveUp` gives the result from the last failure.
   */
  async #sendChange<R>(
    send: () => Promise<unknown>,
    settle: (failure: CloudTasksError | undefined) => R | Promise<R> | undefined,
    giveUp: (failure: CloudTasksError) => R,
  ): Promise<R> {
    const { budget } = this.deps;
    let resend: CloudTasksError | undefined;
    try {
      return await sendWithRetries(
        async () => {
          const failure = await this.#change(send);
          const result = await settle(failure);
          if (result !== undefined) return result;
          if (failure === undefined) throw new Error('a change that succeeded must be settled');
          resend = failure;
          throw failure;
        },
        (_failure, attempt) => {
          const waitMs = backoffDelayMs(attempt);
          return attempt + 1 < MAX_CHANGE_ATTEMPTS && budget.now() + waitMs < budget.deadlineMs
            ? waitMs
            : undefined;
        },
        (waitMs) => budget.sleepUntil(budget.now() + waitMs),
      );
    } catch (error) {
      if (resend === undefined || error !== resend) throw error;
      return giveUp(resend);
    }
  }
}

function describe(result: CopyResult): string {
  return 'error' in result && result.error !== undefined ? result.error : result.outcome;
}
