/**
 * A claim in the control queue falls due after the run's budget; a run with no budget (a command line on a
 * terminal) gives it a rolling horizon instead: ten minutes after the claim is made.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock, startEmulator, type Emulator } from '../../emulator/server.js';
import { createCloudTasksClient } from '../../shared/cloud-tasks/client.js';
import { parseQueueName } from '../../shared/cloud-tasks/names.js';
import { createLogger } from '../../shared/platform/log.js';
import { Claimer, ClaimRegistry } from '../../shared/run/claim.js';
import { queueName } from '../helpers/seeds.js';

const T0 = Date.UTC(2026, 11, 5, 12, 0, 0);
const CONTROL = queueName('rerun-control');
const TASK = `${queueName('orders')}/tasks/order-1`;

let emulator: Emulator;
beforeEach(async () => {
  emulator = await startEmulator({
    port: 0,
    clock: new ManualClock(T0),
    seed: { queues: [{ name: CONTROL }] },
  });
});
afterEach(() => emulator.stop());

async function claimDueAt(claimDueMs: number, nowMs: number): Promise<number> {
  const claimer = new Claimer(
    {
      registry: new ClaimRegistry(),
      tasks: createCloudTasksClient({ emulatorHost: emulator.host }),
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
  const result = await claimer.claim(TASK);
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
