/**
 * A move's recovery task (docs/claims.md "A crash mid-redrive"): written to the control queue before the
 * move makes anything, deleted once the move is settled. Left in place (a crash, a lost answer, a move left
 * halfway), it falls due and its delivery settles the move (recover-move.ts). Redrive's copies, unparks and
 * parks write one each.
 */
import type { Budget } from './budget.js';
import { createUnderFreeName } from '../control/claim-names.js';
import { moveRecoveryTaskFor, type ControlTarget, type MoveRecovery } from '../control/control-tasks.js';
import { parseTaskName } from '../cloud-tasks/names.js';
import type { CloudTasksClient } from '../cloud-tasks/client.js';
import { isInDoubt } from '../cloud-tasks/retry.js';
import type { Recovery } from './move.js';
import type { RedriveCalls, Stop } from './redrive-calls.js';

export class RecoveryTasks {
  constructor(
    private readonly deps: {
      readonly tasks: CloudTasksClient;
      readonly budget: Budget;
      /** The control queue; without one, nothing is written and nothing comes back in time. */
      readonly target: ControlTarget | undefined;
    },
    private readonly calls: RedriveCalls,
  ) {}

  /** Writes the move's recovery task, due at `dueMs`; a Stop (nothing was moved) when it cannot be. */
  async arm(move: Omit<MoveRecovery, 'kind'>, dueMs: number): Promise<Stop | Recovery> {
    const { target, tasks, budget } = this.deps;
    if (!target) return { name: undefined, dueMs: Number.POSITIVE_INFINITY, earlier: false };
    const written = await createUnderFreeName(
      tasks,
      target.queue,
      (generation) => moveRecoveryTaskFor(move, target, dueMs, generation),
      (call) => this.calls.holdingChange(call),
    );
    if (written.kind === 'created') return { name: written.name, dueMs, earlier: false };
    // Another delivery's recovery task for this move is live: it may fall due any time now.
    if (written.kind === 'exists') return { name: written.name, dueMs: budget.now(), earlier: true };
    return {
      stop: {
        outcome: 'deferred',
        error: `the move's recovery task could not be written (${written.error.message}); nothing was moved`,
      },
    };
  }

  /**
   * Deletes the recovery task of a settled move; left in place, it falls due and finds nothing to do,
   * except where the move could not record a withdrawn copy (move.ts): a delete that may pass is sent
   * again.
   */
  async disarm(recovery: Recovery): Promise<void> {
    const name = recovery.name === undefined ? undefined : parseTaskName(recovery.name);
    if (!name) return;
    await this.calls.sendChange(
      () => this.deps.tasks.deleteTask(name),
      // NOT_FOUND is done too; only a failure that may pass is sent again.
      (failure) => (failure !== undefined && isInDoubt(failure) ? undefined : 'done'),
      () => 'done',
    );
  }
}
