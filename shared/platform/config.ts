import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { DurationMs } from './duration.js';
import {
  isParkingQueue,
  isQueueAllowed,
  parseQueueName,
  parseQueuePattern,
  type QueueName,
  type QueuePattern,
} from '../cloud-tasks/names.js';
import { Routes } from '../triggers/routes.js';
import { isTopicName } from '../notify/topic-name.js';

/** A bad environment: fatal at start-up, with a message naming every offending variable. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

const QueueList = z
  .string()
  .trim()
  .min(1, 'must name at least one queue')
  .transform((text, ctx) => {
    const patterns: QueuePattern[] = [];
    for (const entry of text.split(',').map((part) => part.trim())) {
      const pattern = parseQueuePattern(entry);
      if (pattern) patterns.push(pattern);
      else ctx.addIssue({ code: 'custom', message: `"${entry}" is not projects/P/locations/L/queues/Q` });
    }
    return patterns;
  });

const OptionalQueue = z
  .string()
  .optional()
  .transform((text, ctx) => {
    if (text === undefined || text === '') return undefined;
    const queue = parseQueueName(text);
    if (!queue) ctx.addIssue({ code: 'custom', message: `"${text}" is not projects/P/locations/L/queues/Q` });
    return queue;
  });

const RoutesSource = z
  .string()
  .optional()
  .transform((text, ctx) => {
    if (text === undefined || text.trim() === '') return [];
    let json: unknown;
    try {
      json = JSON.parse(
        text.trim().startsWith('[') || text.trim().startsWith('{') ? text : readFileSync(text, 'utf8'),
      );
    } catch (error) {
      ctx.addIssue({
        code: 'custom',
        message: `neither JSON nor a readable JSON file: ${(error as Error).message}`,
      });
      return z.NEVER;
    }
    const routes = Routes.safeParse(json);
    if (!routes.success) {
      for (const issue of routes.error.issues) ctx.addIssue({ ...issue, code: 'custom', path: issue.path });
      return z.NEVER;
    }
    return routes.data;
  });

const OptionalTopic = z
  .string()
  .optional()
  .refine((text) => text === undefined || text === '' || isTopicName(text), {
    message: 'must be a full topic name projects/P/topics/T',
  })
  .transform((text) => (text === '' ? undefined : text));

const HostPort = z
  .string()
  .regex(/^[A-Za-z0-9.-]+:\d{1,5}$/, 'must be host:port')
  .optional();

/**
 * The environment the function reads, key for key (docs/configuration.md lists the same keys).
 * Nothing else in the product reads `process.env`.
 */
export const Env = z.object({
  RERUN_QUEUES: QueueList,
  RERUN_MAX_TASKS: z.coerce.number().int().min(1).max(100_000).default(1000),
  RERUN_CONCURRENCY: z.coerce.number().int().min(1).max(100).default(4),
  RERUN_MAX_RATE: z.coerce.number().positive().max(500).default(1),
  RERUN_TIME_BUDGET: DurationMs.optional(),
  RERUN_SERVICE_TIMEOUT: DurationMs.default(60_000),
  RERUN_ACK_DEADLINE: DurationMs.optional(),
  RERUN_REDRIVE_CONCURRENCY: z.coerce.number().int().min(1).max(500).default(32),
  RERUN_REDRIVE_BATCH: z
    .enum(['true', 'false'], 'true or false')
    .default('true')
    .transform((value) => value === 'true'),
  RERUN_PARK: z
    .enum(['true', 'false'], 'true or false')
    .default('false')
    .transform((value) => value === 'true'),
  RERUN_SWEEP_PERIOD: DurationMs.default(15 * 60_000),
  RERUN_ROUTES: RoutesSource,
  RERUN_CONTROL_QUEUE: OptionalQueue,
  RERUN_SELF_URL: z.url({ protocol: /^https?$/ }).optional(),
  RERUN_INVOKER_SA: z.email().optional(),
  RERUN_NOTIFY_TOPIC: OptionalTopic,
  PUBSUB_EMULATOR_HOST: HostPort,
  CLOUD_TASKS_EMULATOR_HOST: HostPort,
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

/** The validated configuration handed down from the entry points. */
export interface Config {
  readonly allowlist: readonly QueuePattern[];
  readonly maxTasks: number;
  readonly concurrency: number;
  readonly maxRatePerSecond: number;
  /** Every wait of a run ends here; Infinity: none (a command line on a terminal, docs/cli.md "Time budget"). */
  readonly timeBudgetMs: number;
  /** Calls in flight for redrive's (and read-backs', queued mode's) reads, creates and deletes. */
  readonly redriveConcurrency: number;
  /** Redrive creates and deletes by batch (docs/redrive.md "Batch calls"); false: one call per task. */
  readonly redriveBatch: boolean;
  /** Sweeps park the tasks at risk of being dropped (docs/parking.md). */
  readonly park: boolean;
  /** How often the sweep runs: parking protects what may be dropped before the next one. */
  readonly sweepPeriodMs: number;
  readonly routes: Routes;
  readonly controlQueue: QueueName | undefined;
  readonly selfUrl: string | undefined;
  readonly invokerServiceAccount: string | undefined;
  readonly emulatorHost: string | undefined;
  /** The topic a run's end is published to (`projects/P/topics/T`); unset = no notification. */
  readonly notifyTopic: string | undefined;
  /** `host:port` of a local Pub/Sub endpoint: plain HTTP and no credentials. */
  readonly pubsubEmulatorHost: string | undefined;
  readonly logLevel: z.infer<typeof Env>['LOG_LEVEL'];
}

/** What the run needs after its budget to answer: the summary, the answer, a slow last call. */
const BUDGET_MARGIN_MS = 10_000;

/** RERUN_TIME_BUDGET when unset: a serverless function's, inside the default service timeout. */
const DEFAULT_TIME_BUDGET_MS = 50_000;

/** Where the configuration is loaded: the deployed function (the default), or the command line. */
export interface ConfigOptions {
  /**
   * A command line has no service timeout or ack deadline for the budget to fit inside, and without
   * RERUN_TIME_BUDGET its budget is `defaultTimeBudgetMs` (Infinity on a terminal: none).
   */
  readonly commandLine?: { readonly defaultTimeBudgetMs?: number };
}

/** The names of every environment variable the product reads (deploy.sh and docs/configuration.md follow these). */
export const CONFIG_KEYS = Object.keys(Env.shape) as (keyof typeof Env.shape)[];

/**
 * Parses the environment once. Throws ConfigError naming every bad variable; queued mode needs
 * RERUN_SELF_URL and RERUN_INVOKER_SA beside RERUN_CONTROL_QUEUE.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, options: ConfigOptions = {}): Config {
  const parsed = Env.safeParse(env);
  if (!parsed.success) {
    throw new ConfigError(`invalid configuration:\n${z.prettifyError(parsed.error)}`);
  }
  const e = parsed.data;
  if (e.RERUN_CONTROL_QUEUE && !(e.RERUN_SELF_URL && e.RERUN_INVOKER_SA)) {
    throw new ConfigError(
      'invalid configuration:\n✖ RERUN_CONTROL_QUEUE needs RERUN_SELF_URL and RERUN_INVOKER_SA\n  → at RERUN_CONTROL_QUEUE',
    );
  }
  const control = e.RERUN_CONTROL_QUEUE;
  if (control && e.RERUN_QUEUES.some((entry) => entry.pattern === control.name)) {
    throw new ConfigError(
      `invalid configuration:\n✖ RERUN_QUEUES names the control queue ${control.name}: it is never a rerun target\n  → at RERUN_QUEUES`,
    );
  }
  const parking = e.RERUN_QUEUES.filter((entry) => entry.queue !== '*' && isParkingQueue(entry));
  if (parking.length > 0) {
    throw new ConfigError(
      `invalid configuration:\n✖ RERUN_QUEUES names the parking queue ${parking[0]!.pattern}: it is reached only through its home queue (docs/parking.md)\n  → at RERUN_QUEUES`,
    );
  }
  const timeBudgetMs =
    e.RERUN_TIME_BUDGET ?? options.commandLine?.defaultTimeBudgetMs ?? DEFAULT_TIME_BUDGET_MS;
  // A service's timeouts bound its budget; a command line has none.
  const limits = options.commandLine
    ? []
    : [
        { key: 'RERUN_SERVICE_TIMEOUT', ms: e.RERUN_SERVICE_TIMEOUT },
        ...(e.RERUN_ACK_DEADLINE === undefined
          ? []
          : [{ key: 'RERUN_ACK_DEADLINE', ms: e.RERUN_ACK_DEADLINE }]),
      ];
  const tooTight = limits.filter((limit) => timeBudgetMs + BUDGET_MARGIN_MS > limit.ms);
  if (tooTight.length > 0) {
    throw new ConfigError(
      `invalid configuration:\n${tooTight
        .map(
          (limit) =>
            `✖ RERUN_TIME_BUDGET (${timeBudgetMs / 1000}s) plus a ${BUDGET_MARGIN_MS / 1000}s margin must fit inside ${limit.key} (${limit.ms / 1000}s)\n  → at RERUN_TIME_BUDGET`,
        )
        .join('\n')}`,
    );
  }
  const outside = e.RERUN_ROUTES.flatMap((route, index) =>
    (route.queues ?? [])
      .filter((name) => !isQueueAllowed(parseQueueName(name)!, e.RERUN_QUEUES))
      .map((name) => `RERUN_ROUTES[${index}].queues: ${name} is outside RERUN_QUEUES`),
  );
  if (outside.length > 0) throw new ConfigError(`invalid configuration:\n✖ ${outside.join('\n✖ ')}`);
  return {
    allowlist: e.RERUN_QUEUES,
    maxTasks: e.RERUN_MAX_TASKS,
    concurrency: e.RERUN_CONCURRENCY,
    maxRatePerSecond: e.RERUN_MAX_RATE,
    timeBudgetMs,
    redriveConcurrency: e.RERUN_REDRIVE_CONCURRENCY,
    redriveBatch: e.RERUN_REDRIVE_BATCH,
    park: e.RERUN_PARK,
    sweepPeriodMs: e.RERUN_SWEEP_PERIOD,
    routes: e.RERUN_ROUTES,
    controlQueue: e.RERUN_CONTROL_QUEUE,
    selfUrl: e.RERUN_SELF_URL,
    invokerServiceAccount: e.RERUN_INVOKER_SA,
    emulatorHost: e.CLOUD_TASKS_EMULATOR_HOST,
    notifyTopic: e.RERUN_NOTIFY_TOPIC,
    pubsubEmulatorHost: e.PUBSUB_EMULATOR_HOST,
    logLevel: e.LOG_LEVEL,
  };
}
