import { randomUUID } from 'node:crypto';
/**
 * Child of the scan bench: lists one queue of the emulator in one of three ways and reports its CPU time,
 * wall time and peak RSS.
 *   rerun  the product: a dryRun fix-deployed through `rerun(runtime, request)` (BENCH_EVENT)
 *   bare   the anchor: a fetch loop over the same pages, JSON parsed and counted
 *   gct    the alternative: @google-cloud/tasks in REST fallback mode, listTasksAsync
 * argv: mode queue. Env: CLOUD_TASKS_EMULATOR_HOST (and the product's RERUN_* for `rerun`).
 */
import { peakRssKb, sendResult } from './child.js';

export type ScanMode = 'rerun' | 'bare' | 'gct';

export interface ScanChildResult {
  readonly mode: ScanMode;
  readonly listed: number;
  readonly matched: number;
  readonly cpuUs: number;
  readonly wallMs: number;
  /** RSS once everything is imported and set up, before the scan. */
  readonly rssBeforeKb: number;
  /** Peak RSS of the whole process (peakRssKb). */
  readonly maxRssKb: number;
  /** Heap still used after a full GC at the end, the scan's result still held: what the scan retained. */
  readonly heapAfterGcKb: number;
}

const [mode, queue] = process.argv.slice(2) as [ScanMode, string];
const host = process.env.CLOUD_TASKS_EMULATOR_HOST!;

async function prepare(): Promise<() => Promise<{ listed: number; matched: number }>> {
  switch (mode) {
    case 'rerun': {
      const { createRuntime, rerun } = await import('../shared/platform/runtime.js');
      const { parseRerunEvent } = await import('../shared/triggers/events.js');
      const runtime = createRuntime(process.env);
      return async () => {
        const parsed = parseRerunEvent(JSON.parse(process.env.BENCH_EVENT!), {
          receivedMs: Date.now(),
          requestId: randomUUID(),
        });
        if (!parsed.success) throw parsed.error;
        const result = await rerun(runtime, parsed.data);
        if (!result.ok) throw new Error(`refused: ${result.message}`);
        const report = result.report.queues[0];
        if (!report?.complete) throw new Error(`scan incomplete: ${JSON.stringify(report)}`);
        return { listed: report.scanned, matched: report.matched };
      };
    }
    case 'bare':
      return async () => {
        let listed = 0;
        let pageToken = '';
        do {
          const url = `http://${host}/v2/${queue}/tasks?pageSize=1000&responseView=BASIC${pageToken && `&pageToken=${encodeURIComponent(pageToken)}`}`;
          const response = await fetch(url);
          if (!response.ok) throw new Error(`HTTP ${response.status}: ${await response.text()}`);
          const page = (await response.json()) as { tasks?: unknown[]; nextPageToken?: string };
          listed += page.tasks?.length ?? 0;
          pageToken = page.nextPageToken ?? '';
        } while (pageToken);
        return { listed, matched: 0 };
      };
    case 'gct': {
      const { CloudTasksClient } = await import('@google-cloud/tasks');
      const { PassThroughClient } = await import('google-auth-library');
      const [hostname, port] = host.split(':') as [string, string];
      const client = new CloudTasksClient({
        fallback: true,
        apiEndpoint: hostname,
        port: Number(port),
        protocol: 'http',
        authClient: new PassThroughClient(),
      });
      return async () => {
        let listed = 0;
        for await (const _task of client.listTasksAsync({
          parent: queue,
          responseView: 'BASIC',
          pageSize: 1000,
        }))
          listed++;
        return { listed, matched: 0 };
      };
    }
  }
}

const scan = await prepare();
const rssBeforeKb = Math.round(process.memoryUsage.rss() / 1024);
const cpu = process.cpuUsage();
const startMs = performance.now();
const { listed, matched } = await scan();
const wallMs = performance.now() - startMs;
const used = process.cpuUsage(cpu);
// Needs --expose-gc (the scan bench passes it; it changes no GC behaviour, it only exposes gc()).
(globalThis as { gc?: () => void }).gc?.();
const heapAfterGcKb = Math.round(process.memoryUsage().heapUsed / 1024);
sendResult({
  mode,
  listed,
  matched,
  cpuUs: used.user + used.system,
  wallMs,
  rssBeforeKb,
  maxRssKb: peakRssKb(),
  heapAfterGcKb,
} satisfies ScanChildResult);
