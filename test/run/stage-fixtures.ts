/**
 * What the stage tests of shared/run share: requests parsed from event JSON as a delivery would parse them,
 * a configuration from an environment, an in-process emulator with a real target, and a run's process
 * parts (pacer, bounds, claim registry).
 */
import { startEmulator, type Emulator } from '../../emulator/server.js';
import { createCloudTasksClient, type CloudTasksClient } from '../../shared/cloud-tasks/client.js';
import { parseQueueName, parseTaskName, type TaskName } from '../../shared/cloud-tasks/names.js';
import { loadConfig, type Config } from '../../shared/platform/config.js';
import { createLogger, type Logger } from '../../shared/platform/log.js';
import type { Task } from '../../shared/cloud-tasks/client.js';
import { ClaimRegistry } from '../../shared/run/claim.js';
import { Pacer, QueueAttempts, Semaphore } from '../../shared/run/pace.js';
import { MAX_BODY_BYTES_HELD } from '../../shared/run/redrive-calls.js';
import type { Candidate, QueueRun } from '../../shared/run/plan.js';
import { QueueState } from '../../shared/run/queue-state.js';
import type { RetryLimits } from '../../shared/run/select.js';
import type { RerunDeps } from '../../shared/run/run.js';
import { httpDelivery, parseRerunEvent, type RerunRequest } from '../../shared/triggers/events.js';
import { logSink } from '../helpers/log-sink.js';
import { queueName } from '../helpers/seeds.js';
import { startTarget, type Target } from '../helpers/target-server.js';

export { queueName };
export const ORDERS = queueName('orders');
export const ORDERS_QUEUE = parseQueueName(ORDERS)!;

/** The request an HTTP delivery of `event` (a fix-deployed on ORDERS unless it says otherwise) makes now. */
export function requestOf(event: Record<string, unknown> = {}): RerunRequest {
  const json = { kind: 'fix-deployed', queues: [ORDERS], ...event };
  const parsed = parseRerunEvent(json, httpDelivery(json, Date.now()));
  if (!parsed.success) throw parsed.error;
  return parsed.data;
}

export function configOf(env: Record<string, string> = {}): Config {
  return loadConfig({ RERUN_QUEUES: ORDERS, RERUN_MAX_RATE: '50', ...env });
}

/** A logger whose lines the test reads. */
export function capturedLog(): { log: Logger; lines: () => Record<string, unknown>[] } {
  const sink = logSink();
  return { log: createLogger('debug', sink.stream), lines: sink.lines };
}

export const silentLog = (): Logger => createLogger('silent');

export function taskName(id: string, queue = ORDERS): TaskName {
  return parseTaskName(`${queue}/tasks/${id}`)!;
}

/** An emulator, a target its tasks are dispatched to, and a client talking to the emulator. */
export interface World {
  readonly emulator: Emulator;
  readonly target: Target;
  readonly tasks: CloudTasksClient;
  stop(): Promise<void>;
}

export async function startWorld(): Promise<World> {
  const emulator = await startEmulator({ port: 0 });
  const target = await startTarget();
  const tasks = createCloudTasksClient({ emulatorHost: emulator.host });
  return {
    emulator,
    target,
    tasks,
    async stop() {
      await emulator.stop();
      await target.stop();
    },
  };
}

/** The calls of one method the emulator answered. */
export function callsOf(emulator: Emulator, method: string): string[] {
  return emulator.calls.filter((c) => c.method === method).map((c) => c.name);
}

/** A run's process parts, as the runtime builds them. */
export function runDepsOf(world: World, config: Config, log: Logger = silentLog()): RerunDeps {
  return {
    config,
    tasks: world.tasks,
    pacer: new Pacer(config.maxRatePerSecond),
    inFlight: new Semaphore(config.concurrency),
    queueAttempts: new QueueAttempts(),
    claims: new ClaimRegistry(),
    bodies: new Semaphore(MAX_BODY_BYTES_HELD),
    log,
  };
}

/**
 * A queue of a run as the plan would open it, for stages that only read it (no call is made: its state
 * is never older than the recheck interval at time 0).
 */
export function queueRunOf(
  options: { retry?: RetryLimits; pacers?: Pacer[]; copyPacers?: Pacer[]; queue?: string } = {},
): QueueRun {
  const queue = parseQueueName(options.queue ?? ORDERS)!;
  const noCalls = { getQueue: () => Promise.reject(new Error('no call expected')) };
  return {
    queue,
    listed: queue,
    overridesUrl: false,
    report: { queue: queue.name, scanned: 0, matched: 0, complete: false },
    pacers: options.pacers ?? [new Pacer(1)],
    copyPacers: options.copyPacers ?? [],
    retry: {
      maxAttempts: 100,
      maxRetryDurationMs: 0,
      minBackoffMs: 100,
      maxBackoffMs: 3_600_000,
      maxDoublings: 16,
      ...options.retry,
    },
    skipReason: undefined,
    dueSoonApplies: true,
    attemptsRunning: new Semaphore(10),
    state: new QueueState(
      { tasks: noCalls, now: () => 0 },
      queue,
      { force: false, bypassesDispatchLimit: true },
      { name: queue.name, state: 'RUNNING' },
    ),
  };
}

/** A candidate of `queue`: a listed task with `dispatchCount` attempts, next due at `scheduleTime`. */
export function candidateOf(id: string, queue: QueueRun, listed: Partial<Task> = {}): Candidate {
  const name = taskName(id, queue.queue.name);
  return { name, listed: { name: name.name, dispatchCount: 1, ...listed }, queue };
}
