/**
 * The v2 methods under v2beta3 paths (docs/emulator.md "v2beta3"): a v2beta3 Queue read as the v2 Queue the
 * methods work with, and a queue answered as v2beta3's. A Task needs no translation out: v2beta3's only adds
 * fields the emulator never sets (model.ts refuses them in).
 */
import { ApiError, formatDuration } from './errors.js';
import { QUEUE_TYPES, type Decoded } from './proto-json.js';
import type { MaskPath } from './queue-update.js';
import type { Queue } from './resources.js';

/** The TTLs every queue has: the emulator's task retention (Infinity: none) and its dedup window. */
export interface Ttls {
  readonly taskTtlMs: number;
  readonly tombstoneTtlMs: number;
}

/** Fields of a v2beta3 Queue that UpdateQueue never changes here: checked in the body, or output only. */
const UNCHANGED = new Set(['taskTtl', 'tombstoneTtl', 'type', 'stats']);

/**
 * A decoded v2beta3 Queue as a decoded v2 Queue: `appEngineHttpQueue.appEngineRoutingOverride` is v2's
 * `appEngineRoutingOverride`; `stats` is output only.
 * @throws ApiError UNIMPLEMENTED for a pull queue, or a TTL other than the emulator's own.
 */
export function queueFromBeta(queue: Decoded, ttls: Ttls): Decoded {
  const { appEngineHttpQueue, taskTtl, tombstoneTtl, type, stats: _stats, ...shared } = queue;
  if (type === 'PULL') throw new ApiError('UNIMPLEMENTED', 'The emulator supports push queues only.');
  checkTtl(taskTtl, ttls.taskTtlMs, 'task_ttl', 'taskRetentionMs');
  checkTtl(tombstoneTtl, ttls.tombstoneTtlMs, 'tombstone_ttl', 'dedupWindowMs');
  const override = (appEngineHttpQueue as Decoded | undefined)?.appEngineRoutingOverride;
  return override === undefined ? shared : { ...shared, appEngineRoutingOverride: override };
}

/** A v2beta3 update mask as v2's (see `queueFromBeta`); undefined (every field) stays undefined. */
export function maskFromBeta(mask: MaskPath[] | undefined): MaskPath[] | undefined {
  return mask?.flatMap((path): MaskPath[] => {
    if (path[0] === 'appEngineHttpQueue') {
      return [path.length > 1 ? path.slice(1) : ['appEngineRoutingOverride']];
    }
    return UNCHANGED.has(path[0]!) ? [] : [path];
  });
}

/**
 * A queue's v2 JSON as v2beta3 answers it: App Engine routing under `appEngineHttpQueue`, the TTLs, and
 * type PUSH (no `stats`: queue-stats.ts adds them when a read mask asks).
 */
export function betaQueue(json: Queue, ttls: Ttls, numericEnums: boolean): Record<string, unknown> {
  const { appEngineRoutingOverride, ...shared } = json;
  return {
    ...shared,
    ...(appEngineRoutingOverride && { appEngineHttpQueue: { appEngineRoutingOverride } }),
    ...(Number.isFinite(ttls.taskTtlMs) && { taskTtl: formatDuration(ttls.taskTtlMs) }),
    tombstoneTtl: formatDuration(ttls.tombstoneTtlMs),
    type: numericEnums ? QUEUE_TYPES.indexOf('PUSH') : 'PUSH',
  };
}

// Per-queue TTLs are not emulated: a request may give only the emulator's own (as a queue read answers it).
function checkTtl(givenMs: Decoded[string] | undefined, ownMs: number, field: string, knob: string): void {
  if (givenMs === undefined || givenMs === ownMs) return;
  throw new ApiError(
    'UNIMPLEMENTED',
    `The emulator does not set ${field} per queue: every queue has the emulator's ${knob}.`,
  );
}
