/**
 * One instance's wiring: configuration, the Cloud Tasks client, the process-wide pacer and bound, the
 * root logger; and the one entry into the core that every trigger calls.
 */
import { randomUUID } from 'node:crypto';
import type { DestinationStream } from 'pino';
import { ClaimRegistry } from '../run/claim.js';
import { createCloudTasksClient, type CloudTasksClient } from '../cloud-tasks/client.js';
import { loadConfig, type ConfigOptions } from './config.js';
import {
  createNotifier,
  notifyRunEnd,
  NOTIFY_BUDGET_MS,
  type Notifier,
  type NotifierOptions,
} from '../notify/publish.js';
import { MAX_NAMED, type RerunRequest } from '../triggers/events.js';
import type { QueueName } from '../cloud-tasks/names.js';
import { FirstDeliveries, firstCutoffOf } from './first-deliveries.js';
import { createLogger, operationLast, traceFields, type HeaderLookup } from './log.js';
import { Pacer, QueueAttempts, Semaphore } from '../run/pace.js';
import { MAX_BODY_BYTES_HELD } from '../run/redrive-calls.js';
import type { RerunReport } from '../run/settle.js';
import { RedriveCheckError, RedriveForbiddenError } from '../run/redrive-permissions.js';
import { CloudTasksUnavailableError, runRerun, type ProcessParts } from '../run/run.js';
import { resolveScope } from '../triggers/scope.js';

export interface Runtime extends ProcessParts {
  /** The cutoffs of HTTP requests that carry none, by requestId, for an hour. */
  readonly firstDeliveries: FirstDeliveries;
  /** Publishes the end of runs to RERUN_NOTIFY_TOPIC (a no-op without it). */
  readonly notifier: Notifier;
  /** The project that qualifies trace IDs in logs: the first project named in the allowlist. */
  readonly traceProject: string | undefined;
  /** How far ahead a redrive copy is due; undefined = the default (10 s). */
  readonly redriveArmingDelayMs: number | undefined;
  /** Aborted to stop runs early (the command line's Ctrl-C): no new task starts, started ones finish. */
  readonly stop: AbortSignal | undefined;
}

export interface RuntimeOptions {
  /** Where log lines go (tests pass a sink); default stdout. */
  readonly logDestination?: DestinationStream;
  readonly tasks?: CloudTasksClient;
  /** How long a task whose RunTask lost its answer stays in doubt (tests shorten it). */
  readonly lostAnswerHoldMs?: number;
  /** The notifier's knobs (tests shorten its backoff). */
  readonly notify?: NotifierOptions;
  /** How far ahead a redrive copy is due (tests and benchmarks shorten it; default 10 s). */
  readonly redriveArmingDelayMs?: number;
  /** The command line's configuration rules (no service timeout; its own default budget). */
  readonly config?: ConfigOptions;
  /** See Runtime.stop. */
  readonly stop?: AbortSignal;
}

/** Builds an instance's runtime. Throws ConfigError when the environment is bad. */
export function createRuntime(env: NodeJS.ProcessEnv = process.env, options: RuntimeOptions = {}): Runtime {
  const config = loadConfig(env, options.config);
  const log = createLogger(config.logLevel, options.logDestination);
  return {
    config,
    tasks: options.tasks ?? createCloudTasksClient({ emulatorHost: config.emulatorHost }),
    pacer: new Pacer(config.maxRatePerSecond),
    inFlight: new Semaphore(config.concurrency),
    queueAttempts: new QueueAttempts(),
    claims: new ClaimRegistry(options.lostAnswerHoldMs),
    bodies: new Semaphore(MAX_BODY_BYTES_HELD),
    firstDeliveries: new FirstDeliveries(),
    log,
    notifier: createNotifier(config, log, options.notify),
    traceProject: config.allowlist.find((entry) => entry.project !== '*')?.project,
    redriveArmingDelayMs: options.redriveArmingDelayMs,
    stop: options.stop,
  };
}

/** Why a request was refused before anything was forced, copied or deleted (an HTTP caller gets 403). */
export type RefusalReason = 'QUEUE_NOT_ALLOWED' | 'REDRIVE_PERMISSION_DENIED';

/** The result of one request: the report, or its refusal. */
export type RerunResult =
  { ok: true; report: RerunReport } | { ok: false; runId: string; reason: RefusalReason; message: string };

/**
 * Runs one normalized request: allowlist first, then the run. Throws CloudTasksUnavailableError when
 * Cloud Tasks was unreachable before anything was dispatched.
 */
export async function rerun(
  runtime: Runtime,
  received: RerunRequest,
  header: HeaderLookup = () => undefined,
): Promise<RerunResult> {
  const runId = randomUUID();
  const logOf = (id: string) =>
    runtime.log.child({
      runId: id,
      ...(received.reason !== undefined && { reason: received.reason }),
      ...traceFields(header, runtime.traceProject),
    });
  const log = logOf(runId);
  const scope = resolveScope(received, runtime.config.allowlist, runtime.config.controlQueue);
  if (!scope.ok) {
    // Names the request chose: at most MAX_NAMED of them, so the line stays within Cloud Logging's entry.
    const more = scope.refused.length - MAX_NAMED;
    const refused = [...scope.refused.slice(0, MAX_NAMED), ...(more > 0 ? [`and ${more} more`] : [])];
    log.error({ refused }, 'request names queues outside the allowlist; nothing called');
    const message = `queues outside the allowlist (RERUN_QUEUES): ${refused.join(', ')}`;
    return { ok: false, runId, reason: 'QUEUE_NOT_ALLOWED', message };
  }
  // Every delivery of a request uses its first delivery's cutoff (docs/events.md "Cutoff"): that matters
  // where deliveries differ, a cutoff taken from the time received or clamped to it.
  const request = { ...received, cutoffMs: await firstCutoffOf(runtime, received) };
  const ownClaimId = controlTaskOf(header, runtime.config.controlQueue);
  // Its lease's name (docs/claims.md "One delivery at a time"); never logged.
  const ownClaimRetryCount = ownClaimId && header('x-cloudtasks-taskretrycount');
  const deps = { ...runtime, ownClaimId, ownClaimRetryCount };
  let report: RerunReport;
  try {
    report = await runRerun(request, scope.scope, deps, runId, logOf);
  } catch (error) {
    // An unexpected answer to the permission check: like Cloud Tasks unreachable, nothing was dispatched.
    if (error instanceof RedriveCheckError) {
      throw new CloudTasksUnavailableError(error.message, { cause: error });
    }
    if (!(error instanceof RedriveForbiddenError)) throw error;
    log.error({ ...operationLast(), lacking: error.lacking }, error.message);
    return { ok: false, runId, reason: 'REDRIVE_PERMISSION_DENIED', message: error.message };
  }
  await notifyRunEnd(runtime, report, header, Date.now() + NOTIFY_BUDGET_MS);
  return { ok: true, report };
}

/**
 * The control task's ID when the control queue delivers this request: Cloud Tasks' `X-CloudTasks-TaskName`
 * with the control queue's ID in `X-CloudTasks-QueueName`. A task from any other queue is any caller
 * (docs/configuration.md "RERUN_CONTROL_QUEUE").
 */
export function controlTaskOf(header: HeaderLookup, controlQueue: QueueName | undefined): string | undefined {
  const task = header('x-cloudtasks-taskname');
  return controlQueue && task && header('x-cloudtasks-queuename') === controlQueue.queue ? task : undefined;
}
