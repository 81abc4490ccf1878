/**
 * Redrive's calls to Cloud Tasks (copy.ts, move.ts): a read raced against the budget (a FULL read for a
 * copy within the process's bytes of bodies), and a create or delete sent until its result is settled,
 * with at most RERUN_REDRIVE_CONCURRENCY of them in flight.
 */
import { bodyBytesOf, LARGEST_BODY_BYTES, letBodyGo } from '../cloud-tasks/body-bytes.js';
import { toCloudTasksError, type CloudTasksError, type Task } from '../cloud-tasks/client.js';
import { OUT_OF_TIME } from './budget.js';
import type { CopyDeps, CopyResult } from './copy.js';
import type { TaskName } from '../cloud-tasks/names.js';
import { backoffDelayMs, outcomeOfFailedRead } from '../cloud-tasks/retry.js';
import { sendWithRetries } from '../platform/google-api.js';
import type { Semaphore } from './pace.js';

/** Tries of a create or delete whose answer was transient, before the task is left for a later delivery. */
const MAX_CHANGE_ATTEMPTS = 3;

/** A step's failure, as the result the task ends with. */
export type Stop = { readonly stop: CopyResult };

/**
 * The bytes of bodies a process holds at once in tasks read on their own to be copied (docs/redrive.md
 * "Bodies held"): a 512 MiB function keeps room for its batches' requests and a FULL listing's pages.
 */
export const MAX_BODY_BYTES_HELD = 64 * 1024 * 1024;

/** A task read with its body, until the body is let go. */
export interface TaskWithBody {
  readonly task: Task;
  /** The body will not be read again: its memory may be freed, and its bytes are no longer held. */
  letGo(): void;
}

/** A FULL listing's task, whose body is already in memory: letting it go frees it, nothing is held. */
export function listedWithBody(task: Task): TaskWithBody {
  return { task, letGo: () => letBodyGo(task) };
}

export class RedriveCalls {
  constructor(private readonly deps: Pick<CopyDeps, 'tasks' | 'calls' | 'changes' | 'budget'>) {}

  /** A read (the client retries transient failures), raced against the budget. */
  async read(name: TaskName, view: 'BASIC' | 'FULL'): Promise<Task | Stop> {
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
   * A FULL read holding its body's bytes among the process's `bodies` (docs/redrive.md "Bodies held"): the
   * largest a body can be while the read is under way, then the body's own bytes until it is let go. A
   * read that finds no room before the budget ends is deferred.
   */
  async readBody(name: TaskName, bodies: Semaphore): Promise<TaskWithBody | Stop> {
    const { budget } = this.deps;
    if (!(await bodies.acquire(budget.deadlineMs, budget.now(), LARGEST_BODY_BYTES))) {
      return { stop: { outcome: 'deferred' } };
    }
    const task = await this.read(name, 'FULL');
    const heldBytes = 'stop' in task ? 0 : Math.min(LARGEST_BODY_BYTES, bodyBytesOf(task));
    bodies.release(LARGEST_BODY_BYTES - heldBytes);
    if ('stop' in task) return task;
    let held = true;
    return {
      task,
      letGo: () => {
        if (!held) return;
        held = false;
        letBodyGo(task);
        bodies.release(heldBytes);
      },
    };
  }

  /**
   * A create or delete, not raced against the budget (a call sent is let answer; the client's timeout
   * bounds it); its failure, or undefined on success.
   */
  async change(call: () => Promise<unknown>): Promise<CloudTasksError | undefined> {
    try {
      await this.holdingChange(call);
      return undefined;
    } catch (error) {
      return toCloudTasksError(error);
    }
  }

  /** Runs a create or delete holding a place among the changes in flight (`changes`, else `calls`). */
  holdingChange<T>(call: () => Promise<T>): Promise<T> {
    return (this.deps.changes ?? this.deps.calls).with(call);
  }

  /**
   * Sends a create or delete until `settle` gives its result from the failure (undefined: success).
   * `settle` answers undefined where the change may be sent again (retry.ts); it is, after backoff, up to
   * MAX_CHANGE_ATTEMPTS and within the budget (the one resend loop, shared/platform/google-api.ts);
   * otherwise `giveUp` gives the result from the last failure.
   */
  async sendChange<R>(
    send: () => Promise<unknown>,
    settle: (failure: CloudTasksError | undefined) => R | Promise<R> | undefined,
    giveUp: (failure: CloudTasksError) => R,
  ): Promise<R> {
    const { budget } = this.deps;
    let resend: CloudTasksError | undefined;
    try {
      return await sendWithRetries(
        async () => {
          const failure = await this.change(send);
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
