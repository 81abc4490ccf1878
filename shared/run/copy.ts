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
import type { CloudTasksClient, HttpRequest, NewTask, Task } from '../cloud-tasks/client.js';
import type { Budget } from './budget.js';
import { claimIdOf, type ControlTarget } from '../control/control-tasks.js';
import type { ForcePolicy } from './force.js';
import { taskNameIn, type QueueName, type TaskName } from '../cloud-tasks/names.js';
import { reserveSlot, type Semaphore } from './pace.js';
import { listedStateDropped, type QueueRun, type TaskUnderWay } from './plan.js';
import { selectTask, type SkipReason } from './select.js';
import { Mover, type MovedCopy, type MoveEnd, type Recovery } from './move.js';
import { RecoveryTasks } from './recovery-tasks.js';
import { listedWithBody, RedriveCalls, type Stop } from './redrive-calls.js';
import { readAlone, type SecondReads } from './second-reads.js';

/** The header a copy carries: the name of the first task of the chain (kept as it is on a copy's copy). */
export const ORIGINAL_TASK_HEADER = 'X-Rerun-Original-Task';

/** How far ahead a copy is due by default: time to delete the original before the copy is dispatched. */
export const DEFAULT_ARMING_DELAY_MS = 10_000;

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
  /** The creates and deletes go to this client's createTask and deleteTask (by batch, or one call each). */
  readonly tasks: CloudTasksClient;
  /** Bounds redrive's reads, creates and deletes in flight across the run (RERUN_REDRIVE_CONCURRENCY). */
  readonly calls: Semaphore;
  /** The process's bytes of bodies held by tasks read on their own (MAX_BODY_BYTES_HELD). */
  readonly bodies: Semaphore;
  /**
   * Bounds the creates and deletes waiting for their answer, when not `calls` (by batch: one call carries
   * many, and the batcher bounds the calls).
   */
  readonly changes?: Semaphore | undefined;
  /** The second read of an original, after its copy exists; by default a GetTask of its own. */
  readonly secondReads?: SecondReads | undefined;
  /**
   * How long before its paced slot a copy is created (due at its slot plus the arming delay): time for
   * the second reads of many tasks to share one listing (by batch); 0 by default.
   */
  readonly createLeadMs?: number | undefined;
  readonly budget: Budget;
  readonly armingDelayMs: number;
  /** Where each move's recovery task is written (the control queue), when there is one. */
  readonly recovery?: ControlTarget | undefined;
  /** What the copy is made of and named (default: a redrive copy in the task's own queue). */
  readonly shape?: CopyShape | undefined;
}

/**
 * What a move makes of a task: a redrive copy beside it (REDRIVE_COPY), or a parked task brought home
 * (unpark.ts). The copy is always created in the run's queue (`QueueRun.queue`).
 */
export interface CopyShape {
  /** The copy's name in `queue`, the queue it is created in. */
  nameOf(
    original: TaskName,
    request: { readonly requestId: string; readonly cutoffMs: number },
    queue: QueueName,
  ): TaskName;
  taskOf(original: Task, name: TaskName, dueMs: number): NewTask;
  /** The account whose token the copy carries: creating it needs iam.serviceAccounts.actAs on it. */
  accountOf(original: Task): string | undefined;
  /** The task as the selection rules read it. */
  asSelected(task: Task): Task;
  /** Why the move may not start now (read before each), else undefined. */
  refusal(queue: QueueRun): Promise<CopyResult | undefined>;
  /**
   * Whether the original may run (and so vanish) by itself. When it cannot (a parked task: its queue is
   * PAUSED), an original found gone was moved by another request: the copy under the shared name is kept.
   */
  readonly originalRuns: boolean;
}

/** A redrive copy: beside its original, named by the request. */
export const REDRIVE_COPY: CopyShape = {
  nameOf: (original, request) => copyNameOf(original, request.requestId, request.cutoffMs),
  taskOf: (original, name, dueMs) => copyOf(original, name, dueMs),
  accountOf: (original) => tokenAccountOf(original),
  asSelected: (task) => task,
  refusal: () => Promise.resolve(undefined),
  originalRuns: true,
};

/**
 * The copy's name: a hex SHA-256 of the original's full name, the requestId and the cutoff, the
 * same ID as the task's claim, which lives in the control queue.
 */
export function copyNameOf(original: TaskName, requestId: string, cutoffMs: number): TaskName {
  return taskNameIn(original, claimIdOf({ task: original.name, requestId, cutoffMs }));
}

/** The first task of a chain of copies: what the task's own header names, else the task itself. */
export function firstTaskOf(task: Task): string {
  return headerOf(task, ORIGINAL_TASK_HEADER) ?? task.name;
}

/** The task to create: the fields stored on the original, its header naming the first task, due at `dueMs`. */
export function copyOf(original: Task, name: TaskName, dueMs: number): NewTask {
  const first = firstTaskOf(original);
  return newTaskFrom(original, name, dueMs, {
    headers: (headers) =>
      headerOf(original, ORIGINAL_TASK_HEADER) === undefined
        ? { ...headers, [ORIGINAL_TASK_HEADER]: first }
        : { ...headers },
  });
}

/**
 * A task to create from `original`: every field Cloud Tasks stores on it (request, headers, body,
 * dispatchDeadline), its headers rewritten and its HTTP request changed as given, due at `dueMs`.
 */
export function newTaskFrom(
  original: Task,
  name: TaskName,
  dueMs: number,
  rewrite: {
    readonly headers: (headers: Record<string, string> | undefined) => Record<string, string>;
    readonly http?: (request: HttpRequest) => HttpRequest;
  },
): NewTask {
  const { httpRequest, appEngineHttpRequest, dispatchDeadline } = original;
  const http = rewrite.http ?? ((request: HttpRequest) => request);
  return {
    name: name.name,
    ...(httpRequest && {
      httpRequest: { ...http(httpRequest), headers: rewrite.headers(httpRequest.headers) },
    }),
    ...(appEngineHttpRequest && {
      appEngineHttpRequest: {
        ...appEngineHttpRequest,
        headers: rewrite.headers(appEngineHttpRequest.headers),
      },
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

/** Told how a task's copy and move went. */
export interface CopyListener extends MoveEnd {
  /** The copy exists and the body is let go: the rest of the move holds no body. */
  copied(): void;
}

/** A copy made: what the move's second half needs of it. */
interface Copied {
  readonly seenAttempts: number;
  readonly copy: MovedCopy;
  readonly recovery: Recovery;
}

export class Copier {
  /** The names of the copies this run creates: a later listing page shows them, and they are not its work. */
  readonly copies = new Set<string>();
  readonly #calls: RedriveCalls;
  readonly #mover: Mover;
  readonly #shape: CopyShape;
  readonly #recoveries: RecoveryTasks;

  constructor(
    private readonly deps: CopyDeps,
    private readonly request: { readonly requestId: string; readonly cutoffMs: number },
  ) {
    this.#calls = new RedriveCalls(deps);
    this.#recoveries = new RecoveryTasks({ ...deps, target: deps.recovery }, this.#calls);
    const { secondReads } = deps;
    this.#shape = deps.shape ?? REDRIVE_COPY;
    this.#mover = new Mover(
      { ...deps, shape: this.#shape, recoveries: this.#recoveries },
      this.#calls,
      (queue, name, answerByMs, reader) =>
        secondReads
          ? secondReads.read(queue.queue, queue.report.scanned, name, answerByMs, reader)
          : readAlone(this.#calls, name, [reader]),
    );
  }

  /** The task's paced slot (the request's and the queue's own rate); undefined when none is left in the budget. */
  reserve(queue: QueueRun): number | undefined {
    const { budget } = this.deps;
    return reserveSlot(queue.copyPacers, budget.now(), budget.deadlineMs);
  }

  /**
   * At the task's slot: the FULL read (the FULL listing's, when the plan listed bodies) and the rules, the
   * copy, the second read, the original's delete; `end` is told the task's result.
   */
  copy(candidate: TaskUnderWay, slotMs: number, policy: ForcePolicy, end: CopyListener): void {
    this.#firstHalf(candidate, slotMs, policy)
      .then((copied) => {
        if ('stop' in copied) return end.moved(copied.stop);
        end.copied();
        // No call waits for the second read: thousands of moves wait for it at once (docs/performance.md
        // "Memory").
        const { seenAttempts, copy, recovery } = copied;
        this.#mover.replace(candidate.queue, candidate.name, seenAttempts, copy, recovery, end);
      })
      .catch((error: unknown) => end.failed(error));
  }

  /** At the task's slot (less the create lead): the copy made, or why not. */
  async #firstHalf(candidate: TaskUnderWay, slotMs: number, policy: ForcePolicy): Promise<Stop | Copied> {
    const { budget } = this.deps;
    await budget.sleepUntil(slotMs - (this.deps.createLeadMs ?? 0), policy.heldSignal);
    const held = policy.isHeld();
    if (!held && !budget.isOver()) return this.#copy(candidate, slotMs, policy);
    // Not copied: a listed body is let go now, as after a copy (docs/redrive.md "Bodies held").
    listedStateDropped(candidate);
    return { stop: { outcome: held ? 'held' : 'deferred' } };
  }

  /**
   * The FULL read, then the rest of the copy. The body and headers live only in this call: the second
   * read after it may wait seconds for others to share its listing. The body is let go as the call ends,
   * whatever became of the copy: it is not read again.
   */
  async #copy(candidate: TaskUnderWay, slotMs: number, policy: ForcePolicy): Promise<Stop | Copied> {
    const listed = candidate.full?.take();
    const fresh = listed
      ? listedWithBody(listed)
      : await this.#calls.readBody(candidate.name, this.deps.bodies);
    if ('stop' in fresh) return fresh;
    try {
      return await this.#copyFresh(candidate, fresh.task, slotMs, policy);
    } finally {
      fresh.letGo();
    }
  }

  /** The rules on the fresh state, the recovery task, and the copy. */
  async #copyFresh(
    candidate: TaskUnderWay,
    fresh: Task,
    slotMs: number,
    policy: ForcePolicy,
  ): Promise<Stop | Copied> {
    const { name, queue } = candidate;
    const ready = await this.#ready(candidate, fresh, policy);
    if (ready !== undefined) return { stop: ready };
    const copyName = this.#shape.nameOf(name, this.request, queue.queue);
    this.copies.add(copyName.name);
    // Due halfway through the copy's arming delay, counted from the task's slot.
    const recovery = await this.#recoveries.arm(
      {
        original: name.name,
        copy: copyName.name,
        first: firstTaskOf(fresh),
        dispatchCount: fresh.dispatchCount ?? 0,
      },
      Math.max(this.deps.budget.now(), slotMs) + this.deps.armingDelayMs / 2,
    );
    if ('stop' in recovery) return recovery;
    const account = this.#shape.accountOf(fresh);
    const created = await this.#mover.copy(queue, fresh, copyName, account, slotMs, recovery);
    if ('stop' in created) return created;
    return { seenAttempts: fresh.dispatchCount ?? 0, copy: created, recovery };
  }

  /** The rules on the fresh state, and the queue's; undefined when the task may be copied. */
  async #ready(candidate: TaskUnderWay, fresh: Task, policy: ForcePolicy): Promise<CopyResult | undefined> {
    const { queue } = candidate;
    const selection = selectTask(this.#shape.asSelected(fresh), policy.rulesFor(queue));
    if (selection.kind === 'unmatched') return { outcome: 'skipped', skipReason: 'no-longer-matches' };
    if (selection.kind === 'skip') return { outcome: 'skipped', skipReason: selection.reason };
    const refused = await this.#shape.refusal(queue);
    if (refused) return refused;
    if (!this.#mover.mayActAs(this.#shape.accountOf(fresh)))
      return { outcome: 'skipped', skipReason: 'cannot-act-as' };
    if (queue.state.stoppedBy) return { outcome: 'skipped', skipReason: queue.state.stoppedBy };
    const stateSkip = await queue.state.skipReason();
    if (stateSkip) return { outcome: 'skipped', skipReason: stateSkip };
    if (policy.isHeld()) return { outcome: 'held' };
    return undefined;
  }
}
