/**
 * Failure clusters (docs/selection.md "Failure clusters"): matched tasks grouped by why their last attempt
 * failed. A signature is the last attempt's status (its canonical code, plus the HTTP status when the
 * message carries one) and the target: host and path, with every path segment that is not a short plain
 * word masked as `{id}` and the query dropped. Nothing of a body, a header value, a query or a user-info part
 * of a URL can reach a signature. A cluster's id is a hash of its signature alone, so the same failure has
 * the same id in every plan and every run. Pure, apart from the collector's own state.
 */
import type { Task } from '../cloud-tasks/client.js';
import { CANONICAL_CODES, httpStatusOf } from '../cloud-tasks/codes.js';
import { sha256Hex } from '../platform/hash.js';

/** Why a task's last attempt failed, with nothing that identifies the task or its payload. */
export interface FailureSignature {
  /** A hash of `status` and `target`: 8 hex digits. */
  readonly id: string;
  /** `UNAVAILABLE 503`: the canonical code, and the HTTP status when the attempt had one. */
  readonly status: string;
  /** `orders.example.com/orders/{id}`: host and masked path. */
  readonly target: string;
}

/** A path segment kept as it is: a short plain word (letters and hyphens, no capital after the first). */
const PLAIN_SEGMENT = /^[A-Za-z][a-z-]{0,15}$/;

/** Whether the task's last attempt answered, and failed: only such a task has a failure signature. */
export function lastAttemptFailed(task: Task): boolean {
  const attempt = task.lastAttempt;
  return attempt?.responseTime !== undefined && (attempt.responseStatus?.code ?? 0) !== 0;
}

/** The failure signature of a task whose last attempt failed; undefined for any other task. */
export function failureSignatureOf(task: Task): FailureSignature | undefined {
  const failure = failureOf(task);
  return failure && signatureOf(failure);
}

/** A signature but its id: what the id is a hash of. */
type Failure = Omit<FailureSignature, 'id'>;

function failureOf(task: Task): Failure | undefined {
  const responseStatus = task.lastAttempt?.responseStatus;
  if (!lastAttemptFailed(task) || !responseStatus) return undefined;
  const code = responseStatus.code ?? 0;
  const name = CANONICAL_CODES[code] ?? `CODE_${code}`;
  const http = httpStatusOf(responseStatus);
  return { status: http === undefined ? name : `${name} ${http}`, target: maskedTargetOf(task) };
}

const hashedTextOf = ({ status, target }: Failure): string => `${status}\n${target}`;

function signatureOf(failure: Failure): FailureSignature {
  return { id: sha256Hex(hashedTextOf(failure)).slice(0, 8), ...failure };
}

/** Host and masked path of the task's target; App Engine tasks have no host of their own. */
export function maskedTargetOf(task: Task): string {
  const url = task.httpRequest?.url;
  if (url !== undefined) {
    try {
      const parsed = new URL(url);
      return `${parsed.host}${maskedPath(parsed.pathname)}`;
    } catch {
      return '(invalid url)';
    }
  }
  const relativeUri = task.appEngineHttpRequest?.relativeUri;
  if (relativeUri !== undefined) return `app-engine${maskedPath(relativeUri.split(/[?#]/)[0] ?? '')}`;
  return '(no target)';
}

function maskedPath(path: string): string {
  if (path === '' || path === '/') return '/';
  return path
    .split('/')
    .map((segment, index) =>
      index === 0 || segment === '' ? segment : PLAIN_SEGMENT.test(segment) ? segment : '{id}',
    )
    .join('/');
}

/** One cluster as reports, notifications and the command line show it. */
export interface ClusterSummary {
  readonly id: string;
  readonly status: string;
  readonly target: string;
  readonly count: number;
  /** The oldest and newest last-attempt response times, RFC 3339. */
  readonly oldestFailure: string | undefined;
  readonly newestFailure: string | undefined;
  readonly queues: readonly string[];
  /** One task of the cluster, by name. */
  readonly sampleTask: string;
  /** Attempts made so far, fewest and most: shown, but not part of the id. */
  readonly attempts: { readonly min: number; readonly max: number };
}

interface ClusterState {
  readonly signature: FailureSignature;
  count: number;
  oldestMs: number;
  newestMs: number;
  readonly queues: Set<string>;
  readonly sampleTask: string;
  minAttempts: number;
  maxAttempts: number;
}

/**
 * Collects the clusters of the matched tasks, as the pages arrive. Its state is one entry per signature,
 * keyed by what the id is a hash of: a task of a known cluster costs no hash.
 */
export class ClusterCollector {
  readonly #clusters = new Map<string, ClusterState>();

  /** Counts one matched task, once; a task whose last attempt did not fail belongs to no cluster. */
  add(task: Task, queue: string): void {
    const failure = failureOf(task);
    if (!failure) return;
    const responseMs = Date.parse(task.lastAttempt?.responseTime ?? '');
    const attempts = task.dispatchCount ?? 0;
    const key = hashedTextOf(failure);
    const cluster = this.#clusters.get(key);
    if (!cluster) {
      this.#clusters.set(key, {
        signature: signatureOf(failure),
        count: 1,
        oldestMs: responseMs,
        newestMs: responseMs,
        queues: new Set([queue]),
        sampleTask: task.name,
        minAttempts: attempts,
        maxAttempts: attempts,
      });
      return;
    }
    cluster.count++;
    if (responseMs < cluster.oldestMs) cluster.oldestMs = responseMs;
    if (responseMs > cluster.newestMs) cluster.newestMs = responseMs;
    cluster.queues.add(queue);
    cluster.minAttempts = Math.min(cluster.minAttempts, attempts);
    cluster.maxAttempts = Math.max(cluster.maxAttempts, attempts);
  }

  /** How many clusters there are. */
  get size(): number {
    return this.#clusters.size;
  }

  /** The largest clusters first (ties by id, so the order is stable), at most `limit` of them. */
  largest(limit = Number.POSITIVE_INFINITY): ClusterSummary[] {
    return [...this.#clusters.values()]
      .sort((a, b) => b.count - a.count || (a.signature.id < b.signature.id ? -1 : 1))
      .slice(0, limit)
      .map((c) => ({
        ...c.signature,
        count: c.count,
        oldestFailure: isoOrUndefined(c.oldestMs),
        newestFailure: isoOrUndefined(c.newestMs),
        queues: [...c.queues].sort(),
        sampleTask: c.sampleTask,
        attempts: { min: c.minAttempts, max: c.maxAttempts },
      }));
  }
}

function isoOrUndefined(ms: number): string | undefined {
  return Number.isFinite(ms) ? new Date(ms).toISOString() : undefined;
}
