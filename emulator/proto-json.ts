/**
 * Decodes request JSON the way Google's front end does for the Cloud Tasks v2 messages: camelCase or
 * snake_case field names, proto3 JSON values (Durations `"600s"`, RFC 3339 Timestamps, base64 bytes, enums
 * by name or number), and an INVALID_ARGUMENT naming the first unknown field or bad value.
 * https://protobuf.dev/programming-guides/json/
 */
import { parseDurationMs } from '../shared/platform/duration.js';
import { invalidPayload } from './errors.js';

type FieldType =
  | 'string'
  | 'int32'
  | 'int64'
  | 'double'
  | 'bytes'
  | 'duration'
  | 'timestamp'
  | 'any[]'
  | 'string[]'
  | 'map<string,string>'
  | { enum: string; values: readonly string[] }
  | { message: MessageType }
  | { repeated: MessageType };

interface FieldSpec {
  readonly json: string;
  readonly proto: string;
  readonly type: FieldType;
}

/** A protobuf message as the decoder needs it: its full name and its fields. */
export interface MessageType {
  readonly name: string;
  readonly fields: ReadonlyMap<string, FieldSpec>;
}

function message(name: string, fields: Record<string, FieldType>): MessageType {
  const map = new Map<string, FieldSpec>();
  for (const [json, type] of Object.entries(fields)) {
    const spec = { json, proto: json.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`), type };
    map.set(spec.json, spec);
    map.set(spec.proto, spec);
  }
  return { name, fields: map };
}

const PKG = 'google.cloud.tasks.v2';

/** `google.cloud.tasks.v2.HttpMethod` values, indexed by their number. */
export const HTTP_METHODS = [
  'HTTP_METHOD_UNSPECIFIED',
  'POST',
  'GET',
  'HEAD',
  'PUT',
  'DELETE',
  'PATCH',
  'OPTIONS',
];
/** `Queue.State` values, indexed by their number. */
export const QUEUE_STATES = ['STATE_UNSPECIFIED', 'RUNNING', 'PAUSED', 'DISABLED'];
/** `Task.View` values, indexed by their number. */
export const TASK_VIEWS = ['VIEW_UNSPECIFIED', 'BASIC', 'FULL'];
/** `UriOverride.Scheme` values, indexed by their number. */
export const URI_SCHEMES = ['SCHEME_UNSPECIFIED', 'HTTP', 'HTTPS'];
/** `UriOverride.UriOverrideEnforceMode` values, indexed by their number. */
export const URI_OVERRIDE_ENFORCE_MODES = [
  'URI_OVERRIDE_ENFORCE_MODE_UNSPECIFIED',
  'IF_NOT_EXISTS',
  'ALWAYS',
];

const HttpMethod = { enum: `${PKG}.HttpMethod`, values: HTTP_METHODS };
const View = { enum: `${PKG}.Task.View`, values: TASK_VIEWS };

const OAuthToken = message(`${PKG}.OAuthToken`, { serviceAccountEmail: 'string', scope: 'string' });
const OidcToken = message(`${PKG}.OidcToken`, { serviceAccountEmail: 'string', audience: 'string' });
const AppEngineRouting = message(`${PKG}.AppEngineRouting`, {
  service: 'string',
  version: 'string',
  instance: 'string',
  host: 'string',
});
const HttpRequest = message(`${PKG}.HttpRequest`, {
  url: 'string',
  httpMethod: HttpMethod,
  headers: 'map<string,string>',
  body: 'bytes',
  oauthToken: { message: OAuthToken },
  oidcToken: { message: OidcToken },
});
const AppEngineHttpRequest = message(`${PKG}.AppEngineHttpRequest`, {
  httpMethod: HttpMethod,
  appEngineRouting: { message: AppEngineRouting },
  relativeUri: 'string',
  headers: 'map<string,string>',
  body: 'bytes',
});
const Status = message('google.rpc.Status', { code: 'int32', message: 'string', details: 'any[]' });
const Attempt = message(`${PKG}.Attempt`, {
  scheduleTime: 'timestamp',
  dispatchTime: 'timestamp',
  responseTime: 'timestamp',
  responseStatus: { message: Status },
});

const TASK_FIELDS = {
  name: 'string',
  appEngineHttpRequest: { message: AppEngineHttpRequest },
  httpRequest: { message: HttpRequest },
  scheduleTime: 'timestamp',
  createTime: 'timestamp',
  dispatchDeadline: 'duration',
  dispatchCount: 'int32',
  responseCount: 'int32',
  firstAttempt: { message: Attempt },
  lastAttempt: { message: Attempt },
  view: View,
} satisfies Record<string, FieldType>;
/** `google.cloud.tasks.v2.Task`. */
export const Task = message(`${PKG}.Task`, TASK_FIELDS);

const RateLimits = message(`${PKG}.RateLimits`, {
  maxDispatchesPerSecond: 'double',
  maxBurstSize: 'int32',
  maxConcurrentDispatches: 'int32',
});
const RetryConfig = message(`${PKG}.RetryConfig`, {
  maxAttempts: 'int32',
  maxRetryDuration: 'duration',
  minBackoff: 'duration',
  maxBackoff: 'duration',
  maxDoublings: 'int32',
});
const StackdriverLoggingConfig = message(`${PKG}.StackdriverLoggingConfig`, { samplingRatio: 'double' });

// Queue-level overrides of HTTP tasks (v2 `Queue.http_target`). The v2 REST reference and discovery document
// define them; the v2 protos of @google-cloud/tasks 7.1.0 do not have them yet, so the field names and enums
// are those of the v2 reference, which match the v2beta3 target.proto message for message.
const PathOverride = message(`${PKG}.PathOverride`, { path: 'string' });
const QueryOverride = message(`${PKG}.QueryOverride`, { queryParams: 'string' });
const UriOverride = message(`${PKG}.UriOverride`, {
  scheme: { enum: `${PKG}.UriOverride.Scheme`, values: URI_SCHEMES },
  host: 'string',
  port: 'int64',
  pathOverride: { message: PathOverride },
  queryOverride: { message: QueryOverride },
  uriOverrideEnforceMode: {
    enum: `${PKG}.UriOverride.UriOverrideEnforceMode`,
    values: URI_OVERRIDE_ENFORCE_MODES,
  },
});
const Header = message(`${PKG}.HttpTarget.Header`, { key: 'string', value: 'string' });
const HeaderOverride = message(`${PKG}.HttpTarget.HeaderOverride`, { header: { message: Header } });
const HttpTarget = message(`${PKG}.HttpTarget`, {
  uriOverride: { message: UriOverride },
  httpMethod: HttpMethod,
  headerOverrides: { repeated: HeaderOverride },
  oauthToken: { message: OAuthToken },
  oidcToken: { message: OidcToken },
});

/** The fields v2's and v2beta3's Queue share, under the same names. */
const QUEUE_FIELDS = {
  name: 'string',
  httpTarget: { message: HttpTarget },
  rateLimits: { message: RateLimits },
  retryConfig: { message: RetryConfig },
  purgeTime: 'timestamp',
  stackdriverLoggingConfig: { message: StackdriverLoggingConfig },
} satisfies Record<string, FieldType>;
/** `google.cloud.tasks.v2.Queue`. */
export const Queue = message(`${PKG}.Queue`, {
  ...QUEUE_FIELDS,
  appEngineRoutingOverride: { message: AppEngineRouting },
  state: { enum: `${PKG}.Queue.State`, values: QUEUE_STATES },
});

// v2beta3's messages where they differ from v2's (google/cloud/tasks/v2beta3/*.proto); the messages they
// share are v2's.
const BETA = 'google.cloud.tasks.v2beta3';
/** v2beta3 `Queue.Type` values, indexed by their number. */
export const QUEUE_TYPES = ['TYPE_UNSPECIFIED', 'PULL', 'PUSH'];
const PullMessage = message(`${BETA}.PullMessage`, { payload: 'bytes', tag: 'string' });
const AppEngineHttpQueue = message(`${BETA}.AppEngineHttpQueue`, {
  appEngineRoutingOverride: { message: AppEngineRouting },
});
const QueueStats = message(`${BETA}.QueueStats`, {
  tasksCount: 'int64',
  oldestEstimatedArrivalTime: 'timestamp',
  executedLastMinuteCount: 'int64',
  concurrentDispatchesCount: 'int64',
  effectiveExecutionRate: 'double',
});

/** `google.cloud.tasks.v2beta3.Task`: v2's, and `pullMessage` and a task-level `retryConfig`. */
export const BetaTask = message(`${BETA}.Task`, {
  ...TASK_FIELDS,
  pullMessage: { message: PullMessage },
  retryConfig: { message: RetryConfig },
});

/** `google.cloud.tasks.v2beta3.Queue`: App Engine routing under `appEngineHttpQueue`; TTLs, type, stats. */
export const BetaQueue = message(`${BETA}.Queue`, {
  ...QUEUE_FIELDS,
  appEngineHttpQueue: { message: AppEngineHttpQueue },
  state: { enum: `${BETA}.Queue.State`, values: QUEUE_STATES },
  taskTtl: 'duration',
  tombstoneTtl: 'duration',
  type: { enum: `${BETA}.Queue.Type`, values: QUEUE_TYPES },
  stats: { message: QueueStats },
});

/** The body of CreateTask (`body: "*"`, the parent comes from the path). */
export const CreateTaskBody = message(`${PKG}.CreateTaskRequest`, {
  parent: 'string',
  task: { message: Task },
  responseView: View,
});
/** The body of v2beta3 CreateTask. */
export const BetaCreateTaskBody = message(`${BETA}.CreateTaskRequest`, {
  parent: 'string',
  task: { message: BetaTask },
  responseView: View,
});
/** The body of BatchCreateTasks; each of `requests` is then decoded as its version's CreateTask body. */
export const BatchCreateTasksBody = message(`${PKG}.BatchCreateTasksRequest`, {
  parent: 'string',
  requests: 'any[]',
  requestId: 'string',
});
/** The body of BatchDeleteTasks. */
export const BatchDeleteTasksBody = message(`${PKG}.BatchDeleteTasksRequest`, {
  parent: 'string',
  names: 'string[]',
  requestId: 'string',
});
/** The body of RunTask. */
export const RunTaskBody = message(`${PKG}.RunTaskRequest`, { name: 'string', responseView: View });
/** The body of PauseQueue and ResumeQueue. */
export const QueueActionBody = message(`${PKG}.PauseQueueRequest`, { name: 'string' });
/** The body of TestIamPermissions (`google.iam.v1.TestIamPermissionsRequest`). */
export const TestIamPermissionsBody = message('google.iam.v1.TestIamPermissionsRequest', {
  resource: 'string',
  permissions: 'string[]',
});
/** The query of ListTasks. */
export const ListTasksQuery = message(`${PKG}.ListTasksRequest`, {
  parent: 'string',
  responseView: View,
  pageSize: 'int32',
  pageToken: 'string',
});
/** The query of GetTask. */
export const GetTaskQuery = message(`${PKG}.GetTaskRequest`, { name: 'string', responseView: View });
/** The query of ListQueues. */
export const ListQueuesQuery = message(`${PKG}.ListQueuesRequest`, {
  parent: 'string',
  filter: 'string',
  pageSize: 'int32',
  pageToken: 'string',
});
/** The query of v2beta3 ListQueues: v2's, and `readMask` as in v2beta3 GetQueue. */
export const BetaListQueuesQuery = message(`${BETA}.ListQueuesRequest`, {
  parent: 'string',
  filter: 'string',
  pageSize: 'int32',
  pageToken: 'string',
  readMask: 'string',
});
/** The query of UpdateQueue (`PATCH v2/{queue.name}`, body the Queue): `updateMask`, comma-separated paths. */
export const UpdateQueueQuery = message(`${PKG}.UpdateQueueRequest`, { updateMask: 'string' });
/** The query of a method whose request has only the resource name (GetQueue, DeleteQueue, DeleteTask). */
export const NameOnlyQuery = message(`${PKG}.GetQueueRequest`, { name: 'string' });
/** The query of v2beta3 GetQueue: `readMask` (a FieldMask, comma-separated paths) may ask for `stats`. */
export const BetaGetQueueQuery = message(`${BETA}.GetQueueRequest`, {
  name: 'string',
  readMask: 'string',
});

/** A decoded message: camelCase keys; Durations and Timestamps as milliseconds; enums by name. */
export type Decoded = { [key: string]: DecodedValue };
/** One decoded value. */
export type DecodedValue = string | number | unknown[] | Record<string, string> | Decoded;

/** Options of {@link decodeMessage}. */
export interface DecodeOptions {
  /**
   * Seeds: also accept Timestamps relative to this time (`"+1h"`, `"-10m"`) and Durations written like
   * `"10m"` or `"1h"`.
   */
  seedNowMs?: number;
}

/**
 * Decodes one JSON object as `type`. `path` is where it sits in the request (`"task"`, or `""` for the
 * request itself), used in error messages like Google's.
 * @throws ApiError INVALID_ARGUMENT on an unknown field or a value of the wrong type.
 */
export function decodeMessage(
  json: unknown,
  type: MessageType,
  path: string,
  options: DecodeOptions = {},
): Decoded {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw badValue(path, type.name, json);
  }
  const out: Decoded = {};
  for (const [key, value] of Object.entries(json as Record<string, unknown>)) {
    const spec = type.fields.get(key);
    if (!spec) {
      const at = path ? ` at '${path}'` : '';
      throw invalidPayload(
        `Invalid JSON payload received. Unknown name "${key}"${at}: Cannot find field.`,
        path || undefined,
      );
    }
    if (value === null) continue; // proto3 JSON: null means the default value
    const fieldPath = path ? `${path}.${spec.proto}` : spec.proto;
    out[spec.json] = decodeValue(value, spec.type, fieldPath, options);
  }
  return out;
}

/**
 * Decodes a query string into `type`, as Google's front end binds query parameters to request fields.
 * System parameters (`$alt`, `fields`, `prettyPrint`, ...) are ignored.
 * @throws ApiError INVALID_ARGUMENT on an unknown parameter or a value of the wrong type.
 */
export function decodeQuery(params: URLSearchParams, type: MessageType): Decoded {
  const out: Decoded = {};
  for (const [key, raw] of params) {
    if (isSystemParameter(key)) continue;
    const spec = type.fields.get(key);
    if (!spec || (typeof spec.type === 'object' && !('enum' in spec.type))) {
      throw invalidPayload(
        `Invalid JSON payload received. Unknown name "${key}": Cannot bind query parameter. ` +
          `Field '${key}' could not be found in request message.`,
      );
    }
    const value = spec.type === 'int32' || spec.type === 'double' ? numberOrText(raw) : raw;
    out[spec.json] = decodeValue(value, spec.type, spec.proto, {});
  }
  return out;
}

const SYSTEM_PARAMETERS = new Set([
  'alt',
  'fields',
  'prettyPrint',
  'quotaUser',
  'key',
  'access_token',
  'oauth_token',
  'callback',
  'upload_protocol',
  'uploadType',
  'userIp',
  '.xgafv',
]);

function isSystemParameter(key: string): boolean {
  return key.startsWith('$') || SYSTEM_PARAMETERS.has(key);
}

function numberOrText(raw: string): number | string {
  return /^-?\d+(\.\d+)?$/.test(raw) ? Number(raw) : raw;
}

function decodeValue(value: unknown, type: FieldType, path: string, options: DecodeOptions): DecodedValue {
  if (typeof type === 'object') {
    if ('message' in type) return decodeMessage(value, type.message, path, options);
    if ('repeated' in type) {
      if (!Array.isArray(value)) throw badValue(path, 'TYPE_MESSAGE', value);
      return value.map((item, i) => decodeMessage(item, type.repeated, `${path}[${i}]`, options));
    }
    return decodeEnum(value, type, path);
  }
  switch (type) {
    case 'string':
      if (typeof value !== 'string') throw badValue(path, 'TYPE_STRING', value);
      return value;
    case 'int32': {
      const n = typeof value === 'string' && /^-?\d+$/.test(value) ? Number(value) : value;
      if (typeof n !== 'number' || !Number.isInteger(n) || n < -(2 ** 31) || n >= 2 ** 31) {
        throw badValue(path, 'TYPE_INT32', value);
      }
      return n;
    }
    case 'int64': {
      // proto3 JSON: int64 is written as a string, and read from a string or a number.
      const text = typeof value === 'number' && Number.isSafeInteger(value) ? String(value) : value;
      if (typeof text !== 'string' || !/^-?\d{1,19}$/.test(text)) throw badValue(path, 'TYPE_INT64', value);
      const big = BigInt(text);
      if (big < -(2n ** 63n) || big >= 2n ** 63n) throw badValue(path, 'TYPE_INT64', value);
      return Number(big);
    }
    case 'double': {
      const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
      if (typeof n !== 'number' || !Number.isFinite(n)) throw badValue(path, 'TYPE_DOUBLE', value);
      return n;
    }
    case 'bytes':
      if (typeof value !== 'string' || !/^[A-Za-z0-9+/\-_]*={0,2}$/.test(value)) {
        throw badValue(path, 'TYPE_BYTES', value);
      }
      return Buffer.from(value, 'base64').toString('base64');
    case 'duration': {
      const lenient = options.seedNowMs !== undefined;
      const ms =
        typeof value !== 'string'
          ? undefined
          : (parseProtoDuration(value) ?? (lenient ? parseDurationMs(value) : undefined));
      if (ms === undefined) throw badValue(path, 'type.googleapis.com/google.protobuf.Duration', value);
      return ms;
    }
    case 'timestamp': {
      const ms = typeof value === 'string' ? parseTimestamp(value, options.seedNowMs) : undefined;
      if (ms === undefined) throw badValue(path, 'type.googleapis.com/google.protobuf.Timestamp', value);
      return ms;
    }
    case 'map<string,string>': {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) {
        throw badValue(path, 'TYPE_MESSAGE', value);
      }
      const map: Record<string, string> = {};
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (typeof v !== 'string') throw badValue(`${path}[${k}]`, 'TYPE_STRING', v);
        map[k] = v;
      }
      return map;
    }
    case 'string[]':
      if (!Array.isArray(value)) throw badValue(path, 'TYPE_STRING', value);
      value.forEach((item, i) => {
        if (typeof item !== 'string') throw badValue(`${path}[${i}]`, 'TYPE_STRING', item);
      });
      return value as string[];
    case 'any[]':
      if (!Array.isArray(value)) throw badValue(path, 'type.googleapis.com/google.protobuf.Any', value);
      return value as unknown[];
  }
}

function decodeEnum(value: unknown, type: { enum: string; values: readonly string[] }, path: string): string {
  if (typeof value === 'number' && Number.isInteger(value) && type.values[value] !== undefined) {
    return type.values[value];
  }
  if (typeof value === 'string') {
    if (type.values.includes(value)) return value;
    if (/^\d+$/.test(value) && type.values[Number(value)] !== undefined) return type.values[Number(value)]!;
  }
  throw badValue(path, `type.googleapis.com/${type.enum}`, value);
}

function badValue(path: string, typeName: string, value: unknown) {
  const shown = typeof value === 'string' ? `"${value}"` : JSON.stringify(value);
  const where = path ? ` at '${path}'` : '';
  return invalidPayload(`Invalid value${where} (${typeName}), ${shown}`, path || undefined);
}

/** Parses a protobuf JSON Duration (`"600s"`, `"0.100s"`) into milliseconds; undefined if malformed. */
export function parseProtoDuration(text: string): number | undefined {
  const match = /^(-?\d+)(?:\.(\d{1,9}))?s$/.exec(text);
  if (!match) return undefined;
  const fraction = (match[2] ?? '').padEnd(3, '0').slice(0, 3);
  const sign = match[1]!.startsWith('-') ? -1 : 1;
  return Number(match[1]) * 1000 + sign * Number(fraction);
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/i;

/**
 * Parses an RFC 3339 timestamp (fractions beyond milliseconds are dropped) into milliseconds; with
 * `relativeToMs`, also `"+1h"` / `"-10m"` / `"+30s"` relative to it. Undefined if malformed.
 */
export function parseTimestamp(text: string, relativeToMs?: number): number | undefined {
  if (relativeToMs !== undefined && /^[+-]/.test(text)) {
    const offset = parseDurationMs(text.slice(1));
    if (offset === undefined) return undefined;
    return text.startsWith('-') ? relativeToMs - offset : relativeToMs + offset;
  }
  if (!RFC3339.test(text)) return undefined;
  // Date.parse keeps milliseconds and ignores further digits once trimmed to three.
  const trimmed = text.replace(/(\.\d{3})\d+/, '$1');
  const ms = Date.parse(trimmed);
  return Number.isNaN(ms) ? undefined : ms;
}

/** Formats milliseconds as an RFC 3339 timestamp the way Google does (`...:00Z` or `...:00.123Z`). */
export function formatTimestamp(ms: number): string {
  const iso = new Date(ms).toISOString();
  return iso.endsWith('.000Z') ? `${iso.slice(0, -5)}Z` : iso;
}
