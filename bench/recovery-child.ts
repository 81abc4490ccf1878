/**
 * Child of the recovery bench: one request (BENCH_EVENT) through the product's core, its heap and RSS
 * sampled while it runs, so the memory figures are the product's alone (the emulator and the target live
 * in the bench's process). With BENCH_THROUGH_FRAMEWORK=1 the request goes instead to a Functions
 * Framework server in this process, as the deployed function takes it. Env: the product's RERUN_* and
 * CLOUD_TASKS_EMULATOR_HOST, BENCH_EVENT, and BENCH_ARMING_MS (the runtime's redrive arming delay).
 */
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import * as ff from '@google-cloud/functions-framework';
import { getTestServer } from '@google-cloud/functions-framework/testing';
import { rerunHttpHandler } from '../functions/rerun-http.js';
import { parseRerunEvent } from '../shared/triggers/events.js';
import type { RerunReport } from '../shared/run/settle.js';
import { createRuntime, rerun } from '../shared/platform/runtime.js';
import { measure, sendResult, type Measured } from './child.js';

export interface RecoveryChildResult extends Measured {
  readonly counts?: RerunReport['counts'];
  readonly error?: string;
}

type Outcome = Pick<RecoveryChildResult, 'counts' | 'error'>;

const runtime = createRuntime(process.env, {
  logDestination: { write: () => undefined },
  redriveArmingDelayMs: Number(process.env.BENCH_ARMING_MS),
});

/** The request through the core, as the bench measures it by default. */
function throughCore(): () => Promise<Outcome> {
  const parsed = parseRerunEvent(JSON.parse(process.env.BENCH_EVENT!), {
    receivedMs: Date.now(),
    requestId: randomUUID(),
  });
  if (!parsed.success) throw parsed.error;
  return async () => {
    const result = await rerun(runtime, parsed.data);
    return result.ok ? { counts: result.report.counts } : { error: `refused: ${JSON.stringify(result)}` };
  };
}

/** The request POSTed to rerunHttp under the Functions Framework, listening before the work is measured. */
async function throughFramework(): Promise<() => Promise<Outcome>> {
  ff.http('benchRerunHttp', rerunHttpHandler(runtime));
  const server = getTestServer('benchRerunHttp');
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  return async () => {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: process.env.BENCH_EVENT!,
    });
    const text = await response.text();
    server.close();
    if (response.status !== 200) return { error: `answered ${response.status}: ${text.slice(0, 500)}` };
    return { counts: (JSON.parse(text) as RerunReport).counts };
  };
}

const request = await (process.env.BENCH_THROUGH_FRAMEWORK === '1' ? throughFramework() : throughCore());
sendResult(
  (await measure(async () => {
    try {
      return await request();
    } catch (err) {
      return { error: err instanceof Error ? (err.stack ?? err.message) : String(err) };
    }
  })) satisfies RecoveryChildResult,
);
