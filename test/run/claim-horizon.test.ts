/**
 * A claim in the control queue falls due after the run's budget; a run with no budget (a command line on a
 * terminal) gives it a rolling horizon instead: ten minutes after the claim is made. A task whose slot
 * comes after its claim falls due is left to the control queue, never forced by the run as well.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock, startEmulator, type Emulator } from '../../emulator/server.js';
import { createCloudTasksClient } from '../../shared/cloud-tasks/client.js';
import { parseQueueName } from '../../shared/cloud-tasks/names.js';
import { createLogger } from '../../shared/platform/log.js';
import { waitingControlTasks } from '../../shared/control/waiting.js';
import { Breaker } from '../../shared/run/breaker.js';
import { Budget } from '../../shared/run/budget.js';
import { Claimer, ClaimRegistry } from '../../shared/run/claim.js';
import { TaskFlow } from '../../shared/run/flow.js';
import { Hold } from '../../shared/run/hold.js';
import type { Acting } from '../../shared/run/modes.js';
import { ReportBuilder } from '../../shared/run/settle.js';
import { queueName } from '../helpers/seeds.js';
import { candidateOf, ORDERS, queueRunOf } from './stage-fixtures.js';

const T0 = Date.UTC(2026, 11, 5, 12, 0, 0);
const CONTROL = queueName('rerun-control');
const TASK = `${queueName('orders')}/tasks/order-1`;

let emulator: Emulator;
const tasksOf = () => createCloudTasksClient({ emulatorHost: emulator.host });
beforeEach(async () => {
  emulator = await startEmulator({
    port: 0,
    clock: new ManualClock(T0),
    seed: { queues: [{ name: CONTROL }] },
  });
});
afterEach(() => emulator.stop());

function claimerOf(claimDueMs: number, nowMs: number): Claimer {
  return new Claimer(
    {
      registry: new ClaimRegistry(),
      tasks: tasksOf(),
      control: {
        queue: parseQueueName(CONTROL)!,
        selfUrl: 'http://127.0.0.1:1/',
        invokerServiceAccount: 'rerun@test-project.iam.gserviceaccount.com',
        writtenBy: 'run-1',
      },
      ownClaimId: undefined,
      log: createLogger('silent'),
      now: () => nowMs,
    },
    {
      requestId: `r-${claimDueMs}`,
      cutoffMs: T0,
      mode: 'run',
      reason: undefined,
      requestKind: 'fix-deployed',
      force: false,
      lastAttempts: false,
      verifyMs: 30_000,
      minBackoffLeftMs: 30_000,
    },
    claimDueMs,
  );
}

async function claimDueAt(claimDueMs: number, nowMs: number): Promise<number> {
  const result = await claimerOf(claimDueMs, nowMs).claim(TASK);
  if (result.kind !== 'claimed') throw new Error(`not claimed: ${result.kind}`);
  return Date.parse(emulator.task(result.claim.controlTask!)!.scheduleTime);
}

describe('a claim in the control queue', () => {
  it('falls due after the budget, as the run said', async () => {
    expect(await claimDueAt(T0 + 110_000, T0)).toBe(T0 + 110_000);
  });

  it('with no budget, ten minutes after it is made (a rolling horizon), not never', async () => {
    expect(await claimDueAt(Number.POSITIVE_INFINITY, T0 + 3_600_000)).toBe(T0 + 3_600_000 + 600_000);
  });
});

describe('a task whose slot comes after its claim falls due (no budget)', () => {
  it('is left to the control queue: queued, its claim kept, and the run does not act on it', async () => {
    const log = createLogger('silent');
    const budget = new Budget(Number.POSITIVE_INFINITY, () => T0);
    const acted: string[] = [];
    const slotAfterMs = (minutes: number): Acting => ({
      enter: () => Promise.resolve(() => undefined),
      pacersOf: () => [],
      reserve: () => T0 + minutes * 60_000,
      act: (candidate, _slotMs, _policy, done) => {
        acted.push(candidate.name.name);
        done.acted({ forced: false, result: { outcome: 'gone' } });
      },
      noSlot: () => Promise.resolve({ outcome: 'deferred' }),
    });
    const rowOf = async (acting: Acting, task: string) => {
      const report = new ReportBuilder(log, false);
      const flow = new TaskFlow({
        acting,
        claimer: claimerOf(Number.POSITIVE_INFINITY, T0),
        budget,
        hold: new Hold(),
        report,
        breaker: new Breaker({ maxFailedAgain: 0.5, minVerdicts: 5 }, log),
        rulesFor: () => {
          throw new Error('no rules read');
        },
        verifyMs: 0,
        canaryWaitMs: 0,
        concurrency: 1,
      });
      await flow.start(candidateOf(task, queueRunOf()), false);
      await flow.drain();
      return report.rows.find((row) => row.task.endsWith(`/${task}`));
    };
    // Eleven minutes away: past the ten-minute horizon.
    expect(await rowOf(slotAfterMs(11), 'late')).toMatchObject({ outcome: 'queued' });
    expect(acted).toEqual([]);
    const claims = (await waitingControlTasks(tasksOf(), parseQueueName(CONTROL)!, 'r-Infinity')).length;
    expect(claims).toBe(1);
    // Nine minutes away: the claim outlives the slot, and the run acts.
    await rowOf(slotAfterMs(9), 'soon');
    expect(acted).toEqual([`${ORDERS}/tasks/soon`]);
  });
});
