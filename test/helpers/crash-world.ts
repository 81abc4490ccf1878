/**
 * The world of the crash tests (docs/claims.md "A crash mid-redrive", docs/parking.md "The move"): the
 * orders queue (and its parking queue) and a control queue in the emulator, rerunHttp as real processes
 * that are killed with SIGKILL, and the judge: the queues and the target's requests say where each original
 * task is.
 */
import { expect } from 'vitest';
import { startEmulator, type Emulator, type EmulatorOptions } from '../../emulator/server.js';
import { parkingQueueOf, parseQueueName } from '../../shared/cloud-tasks/names.js';
import { listTasksFull, postJson } from './http.js';
import { placesOf } from './places.js';
import { freePort, startRerunProcess, type RerunProcess } from './rerun-process.js';
import { controlQueue, failedTask, PROJECT, queueName } from './seeds.js';
import { startTarget, type Target } from './target-server.js';

export const ORDERS = queueName('orders');
export const PARKING = parkingQueueOf(parseQueueName(ORDERS)!).name;
export const CONTROL = queueName('rerun-control');

const MINUTE = 60_000;
/** How long `copiesSettled` waits for the copies to be answered, once they have fallen due. */
const SETTLE_MS = 30_000;

/**
 * How a process is set up: copies arm after `armingMs`; by batch or not; parking on; a control queue;
 * RunTask calls a second.
 */
export interface ProcessSetup {
  readonly armingMs: number;
  readonly batch?: boolean;
  readonly park?: boolean;
  readonly control: boolean;
  readonly maxRate?: number;
}

export class CrashWorld {
  readonly #processes: RerunProcess[] = [];
  /** The queues an original or its copies may be in. */
  #homes: readonly string[] = [ORDERS];

  private constructor(
    readonly emulator: Emulator,
    readonly target: Target,
  ) {}

  /** A fresh emulator, and a target that answers 200. */
  static async start(options: Omit<EmulatorOptions, 'port'> = {}): Promise<CrashWorld> {
    const emulator = await startEmulator({ ...options, port: 0 });
    return new CrashWorld(emulator, await startTarget({ respond: () => 200 }));
  }

  /** `count` failed tasks in ORDERS (500 dispatches a second), and the control queue; their names. */
  loadFailed(count: number): string[] {
    const tasks = Array.from({ length: count }, (_, i) => failedTask(ORDERS, `t${i}`, this.target.url));
    this.emulator.load({
      queues: [{ name: ORDERS, rateLimits: { maxDispatchesPerSecond: 500 }, tasks }, controlQueue(CONTROL)],
    });
    this.#homes = [ORDERS];
    return tasks.map((t) => t.name);
  }

  /**
   * `count` tasks in ORDERS whose next attempt, in ten minutes, is their last; ORDERS's parking queue
   * (paused) and the control queue; their names.
   */
  loadLastAttempts(count: number): string[] {
    const tasks = Array.from({ length: count }, (_, i) =>
      failedTask(ORDERS, `t${i}`, this.target.url, { attempts: 4, nextMs: 10 * MINUTE }),
    );
    this.emulator.load({
      queues: [
        {
          name: ORDERS,
          retryConfig: { maxAttempts: 5, minBackoff: '60s', maxBackoff: '600s', maxDoublings: 3 },
          tasks,
        },
        { name: PARKING, state: 'PAUSED', tasks: [] },
        controlQueue(CONTROL),
      ],
    });
    this.#homes = [ORDERS, PARKING];
    return tasks.map((t) => t.name);
  }

  /** rerunHttp on `port`; with a control queue, it delivers recovery tasks to this address. */
  async rerunProcess(port: number, setup: ProcessSetup): Promise<RerunProcess> {
    const child = await startRerunProcess(port, {
      RERUN_QUEUES: ORDERS,
      ...(setup.control && {
        RERUN_CONTROL_QUEUE: CONTROL,
        RERUN_SELF_URL: `http://127.0.0.1:${port}/`,
        RERUN_INVOKER_SA: `rerun-invoker@${PROJECT}.iam.gserviceaccount.com`,
      }),
      CLOUD_TASKS_EMULATOR_HOST: this.emulator.host,
      TEST_ARMING_MS: String(setup.armingMs),
      ...(setup.batch !== undefined && { RERUN_REDRIVE_BATCH: String(setup.batch) }),
      ...(setup.park && { RERUN_PARK: 'true' }),
      ...(setup.maxRate !== undefined && { RERUN_MAX_RATE: String(setup.maxRate) }),
      ...(process.env.TEST_LOG && { TEST_LOG: '1' }),
    });
    this.#processes.push(child);
    return child;
  }

  /**
   * Sends `event` to `child` and kills the process with SIGKILL once it has sent `creates` creates to
   * ORDERS (batch creates when `batch`); resolves once its request has ended, answered or cut off.
   */
  async killAfterCreates(child: RerunProcess, event: object, creates: number, batch: boolean): Promise<void> {
    const delivery = postJson(child.url, event).catch(() => undefined);
    const method = batch ? 'BatchCreateTasks' : 'CreateTask';
    const sent = () => this.emulator.calls.filter((c) => c.method === method && c.name === ORDERS).length;
    await expect.poll(sent, { timeout: 20_000, interval: 5 }).toBeGreaterThanOrEqual(creates);
    await child.kill();
    await delivery;
  }

  /**
   * The crash scenario of a redrive with a control queue: `count` failed tasks redriven by a process killed
   * once it has sent `killAfterCreates` creates, a new process on its port, and the request again once the
   * copies made before the crash have fallen due, as a redelivery would (without the recovery tasks, those
   * whose original was not deleted ran twice by then). Resolves with the second delivery's status and,
   * once its own copies have fallen due, where each task is.
   */
  async redriveKilledThenAgain(scenario: {
    readonly batch: boolean;
    readonly count: number;
    readonly killAfterCreates: number;
    readonly armingMs: number;
  }): Promise<{ status: number; places: { twice: number; never: number } }> {
    const { batch, count, killAfterCreates, armingMs } = scenario;
    const originals = this.loadFailed(count);
    const port = await freePort();
    const setup = { armingMs, batch, control: true };
    const event = {
      kind: 'fix-deployed',
      mode: 'redrive',
      verify: '0s',
      requestId: `crash-${count}`,
      deployedAt: new Date(Date.now() - 1_000).toISOString(),
    };
    await this.killAfterCreates(await this.rerunProcess(port, setup), event, killAfterCreates, batch);
    const second = await this.rerunProcess(port, setup);
    await this.copiesSettled(armingMs);
    const { status } = await postJson(second.url, event);
    await this.copiesSettled(armingMs);
    return { status, places: await this.places(originals) };
  }

  /** Kills every process started, then stops the emulator and the target. */
  async stop(): Promise<void> {
    for (const child of this.#processes.splice(0)) await child.kill();
    await this.emulator.stop();
    await this.target.stop();
  }

  /** A queue's tasks as the REST API lists them, in the FULL view. */
  listed(queue: string): Promise<Record<string, any>[]> {
    return listTasksFull(this.emulator.url, queue);
  }

  /**
   * Per task, how often it has run or will run: the target's requests for it (the original's or a copy's),
   * and the tasks listed in ORDERS (and its parking queue, when loaded) that are it or its copies.
   */
  async places(originals: readonly string[]): Promise<{ twice: number; never: number }> {
    const ran = this.target.requests.map((request) => `${ORDERS}/tasks/${request.path.split('/').pop()}`);
    const listed = await Promise.all(this.#homes.map((queue) => this.listed(queue)));
    return placesOf(originals, ran, listed.flat());
  }

  /**
   * Waits until every copy made so far in ORDERS has fallen due and been answered. Hundreds of copies are
   * dispatched and answered by processes sharing two cores with the rest of the suite: on a loaded machine
   * that has taken over 10 s, so the wait allows SETTLE_MS (the tests' timeouts leave room for it).
   */
  async copiesSettled(armingMs: number): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, armingMs + 1_000));
    const copiesLeft = async () =>
      (await this.listed(ORDERS)).filter((t) => t.httpRequest?.headers?.['X-Rerun-Original-Task']).length;
    await expect.poll(copiesLeft, { timeout: SETTLE_MS, interval: 200 }).toBe(0);
    await this.emulator.settled();
  }

  /** Recovery tasks of moves still waiting in the control queue. */
  async recoveriesLeft(): Promise<number> {
    return (await this.listed(CONTROL)).filter((t) =>
      Buffer.from(t.httpRequest?.body ?? '', 'base64')
        .toString('utf8')
        .includes('"finish-move"'),
    ).length;
  }
}
