/**
 * The flow of one admitted task, written once for every mode (docs/architecture.md "Stages"): a place
 * among the tasks under way, then claim, act, release, verify, ending in the task's one row. The mode
 * (modes.ts) says how the task is acted on and read back, and what it gets when no slot is left.
 */
import type { Breaker } from './breaker.js';
import type { Budget } from './budget.js';
import type { Claim, ClaimEnd, Claimer } from './claim.js';
import type { ForcePolicy } from './force.js';
import type { Hold } from './hold.js';
import type { Acting, Unforced } from './modes.js';
import { hasSlot, Semaphore } from './pace.js';
import type { Candidate, QueueRun } from './plan.js';
import type { ReportBuilder, TaskRow } from './settle.js';
import type { SelectionRules } from './select.js';
import type { ReadBack } from './verify.js';

export interface FlowDeps {
  readonly acting: Acting;
  readonly claimer: Claimer;
  readonly budget: Budget;
  readonly breaker: Breaker;
  readonly hold: Hold;
  readonly report: ReportBuilder;
  /** The per-task rules on the fresh state (the last-attempt rule as the request and the canaries leave it). */
  readonly rulesFor: (queue: QueueRun) => SelectionRules;
  /** How long a forced task is read back: a canary for its wait, the others for the request's verify. */
  readonly verifyMs: number;
  readonly canaryWaitMs: number;
  /** Tasks under way at once (the mode's concurrency). */
  readonly concurrency: number;
}

type Claimed = { readonly claim: Claim; readonly slotMs: number };

/** A forced task, to verify: its row so far, how to read it back, and its place to give up after. */
type ForcedTask = {
  readonly row: Omit<TaskRow, 'task'>;
  readonly verify: ReadBack;
  readonly leave: () => void;
};

export class TaskFlow {
  /** Bounds tasks between planning and their outcome, so a long listing never piles up in memory. */
  readonly #pending: Semaphore;
  /** Tasks started that have no row yet, and the wake-up of a drain waiting for none. */
  #unsettled = 0;
  #allSettled: (() => void) | undefined;
  /** The first error a task's flow threw (nothing the stages expect throws): the drain throws it. */
  #failure: { readonly error: unknown } | undefined;
  /** Whether anything was acted on or queued (an unreachable Cloud Tasks is then no longer "safe to resend"). */
  #acted = false;

  constructor(private readonly deps: FlowDeps) {
    this.#pending = new Semaphore(Math.max(8, deps.concurrency * 4));
  }

  get hasActed(): boolean {
    return this.#acted;
  }

  /**
   * Waits for a place among the tasks under way, then carries the task out in the background; `row`
   * settles once the task has its row (recorded in the report).
   */
  async start(candidate: Candidate, canary: boolean): Promise<{ row: Promise<TaskRow> }> {
    await this.#pending.acquire();
    let pendingHeld = true;
    const forced = (): void => {
      if (pendingHeld) this.#pending.release();
      pendingHeld = false;
    };
    const task = candidate.name.name;
    const { row, settle, failed } = this.#rowOf(task, canary);
    // The candidate (its listed state) is held only until the act; a task awaiting its verdict holds
    // only the callbacks that give it its row (docs/performance.md "Memory").
    this.#act(candidate, canary, forced)
      .then((acted) => {
        forced();
        if (!('outcome' in acted)) return this.#verify(task, canary, acted, settle, failed);
        settle(acted);
      })
      .catch((error: unknown) => {
        forced();
        failed(error);
      });
    return { row };
  }

  /** Waits until every task started has its row; throws what a task's flow threw, if one did. */
  async drain(): Promise<void> {
    while (this.#unsettled > 0) await new Promise<void>((resolve) => (this.#allSettled = resolve));
    if (this.#failure) throw this.#failure.error;
  }

  /**
   * A started task's row, and the two ways it gets one, once: `settle` records it in the report (a
   * canary's row marked so);
   * `failed` ends the run with an error thrown by a stage (nothing the stages expect throws), the row
   * unrecorded.
   */
  #rowOf(
    task: string,
    canary: boolean,
  ): {
    row: Promise<TaskRow>;
    settle: (row: TaskRow) => void;
    failed: (error: unknown) => void;
  } {
    this.#unsettled++;
    let open = true;
    let resolve!: (row: TaskRow) => void;
    const row = new Promise<TaskRow>((resolveRow) => (resolve = resolveRow));
    const end = (row: TaskRow): void => {
      open = false;
      resolve(row);
      if (--this.#unsettled === 0) this.#allSettled?.();
    };
    return {
      row,
      settle: (fields) => {
        if (!open) return;
        const row = canary ? { ...fields, canary } : fields;
        this.deps.report.record(row);
        end(row);
      },
      failed: (error) => {
        if (!open) return;
        this.#failure ??= { error };
        end({ task, outcome: 'failed', error: 'the run failed' });
      },
    };
  }

  /** A forced task's verdict, read back for its window; its place among the attempts is held until then. */
  #verify(
    task: string,
    canary: boolean,
    forced: ForcedTask,
    settle: (row: TaskRow) => void,
    failed: (error: unknown) => void,
  ): void {
    const { row, verify, leave } = forced;
    const windowMs = canary ? this.deps.canaryWaitMs : this.deps.verifyMs;
    const settled = (fields: Omit<TaskRow, 'task'>): void => {
      leave();
      settle({ task, ...fields });
    };
    if (windowMs <= 0) return settled(row);
    verify(
      windowMs,
      (verdict) => {
        if (this.deps.breaker.record(verdict.verdict)) this.deps.hold.hold();
        settled({ ...row, ...verdict });
      },
      (error) => {
        leave();
        failed(error);
      },
    );
  }

  /**
   * Claim, act, release: the row of a task not forced, or a forced task to verify. `forced` is called once
   * the task no longer needs its pending place (verification needs none).
   */
  async #act(candidate: Candidate, canary: boolean, forced: () => void): Promise<TaskRow | ForcedTask> {
    const { acting, claimer, hold } = this.deps;
    const task = candidate.name.name;
    if (hold.isHeld) return { task, outcome: 'held' };
    const leave = await acting.enter(candidate.queue);
    if (!leave) return { task, ...(await this.#noSlot(task)) };
    let verifying = false;
    try {
      const claimed = await this.#claimWithSlot(candidate);
      if (!('claim' in claimed)) return claimed;
      this.#acted = true;
      const acted = await acting
        .act(candidate, claimed.slotMs, { ...this.#policyFor(canary), leave: forced })
        .catch(async (error: unknown) => {
          // Nothing the stages expect throws; if something does, the task may or may not have been acted
          // on: its claim is left in doubt (docs/claims.md "Lifecycle"), never held for good.
          await claimer.release(claimed.claim, 'lost-answer');
          throw error;
        });
      forced();
      await claimer.release(claimed.claim, acted.forced ? 'done' : claimEndOf(acted.result));
      if (!acted.forced) return rowOf(task, claimed.claim, acted.result);
      verifying = true;
      return { row: acted.row, verify: acted.verify, leave };
    } finally {
      if (!verifying) leave();
    }
  }

  /**
   * The claim and the task's paced slot, or the row of a task that cannot have them. The slot is reserved
   * only once the task is claimed, so a task another run holds never uses up a slot of the shared pacer.
   * No slot left: the mode's answer; a claim already made then stays for the control queue to carry out.
   */
  async #claimWithSlot(candidate: Candidate): Promise<Claimed | TaskRow> {
    const { acting, budget, claimer } = this.deps;
    const task = candidate.name.name;
    if (!hasSlot(acting.pacersOf(candidate.queue), budget.now(), budget.deadlineMs)) {
      return { task, ...(await this.#noSlot(task)) };
    }
    const claimed = await this.#claim(task);
    if (!('claim' in claimed)) return claimed;
    const slotMs = acting.reserve(candidate.queue);
    if (slotMs !== undefined) return { claim: claimed.claim, slotMs };
    // Another run took the last slot meanwhile.
    await claimer.release(claimed.claim, 'left-to-control-queue');
    if (claimed.claim.controlTask !== undefined) return { task, outcome: 'queued' };
    return { task, ...(await this.#noSlot(task)) };
  }

  /** The claim, or the row of a task that cannot be claimed now. */
  async #claim(task: string): Promise<{ claim: Claim } | TaskRow> {
    const claim = await this.deps.claimer.claim(task);
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

  async #noSlot(task: string): Promise<Omit<TaskRow, 'task'>> {
    const row = await this.deps.acting.noSlot(task);
    if (row.outcome === 'queued') this.#acted = true;
    return row;
  }

  #policyFor(canary: boolean): ForcePolicy {
    const { hold, rulesFor } = this.deps;
    return {
      rulesFor,
      isHeld: () => !canary && hold.isHeld,
      heldSignal: canary ? undefined : hold.signal,
    };
  }
}

/**
 * How the claim ends: a task left undone stays claimed for the control queue to carry out, and a RunTask
 * answer in doubt keeps the task claimed until its late attempt shows.
 */
export function claimEndOf(result: Unforced): ClaimEnd {
  if (result.outcome !== 'deferred') return 'done';
  return 'why' in result && result.why === 'lost-answer' ? 'lost-answer' : 'left-to-control-queue';
}

/** The row of a task not forced: queued when its claim stays in the control queue to carry it out. */
export function rowOf(task: string, claim: Claim, result: Unforced): TaskRow {
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
    case 'parked':
      return {
        outcome: 'parked',
        copy: result.parkedAs.name,
        ...(result.possiblyDone && { possiblyDone: true }),
      };
    default:
      return { outcome: result.outcome };
  }
}
