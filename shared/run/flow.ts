/**
 * The flow of one admitted task, written once for every mode (docs/architecture.md "Stages"): a place
 * among the tasks under way, then claim, act, release, verify, ending in the task's one row. The mode
 * (modes.ts) says how the task is acted on and read back, and what it gets when no slot is left.
 */
import type { Place } from './admission.js';
import type { Breaker } from './breaker.js';
import type { Budget } from './budget.js';
import { claimOutlives, type Claim, type ClaimEnd, type Claimer } from './claim.js';
import type { ForcePolicy } from './force.js';
import type { Hold } from './hold.js';
import type { Acted, Acting, ActListener, Unforced } from './modes.js';
import { hasSlot, Semaphore } from './pace.js';
import { listedStateDropped, type Candidate, type QueueRun, type TaskUnderWay } from './plan.js';
import type { ReportBuilder, TaskRow } from './settle.js';
import type { SelectionRules } from './select.js';
import type { ReadBack, VerdictListener, VerdictResult } from './verify.js';

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

/** A forced task, to verify: its row so far, and how to read it back. */
type ForcedTask = {
  readonly row: Omit<TaskRow, 'task'>;
  readonly verify: ReadBack;
};

/** What a started task's end does to the flow: its row recorded, or the run's failure kept. */
interface FlowLedger {
  readonly breaker: Breaker;
  readonly hold: Hold;
  readonly claimer: Claimer;
  record(row: TaskRow): void;
  fail(error: unknown): void;
  /** One task fewer without its row. */
  ended(): void;
  /** Reads a forced task back (or gives its row at once when it has no window). */
  verify(started: StartedTask, forced: ForcedTask): void;
}

/**
 * A started task until it has its row, recorded once: by `settle`, by its verdict, or by `failed` (a stage
 * threw; the run ends with the error, the row unrecorded). It carries the task from its claim to its row:
 * the claim and the place it holds while acted on, released when the act ends. One object per task, and no
 * call of the flow's suspended while the task is acted on or read back: thousands of tasks are under way at
 * once for seconds (docs/performance.md "Memory").
 */
class StartedTask implements ActListener, VerdictListener {
  #open = true;
  /** Its place among its queue's tasks under way, until it is forced (or ends). */
  #pending: Semaphore | undefined;
  /** While acted on: the claim, released when the act ends. */
  #claim: Claim | undefined;
  /** The place among the tasks under way the mode gave it, held until its act ends or its verdict is in. */
  #leave: (() => void) | undefined;
  /** While its verdict is awaited: the forced task's row so far. */
  #forcedRow: Omit<TaskRow, 'task'> | undefined;

  constructor(
    private readonly ledger: FlowLedger,
    readonly task: string,
    readonly canary: boolean,
    /** A canary's row, for the gate. */
    private readonly onRow: ((row: TaskRow) => void) | undefined,
    pending: Semaphore,
    /** Its place under the task cap, used once it is acted on, else given back at its end. */
    private readonly place: Place | undefined,
  ) {
    this.#pending = pending;
  }

  /** Gives up the task's place among its queue's tasks under way (once): it is forced, or at its end. */
  forced(): void {
    this.#pending?.release();
    this.#pending = undefined;
  }

  /** Claimed, with its place, and about to be acted on (its end comes to `acted` or `actFailed`). */
  claimed(claim: Claim, leave: () => void): void {
    this.#claim = claim;
    this.#leave = leave;
  }

  awaitVerdict(row: Omit<TaskRow, 'task'>): void {
    this.#forcedRow = row;
  }

  settle(fields: TaskRow): void {
    if (!this.#open) return;
    const row = this.canary ? { ...fields, canary: this.canary } : fields;
    this.ledger.record(row);
    this.#end(row);
  }

  verdict(result: VerdictResult): void {
    const row = this.#forcedRow;
    if (!row) return;
    this.leave();
    if (this.ledger.breaker.record(result.verdict)) this.ledger.hold.hold();
    this.settle({ task: this.task, ...row, ...result });
  }

  failed(error: unknown): void {
    this.leave();
    this.forced();
    if (!this.#open) return;
    this.ledger.fail(error);
    this.#end({ task: this.task, outcome: 'failed', error: 'the run failed' });
  }

  /** Gives up the place the mode gave the task (once). */
  leave(): void {
    const leave = this.#leave;
    this.#leave = undefined;
    leave?.();
  }

  /** The act ended: the claim released, then the row of a task not forced, or the forced task read back. */
  acted(acted: Acted): void {
    this.forced();
    if (countsAgainstCap(acted)) this.place?.use();
    const claim = this.#claim;
    this.#claim = undefined;
    if (!claim) return;
    this.ledger.claimer
      .release(claim, acted.forced ? 'done' : claimEndOf(acted.result))
      .then(() => {
        if (acted.forced) return this.ledger.verify(this, acted);
        this.leave();
        this.settle(rowOf(this.task, claim, acted.result));
      })
      .catch((error: unknown) => this.failed(error));
  }

  /**
   * Nothing the stages expect throws; if something does, the task may or may not have been acted on: its
   * claim is left in doubt (docs/claims.md "Lifecycle"), never held for good, and the run ends with the error.
   */
  actFailed(error: unknown): void {
    const claim = this.#claim;
    this.#claim = undefined;
    if (!claim) return this.failed(error);
    this.ledger.claimer.release(claim, 'lost-answer').then(
      () => this.failed(error),
      (releaseError: unknown) => this.failed(releaseError),
    );
  }

  #end(row: TaskRow): void {
    // Queued: the control queue carries it out.
    if (row.outcome === 'queued') this.place?.use();
    else this.place?.giveBack();
    this.#open = false;
    this.#forcedRow = undefined;
    this.onRow?.(row);
    this.ledger.ended();
  }
}

export class TaskFlow {
  /**
   * Bounds each queue's tasks between planning and their outcome, so a long listing never piles up in
   * memory; per queue, so that queues worked on at once each keep their own pace.
   */
  readonly #pending = new Map<string, Semaphore>();
  /** Tasks started that have no row yet, and the wake-up of a drain waiting for none. */
  #unsettled = 0;
  #allSettled: (() => void) | undefined;
  /** The first error a task's flow threw (nothing the stages expect throws): the drain throws it. */
  #failure: { readonly error: unknown } | undefined;
  /** Whether anything was acted on or queued (an unreachable Cloud Tasks is then no longer "safe to resend"). */
  #acted = false;
  readonly #ledger: FlowLedger;
  /** The force policy of a task that is not a canary, and of a canary (which no hold stops). */
  readonly #policies: readonly [ForcePolicy, ForcePolicy];

  constructor(private readonly deps: FlowDeps) {
    this.#ledger = {
      breaker: deps.breaker,
      hold: deps.hold,
      claimer: deps.claimer,
      record: (row) => deps.report.record(row),
      fail: (error) => (this.#failure ??= { error }),
      ended: () => {
        if (--this.#unsettled === 0) this.#allSettled?.();
      },
      verify: (started, forced) => this.#verify(started, forced),
    };
    const { hold, rulesFor } = deps;
    this.#policies = [
      { rulesFor, isHeld: () => hold.isHeld, heldSignal: hold.signal },
      { rulesFor, isHeld: () => false, heldSignal: undefined },
    ];
  }

  get hasActed(): boolean {
    return this.#acted;
  }

  /**
   * Waits for a place among the tasks under way, then carries the task out in the background. A canary's
   * `row` settles once it has its row (every task's row is recorded in the report). `place`, its place under
   * the task cap, is used once the task is acted on, else given back.
   */
  async start(candidate: Candidate, canary: boolean, place?: Place): Promise<{ row?: Promise<TaskRow> }> {
    const { name, queue, full } = candidate;
    const pending = this.#pendingOf(queue);
    await pending.acquire();
    let onRow: ((row: TaskRow) => void) | undefined;
    const row = canary ? new Promise<TaskRow>((resolve) => (onRow = resolve)) : undefined;
    this.#unsettled++;
    const started = new StartedTask(this.#ledger, name.name, canary, onRow, pending, place);
    // A task under way holds no listed state (docs/performance.md "Memory").
    const underWay = { name, queue, full };
    this.#begin(started, underWay, canary)
      .then((row) => {
        if (!row) return;
        // Not acted on (held, no slot, claimed elsewhere): a listed body is let go now, not left to the
        // collector with its page (docs/redrive.md "Bodies held").
        listedStateDropped(underWay);
        started.forced();
        started.settle(row);
      })
      .catch((error: unknown) => started.failed(error));
    return row ? { row } : {};
  }

  #pendingOf(queue: QueueRun): Semaphore {
    const key = queue.queue.name;
    let pending = this.#pending.get(key);
    if (!pending) {
      pending = new Semaphore(Math.max(8, this.deps.concurrency * 4));
      this.#pending.set(key, pending);
    }
    return pending;
  }

  /** Waits until every task started has its row; throws what a task's flow threw, if one did. */
  async drain(): Promise<void> {
    while (this.#unsettled > 0) await new Promise<void>((resolve) => (this.#allSettled = resolve));
    if (this.#failure) throw this.#failure.error;
  }

  /** A forced task's verdict, read back for its window; its place among the attempts is held until then. */
  #verify(started: StartedTask, { row, verify }: ForcedTask): void {
    const windowMs = started.canary ? this.deps.canaryWaitMs : this.deps.verifyMs;
    if (windowMs <= 0) {
      started.leave();
      return started.settle({ task: started.task, ...row });
    }
    started.awaitVerdict(row);
    verify(windowMs, started);
  }

  /**
   * Claim, then act: the row of a task that cannot be acted on, else undefined with the act under way (the
   * started task carries it on, and releases the claim when it ends).
   */
  async #begin(started: StartedTask, candidate: TaskUnderWay, canary: boolean): Promise<TaskRow | undefined> {
    const { acting, hold } = this.deps;
    const task = candidate.name.name;
    if (hold.isHeld) return { task, outcome: 'held' };
    const leave = await acting.enter(candidate.queue);
    if (!leave) return { task, ...(await this.#noSlot(task, candidate.queue)) };
    const claimed = await this.#claimWithSlot(candidate).catch((error: unknown) => {
      leave();
      throw error;
    });
    if (!('claim' in claimed)) {
      leave();
      return claimed;
    }
    this.#acted = true;
    // The place is the started task's from here on, until its act ends or its verdict is in.
    started.claimed(claimed.claim, leave);
    const fresh = claimed.claim.readAfresh ? listedStateDropped(candidate) : candidate;
    try {
      const policy = { ...this.#policies[canary ? 1 : 0], claim: claimed.claim };
      acting.act(fresh, claimed.slotMs, policy, started);
    } catch (error) {
      started.actFailed(error);
    }
    return undefined;
  }

  /**
   * The claim and the task's paced slot, or the row of a task that cannot have them. The slot is reserved
   * only once the task is claimed, so a task another run holds never uses up a slot of the shared pacer.
   * No slot left: the mode's answer; a claim already made then stays for the control queue to carry out
   * (or, where the mode queues at a paced slot, is withdrawn and the task queued).
   */
  async #claimWithSlot(candidate: TaskUnderWay): Promise<Claimed | TaskRow> {
    const { acting, budget, claimer } = this.deps;
    const task = candidate.name.name;
    if (!hasSlot(acting.pacersOf(candidate.queue), budget.now(), budget.deadlineMs)) {
      return { task, ...(await this.#noSlot(task, candidate.queue)) };
    }
    const claimed = await this.#claim(task);
    if (!('claim' in claimed)) return claimed;
    const slotMs = acting.reserve(candidate.queue);
    if (slotMs !== undefined && claimOutlives(claimed.claim, slotMs)) return { claim: claimed.claim, slotMs };
    // Another task took the last slot meanwhile, or the slot comes after the claim falls due. With no slot,
    // a mode that queues at a paced slot withdraws the claim, then queues the task (docs/claims.md
    // "Queued work").
    const requeued = slotMs === undefined && acting.queuesAtSlot === true;
    await claimer.release(claimed.claim, requeued ? 'done' : 'left-to-control-queue');
    if (!requeued && claimed.claim.controlTask !== undefined) {
      this.#acted = true;
      return { task, outcome: 'queued' };
    }
    return { task, ...(await this.#noSlot(task, candidate.queue)) };
  }

  /** The claim, or the row of a task that cannot be claimed now. */
  async #claim(task: string): Promise<{ claim: Claim } | TaskRow> {
    const claim = await this.deps.claimer.claim(task);
    switch (claim.kind) {
      case 'claimed':
        return { claim: claim.claim };
      case 'taken':
        return { task, outcome: 'skipped', skipReason: 'claimed' };
      case 'cancelled':
        return { task, outcome: 'skipped', skipReason: 'cancelled' };
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

  async #noSlot(task: string, queue: QueueRun): Promise<Omit<TaskRow, 'task'>> {
    const row = await this.deps.acting.noSlot(task, queue);
    if (row.outcome === 'queued') this.#acted = true;
    return row;
  }
}

/**
 * Whether an act counts against the task cap (docs/configuration.md "RERUN_MAX_TASKS"): the task was forced
 * or moved, or may have been (a RunTask whose answer was lost, a move left unsettled), or the act failed.
 */
function countsAgainstCap(acted: Acted): boolean {
  if (acted.forced) return true;
  const { result } = acted;
  switch (result.outcome) {
    case 'failed':
    case 'parked':
      return true;
    case 'deferred':
      return (
        ('why' in result && result.why === 'lost-answer') ||
        ('unsettled' in result && result.unsettled === true)
      );
    default:
      return false;
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
