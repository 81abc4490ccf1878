/**
 * The force stage (docs/selection.md "The fresh read", docs/execution.md "A RunTask whose answer was lost"): one claimed task, at its paced slot, read again
 * and re-checked, then RunTask with the error rules. A RunTask that may have taken effect is never resent:
 * it is read back, and a task that shows no new attempt is deferred to a later delivery.
 */
import { toCloudTasksError, type CloudTasksClient, type Task } from '../cloud-tasks/client.js';
import type { Budget } from './budget.js';
import { OUT_OF_TIME } from './budget.js';
import type { Logger } from '../platform/log.js';
import type { TaskName } from '../cloud-tasks/names.js';
import { reserveCall, reserveSlot, type Pacer, type Semaphore } from './pace.js';
import type { QueueRun, TaskUnderWay } from './plan.js';
import {
  actionFor,
  backoffDelayMs,
  isInDoubt,
  outcomeOfFailedRead,
  quotaWaitMs,
} from '../cloud-tasks/retry.js';
import { selectTask, type SelectionRules, type SkipReason } from './select.js';

/**
 * The fresh read starts this long before the task's slot, so RunTask itself goes out on the slot: reads
 * of varying latency never bunch RunTask calls into a quota window.
 */
const FRESH_READ_LEAD_MS = 250;

/** Answered-UNAVAILABLE RunTasks (read back as not run) resent before the task is deferred. */
const MAX_RUN_ATTEMPTS = 3;

/** What became of one forced task. */
export type ForceResult =
  /** `fresh` is the state the rules passed on: the verdict compares counts with it. */
  | { readonly outcome: 'dispatched'; readonly fresh: Task }
  | { readonly outcome: 'gone' }
  | { readonly outcome: 'skipped'; readonly skipReason: SkipReason }
  | { readonly outcome: 'held' }
  | { readonly outcome: 'failed'; readonly error: string }
  /** Left for a later delivery: no slot in the budget, transient failures, or an answer lost in doubt. */
  | {
      readonly outcome: 'deferred';
      readonly why: 'out-of-time' | 'transient' | 'lost-answer';
      readonly error?: string;
    };

export interface ForceDeps {
  readonly tasks: CloudTasksClient;
  /** The process-wide RunTask pacer (a 429 pushes it back for every run of the process). */
  readonly pacer: Pacer;
  /** The process-wide bound on RunTask calls in flight. */
  readonly inFlight: Semaphore;
  readonly budget: Budget;
  readonly log: Logger;
}

/** What the force stage asks of the run at the moment it forces a task. */
export interface ForcePolicy {
  /** The per-task rules for the fresh state (the last-attempt rule may have been lifted by canaries). */
  rulesFor(queue: QueueRun): SelectionRules;
  /** True once the breaker or a failed canary holds the rest. */
  isHeld(): boolean;
  /** Aborts when the rest is held, so a task waiting for its slot is held at once. */
  readonly heldSignal: AbortSignal | undefined;
}

export class Forcer {
  constructor(private readonly deps: ForceDeps) {}

  /** Reserves the task's paced slot; false when none is left in the budget. */
  reserve(queue: QueueRun): number | undefined {
    const { budget } = this.deps;
    return reserveSlot(queue.pacers, budget.now(), budget.deadlineMs);
  }

  /** Waits for the slot, reads the task again, re-checks every rule, and forces it. */
  async force(candidate: TaskUnderWay, slotMs: number, policy: ForcePolicy): Promise<ForceResult> {
    const { budget } = this.deps;
    await budget.sleepUntil(slotMs - FRESH_READ_LEAD_MS, policy.heldSignal);
    if (policy.isHeld()) return { outcome: 'held' };
    if (budget.isOver()) return { outcome: 'deferred', why: 'out-of-time' };
    return this.#readAndRun(candidate, slotMs, policy);
  }

  /**
   * The fresh read, the rules, then RunTask at the slot. A RunTask refused for quota, or answered
   * UNAVAILABLE and read back as not run, goes again at a later slot, and so through the fresh read
   * and the rules again: the task may have started an attempt of its own, or fallen due, meanwhile.
   */
  async #readAndRun(candidate: TaskUnderWay, firstSlotMs: number, policy: ForcePolicy): Promise<ForceResult> {
    const { queue, name } = candidate;
    const { budget } = this.deps;
    let slotMs = firstSlotMs;
    for (let unavailable = 0; ;) {
      const fresh = await this.#freshRead(name);
      if (fresh.kind !== 'task') return fresh.result;
      const selection = selectTask(fresh.task, policy.rulesFor(queue));
      if (selection.kind === 'unmatched') return { outcome: 'skipped', skipReason: 'no-longer-matches' };
      if (selection.kind === 'skip') return { outcome: 'skipped', skipReason: selection.reason };
      await budget.sleepUntil(slotMs);
      if (budget.isOver()) return { outcome: 'deferred', why: 'out-of-time' };
      if (queue.state.stoppedBy) return { outcome: 'skipped', skipReason: queue.state.stoppedBy };
      const stateSkip = await queue.state.skipReason();
      if (stateSkip) return { outcome: 'skipped', skipReason: stateSkip };
      if (policy.isHeld()) return { outcome: 'held' };
      const answer = await this.#runOnce(name, fresh.task, queue);
      if (answer !== 'retry' && answer !== 'quota') return answer;
      if (answer === 'retry' && ++unavailable >= MAX_RUN_ATTEMPTS) {
        return { outcome: 'deferred', why: 'transient', error: 'RunTask kept failing with UNAVAILABLE' };
      }
      const nextMs = this.reserve(queue);
      if (nextMs === undefined) {
        return answer === 'quota'
          ? { outcome: 'deferred', why: 'out-of-time', error: 'RunTask quota exhausted' }
          : { outcome: 'deferred', why: 'out-of-time' };
      }
      slotMs = answer === 'retry' ? Math.max(nextMs, budget.now() + backoffDelayMs(unavailable)) : nextMs;
      await budget.sleepUntil(slotMs - FRESH_READ_LEAD_MS, policy.heldSignal);
      if (policy.isHeld()) return { outcome: 'held' };
      if (budget.isOver()) return { outcome: 'deferred', why: 'out-of-time' };
    }
  }

  /** GetTask right before forcing: the listing may be minutes old. */
  async #freshRead(
    name: TaskName,
  ): Promise<{ kind: 'task'; task: Task } | { kind: 'result'; result: ForceResult }> {
    try {
      const task = await this.deps.budget.race(this.deps.tasks.getTask(name));
      if (task === OUT_OF_TIME)
        return { kind: 'result', result: { outcome: 'deferred', why: 'out-of-time' } };
      return { kind: 'task', task };
    } catch (error) {
      const failure = toCloudTasksError(error);
      const outcome = outcomeOfFailedRead(failure);
      const result: ForceResult =
        outcome === 'gone'
          ? { outcome }
          : outcome === 'failed'
            ? { outcome, error: failure.message }
            : { outcome, why: 'transient', error: failure.message };
      return { kind: 'result', result };
    }
  }

  /**
   * One RunTask: an outcome; 'retry' when it was answered UNAVAILABLE and read back as not run; 'quota'
   * when Cloud Tasks refused it for the quota (the pacer is pushed back for every run of the process).
   */
  async #runOnce(name: TaskName, fresh: Task, queue: QueueRun): Promise<ForceResult | 'retry' | 'quota'> {
    const { budget, inFlight } = this.deps;
    if (!(await inFlight.acquire(budget.deadlineMs, budget.now()))) {
      return { outcome: 'deferred', why: 'out-of-time' };
    }
    try {
      // The queue may have been stopped, or the quota pushed back, while this task waited its turn.
      if (queue.state.stoppedBy) return { outcome: 'skipped', skipReason: queue.state.stoppedBy };
      const callMs = reserveCall(queue.pacers, budget.now(), budget.deadlineMs);
      if (callMs === undefined) return { outcome: 'deferred', why: 'out-of-time' };
      await budget.sleepUntil(callMs);
      return await this.#callRunTask(name, fresh, queue);
    } finally {
      inFlight.release();
    }
  }

  async #callRunTask(name: TaskName, fresh: Task, queue: QueueRun): Promise<ForceResult | 'retry' | 'quota'> {
    const { tasks, budget, pacer, log } = this.deps;
    try {
      // Not raced against the budget: a call sent on its slot is let answer (the client's timeout bounds
      // it), rather than turned into a lost answer the moment the budget ends.
      await tasks.runTask(name);
      return { outcome: 'dispatched', fresh };
    } catch (error) {
      const failure = toCloudTasksError(error);
      if (failure.status === 'RESOURCE_EXHAUSTED') {
        const nowMs = budget.now();
        pacer.pushBack(nowMs + quotaWaitMs(failure.retryDelayMs, nowMs));
        log.warn({ task: name.name, retryDelayMs: failure.retryDelayMs }, 'RunTask quota exhausted; waiting');
        return 'quota';
      }
      if (isInDoubt(failure)) {
        // An answered UNAVAILABLE was not served; any other doubt is a lost answer (docs/execution.md).
        const why = failure.status === 'UNAVAILABLE' && !failure.answerLost ? 'transient' : 'lost-answer';
        const settled = await this.#afterDoubt(name, fresh, why, failure.message);
        // Only an answered UNAVAILABLE that left no attempt behind is sent again.
        if (settled.outcome === 'deferred' && why === 'transient') return 'retry';
        return settled;
      }
      switch (actionFor(failure)) {
        case 'gone':
          return { outcome: 'gone' };
        case 'stop-queue':
          queue.state.stop('queue-permission-denied');
          return { outcome: 'failed', error: failure.message };
        default:
          return { outcome: 'failed', error: failure.message };
      }
    }
  }

  /**
   * A RunTask that may have taken effect: read the task back. A higher dispatchCount or NOT_FOUND settles
   * it; otherwise it is deferred (the call may still reach Cloud Tasks: a read showing no new attempt
   * proves nothing), never resent by this run.
   */
  async #afterDoubt(
    name: TaskName,
    fresh: Task,
    why: 'lost-answer' | 'transient',
    error: string,
  ): Promise<ForceResult> {
    try {
      const current = await this.deps.budget.race(this.deps.tasks.getTask(name));
      if (current !== OUT_OF_TIME && (current.dispatchCount ?? 0) > (fresh.dispatchCount ?? 0)) {
        return { outcome: 'dispatched', fresh };
      }
    } catch (readError) {
      if (actionFor(toCloudTasksError(readError)) === 'gone') return { outcome: 'gone' };
    }
    return { outcome: 'deferred', why, error: `${error} (not resent: it may still reach Cloud Tasks)` };
  }
}
