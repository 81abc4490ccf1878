import { randomUUID } from 'node:crypto';
/**
 * Child of the overhead bench: RunTask on every task of one queue, and report this process's CPU time.
 *   client  the product's Cloud Tasks client (shared/cloud-tasks/client.ts), `concurrency` calls in flight
 *   fetch   the anchor: a bare global fetch loop POSTing the same `:run` URLs, same concurrency
 *   rerun   the whole product path: a fix-deployed rerun of the queue (list, select, pace, run, log)
 * argv: mode queue count concurrency. Env: CLOUD_TASKS_EMULATOR_HOST.
 */
import { sendResult } from './child.js';

export type OverheadMode = 'client' | 'fetch' | 'rerun';

export interface OverheadChildResult {
  readonly mode: OverheadMode;
  readonly calls: number;
  readonly cpuUs: number;
  readonly wallMs: number;
}

const [mode, queue, countText, concurrencyText] = process.argv.slice(2) as [
  OverheadMode,
  string,
  string,
  string,
];
const count = Number(countText);
const concurrency = Number(concurrencyText);
const host = process.env.CLOUD_TASKS_EMULATOR_HOST!;
const names = Array.from({ length: count }, (_, i) => `${queue}/tasks/order-${i}`);

/** Runs `call` on every name with `concurrency` workers. */
async function pool(call: (name: string) => Promise<void>): Promise<number> {
  let next = 0;
  const worker = async () => {
    while (next < names.length) await call(names[next++]!);
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return names.length;
}

async function prepare(): Promise<() => Promise<number>> {
  switch (mode) {
    case 'client': {
      const { createCloudTasksClient } = await import('../shared/cloud-tasks/client.js');
      const { parseTaskName } = await import('../shared/cloud-tasks/names.js');
      const client = createCloudTasksClient({ emulatorHost: host });
      const tasks = new Map(names.map((name) => [name, parseTaskName(name)!]));
      return () =>
        pool(async (name) => {
          await client.runTask(tasks.get(name)!);
        });
    }
    case 'fetch':
      return () =>
        pool(async (name) => {
          const response = await fetch(`http://${host}/v2/${name}:run`, {
            method: 'POST',
            headers: { 'Content-Type': 'application/json' },
            body: JSON.stringify({ responseView: 'BASIC' }),
          });
          const task = (await response.json()) as { name?: string };
          if (!response.ok || task.name !== name) throw new Error(`HTTP ${response.status} for ${name}`);
        });
    case 'rerun': {
      const { createRuntime, rerun } = await import('../shared/platform/runtime.js');
      const { parseRerunEvent } = await import('../shared/triggers/events.js');
      const runtime = createRuntime(process.env);
      return async () => {
        const parsed = parseRerunEvent(
          { kind: 'fix-deployed', queues: [queue] },
          { receivedMs: Date.now(), requestId: randomUUID() },
        );
        if (!parsed.success) throw parsed.error;
        const result = await rerun(runtime, parsed.data);
        if (!result.ok) throw new Error(`refused: ${result.message}`);
        if (result.report.counts.dispatched !== count) {
          throw new Error(`dispatched ${result.report.counts.dispatched} of ${count}`);
        }
        return result.report.counts.dispatched;
      };
    }
  }
}

const work = await prepare();
const cpu = process.cpuUsage();
const startMs = performance.now();
const calls = await work();
const wallMs = performance.now() - startMs;
const used = process.cpuUsage(cpu);
sendResult({ mode, calls, cpuUs: used.user + used.system, wallMs } satisfies OverheadChildResult);
