/**
 * Claims (docs/claims.md "Lifecycle"): a task is forced by at most one run at a time. In a process the
 * registry is keyed by task name, across every request. With a control queue, every claim is also a
 * control task named from the task, the requestId and the cutoff, so Cloud Tasks' name deduplication
 * refuses a second claim of the same request on any instance, and a claim whose instance died is carried
 * out by the control queue. A released claim's name stays reserved: docs/claims.md "Reserved names". A
 * cancelled request claims nothing (docs/claims.md "Cancelled requests"), and a control task delivering
 * its own claim takes a lease first (docs/claims.md "One delivery at a time").
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { toCloudTasksError, type CloudTasksClient } from '../cloud-tasks/client.js';
import { createControlTask, createOnce, requestCancelledForRun } from '../control/claim-names.js';
import {
  deliveryLeaseTaskFor,
  isClaimIdOf,
  type ControlTarget,
  type ControlWork,
} from '../control/control-tasks.js';
import type { Logger } from '../platform/log.js';
import { parseTaskName } from '../cloud-tasks/names.js';

/**
 * How long a task whose RunTask answer was lost stays in doubt: the client's 20 s timeout plus the API's
 * 15 s server deadline, after which a late call can no longer take effect and a fresh read tells the truth.
 */
export const LOST_ANSWER_HOLD_MS = 35_000;

/**
 * A claim falls due at most this long after it is made: a run with no budget (a command line on a
 * terminal) has no end to put it after, so its claims roll forward with it.
 */
const CLAIM_HORIZON_MS = 10 * 60_000;

/** What the registry says of a task another run may hold. */
export type RegistryAnswer = 'claimed' | 'running' | 'in-doubt';

/** How long the registry remembers that a claim was given up: longer than a run lasts. */
const RELEASE_MEMORY_MS = 15 * 60_000;
/** How often the registry drops what it no longer needs: a sweep reads every entry. */
const SWEEP_EVERY_MS = 60_000;

/** The process's claims: which tasks some run in this process is forcing right now. */
export class ClaimRegistry {
  /** Task name -> in doubt until (epoch ms; Infinity while a run holds it). */
  readonly #held = new Map<string, number>();
  /** Task name -> when a run last gave its claim up (epoch ms). */
  readonly #released = new Map<string, number>();
  #nextSweepMs = Number.NEGATIVE_INFINITY;

  constructor(readonly lostAnswerHoldMs: number = LOST_ANSWER_HOLD_MS) {}

  /**
   * Claims the task unless another run is forcing it (`running`) or an earlier RunTask of it lost its
   * answer moments ago and may still take effect (`in-doubt`).
   */
  tryClaim(task: string, nowMs: number): RegistryAnswer {
    const until = this.#held.get(task);
    if (until === Number.POSITIVE_INFINITY) return 'running';
    if (until !== undefined && until > nowMs) return 'in-doubt';
    this.#held.set(task, Number.POSITIVE_INFINITY);
    return 'claimed';
  }

  /** Gives the claim up at `nowMs`; a lost answer leaves the task in doubt for a while. */
  release(task: string, nowMs: number, lostAnswer = false): void {
    if (!lostAnswer || this.lostAnswerHoldMs <= 0) this.#held.delete(task);
    else this.#held.set(task, nowMs + this.lostAnswerHoldMs);
    this.#released.set(task, nowMs);
    if (nowMs >= this.#nextSweepMs) {
      this.#nextSweepMs = nowMs + SWEEP_EVERY_MS;
      this.#sweep(nowMs);
    }
  }

  /** Whether a run in this process gave up a claim of the task at or after `sinceMs`. */
  releasedSince(task: string, sinceMs: number): boolean {
    return (this.#released.get(task) ?? Number.NEGATIVE_INFINITY) >= sinceMs;
  }

  #sweep(nowMs: number): void {
    for (const [task, until] of this.#held) if (until <= nowMs) this.#held.delete(task);
    for (const [task, atMs] of this.#released) {
      if (atMs + RELEASE_MEMORY_MS <= nowMs) this.#released.delete(task);
    }
  }
}

/** A claim this run holds on one task. */
export interface Claim {
  readonly task: string;
  /** The control task that is this claim, when a control queue is configured and this run created it. */
  readonly controlTask: string | undefined;
  /**
   * Another delivery held this task's claim while this run was under way, and gave it up: what this run
   * listed before may be out of date, so the task is read afresh (docs/claims.md "Reserved names").
   */
  readonly readAfresh: boolean;
  /** When its control task falls due and the control queue carries the task out (Infinity: none). */
  readonly dueMs: number;
  /** This delivery is the claim's own control task: Cloud Tasks retries it on any instance. */
  readonly ownDelivery: boolean;
  /** The own delivery's lease in the control queue, deleted when the claim ends. */
  readonly lease?: string | undefined;
}

export type ClaimResult =
  | { readonly kind: 'claimed'; readonly claim: Claim }
  /** Another run holds the task (here, or a claim of this request in the control queue). */
  | { readonly kind: 'taken' }
  /** An earlier RunTask of the task lost its answer moments ago: left for a later delivery. */
  | { readonly kind: 'in-doubt' }
  /** The request was cancelled: nothing is forced or queued for it. */
  | { readonly kind: 'cancelled' }
  /** The control queue could not be written: nothing was forced, the task is left for a later delivery. */
  | { readonly kind: 'unavailable'; readonly error: string };

/**
 * Whether this run may act on a claimed task at `slotMs`: its claim falls due (and the control queue
 * carries the task out) no sooner than a call sent then could still take effect. A run with no budget may
 * reach a slot past its claim's rolling horizon; the control queue then carries the task out instead.
 */
export function claimOutlives(claim: Claim, slotMs: number): boolean {
  return slotMs + LOST_ANSWER_HOLD_MS < claim.dueMs;
}

/** How a claim ends: its task has an outcome, or was left for the control queue to carry out. */
export type ClaimEnd = 'done' | 'lost-answer' | 'left-to-control-queue';

export interface ClaimerDeps {
  readonly registry: ClaimRegistry;
  readonly tasks: CloudTasksClient;
  readonly control: ControlTarget | undefined;
  /** The claim this delivery is, when it is a control task (its X-CloudTasks-TaskName). */
  readonly ownClaimId: string | undefined;
  /** That delivery's X-CloudTasks-TaskRetryCount: its lease's name (docs/claims.md "One delivery at a time"). */
  readonly ownClaimRetryCount?: string | undefined;
  readonly log: Logger;
  readonly now: () => number;
}

const CLAIM_LEFT = 'claim not deleted; it falls due later and finds nothing to do';
const LEASE_LEFT = 'lease not deleted; it falls due in 10 days and does nothing';

/** The claim stage of one run: the registry's and the control queue's only user. */
export class Claimer {
  /** When this run began: a claim given up since may postdate what the run listed. */
  readonly #startedMs: number;

  constructor(
    private readonly deps: ClaimerDeps,
    private readonly work: Omit<ControlWork, 'task'>,
    /** When a claim that this run carries out falls due: after the run's budget and verification. */
    private readonly claimDueMs: number,
  ) {
    this.#startedMs = deps.now();
  }

  async claim(task: string): Promise<ClaimResult> {
    const { registry, tasks, control, ownClaimId, now } = this.deps;
    const work: ControlWork = { ...this.work, task };
    const ownClaim = ownClaimId !== undefined && isClaimIdOf(work, ownClaimId);
    const answer = registry.tryClaim(task, now());
    if (answer === 'running' && ownClaim) {
      // docs/claims.md "Acknowledged only with an outcome": this control task is the task's claim, and
      // another delivery is making or holding it here; answered non-2xx, Cloud Tasks delivers it again.
      return { kind: 'unavailable', error: 'another delivery of this request holds the task; retried' };
    }
    if (answer !== 'claimed') return { kind: answer === 'running' ? 'taken' : 'in-doubt' };
    const releasedHere = registry.releasedSince(task, this.#startedMs);
    if (!control || ownClaim) {
      const lease = control && (await this.#leaseOrCancel(control, work.requestId, ownClaimId!));
      if (typeof lease === 'object') {
        registry.release(task, now());
        return lease;
      }
      return {
        kind: 'claimed',
        claim: {
          task,
          controlTask: undefined,
          readAfresh: releasedHere,
          dueMs: Number.POSITIVE_INFINITY,
          ownDelivery: ownClaim,
          lease,
        },
      };
    }
    const dueMs = Math.min(this.claimDueMs, now() + CLAIM_HORIZON_MS);
    const created = await createControlTask(tasks, control, work, dueMs);
    if (created.kind === 'created') {
      const readAfresh = releasedHere || created.afterRelease;
      return {
        kind: 'claimed',
        claim: { task, controlTask: created.name, readAfresh, dueMs, ownDelivery: false },
      };
    }
    registry.release(task, now());
    // Another delivery of this request holds the task, and forces it or its claim will.
    if (created.kind === 'exists') return { kind: 'taken' };
    if (created.kind === 'cancelled') return created;
    return { kind: 'unavailable', error: created.error.message };
  }

  /**
   * A control task delivering its own claim: its lease's name (none without X-CloudTasks-TaskRetryCount,
   * which Cloud Tasks always sends), or why it may not force the task: the request was cancelled (read once
   * a run), or another delivery of the same dispatch holds the lease (docs/claims.md "One delivery at a
   * time"), answered non-2xx so that Cloud Tasks delivers it again later.
   */
  async #leaseOrCancel(
    control: ControlTarget,
    requestId: string,
    ownClaimId: string,
  ): Promise<string | undefined | Exclude<ClaimResult, { kind: 'claimed' }>> {
    const { tasks, ownClaimRetryCount, now } = this.deps;
    const cancelled = await requestCancelledForRun(tasks, control, requestId);
    if (cancelled?.kind === 'cancelled') return cancelled;
    if (cancelled) return { kind: 'unavailable', error: cancelled.error.message };
    if (ownClaimRetryCount === undefined) return undefined;
    const lease = deliveryLeaseTaskFor(ownClaimId, ownClaimRetryCount, control, now());
    const taken = await createOnce(tasks, control.queue, lease);
    if (taken.kind === 'created') return taken.name;
    return {
      kind: 'unavailable',
      error:
        taken.kind === 'exists' || taken.error.status === 'ALREADY_EXISTS'
          ? 'another delivery of this control task holds its lease; retried'
          : `the delivery's lease could not be written: ${taken.error.message}`,
    };
  }

  /**
   * Ends a claim. Done: the control task is deleted (if that fails, it falls due later and its fresh read
   * finds nothing to do). A lost answer: the task stays claimed here until its late attempt shows. Left to
   * the control queue: the control task stays and carries the task out.
   */
  async release(claim: Claim, end: ClaimEnd): Promise<void> {
    const { registry, now } = this.deps;
    registry.release(claim.task, now(), end === 'lost-answer');
    // A control task delivering its own claim is answered non-2xx, and Cloud Tasks may deliver it again on
    // another instance, whose registry knows nothing: it is answered once the in-doubt hold is over
    // (docs/claims.md "Lifecycle", 5).
    if (end === 'lost-answer' && claim.ownDelivery) await sleep(registry.lostAnswerHoldMs);
    // The lease is held until then, so a second delivery of the dispatch never forces beside this one.
    if (claim.lease) await this.#delete(claim.task, claim.lease, LEASE_LEFT);
    if (end !== 'done' || !claim.controlTask) return;
    await this.#delete(claim.task, claim.controlTask, CLAIM_LEFT);
  }

  /** Deletes a control task this run wrote; a failure is logged (NOT_FOUND is done). */
  async #delete(task: string, controlTask: string, warning: string): Promise<void> {
    const name = parseTaskName(controlTask);
    if (!name) return;
    try {
      await this.deps.tasks.deleteTask(name);
    } catch (error) {
      const failure = toCloudTasksError(error);
      if (failure.status !== 'NOT_FOUND') {
        this.deps.log.warn({ task, claimTask: controlTask, status: failure.status }, warning);
      }
    }
  }
}
