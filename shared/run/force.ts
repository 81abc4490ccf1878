/**
 * The force stage (docs/selection.md "The fresh read", docs/execution.md "A RunTask whose answer was lost"): one claimed task, at its paced slot, read again
 * and re-checked, then RunTask with the error rules. A RunTask that may have taken effect is never resent:
 * it is read back, and a task that shows no new attempt is deferred to a later delivery.
 */
import { toCloudTasksError, type CloudTasksClient, type Task } from '../cloud-tasks/client.js';
import type { Budget } from './budget.js';
import { claimOutlives, type Claim } from './claim.js';
import { OUT_OF_TIME } from './budget.js';
import type { Logger } from '../platform/log.js';
import { DATE_RESOLUTION_MS } from '../platform/server-clock.js';
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

/**
 * A task read longer ago than this when its call comes is read again, and the rules applied again (a wait
 * for the quota, a call in flight or a place may have run long): docs/execution.md "Pacing". Far below the
 * default minBackoffLeft, so a task does not start an attempt of its own unseen meanwhile.
 */
const FRESH_READ_MAX_AGE_MS = 1_000;

/** Answered-UNAVAILABLE RunTasks (read back as not run) resent before the task is deferred. */
const MAX_RUN_ATTEMPTS = 3;

/** A task as read afresh, and when the read was sent. */
interface Fresh {
  readonly task: Task;
  readonly readMs: number;
}

/**
 * A RunTask to send again at a later slot ('retry': answered UNAVAILABLE and read back as not run; 'quota':
 * refused for the quota), or once the task has its place again ('over-limit').
 */
type RunAgain = 'retry' | 'quota' | 'over-limit';

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
  /** The task's claim: no RunTask goes once it could take effect after the claim falls due. */
  readonly claim?: Claim | undefined;
}

export class Forcer {
  /** Whether this run has said that it waits for Cloud Tasks' clock. */
  #saidClockBehind = false;

  constructor(private readonly deps: ForceDeps) {}

  /** Reserves the task's paced slot; false when none is left in the budget. */
  reserve(queue: QueueRun): number | undefined {
    const { budget } = this.deps;
    return reserveSlot(queue.pacers, budget.now(), budget.deadlineMs);
  }

  /** Waits for the slot, reads the task again, re-checks every rule, and forces it. */
  async force(candidate: TaskUnderWay, slotMs: number, policy: ForcePolicy): Promise<ForceResult> {
    await this.deps.budget.sleepUntil(slotMs - FRESH_READ_LEAD_MS, policy.heldSignal);
    return this.#readAndRun(candidate, slotMs, policy);
  }

  /**
   * The fresh read and the checks, then RunTask at the slot, the checks made again right before it. A RunTask
   * refused for quota, or answered UNAVAILABLE and read back as not run, goes again at a later slot, and so
   * through the fresh read and the rules again: the task may have started an attempt of its own, or fallen
   * due, meanwhile. A task over its queue's lowered concurrency first waits for its place again.
   */
  async #readAndRun(candidate: TaskUnderWay, firstSlotMs: number, policy: ForcePolicy): Promise<ForceResult> {
    const { queue } = candidate;
    const { budget } = this.deps;
    let slotMs = firstSlotMs;
    for (let unavailable = 0; ;) {
      await this.#untilCloudTasksPasses(policy.rulesFor(queue).cutoffMs, policy);
      const fresh = await this.#checked(candidate, policy, undefined);
      let answer: ForceResult | RunAgain;
      if (typeof fresh === 'string' || 'outcome' in fresh) answer = fresh;
      else {
        await budget.sleepUntil(slotMs);
        answer = await this.#runOnce(candidate, fresh, policy);
      }
      if (answer === 'over-limit') {
        // Read again once it has its place: the wait may have been long.
        if (await queue.attemptsRunning.requeue(budget.deadlineMs, budget.now())) continue;
        return { outcome: 'deferred', why: 'out-of-time' };
      }
      if (answer !== 'retry' && answer !== 'quota') return answer;
      if (answer === 'retry' && ++unavailable >= MAX_RUN_ATTEMPTS) {
        return { outcome: 'deferred', why: 'transient', error: 'RunTask kept failing with UNAVAILABLE' };
      }
      const nextMs = this.reserve(queue);
      if (nextMs !== undefined) {
        slotMs = answer === 'retry' ? Math.max(nextMs, budget.now() + backoffDelayMs(unavailable)) : nextMs;
      }
      // No slot in the budget, or none before the claim falls due (the control queue carries the task out).
      if (nextMs === undefined || (policy.claim && !claimOutlives(policy.claim, slotMs))) {
        return answer === 'quota'
          ? { outcome: 'deferred', why: 'out-of-time', error: 'RunTask quota exhausted' }
          : { outcome: 'deferred', why: 'out-of-time' };
      }
      await budget.sleepUntil(slotMs - FRESH_READ_LEAD_MS, policy.heldSignal);
    }
  }

  /**
   * Waits, within the budget, until Cloud Tasks' clock surely reads the cutoff or later, when it is behind
   * by more than its Date headers resolve. An attempt it
   * dispatched before then would not show as after the cutoff, and a later delivery of the request would
   * force the task again: a local clock (or a deploy pipeline's) ahead of Cloud Tasks' would otherwise
   * give the cutoff that lead (docs/selection.md "Two clocks").
   */
  async #untilCloudTasksPasses(cutoffMs: number, policy: ForcePolicy): Promise<void> {
    const { budget, tasks, log } = this.deps;
    for (;;) {
      const waitMs = tasks.serverClock?.msUntil(cutoffMs);
      // A bound less than a second behind may be only the header's resolution: clocks that agree never wait.
      if (!waitMs || waitMs <= DATE_RESOLUTION_MS || budget.isOver() || policy.isHeld()) return;
      if (!this.#saidClockBehind) {
        this.#saidClockBehind = true;
        log.warn({ waitMs }, "Cloud Tasks' clock is behind the cutoff; waiting until it passes it");
      }
      await budget.sleepUntil(budget.now() + waitMs, policy.heldSignal);
    }
  }

  /**
   * The checks before a call, all in this one place: the queue's state; the task read again and the rules,
   * unless `fresh` was read at most `maxAgeMs` ago; then, with no wait before the call, what #stopped
   * checks. The task as the rules passed it, or what ends its force, or 'over-limit'.
   */
  async #checked(
    candidate: TaskUnderWay,
    policy: ForcePolicy,
    fresh: Fresh | undefined,
    maxAgeMs = FRESH_READ_MAX_AGE_MS,
  ): Promise<Fresh | ForceResult | 'over-limit'> {
    const { queue, name } = candidate;
    const { budget } = this.deps;
    const stopped = this.#stopped(queue, policy);
    if (stopped) return stopped;
    const stateSkip = await queue.state.skipReason();
    if (stateSkip) return { outcome: 'skipped', skipReason: stateSkip };
    let current = fresh;
    if (current === undefined || budget.now() - current.readMs > maxAgeMs) {
      const read = await this.#freshRead(name);
      if ('outcome' in read) return read;
      const selection = selectTask(read.task, policy.rulesFor(queue));
      if (selection.kind === 'unmatched') return { outcome: 'skipped', skipReason: 'no-longer-matches' };
      if (selection.kind === 'skip') return { outcome: 'skipped', skipReason: selection.reason };
      current = read;
    }
    return this.#stopped(queue, policy) ?? current;
  }

  /**
   * What stops the task at this instant: the budget over, the queue stopped, the rest held, a claim that
   * falls due before a call sent now could take effect, or the queue's attempts over its (lowered) limit.
   */
  #stopped(queue: QueueRun, policy: ForcePolicy): ForceResult | 'over-limit' | undefined {
    const { budget } = this.deps;
    if (budget.isOver()) return { outcome: 'deferred', why: 'out-of-time' };
    if (queue.state.stoppedBy) return { outcome: 'skipped', skipReason: queue.state.stoppedBy };
    if (policy.isHeld()) return { outcome: 'held' };
    if (policy.claim && !claimOutlives(policy.claim, budget.now())) {
      return { outcome: 'deferred', why: 'out-of-time' };
    }
    return queue.attemptsRunning.overLimit ? 'over-limit' : undefined;
  }

  /** GetTask right before forcing: the listing may be minutes old. */
  async #freshRead(name: TaskName): Promise<Fresh | ForceResult> {
    const { budget, tasks } = this.deps;
    const readMs = budget.now();
    try {
      const task = await budget.race(tasks.getTask(name));
      if (task === OUT_OF_TIME) return { outcome: 'deferred', why: 'out-of-time' };
      return { task, readMs };
    } catch (error) {
      const failure = toCloudTasksError(error);
      const outcome = outcomeOfFailedRead(failure);
      return outcome === 'gone'
        ? { outcome }
        : outcome === 'failed'
          ? { outcome, error: failure.message }
          : { outcome, why: 'transient', error: failure.message };
    }
  }

  /**
   * One RunTask at its call time, the checks made again right before it; 'retry' when it was answered
   * UNAVAILABLE and read back as not run; 'quota' when Cloud Tasks refused it for the quota (the pacer is
   * pushed back for every run of the process).
   */
  async #runOnce(
    candidate: TaskUnderWay,
    fresh: Fresh,
    policy: ForcePolicy,
  ): Promise<ForceResult | RunAgain> {
    const { queue } = candidate;
    const { budget, inFlight } = this.deps;
    if (!(await inFlight.acquire(budget.deadlineMs, budget.now()))) {
      return { outcome: 'deferred', why: 'out-of-time' };
    }
    try {
      // Checked before a call time is reserved (a task of a queue found paused meanwhile uses up none), and
      // again right before the call: the queue may have been paused or stopped, the rest held, or the task
      // changed, while it waited.
      const ready = await this.#checked(candidate, policy, fresh, Number.POSITIVE_INFINITY);
      if (typeof ready === 'string' || 'outcome' in ready) return ready;
      const callMs = reserveCall(queue.pacers, budget.now(), budget.deadlineMs);
      if (callMs === undefined) return { outcome: 'deferred', why: 'out-of-time' };
      await budget.sleepUntil(callMs);
      const checked = await this.#checked(candidate, policy, fresh);
      if (typeof checked === 'string' || 'outcome' in checked) return checked;
      return await this.#callRunTask(candidate.name, checked.task, queue);
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
