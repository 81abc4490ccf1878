/**
 * Child of the recovery bench's "calls only" anchor (BENCH_RECOVERY_CALLS_ONLY=1): the batch redrive's
 * calls with none of the product's logic around them, to size what the product's own per-task work costs
 * (docs/performance.md "How each figure is measured"). It uses the product's client, and so the same
 * transport, FULL-page reading and batch writing, but holds one small record per task, not a task's flow:
 * - the FULL listing's tasks are copied 100 to a `tasks:batchCreate`, paced at the queue's rate, each batch
 *   created LEAD_MS before its slot and due the arming delay after it, its bodies then let go as the
 *   product's copy stage lets them go;
 * - one listing of the queue's attempts every LIST_EVERY_MS serves both the second reads (an original
 *   listed idle after its copy exists is deleted, by `tasks:batchDelete`) and the verdicts (a copy missing
 *   from two listings after it fell due has run);
 * - it returns once every copy has its verdict.
 * It has no claims, selection, crash recovery, per-item failure rules, report or log: a measuring device,
 * not a redrive. Env as recovery-child.ts, and BENCH_QUEUE_RATE.
 *
 * With BENCH_CALLS_DUTIES=1 (the "calls and duties" anchor) it also does the product's per-task duties, a
 * batch at a time with no flow per task: the selection rules on each listed task (and again before its
 * copy, as the copy stage reads them on the fresh state), its failure cluster, its claim in the process's
 * registry (released once the original is deleted), its copy's hashed name, and its one row and log line
 * once its verdict is known. Not the crash recovery (the bench writes no control queue) nor the rules for
 * answers other than the plain one: what a redrive that works by batch end to end would cost at least.
 */
import { randomUUID } from 'node:crypto';
import { letBodyGo } from '../shared/cloud-tasks/body-bytes.js';
import { createCloudTasksClient, type Task } from '../shared/cloud-tasks/client.js';
import { parseQueueName, parseTaskName, taskNameIn, type TaskName } from '../shared/cloud-tasks/names.js';
import { createLogger, runLogger } from '../shared/platform/log.js';
import { ClaimRegistry } from '../shared/run/claim.js';
import { ClusterCollector } from '../shared/run/clusters.js';
import { copyNameOf, copyOf } from '../shared/run/copy.js';
import { hasAttemptUnderWay, selectTask, type SelectionRules } from '../shared/run/select.js';
import { ReportBuilder } from '../shared/run/settle.js';
import { measure, sendResult } from './child.js';
import type { RecoveryChildResult } from './recovery-child.js';

/** Copies are created this long before their slot, as the product's batch path does. */
const LEAD_MS = 5_000;
const LIST_EVERY_MS = 4_000;
const BATCH = 100;
/** Batches created and not yet answered: about the 500 bodies the product holds ahead. */
const BATCHES_AHEAD = 5;

const sleepUntil = (ms: number) =>
  new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, ms - Date.now())));

const queue = parseQueueName((JSON.parse(process.env.BENCH_EVENT!) as { queues: string[] }).queues[0]!)!;
const armingMs = Number(process.env.BENCH_ARMING_MS);
const batchEveryMs = (BATCH * 1000) / Number(process.env.BENCH_QUEUE_RATE);
const tasks = createCloudTasksClient({ emulatorHost: process.env.CLOUD_TASKS_EMULATOR_HOST });

/** Originals whose copy exists, by name: the copy, the attempts seen, and when the copy falls due. */
const toDelete = new Map<string, { readonly copy: string; readonly seen: number; readonly dueMs: number }>();
/** Copies awaiting their verdict: their original, when they fall due, and the listings in a row that missed them. */
const toJudge = new Map<string, { readonly original: string; readonly dueMs: number; misses: number }>();
const copies = new Set<string>();

/** What the child does for each task beyond its calls: nothing, or the product's duties. */
interface Duties {
  /** Whether a listed task is copied (it matches, and is claimed). */
  take(task: Task): boolean;
  /** Its copy's name, once its rules are read again. */
  copyName(task: Task): TaskName;
  deleted(original: TaskName): void;
  judged(original: string, copy: string): void;
  /** The rows recorded, if any. */
  readonly report?: ReportBuilder;
}

const NO_DUTIES: Duties = {
  take: () => true,
  // From the original's ID alone (the product hashes the request in; this child runs once).
  copyName: (task) => taskNameIn(queue, `copy-${task.name.slice(task.name.lastIndexOf('/') + 1)}`),
  deleted: () => undefined,
  judged: () => undefined,
};

/** The product's per-task duties, a batch at a time (BENCH_CALLS_DUTIES=1). */
function productDuties(): Duties {
  const request = { requestId: randomUUID(), cutoffMs: Date.now() };
  const claims = new ClaimRegistry();
  const clusters = new ClusterCollector();
  const report = new ReportBuilder(
    runLogger(createLogger('info', { write: () => undefined }), randomUUID()),
    false,
  );
  const rules = (): SelectionRules => ({
    match: {},
    cutoffMs: request.cutoffMs,
    minBackoffLeftMs: 0,
    dueSoonApplies: true,
    retry: { maxAttempts: -1, maxRetryDurationMs: 0 },
    allowLastAttempt: true,
    nowMs: Date.now(),
  });
  return {
    report,
    take(task) {
      if (selectTask(task, rules()).kind !== 'candidate') return false;
      clusters.add(task, queue.name);
      return claims.tryClaim(task.name, Date.now()) === 'claimed';
    },
    copyName(task) {
      if (selectTask(task, rules()).kind !== 'candidate') throw new Error(`${task.name} no longer matches`);
      return copyNameOf(parseTaskName(task.name)!, request.requestId, request.cutoffMs);
    },
    deleted: (original) => claims.release(original.name, Date.now()),
    judged: (task, copy) => report.record({ task, outcome: 'redriven', copy, verdict: 'succeeded' }),
  };
}

const duties = process.env.BENCH_CALLS_DUTIES === '1' ? productDuties() : NO_DUTIES;

async function copyBatch(batch: readonly Task[], slotMs: number): Promise<void> {
  await sleepUntil(slotMs - LEAD_MS);
  const dueMs = Math.max(Date.now(), slotMs) + armingMs;
  const created = batch.map((task) => copyOf(task, duties.copyName(task), dueMs));
  const operation = await tasks.batchCreateTasks(queue, created);
  // As the product's copy stage does: the bodies are not read again, and their memory is freed now.
  batch.forEach(letBodyGo);
  const failed = operation.metadata?.failedRequests ?? {};
  batch.forEach((task, i) => {
    if (failed[String(i)] !== undefined) return;
    copies.add(created[i]!.name);
    toDelete.set(task.name, { copy: created[i]!.name, seen: task.dispatchCount ?? 0, dueMs });
  });
}

/** One listing: deletes the originals seen idle, and judges the copies due before it started. */
async function listOnce(): Promise<void> {
  const fromMs = Date.now();
  const asked = new Map(toDelete);
  const listed = new Set<string>();
  const idle: TaskName[] = [];
  for await (const page of tasks.listTaskAttempts(queue)) {
    for (const task of page) {
      listed.add(task.name);
      const original = asked.get(task.name);
      // No original of the bench's backlog runs by itself: one listed has not run since it was read.
      if (!original || (task.dispatchCount ?? 0) > original.seen || hasAttemptUnderWay(task)) continue;
      idle.push(parseTaskName(task.name)!);
      toDelete.delete(task.name);
      toJudge.set(original.copy, { original: task.name, dueMs: original.dueMs, misses: 0 });
    }
  }
  for (const [copy, verdict] of toJudge) {
    if (verdict.dueMs > fromMs) continue;
    verdict.misses = listed.has(copy) ? 0 : verdict.misses + 1;
    if (verdict.misses < 2) continue;
    toJudge.delete(copy);
    duties.judged(verdict.original, copy);
  }
  for (let i = 0; i < idle.length; i += 1000) await tasks.batchDeleteTasks(queue, idle.slice(i, i + 1000));
  for (const name of idle) duties.deleted(name);
}

/** The redrive's calls: FULL pages into batches at the queue's pace, while the listings judge them. */
async function redrive(): Promise<Pick<RecoveryChildResult, 'counts'>> {
  let listing = Promise.resolve();
  const lister = setInterval(() => {
    listing = listing.then(listOnce);
  }, LIST_EVERY_MS);
  const ahead = new Set<Promise<void>>();
  let slotMs = Date.now();
  for await (const page of tasks.listTasks(queue, 'FULL')) {
    const originals = page.filter((task) => !copies.has(task.name) && duties.take(task));
    for (let i = 0; i < originals.length; i += BATCH) {
      slotMs = Math.max(slotMs, Date.now()) + batchEveryMs;
      const copied: Promise<void> = copyBatch(originals.slice(i, i + BATCH), slotMs).finally(() =>
        ahead.delete(copied),
      );
      ahead.add(copied);
      while (ahead.size >= BATCHES_AHEAD) await Promise.race(ahead);
    }
  }
  await Promise.all(ahead);
  while (toDelete.size > 0 || toJudge.size > 0) await sleepUntil(Date.now() + 100);
  clearInterval(lister);
  await listing;
  return duties.report ? { counts: duties.report.counts } : {};
}

sendResult((await measure(redrive)) satisfies RecoveryChildResult);
