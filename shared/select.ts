/**
 * Pure selection: does a task match the request (SPEC 5.1), and do the safety rules (SPEC 5.2) let it run?
 * Time is a parameter; nothing here touches the clock, the environment or the network.
 */
import type { Attempt, Queue, Task } from './cloud-tasks.js';
import { CANONICAL_CODES, type Match } from './events.js';
import { taskIdOf } from './names.js';

/** Why a matched task was not run. */
export type SkipReason =
  | 'never-attempted'
  | 'not-failed'
  | 'in-flight'
  | 'after-cutoff'
  | 'due-soon'
  | 'queue-paused'
  | 'queue-disabled'
  | 'queue-permission-denied'
  | 'over-cap';

/** The verdict on one listed task. */
export type Selection =
  | { readonly kind: 'unmatched' }
  | { readonly kind: 'skip'; readonly reason: SkipReason }
  | { readonly kind: 'candidate' };

/** What the safety rules need to know about the request. */
export interface SelectionRules {
  readonly match: Match;
  readonly cutoffMs: number;
  readonly minBackoffLeftMs: number;
  readonly nowMs: number;
}

const UNMATCHED: Selection = { kind: 'unmatched' };
const CANDIDATE: Selection = { kind: 'candidate' };
const skip = (reason: SkipReason): Selection => ({ kind: 'skip', reason });

/** Applies the match, then the per-task safety rules, in that order. */
export function selectTask(task: Task, rules: SelectionRules): Selection {
  if (!matchesTask(task, rules.match)) return UNMATCHED;
  const last = task.lastAttempt;
  const dispatchMs = timeMs(last?.dispatchTime);
  if (!last || dispatchMs === undefined) return skip('never-attempted');
  if (last.responseTime === undefined) return skip('in-flight');
  if ((last.responseStatus?.code ?? 0) === 0) return skip('not-failed');
  if (dispatchMs >= rules.cutoffMs) return skip('after-cutoff');
  const nextMs = timeMs(task.scheduleTime);
  if (nextMs !== undefined && nextMs - rules.nowMs < rules.minBackoffLeftMs) return skip('due-soon');
  return CANDIDATE;
}

/** The queue-level rule: PAUSED queues only with force, DISABLED never. */
export function queueSkipReason(state: Queue['state'], force: boolean): SkipReason | undefined {
  if (state === 'DISABLED') return 'queue-disabled';
  if (state === 'PAUSED' && !force) return 'queue-paused';
  return undefined;
}

/** Whether every field given in the match holds for the task. */
export function matchesTask(task: Task, match: Match): boolean {
  const id = taskIdOf(task.name);
  if (match.taskIds && !match.taskIds.includes(id)) return false;
  if (match.taskIdGlob !== undefined && !globMatch(match.taskIdGlob, id)) return false;
  if (match.urlPrefix !== undefined) {
    const url = task.httpRequest?.url ?? task.appEngineHttpRequest?.relativeUri;
    if (url === undefined || !url.startsWith(match.urlPrefix)) return false;
  }
  const attempts = task.dispatchCount ?? 0;
  if (match.minAttempts !== undefined && attempts < match.minAttempts) return false;
  if (match.maxAttempts !== undefined && attempts > match.maxAttempts) return false;
  if (match.responseCodes && !matchesResponseCode(task.lastAttempt, match.responseCodes)) return false;
  if (match.failedSince !== undefined || match.failedUntil !== undefined) {
    const responseMs = timeMs(task.lastAttempt?.responseTime);
    if (responseMs === undefined) return false;
    if (match.failedSince !== undefined && responseMs < match.failedSince) return false;
    if (match.failedUntil !== undefined && responseMs > match.failedUntil) return false;
  }
  const createdMs = timeMs(task.createTime);
  if (match.createdBefore !== undefined && !(createdMs !== undefined && createdMs < match.createdBefore))
    return false;
  if (match.createdAfter !== undefined && !(createdMs !== undefined && createdMs > match.createdAfter))
    return false;
  return true;
}

function matchesResponseCode(
  attempt: Attempt | undefined,
  codes: NonNullable<Match['responseCodes']>,
): boolean {
  const status = attempt?.responseTime === undefined ? undefined : attempt.responseStatus;
  if (!status) return false;
  const name = CANONICAL_CODES[status.code ?? 0];
  const http = httpStatusOf(status);
  return codes.some((code) => (typeof code === 'number' ? code === http : code === name));
}

/** The target's HTTP status, from Cloud Tasks' message "INTERNAL(13): HTTP status code 500". */
export function httpStatusOf(status: { code?: number; message?: string }): number | undefined {
  const match = /HTTP status code (\d{3})/.exec(status.message ?? '');
  return match ? Number(match[1]) : undefined;
}

/**
 * Glob match on a task ID: `*` any run of characters, `?` one character. Linear-time two-pointer
 * matching with one backtrack point, so no pattern can blow up (no user regex: no ReDoS).
 */
export function globMatch(pattern: string, text: string): boolean {
  let p = 0;
  let t = 0;
  let starP = -1;
  let starT = 0;
  while (t < text.length) {
    if (p < pattern.length && (pattern[p] === '?' || pattern[p] === text[t])) {
      p++;
      t++;
    } else if (p < pattern.length && pattern[p] === '*') {
      starP = p++;
      starT = t;
    } else if (starP >= 0) {
      p = starP + 1;
      t = ++starT;
    } else {
      return false;
    }
  }
  while (pattern[p] === '*') p++;
  return p === pattern.length;
}

function timeMs(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? undefined : ms;
}
