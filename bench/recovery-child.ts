import { getHeapStatistics } from 'node:v8';
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
import { sendResult } from './child.js';

export interface RecoveryChildResult {
  /** Real time (performance.timeOrigin + performance.now(), as the emulator's call record) of the request. */
  readonly sentRealMs: number;
  /** When the request's report came back. */
  readonly returnedRealMs: number;
  readonly counts?: RerunReport['counts'];
  readonly error?: string;
  /** Heap in use once set up, before the request. */
  readonly heapBeforeKb: number;
  /** Highest heap in use seen while the request ran (sampled every 10 ms). */
  readonly peakHeapKb: number;
  readonly rssBeforeKb: number;
  /** Peak RSS of the whole process (getrusage maxrss). */
  readonly maxRssKb: number;
  /** CPU time of the request (user + system). */
  readonly cpuMs: number;
}

const realNow = () => performance.timeOrigin + performance.now();
const kb = (bytes: number) => Math.round(bytes / 1024);

const runtime = createRuntime(process.env, {
  logDestination: { write: () => undefined },
  redriveArmingDelayMs: Number(process.env.BENCH_ARMING_MS),
});
const parsed = parseRerunEvent(JSON.parse(process.env.BENCH_EVENT!), {
  receivedMs: Date.now(),
  requestId: randomUUID(),
});
if (!parsed.success) throw parsed.error;

const before = process.memoryUsage();
let peakHeap = before.heapUsed;
// The heap's used size alone (getHeapStatistics is cheaper than memoryUsage, which reads the RSS too):
// the sampling's own CPU counts toward the request's.
const sampler = setInterval(() => {
  peakHeap = Math.max(peakHeap, getHeapStatistics().used_heap_size);
}, 10);
const cpu = process.cpuUsage();
const sentRealMs = realNow();
let counts: RerunReport['counts'] | undefined;
let error: string | undefined;
try {
  const result = await rerun(runtime, parsed.data);
  if (result.ok) counts = result.report.counts;
  else error = `refused: ${JSON.stringify(result)}`;
} catch (err) {
  error = err instanceof Error ? (err.stack ?? err.message) : String(err);
}
const returnedRealMs = realNow();
const used = process.cpuUsage(cpu);
clearInterval(sampler);
peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed);
sendResult({
  sentRealMs,
  returnedRealMs,
  ...(counts && { counts }),
  ...(error !== undefined && { error }),
  heapBeforeKb: kb(before.heapUsed),
  peakHeapKb: kb(peakHeap),
  rssBeforeKb: kb(before.rss),
  maxRssKb: process.resourceUsage().maxRSS,
  cpuMs: Math.round((used.user + used.system) / 1000),
} satisfies RecoveryChildResult);
