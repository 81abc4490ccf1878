import { z } from 'zod';
import { DurationMs } from './duration.js';
import { isTaskId, parseQueueName, parseTaskName } from './names.js';

/** Bad input (an event, a message): holds zod's issues, never the raw payload. */
export class InputError extends Error {
  override readonly name = 'InputError';
  constructor(
    message: string,
    readonly fields: readonly string[] = [],
  ) {
    super(message);
  }
}

const Time = z.iso.datetime({ offset: true }).transform((text) => Date.parse(text));

const QueueNameText = z
  .string()
  .refine(
    (name) => parseQueueName(name) !== undefined,
    'not a valid queue name projects/P/locations/L/queues/Q',
  );

const TaskNameText = z
  .string()
  .refine(
    (name) => parseTaskName(name) !== undefined,
    'not a valid task name projects/P/locations/L/queues/Q/tasks/T',
  );

/** Canonical google.rpc.Code names, by number. https://github.com/googleapis/googleapis/blob/master/google/rpc/code.proto */
export const CANONICAL_CODES = [
  'OK',
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
  'UNAUTHENTICATED',
] as const;
export type CanonicalCode = (typeof CANONICAL_CODES)[number];

/** The match of SPEC 5.1: every given field must hold. Globs only, never user regexes. */
export const Match = z
  .strictObject({
    taskIds: z.array(z.string().refine(isTaskId, 'not a valid task ID')).min(1).max(1000).optional(),
    taskIdGlob: z
      .string()
      .regex(/^[A-Za-z0-9_*?-]{1,500}$/, 'only task ID characters, * and ?')
      .optional(),
    urlPrefix: z.string().min(1).max(2083).optional(),
    responseCodes: z
      .array(z.union([z.number().int().min(100).max(599), z.enum(CANONICAL_CODES)]))
      .min(1)
      .optional(),
    minAttempts: z.number().int().min(0).optional(),
    maxAttempts: z.number().int().min(0).optional(),
    failedSince: Time.optional(),
    failedUntil: Time.optional(),
    createdBefore: Time.optional(),
    createdAfter: Time.optional(),
  })
  .refine(
    (m) => m.minAttempts === undefined || m.maxAttempts === undefined || m.minAttempts <= m.maxAttempts,
    {
      message: 'minAttempts is above maxAttempts',
      path: ['minAttempts'],
    },
  );
export type Match = z.infer<typeof Match>;

const Canary = z.strictObject({
  count: z.number().int().min(1).max(100),
  wait: DurationMs.default(20_000),
});

/** Options every event kind takes. */
const Common = {
  reason: z.string().max(1000).optional(),
  dryRun: z.boolean().default(false),
  maxTasks: z.number().int().min(1).optional(),
  force: z.boolean().default(false),
  canary: Canary.optional(),
  minBackoffLeft: DurationMs.optional(),
  maxRate: z.number().positive().optional(),
  requestId: z
    .string()
    .regex(/^[A-Za-z0-9_.:-]{1,128}$/)
    .optional(),
  mode: z.enum(['run', 'redrive']).optional(),
  verify: DurationMs.optional(),
  lastAttempts: z.boolean().optional(),
  breaker: z
    .union([
      z.literal(false),
      z.strictObject({
        maxFailedAgain: z.number().min(0).max(1).optional(),
        minVerdicts: z.number().int().min(1).optional(),
      }),
    ])
    .optional(),
};

const Queues = z.array(QueueNameText).min(1).max(100);

export const FixDeployedEvent = z.strictObject({
  kind: z.literal('fix-deployed'),
  queues: Queues.optional(),
  deployedAt: Time.optional(),
  match: Match.optional(),
  service: z.string().max(200).optional(),
  revision: z.string().max(200).optional(),
  ...Common,
});

export const FailureAlertEvent = z.strictObject({
  kind: z.literal('failure-alert'),
  queues: Queues.optional(),
  since: Time.optional(),
  until: Time.optional(),
  match: Match.optional(),
  ...Common,
});

export const SweepEvent = z.strictObject({
  kind: z.literal('sweep'),
  queues: Queues.optional(),
  match: Match.optional(),
  ...Common,
});

export const TasksEvent = z.strictObject({
  kind: z.literal('tasks'),
  tasks: z.array(TaskNameText).min(1).max(1000),
  cutoff: Time.optional(),
  ...Common,
});

/** One event, of any of the four kinds of SPEC section 4. */
export const RerunEvent = z.discriminatedUnion('kind', [
  FixDeployedEvent,
  FailureAlertEvent,
  SweepEvent,
  TasksEvent,
]);
export type RerunEvent = z.input<typeof RerunEvent>;

export type EventKind = z.infer<typeof RerunEvent>['kind'];

/** Minimum time left before a task's next attempt for it to be forced (SPEC 5.2 "due soon"). */
export const DEFAULT_MIN_BACKOFF_LEFT_MS = 30_000;
export const SWEEP_MIN_BACKOFF_LEFT_MS = 5 * 60_000;

/** The one normalized request every trigger is decoded into. */
export interface RerunRequest {
  readonly kind: EventKind;
  readonly reason: string | undefined;
  /** Queue names to scan; undefined means every allowlisted queue. */
  readonly queues: readonly string[] | undefined;
  /** Explicit task names (kind `tasks`): read one by one instead of listing. */
  readonly tasks: readonly string[] | undefined;
  /** The instant a task's last attempt must precede (SPEC 5.2 cutoff), epoch ms. */
  readonly cutoffMs: number;
  readonly match: Match;
  readonly dryRun: boolean;
  readonly maxTasks: number | undefined;
  readonly force: boolean;
  readonly canary: { readonly count: number; readonly waitMs: number } | undefined;
  readonly minBackoffLeftMs: number;
  readonly maxRatePerSecond: number | undefined;
  /** Free-form context logged with the run (service, revision, incident, build). */
  readonly context: Readonly<Record<string, string>>;
}

/** Every field path named by zod's issues, as `match.taskIds[0]`. */
export function issuePaths(error: z.ZodError): string[] {
  const pathOf = (keys: readonly PropertyKey[]) =>
    keys.reduce<string>(
      (path, key) =>
        typeof key === 'number' ? `${path}[${key}]` : path ? `${path}.${String(key)}` : String(key),
      '',
    );
  return [
    ...new Set(
      error.issues.flatMap((issue) =>
        // An unknown field is named by its own path, not its parent's.
        issue.code === 'unrecognized_keys'
          ? issue.keys.map((key) => pathOf([...issue.path, key]))
          : [pathOf(issue.path)],
      ),
    ),
  ];
}

/** Turns a zod failure into an InputError naming the fields, never echoing the payload. */
export function inputErrorOf(error: z.ZodError, what = 'event'): InputError {
  return new InputError(`invalid ${what}: ${z.prettifyError(error)}`, issuePaths(error));
}

/**
 * Validates one event and normalizes it, with `nowMs` the time it was received.
 * Expected failures are values, like zod's safeParse.
 */
export function parseRerunEvent(
  json: unknown,
  nowMs: number,
): { success: true; data: RerunRequest } | { success: false; error: InputError } {
  const parsed = RerunEvent.safeParse(json);
  if (!parsed.success) return { success: false, error: inputErrorOf(parsed.error) };
  return { success: true, data: toRerunRequest(parsed.data, nowMs) };
}

function toRerunRequest(event: z.infer<typeof RerunEvent>, nowMs: number): RerunRequest {
  const base = {
    kind: event.kind,
    reason: event.reason,
    dryRun: event.dryRun,
    maxTasks: event.maxTasks,
    force: event.force,
    canary: event.canary && { count: event.canary.count, waitMs: event.canary.wait },
    maxRatePerSecond: event.maxRate,
  };
  const minBackoffLeftMs =
    event.minBackoffLeft ??
    (event.kind === 'sweep' ? SWEEP_MIN_BACKOFF_LEFT_MS : DEFAULT_MIN_BACKOFF_LEFT_MS);
  switch (event.kind) {
    case 'fix-deployed':
      return {
        ...base,
        queues: event.queues,
        tasks: undefined,
        cutoffMs: Math.min(event.deployedAt ?? nowMs, nowMs),
        match: event.match ?? {},
        minBackoffLeftMs,
        context: compact({ service: event.service, revision: event.revision }),
      };
    case 'failure-alert': {
      const match = { ...event.match };
      if (event.since !== undefined) match.failedSince ??= event.since;
      if (event.until !== undefined) match.failedUntil ??= event.until;
      return {
        ...base,
        queues: event.queues,
        tasks: undefined,
        cutoffMs: Math.min(event.until ?? nowMs, nowMs),
        match,
        minBackoffLeftMs,
        context: {},
      };
    }
    case 'sweep':
      return {
        ...base,
        queues: event.queues,
        tasks: undefined,
        cutoffMs: nowMs,
        match: event.match ?? {},
        minBackoffLeftMs,
        context: {},
      };
    case 'tasks':
      return {
        ...base,
        queues: undefined,
        tasks: event.tasks,
        cutoffMs: Math.min(event.cutoff ?? nowMs, nowMs),
        match: {},
        minBackoffLeftMs,
        context: {},
      };
  }
}

function compact(record: Record<string, string | undefined>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(record).filter((entry): entry is [string, string] => entry[1] !== undefined),
  );
}
