import { randomUUID } from 'node:crypto';
/**
 * Child of the recovery bench: one request (BENCH_EVENT) through the product's core, its heap and RSS
 * sampled while it runs, so the memory figures are the product's alone (the emulator and the target live
 * in the bench's process). Env: the product's RERUN_* and CLOUD_TASKS_EMULATOR_HOST, BENCH_EVENT, and
 * BENCH_ARMING_MS (the runtime's redrive arming delay).
 */
import { parseRerunEvent } from '../shared/triggers/events.js';
import type { RerunReport } from '../shared/run/settle.js';
import { createRuntime, rerun } from '../shared/platform/runtime.js';
import { measure, sendResult, type Measured } from './child.js';

export interface RecoveryChildResult extends Measured {
  readonly counts?: RerunReport['counts'];
  readonly error?: string;
}

const runtime = createRuntime(process.env, {
  logDestination: { write: () => undefined },
  redriveArmingDelayMs: Number(process.env.BENCH_ARMING_MS),
});
const parsed = parseRerunEvent(JSON.parse(process.env.BENCH_EVENT!), {
  receivedMs: Date.now(),
  requestId: randomUUID(),
});
if (!parsed.success) throw parsed.error;

sendResult(
  (await measure(async () => {
    try {
      const result = await rerun(runtime, parsed.data);
      return result.ok ? { counts: result.report.counts } : { error: `refused: ${JSON.stringify(result)}` };
    } catch (err) {
      return { error: err instanceof Error ? (err.stack ?? err.message) : String(err) };
    }
  })) satisfies RecoveryChildResult,
);
