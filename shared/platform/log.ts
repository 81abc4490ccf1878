/**
 * pino in Cloud Logging's structured format: `severity`, `message`, RFC 3339 `time`, and the trace of
 * the request. https://cloud.google.com/logging/docs/structured-logging
 *
 * Hand-mapped rather than through @google-cloud/pino-logging-gcp-config: that package pulls in
 * @google-cloud/logging and took cold start here from 0.18 s to 0.46 s, for a mapping of a few lines.
 */
import { pino, type DestinationStream, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

const SEVERITY: Record<string, string> = {
  trace: 'DEBUG',
  debug: 'DEBUG',
  info: 'INFO',
  warn: 'WARNING',
  error: 'ERROR',
  fatal: 'CRITICAL',
};

/**
 * Fields never written, at the top of a line or of a run's bindings or one level down, whatever a
 * caller passes: task bodies, headers, credentials (defence in depth; the code never logs them in the
 * first place).
 *
 * Checked here rather than by pino's `redact`: its wildcard paths (`*.body`) clone and serialize each
 * field of every line apart, several KB of garbage per line, and a redrive writes one line per task
 * (docs/performance.md "Where the CPU goes"). This reads the keys and copies only a line that has one.
 */
const REDACTED = ['body', 'headers', 'authorization'];

function withoutRedacted(fields: Fields): Fields {
  let kept: Fields | undefined;
  for (const key in fields) {
    const value = fields[key];
    if (REDACTED.includes(key)) {
      kept ??= { ...fields };
      delete kept[key];
    } else if (hasRedacted(value)) {
      kept ??= { ...fields };
      kept[key] = Object.fromEntries(
        Object.entries(value as Fields).filter(([inner]) => !REDACTED.includes(inner)),
      );
    }
  }
  return kept ?? fields;
}

function hasRedacted(value: unknown): boolean {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  return REDACTED.some((key) => Object.hasOwn(value, key));
}

/** The producer named in the operation of every run's log lines. */
export const PRODUCER = 'cloud-tasks-rerun';

/** The Cloud Logging field that groups the lines of one operation (a run). */
export const OPERATION_KEY = 'logging.googleapis.com/operation';

/** Error Reporting picks up any line with this `@type`, with or without a stack trace. */
export const REPORTED_ERROR_EVENT =
  'type.googleapis.com/google.devtools.clouderrorreporting.v1beta1.ReportedErrorEvent';

const ERROR_LEVEL = 50;

type Fields = Record<string, unknown>;

/**
 * Fields every line gets from its logger: the run's operation when a `runId` is bound (runLogger), and
 * Error Reporting's `@type` and `stack_trace` on ERROR and above.
 */
function lineFields(mergeObject: object, level: number, logger: Logger): Fields {
  const fields: Fields = {};
  const operation = operationOf(logger);
  if (operation) fields[OPERATION_KEY] = operation;
  if (level >= ERROR_LEVEL) {
    fields['@type'] = REPORTED_ERROR_EVENT;
    const stack = ((mergeObject as Fields)['err'] as { stack?: unknown } | undefined)?.stack;
    if (typeof stack === 'string') fields['stack_trace'] = stack;
  }
  return fields;
}

// Parsing a logger's bindings costs more than writing the line: once per logger (setBindings is not used).
const operations = new WeakMap<Logger, Fields | null>();

function operationOf(logger: Logger): Fields | null {
  let operation = operations.get(logger);
  if (operation === undefined) {
    const runId: unknown = logger.bindings()['runId'];
    operation = typeof runId === 'string' ? { id: runId, producer: PRODUCER } : null;
    operations.set(logger, operation);
  }
  return operation;
}

/** A line's own `first`/`last` mark joins the operation its logger supplies; alone it is dropped. */
function mergeLineFields(mergeObject: object, fields: object): Fields {
  const mark = (mergeObject as Fields)[OPERATION_KEY] as Fields | undefined;
  const operation = (fields as Fields)[OPERATION_KEY] as Fields | undefined;
  const merged = Object.assign(fields, mergeObject) as Fields;
  if (operation) merged[OPERATION_KEY] = { ...operation, ...mark, id: operation['id'] };
  else delete merged[OPERATION_KEY];
  return merged;
}

/**
 * The logger of one run: every line carries `runId`, `fields` (reason, trace) and
 * `logging.googleapis.com/operation` `{id: runId, producer}`, so Cloud Logging groups the run.
 */
export function runLogger(root: Logger, runId: string, fields: Fields = {}): Logger {
  return root.child(withoutRedacted({ ...fields, runId }));
}

/** Fields of a run's first line (`rerun started`): marks the operation's start. */
export function operationFirst(): Fields {
  return { [OPERATION_KEY]: { first: true } };
}

/** Fields of a run's summary line (`rerun finished`): marks the operation's end. */
export function operationLast(): Fields {
  return { [OPERATION_KEY]: { last: true } };
}

/** The root logger: JSON lines, synchronously to stdout unless a destination is given (tests pass a sink). */
export function createLogger(level: LevelWithSilent, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      messageKey: 'message',
      base: null,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: {
        level: (label, number) => ({ severity: SEVERITY[label] ?? 'DEFAULT', level: number }),
        log: withoutRedacted,
      },
      mixin: lineFields,
      mixinMergeStrategy: mergeLineFields,
    },
    destination ?? pino.destination({ dest: 1, sync: true }),
  );
}

/** Header lookup that works for Node's IncomingHttpHeaders and for CloudEvent extensions. */
export type HeaderLookup = (name: string) => string | undefined;

/**
 * The Cloud Logging trace fields of a request, from W3C `traceparent` or `X-Cloud-Trace-Context`
 * (`TRACE_ID/SPAN_ID;o=1`); empty when there is neither or no project to qualify it with.
 */
export function traceFields(
  header: HeaderLookup,
  project: string | undefined,
): Record<string, string | boolean> {
  if (!project) return {};
  const traceparent = /^[\da-f]{2}-([\da-f]{32})-([\da-f]{16})-([\da-f]{2})$/.exec(
    header('traceparent') ?? '',
  );
  if (traceparent) {
    const [, traceId, spanId, flags] = traceparent as unknown as [string, string, string, string];
    return {
      'logging.googleapis.com/trace': `projects/${project}/traces/${traceId}`,
      'logging.googleapis.com/spanId': spanId,
      'logging.googleapis.com/trace_sampled': (parseInt(flags, 16) & 1) === 1,
    };
  }
  const cloud = /^([\da-f]{32})(?:\/(\d+))?(?:;o=([01]))?/i.exec(header('x-cloud-trace-context') ?? '');
  if (cloud) {
    const [, traceId, spanId, sampled] = cloud;
    return {
      'logging.googleapis.com/trace': `projects/${project}/traces/${traceId}`,
      ...(spanId && { 'logging.googleapis.com/spanId': BigInt(spanId).toString(16).padStart(16, '0') }),
      ...(sampled && { 'logging.googleapis.com/trace_sampled': sampled === '1' }),
    };
  }
  return {};
}
