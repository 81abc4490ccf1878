import { sha256Hex } from '../platform/hash.js';
import { z } from 'zod';
import { CANONICAL_CODES } from '../cloud-tasks/codes.js';
import { DurationMs } from '../platform/duration.js';
import { isTaskId, parseQueueName, parseTaskName } from '../cloud-tasks/names.js';

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

/** The match: every given field must hold. Globs only, never user regexes. */
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

/** How long canaries are given to succeed when the event does not say. */
export const DEFAULT_CANARY_WAIT_MS = 20_000;

const Canary = z.union([
  z.strictObject({
    count: z.number().int().min(1).max(100),
    wait: DurationMs.default(DEFAULT_CANARY_WAIT_MS),
  }),
  z.literal(false),
]);

const Breaker = z.union([
  z.strictObject({
    maxFailedAgain: z.number().min(0).max(1).default(0.5),
    minVerdicts: z.number().int().min(1).default(5),
  }),
  z.literal(false),
]);

/** A request's identity (docs/events.md "Cutoff"): what every delivery of one request shares. */
export const RequestId = z.string().regex(/^[A-Za-z0-9_.:-]{1,128}$/, '1-128 of letters, digits, _ . : -');

/** A failure cluster's id, as a plan prints it (docs/selection.md "Failure clusters"). */
const ClusterId = z.string().regex(/^[0-9a-f]{8}$/, 'a cluster id: 8 hex digits, as a plan prints it');

/** Options every event kind takes. */
const Common = {
  clusters: z.array(ClusterId).min(1).max(100).optional(),
  reason: z.string().max(1000).optional(),
  requestId: RequestId.optional(),
  mode: z.enum(['run', 'redrive']).default('run'),
  dryRun: z.boolean().default(false),
  maxTasks: z.number().int().min(1).optional(),
  force: z.boolean().default(false),
  lastAttempts: z.boolean().default(false),
  canary: Canary.optional(),
  verify: DurationMs.optional(),
  breaker: Breaker.optional(),
  minBackoffLeft: DurationMs.optional(),
  maxRate: z.number().positive().optional(),
  redrive: z.strictObject({ batch: z.boolean().optional() }).optional(),
  park: z.boolean().optional(),
};

const Queues = z.array(QueueNameText).min(1).max(100);

export const FixDeployedEvent = z.strictObject({
  kind: z.literal('fix-deployed'),
  queues: Queues.optional(),
  deployedAt: Time.optional(),
  match: Match.optional(),
  service: z.string().max(200).optional(),
  revision: z.string().max(200).optional(),
  /** Also bring the queues' matching parked tasks home (docs/parking.md "Unparking"); default RERUN_PARK. */
  includeParked: z.boolean().optional(),
  ...Common,
});

export const FailureAlertEvent = z.strictObject({
  kind: z.literal('failure-alert'),
  queues: Queues.optional(),
  since: Time.optional(),
  until: Time.optional(),
  match: Match.optional(),
  /** Also bring the queues' matching parked tasks home; default RERUN_PARK once the alert has ended (`until`). */
  includeParked: z.boolean().optional(),
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

/** Parked tasks of the home queues brought home (docs/parking.md "Unparking"): always as redrive copies. */
export const UnparkEvent = z.strictObject({
  kind: z.literal('unpark'),
  queues: Queues.optional(),
  match: Match.optional(),
  /** Also tasks parked while their last attempt may have run: the operator says they were not done. */
  possiblyDone: z.boolean().default(false),
  ...Common,
  mode: z.literal('redrive', 'an unpark always copies the task home (mode redrive)').default('redrive'),
});

/** One event, of any of the five kinds. */
export const RerunEvent = z.discriminatedUnion('kind', [
  FixDeployedEvent,
  FailureAlertEvent,
  SweepEvent,
  TasksEvent,
  UnparkEvent,
]);
export type RerunEvent = z.input<typeof RerunEvent>;

export type EventKind = z.infer<typeof RerunEvent>['kind'];

/** Every event kind, as the schema has them. */
export const EVENT_KINDS: readonly EventKind[] = RerunEvent.options.map((event) => event.shape.kind.value);

/** Minimum time left before a task's next attempt for it to be forced ("due soon"). */
export const DEFAULT_MIN_BACKOFF_LEFT_MS = 30_000;
export const SWEEP_MIN_BACKOFF_LEFT_MS = 5 * 60_000;
/** How long dispatched tasks are read back for their verdict by default (`verify`). */
export const DEFAULT_VERIFY_MS = 30_000;
/** The breaker's defaults. */
export const DEFAULT_BREAKER = { maxFailedAgain: 0.5, minVerdicts: 5 } as const;
/** The canary of triggers that carry no evidence that the cause is gone (sweeps, closed incidents). */
export const EVIDENCE_CANARY = { count: 2, waitMs: DEFAULT_CANARY_WAIT_MS } as const;

/** How a run forces a task: RunTask, or copy and delete. */
export type RerunMode = 'run' | 'redrive';

/** Where a request's cutoff came from (docs/events.md "Cutoff"). */
export type CutoffSource = 'event' | 'publish-time' | 'first-delivery';

/** One delivery of a request, as the adapter saw it. */
export interface Delivery {
  /** When this delivery arrived, epoch ms: no cutoff is ever later. */
  readonly receivedMs: number;
  /** The request's identity when the event names none: the Pub/Sub messageId, or a hash of the HTTP body. */
  readonly requestId: string;
  /**
   * A Pub/Sub message's publishTime, the same on every delivery: the cutoff when the event gives none, and
   * the latest cutoff it may have. Absent (HTTP): the time received stands for both.
   */
  readonly defaultCutoffMs?: number | undefined;
}

/** The one normalized request every trigger is decoded into. */
export interface RerunRequest {
  readonly kind: EventKind;
  readonly requestId: string;
  readonly reason: string | undefined;
  readonly mode: RerunMode;
  /** Queue names to scan; undefined means every allowlisted queue. */
  readonly queues: readonly string[] | undefined;
  /** Explicit task names (kind `tasks`): read one by one instead of listing. */
  readonly tasks: readonly string[] | undefined;
  /** The instant a task's last attempt must precede (docs/events.md "Cutoff"), epoch ms. */
  readonly cutoffMs: number;
  readonly cutoffSource: CutoffSource;
  /** The event's cutoff was later than its delivery, and was brought back to it. */
  readonly cutoffClamped: boolean;
  /**
   * The cutoff is the time this delivery was received (no cutoff given, or a later one clamped to it), so
   * another delivery would get another: every delivery takes the first one's (docs/events.md "Cutoff").
   */
  readonly cutoffFromDelivery: boolean;
  readonly match: Match;
  /** Only tasks in these failure clusters, by id; undefined: any. */
  readonly clusters: readonly string[] | undefined;
  readonly dryRun: boolean;
  readonly maxTasks: number | undefined;
  readonly force: boolean;
  /** Also force tasks on their last allowed attempt. */
  readonly lastAttempts: boolean;
  readonly canary: { readonly count: number; readonly waitMs: number } | undefined;
  /** How long dispatched tasks are read back for their verdict; 0 = not at all. */
  readonly verifyMs: number;
  readonly breaker: { readonly maxFailedAgain: number; readonly minVerdicts: number } | undefined;
  readonly minBackoffLeftMs: number;
  readonly maxRatePerSecond: number | undefined;
  /** `"redrive": {"batch": false}`: redrive one call per task (docs/redrive.md "Batch calls"). */
  readonly redriveBatch: boolean | undefined;
  /** Park the tasks at risk of being dropped (docs/parking.md); undefined: a sweep parks when RERUN_PARK is set. */
  readonly park: boolean | undefined;
  /** An unpark also brings home tasks parked while possibly done (docs/parking.md "The move"). */
  readonly possiblyDone: boolean;
  /**
   * After the run, the queues' matching parked tasks are brought home by an unpark of the same request;
   * undefined: when the deployment parks (RERUN_PARK). False for the kinds that never do.
   */
  readonly includeParked: boolean | undefined;
  /** Free-form context logged with the run (service, revision, incident, build). */
  readonly context: Readonly<Record<string, string>>;
}

/**
 * The default requestId of an HTTP event: a hash of its canonical JSON (keys sorted), so a pipeline that
 * resends the same body sends the same request.
 */
export function requestIdOfBody(json: unknown): string {
  return `body-${sha256Hex(canonicalJson(json)).slice(0, 40)}`;
}

/** The delivery of an HTTP event: received now, identified by its body unless it names a requestId. */
export function httpDelivery(json: unknown, receivedMs: number): Delivery {
  return { receivedMs, requestId: requestIdOfBody(json) };
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${canonicalJson(item)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/**
 * The most fields an input error names, and the longest echo of a name the payload chose (an unknown key, a
 * record's key): a line must stay within Cloud Logging's 256 KB entry.
 */
export const MAX_NAMED = 20;
export const MAX_ECHOED = 64;

/** `text` cut to `max` characters, the cut shown by an ellipsis. */
export function clipped(text: string, max = MAX_ECHOED): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/** One problem per field: an unknown field by its own path, not its parent's; keys clipped. */
function problemsOf(error: z.ZodError): { path: string; message: string }[] {
  const pathOf = (keys: readonly PropertyKey[]) =>
    keys.reduce<string>((path, key) => {
      if (typeof key === 'number') return `${path}[${key}]`;
      const name = clipped(String(key));
      return path ? `${path}.${name}` : name;
    }, '');
  return error.issues.flatMap((issue) =>
    issue.code === 'unrecognized_keys'
      ? issue.keys.map((key) => ({ path: pathOf([...issue.path, key]), message: 'unknown field' }))
      : [{ path: pathOf(issue.path), message: issue.message }],
  );
}

/** Every field path named by zod's issues, as `match.taskIds[0]`: at most MAX_NAMED. */
export function issuePaths(error: z.ZodError): string[] {
  return [...new Set(problemsOf(error).map((problem) => problem.path))].slice(0, MAX_NAMED);
}

/**
 * Turns a zod failure into an InputError naming each field and what it expects, never echoing the payload:
 * zod's own messages name types and limits, not values, and an unknown key is named by its clipped path.
 */
export function inputErrorOf(error: z.ZodError, what = 'event'): InputError {
  const problems = problemsOf(error);
  const lines = problems
    .slice(0, MAX_NAMED)
    .map(({ path, message }) => `✖ ${message}${path ? `\n  → at ${path}` : ''}`);
  if (problems.length > MAX_NAMED) lines.push(`✖ and ${problems.length - MAX_NAMED} more`);
  return new InputError(`invalid ${what}: ${lines.join('\n')}`, issuePaths(error));
}

/**
 * Validates one event and normalizes it for one delivery. Expected failures are values, like zod's
 * safeParse.
 */
export function parseRerunEvent(
  json: unknown,
  delivery: Delivery | ((event: unknown) => Delivery),
): { success: true; data: RerunRequest } | { success: false; error: InputError } {
  const parsed = RerunEvent.safeParse(json);
  if (!parsed.success) return { success: false, error: inputErrorOf(parsed.error) };
  // Only a valid event is hashed into a requestId: its depth is the schema's, not the caller's.
  const of = typeof delivery === 'function' ? delivery(json) : delivery;
  return { success: true, data: toRerunRequest(parsed.data, of) };
}

type ParsedEvent = z.infer<typeof RerunEvent>;

/** The event's own cutoff: deployedAt, until or cutoff. */
function explicitCutoffOf(event: ParsedEvent): number | undefined {
  switch (event.kind) {
    case 'fix-deployed':
      return event.deployedAt;
    case 'failure-alert':
      return event.until;
    case 'sweep':
    case 'unpark':
      return undefined;
    case 'tasks':
      return event.cutoff;
  }
}

/**
 * The cutoff (docs/events.md "Cutoff"): explicit wherever the event allows, never later than the request
 * was made. A message's clamp is its publishTime, which every delivery carries, so a redelivery to another
 * instance reaches the same cutoff; an HTTP event's is the time received (shared through the control queue).
 */
function cutoffOf(
  event: ParsedEvent,
  delivery: Delivery,
): Pick<RerunRequest, 'cutoffMs' | 'cutoffSource' | 'cutoffClamped' | 'cutoffFromDelivery'> {
  const explicit = explicitCutoffOf(event);
  // A publishTime ahead of this instance's clock (a forged envelope, a clock far behind) is not trusted.
  const latest = Math.min(delivery.defaultCutoffMs ?? delivery.receivedMs, delivery.receivedMs);
  const [wanted, source]: [number, CutoffSource] =
    explicit !== undefined
      ? [explicit, 'event']
      : delivery.defaultCutoffMs !== undefined
        ? [delivery.defaultCutoffMs, 'publish-time']
        : [delivery.receivedMs, 'first-delivery'];
  const cutoffMs = Math.min(wanted, latest);
  return {
    cutoffMs,
    cutoffSource: source,
    cutoffClamped: wanted > latest,
    cutoffFromDelivery: cutoffMs === delivery.receivedMs && latest === delivery.receivedMs,
  };
}

function toRerunRequest(event: ParsedEvent, delivery: Delivery): RerunRequest {
  const canary =
    event.canary === undefined
      ? event.kind === 'sweep'
        ? EVIDENCE_CANARY
        : undefined
      : event.canary && { count: event.canary.count, waitMs: event.canary.wait };
  const base = {
    kind: event.kind,
    requestId: event.requestId ?? delivery.requestId,
    reason: event.reason,
    mode: event.mode,
    dryRun: event.dryRun,
    clusters: event.clusters,
    maxTasks: event.maxTasks,
    force: event.force,
    lastAttempts: event.lastAttempts,
    canary: canary || undefined,
    verifyMs: event.verify ?? DEFAULT_VERIFY_MS,
    breaker: event.breaker === undefined ? DEFAULT_BREAKER : event.breaker || undefined,
    maxRatePerSecond: event.maxRate,
    redriveBatch: event.redrive?.batch,
    park: event.park,
    possiblyDone: event.kind === 'unpark' && event.possiblyDone,
    includeParked: includeParkedOf(event),
    minBackoffLeftMs:
      event.minBackoffLeft ??
      (event.kind === 'sweep' ? SWEEP_MIN_BACKOFF_LEFT_MS : DEFAULT_MIN_BACKOFF_LEFT_MS),
    ...cutoffOf(event, delivery),
  };
  switch (event.kind) {
    case 'fix-deployed':
      return {
        ...base,
        queues: event.queues,
        tasks: undefined,
        match: event.match ?? {},
        context: compact({ service: event.service, revision: event.revision }),
      };
    case 'failure-alert': {
      const match = { ...event.match };
      if (event.since !== undefined) match.failedSince ??= event.since;
      if (event.until !== undefined) match.failedUntil ??= event.until;
      return { ...base, queues: event.queues, tasks: undefined, match, context: {} };
    }
    case 'sweep':
      return { ...base, queues: event.queues, tasks: undefined, match: event.match ?? {}, context: {} };
    case 'tasks':
      return { ...base, queues: undefined, tasks: event.tasks, match: {}, context: {} };
    case 'unpark':
      return { ...base, queues: event.queues, tasks: undefined, match: event.match ?? {}, context: {} };
  }
}

/** A fix is out (fix-deployed), or an alert has ended (a closed incident): parked tasks may come home. */
function includeParkedOf(event: ParsedEvent): boolean | undefined {
  if (event.kind === 'fix-deployed') return event.includeParked;
  if (event.kind === 'failure-alert')
    return event.includeParked ?? (event.until === undefined ? false : undefined);
  return false;
}

function compact(record: Record<string, string | undefined>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(record).filter((entry): entry is [string, string] => entry[1] !== undefined),
  );
}
