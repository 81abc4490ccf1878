/**
 * UpdateQueue's `update_mask`: which fields of the Queue in the request replace the queue's own. "If empty,
 * then all fields will be updated." Output-only fields named in it are ignored, as the proto says of any
 * value given for them. https://cloud.google.com/tasks/docs/reference/rest/v2/projects.locations.queues/patch
 */
import { invalidPayload } from './errors.js';
import { httpTargetDecoded } from './http-target.js';
import type { QueueRecord } from './model.js';
import { Queue, type Decoded, type MessageType } from './proto-json.js';

/** One mask path as camelCase JSON names, e.g. `['httpTarget', 'uriOverride']`. */
export type MaskPath = readonly string[];

/** The Queue fields UpdateQueue may set. */
const SETTABLE = [
  'appEngineRoutingOverride',
  'httpTarget',
  'rateLimits',
  'retryConfig',
  'stackdriverLoggingConfig',
] as const;
// "Output only fields cannot be modified using UpdateQueue. Any value specified for an output only field will
// be ignored." The name cannot be changed either.
const IGNORED = new Set(['name', 'state', 'purgeTime', 'rateLimits.maxBurstSize']);

/**
 * Parses an `updateMask` query value (comma-separated paths, snake_case or camelCase, `.` between levels)
 * against `queueType` (v2's Queue unless told). Undefined when it is absent or empty: every field is updated.
 * @throws ApiError INVALID_ARGUMENT naming a path that is not a field of the Queue.
 */
export function parseUpdateMask(
  text: string | undefined,
  queueType: MessageType = Queue,
): MaskPath[] | undefined {
  const paths = (text ?? '')
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p !== '');
  if (paths.length === 0) return undefined;
  return paths.map((path) => {
    let type: MessageType | undefined = queueType;
    return path.split('.').map((segment) => {
      const spec = type?.fields.get(segment);
      if (!spec) {
        throw invalidPayload(
          `Invalid value for update_mask: "${path}" is not a field of ${queueType.name}.`,
          'update_mask',
        );
      }
      type = typeof spec.type === 'object' && 'message' in spec.type ? spec.type.message : undefined;
      return spec.json;
    });
  });
}

/** A queue's settings as a decoded Queue (Durations in milliseconds, as the decoder gives them). */
export function queueDecoded(queue: QueueRecord): Decoded {
  const retry = queue.retryConfig;
  const decoded: Decoded = {
    rateLimits: { ...queue.rateLimits },
    retryConfig: {
      maxAttempts: retry.maxAttempts,
      maxRetryDuration: retry.maxRetryDurationMs,
      minBackoff: retry.minBackoffMs,
      maxBackoff: retry.maxBackoffMs,
      maxDoublings: retry.maxDoublings,
    },
  };
  if (queue.appEngineRoutingOverride)
    decoded.appEngineRoutingOverride = structuredClone(queue.appEngineRoutingOverride);
  if (queue.httpTarget) decoded.httpTarget = httpTargetDecoded(queue.httpTarget);
  if (queue.stackdriverLoggingConfig)
    decoded.stackdriverLoggingConfig = structuredClone(queue.stackdriverLoggingConfig);
  return decoded;
}

/**
 * The settings after an update: with no mask, the request's settable fields (those it leaves out go back to
 * their defaults); with a mask, the current settings with each masked path taken from the request, or
 * cleared where the request has nothing there.
 */
export function applyUpdateMask(current: Decoded, given: Decoded, mask: MaskPath[] | undefined): Decoded {
  if (!mask) {
    const all: Decoded = {};
    for (const key of SETTABLE) if (given[key] !== undefined) all[key] = given[key];
    return all;
  }
  const merged = structuredClone(current);
  for (const path of mask) {
    if (IGNORED.has(path[0]!) || IGNORED.has(path.join('.'))) continue;
    setAt(merged, path, valueAt(given, path));
  }
  return merged;
}

function valueAt(decoded: Decoded, path: MaskPath): Decoded[string] | undefined {
  let value: unknown = decoded;
  for (const key of path) {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
    value = (value as Decoded)[key];
  }
  return value === undefined ? undefined : (structuredClone(value) as Decoded[string]);
}

function setAt(decoded: Decoded, path: MaskPath, value: Decoded[string] | undefined): void {
  let parent = decoded;
  for (const key of path.slice(0, -1)) {
    const next = parent[key];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) {
      if (value === undefined) return; // nothing there to clear
      parent[key] = {};
    }
    parent = parent[key] as Decoded;
  }
  const leaf = path.at(-1)!;
  if (value === undefined) delete parent[leaf];
  else parent[leaf] = value;
}
