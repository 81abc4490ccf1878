/**
 * The world of the redrive crash tests (docs/claims.md "A crash mid-redrive"): a queue of failed tasks and a
 * control queue in the emulator, rerunHttp as real processes that are killed with SIGKILL, and the judge:
 * the emulator's queue and the target's requests say where each original task is.
 */
import { expect } from 'vitest';
import { startEmulator, type Emulator } from '../../emulator/server.js';
import { listTasksFull } from './http.js';
import { placesOf } from './places.js';
import { startRerunProcess, type RerunProcess } from './rerun-process.js';
import { controlQueue, failedTask, PROJECT, queueName } from './seeds.js';
import { startTarget, type Target } from './target-server.js';

export const ORDERS = queueName('orders');
export const CONTROL = queueName('rerun-control');

export class RedriveCrashWorld {
  readonly #processes: RerunProcess[] = [];

  private constructor(
    readonly emulator: Emulator,
    readonly target: Target,
  ) {}

  /** A fresh emulator, and a target that answers 200. */
  static async start(): Promise<RedriveCrashWorld> {
    const emulator = await startEmulator({ port: 0 });
    return new RedriveCrashWorld(emulator, await startTarget({ respond: () => 200 }));
  }

  /** `count` failed tasks in ORDERS (500 dispatches a second), and the control queue; their names. */
  load(count: number): string[] {
    const tasks = Array.from({ length: count }, (_, i) => failedTask(ORDERS, `t${i}`, this.target.url));
    this.emulator.load({
      queues: [{ name: ORDERS, rateLimits: { maxDispatchesPerSecond: 500 }, tasks }, controlQueue(CONTROL)],
    });
    return tasks.map((t) => t.name);
  }

  /** rerunHttp on `port`, its control queue delivering to it; copies arm after `armingMs`. */
  async rerunProcess(port: number, armingMs: number, batch: boolean): Promise<RerunProcess> {
    const child = await startRerunProcess(port, {
      RERUN_QUEUES: ORDERS,
      RERUN_CONTROL_QUEUE: CONTROL,
      RERUN_SELF_URL: `http://127.0.0.1:${port}/`,
      RERUN_INVOKER_SA: `rerun-invoker@${PROJECT}.iam.gserviceaccount.com`,
      CLOUD_TASKS_EMULATOR_HOST: this.emulator.host,
      TEST_ARMING_MS: String(armingMs),
      RERUN_REDRIVE_BATCH: String(batch),
      ...(process.env.TEST_LOG && { TEST_LOG: '1' }),
    });
    this.#processes.push(child);
    return child;
  }

  /** Kills every process started, then stops the emulator and the target. */
  async stop(): Promise<void> {
    for (const child of this.#processes.splice(0)) await child.kill();
    await this.emulator.stop();
    await this.target.stop();
  }

  /** ORDERS's tasks as the REST API lists them, in the FULL view. */
  listed(): Promise<Record<string, any>[]> {
    return listTasksFull(this.emulator.url, ORDERS);
  }

  /**
   * Per task, how often it has run or will run: the target's requests for it (the original's or a copy's),
   * copies still waiting in the queue, and the original if it is still there.
   */
  async judge(originals: readonly string[]): Promise<{ twice: number; never: number }> {
    const ran = this.target.requests.map((request) => `${ORDERS}/tasks/${request.path.split('/').pop()}`);
    return placesOf(originals, ran, await this.listed());
  }

  /** Waits until every copy made so far has fallen due and been answered. */
  async copiesSettled(armingMs: number): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, armingMs + 1_000));
    const copiesLeft = async () =>
      (await this.listed()).filter((t) => t.httpRequest?.headers?.['X-Rerun-Original-Task']).length;
    await expect.poll(copiesLeft, { timeout: 10_000, interval: 200 }).toBe(0);
    await this.emulator.settled();
  }
}
