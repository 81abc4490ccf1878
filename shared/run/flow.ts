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

/** A forced task, to verify: its row so far, how to read it back, and its place to give up after. */
type ForcedTask = {
  readonly row: Omit<TaskRow, 'task'>;
  readonly verify: ReadBack;
  readonly leave: () => void;
};

/** What a started task's end does to the flow: its row recorded, or the run's failure kept. */
interface FlowLedger {
  readonly breaker: Breaker;
  readonly hold: Hold;
  record(row: TaskRow): void;
  fail(error: unknown): void;
  /** One task fewer without its row. */
  ended(): void;
}

/**
 * A started task until it has its row, recorded once: by `settle`, by its verdict, or by `failed` (a stage
 * threw; the run ends with the error, the row unrecorded). One object per task and no closures: thousands
 * of tasks await their verdicts at once (docs/performance.md "Memory").
 */
class StartedTask implements VerdictListener {
  #open = true;
  /** While its verdict is awaited: the forced task's row so far, and its place to give up. */
  #forced: Pick<ForcedTask, 'row' | 'leave'> | undefined;

  constructor(
    private readonly ledger: FlowLedger,
    readonly task: string,
    readonly canary: boolean,
    /** A canary's row, for the gate. */
    private readonly onRow: ((row: TaskRow) => void) | undefined,
  ) {}

  awaitVerdict(forced: Pick<ForcedTask, 'row' | 'leave'>): void {
    this.#forced = forced;
  }

  settle(fields: TaskRow): void {
    if (!this.#open) return;
    const row = this.canary ? { ...fields, canary: this.canary } : fields;
    this.ledger.record(row);
    this.#end(row);
  }

  verdict(result: VerdictResult): void {
    if (!this.#forced) return;
    const { row, leave } = this.#forced;
    leave();
    if (this.ledger.breaker.record(result.verdict)) this.ledger.hold.hold();
    this.settle({ task: this.task, ...row, ...result });
  }

  failed(error: unknown): void {
    this.#forced?.leave();
    if (!this.#open) return;
    this.ledger.fail(error);
    this.#end({ task: this.task, outcome: 'failed', error: 'the run failed' });
  }

  #end(row: TaskRow): void {
    this.#open = false;
    this.#forced = undefined;
    this.onRow?.(row);
    this.ledger.ended();
  }
}

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
  readonly #ledger: FlowLedger;
  /** The force policy of a task that is not a canary, and of a canary (which no hold stops). */
  readonly #policies: readonly [ForcePolicy, ForcePolicy];

  constructor(private readonly deps: FlowDeps) {
    this.#pending = new Semaphore(Math.max(8, deps.concurrency * 4));
    this.#ledger = {
      breaker: deps.breaker,
      hold: deps.hold,
      record: (row) => deps.report.record(row),
      fail: (error) => (this.#failure ??= { error }),
      ended: () => {
        if (--this.#unsettled === 0) this.#allSettled?.();
      },
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
   * `row` settles once it has its row (every task's row is recorded in the report).
   */
  async start(candidate: Candidate, canary: boolean): Promise<{ row?: Promise<TaskRow> }> {
    await this.#pending.acquire();
    let pendingHeld = true;
    const forced = (): void => {
      if (pendingHeld) this.#pending.release();
      pendingHeld = false;
    };
    const { name, queue, full } = candidate;
    let onRow: ((row: TaskRow) => void) | undefined;
    const row = canary ? new Promise<TaskRow>((resolve) => (onRow = resolve)) : undefined;
    this.#unsettled++;
    const started = new StartedTask(this.#ledger, name.name, canary, onRow);
    // A task under way holds no listed state (docs/performance.md "Memory").
    this.#act({ name, queue, full }, canary, forced)
      .then((acted) => {
        forced();
        if (!('outcome' in acted)) return this.#verify(started, acted);
        started.settle(acted);
      })
      .catch((error: unknown) => {
        forced();
        started.failed(error);
      });
    return row ? { row } : {};
  }

  /** Waits until every task started has its row; throws what a task's flow threw, if one did. */
  async drain(): Promise<void> {
    while (this.#unsettled > 0) await new Promise<void>((resolve) => (this.#allSettled = resolve));
    if (this.#failure) throw this.#failure.error;
  }

  /** A forced task's verdict, read back for its window; its place among the attempts is held until then. */
  #verify(started: StartedTask, forced: ForcedTask): void {
    const { row, verify, leave } = forced;
    const windowMs = started.canary ? this.deps.canaryWaitMs : this.deps.verifyMs;
    if (windowMs <= 0) {
      leave();
      return started.settle({ task: started.task, ...row });
    }
    started.awaitVerdict({ row, leave });
    verify(windowMs, started);
  }

  /**
   * Claim, act, release: the row of a task not forced, or a forced task to verify. `forced` is called once
   * the task no longer needs its pending place (verification needs none).
   */
  async #act(candidate: TaskUnderWay, canary: boolean, forced: () => void): Promise<TaskRow | ForcedTask> {
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
      const underWay = claimed.claim.readAfresh ? listedStateDropped(candidate) : candidate;
      const acted = await acting
        .act(underWay, claimed.slotMs, { ...this.#policies[canary ? 1 : 0], leave: forced })
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
  async #claimWithSlot(candidate: TaskUnderWay): Promise<Claimed | TaskRow> {
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
