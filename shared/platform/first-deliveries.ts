/**
 * The first cutoff of a request whose cutoff depends on when it was received (an HTTP event without one,
 * or with one in the future): every delivery of the request uses it (docs/events.md "Cutoff"). The
 * instance remembers it for an hour; with a control queue it is also shared there, in a control task named
 * by a hash of the requestId, so a delivery to another instance reads the same cutoff.
 */
import { sha256Hex } from './hash.js';
import {
  toCloudTasksError,
  type CloudTasksClient,
  type CloudTasksError,
  type NewTask,
  type Task,
} from '../cloud-tasks/client.js';
import { parseTaskName, taskNameIn, type QueueName } from '../cloud-tasks/names.js';
import { controlRequestOf, paramOfControlUrl } from '../control/control-tasks.js';
import { CloudTasksUnavailableError } from '../run/run.js';
import type { RerunRequest } from '../triggers/events.js';
import type { Config } from './config.js';
import type { Logger } from './log.js';

/** How long an instance remembers a request's first delivery. */
export const FIRST_DELIVERY_MEMORY_MS = 60 * 60_000;
/** The control task holding a first cutoff falls due this long after it is made: after every memory of it. */
export const FIRST_CUTOFF_RECORD_MS = FIRST_DELIVERY_MEMORY_MS + 10 * 60_000;
const MAX_REMEMBERED = 10_000;
/** The body of the control task holding a first cutoff; its delivery is answered 204 and does nothing. */
const FIRST_CUTOFF_KIND = 'first-cutoff';
/** The query parameter of that control task's URL holding the cutoff (the BASIC view shows the URL). */
const FIRST_CUTOFF_PARAM = 'firstCutoff';

export class FirstDeliveries {
  /** requestId -> cutoff; Map order is insertion order, so the oldest entry comes first. */
  readonly #cutoffs = new Map<string, { cutoffMs: number; expiresMs: number }>();

  /**
   * The cutoff of the request's first delivery within the hour, else `cutoffMs` (now remembered).
   * `nowMs` is when this delivery was received.
   */
  cutoffFor(requestId: string, cutoffMs: number, nowMs: number = Date.now()): number {
    const known = this.recall(requestId, nowMs);
    if (known !== undefined) return known;
    this.remember(requestId, cutoffMs, nowMs + FIRST_DELIVERY_MEMORY_MS, nowMs);
    return cutoffMs;
  }

  /** The remembered cutoff of the request, if its memory has not expired. */
  recall(requestId: string, nowMs: number): number | undefined {
    const known = this.#cutoffs.get(requestId);
    return known && known.expiresMs > nowMs ? known.cutoffMs : undefined;
  }

  remember(requestId: string, cutoffMs: number, expiresMs: number, nowMs: number): void {
    this.#cutoffs.delete(requestId);
    this.#cutoffs.set(requestId, { cutoffMs, expiresMs });
    for (const [id, entry] of this.#cutoffs) {
      if (this.#cutoffs.size <= MAX_REMEMBERED && entry.expiresMs > nowMs) break;
      this.#cutoffs.delete(id);
    }
  }
}

/** The ID of the control task that holds a request's first cutoff: a hex SHA-256 of the requestId. */
export function firstCutoffTaskId(requestId: string): string {
  return sha256Hex(`first-cutoff\n${requestId}`);
}

/** Whether a body is the delivery of a first cutoff's control task: a no-op. */
export function isFirstCutoffBody(body: unknown): boolean {
  return typeof body === 'object' && body !== null && (body as { kind?: unknown }).kind === FIRST_CUTOFF_KIND;
}

/** Where a first cutoff is shared: the control queue, and the service its tasks are sent to. */
interface CutoffShare {
  readonly queue: QueueName;
  readonly selfUrl: string;
  readonly invokerServiceAccount: string;
}

export interface FirstCutoffDeps {
  readonly firstDeliveries: FirstDeliveries;
  readonly tasks: CloudTasksClient;
  /** Without a control queue (and where to send its tasks) the instance's memory is all there is. */
  readonly config: Pick<Config, 'controlQueue' | 'selfUrl' | 'invokerServiceAccount'>;
  readonly log: Logger;
}

/**
 * The cutoff every delivery of the request uses. A cutoff the event or message fixed is its own; one taken
 * from the time received is the request's first, from memory or from the control queue. Throws
 * CloudTasksUnavailableError when the control queue can be neither written nor read: nothing was called.
 */
export async function firstCutoffOf(
  deps: FirstCutoffDeps,
  request: RerunRequest,
  nowMs: number = Date.now(),
): Promise<number> {
  if (!request.cutoffFromDelivery) return request.cutoffMs;
  const { firstDeliveries: memory, config } = deps;
  const { controlQueue, selfUrl, invokerServiceAccount } = config;
  const share =
    controlQueue && selfUrl && invokerServiceAccount
      ? { queue: controlQueue, selfUrl, invokerServiceAccount }
      : undefined;
  const known = memory.recall(request.requestId, nowMs);
  if (known !== undefined) return known;
  // A dry run writes nothing: its cutoff is this instance's.
  if (!share || request.dryRun) return memory.cutoffFor(request.requestId, request.cutoffMs, nowMs);
  const shared = await sharedCutoff(deps, share, request, nowMs + FIRST_CUTOFF_RECORD_MS);
  // Remembered no longer than the control queue holds it, so no instance outlives the shared cutoff.
  const untilMs = Math.min(nowMs + FIRST_DELIVERY_MEMORY_MS, shared.dueMs);
  memory.remember(request.requestId, shared.cutoffMs, untilMs, nowMs);
  return shared.cutoffMs;
}

/** A first cutoff as the control queue holds it: the cutoff, and when its task falls due. */
interface SharedCutoff {
  readonly cutoffMs: number;
  readonly dueMs: number;
}

/** Creates the request's cutoff task, or reads the one another delivery created first. */
async function sharedCutoff(
  deps: Pick<FirstCutoffDeps, 'tasks' | 'log'>,
  share: CutoffShare,
  request: RerunRequest,
  dueMs: number,
): Promise<SharedCutoff> {
  const record = cutoffTaskOf(share, request, dueMs);
  const own = { cutoffMs: request.cutoffMs, dueMs };
  let created: CloudTasksError;
  try {
    await deps.tasks.createTask(share.queue, record);
    deps.log.debug({ requestId: request.requestId }, 'first cutoff shared through the control queue');
    return own;
  } catch (error) {
    created = toCloudTasksError(error);
  }
  // ALREADY_EXISTS, or an answer lost: the task may be another delivery's, or ours.
  const theirs = await readCutoff(deps.tasks, record.name);
  if (theirs !== undefined) return theirs;
  // The name is reserved but the task is gone: it fell due, after every memory of the request. A new one.
  if (created.status === 'ALREADY_EXISTS') return own;
  throw new CloudTasksUnavailableError(
    `the control queue ${share.queue.name} could not share the request's first cutoff: ${created.message}`,
    { cause: created },
  );
}

/** The cutoff a first cutoff's task holds (its URL carries it, so the BASIC view does); undefined if gone. */
async function readCutoff(tasks: CloudTasksClient, name: string): Promise<SharedCutoff | undefined> {
  const parsed = parseTaskName(name);
  if (!parsed) return undefined;
  let task: Task;
  try {
    task = await tasks.getTask(parsed);
  } catch (error) {
    const failure = toCloudTasksError(error);
    if (failure.status === 'NOT_FOUND') return undefined;
    throw new CloudTasksUnavailableError(
      `the request's first cutoff could not be read from the control queue: ${failure.message}`,
      { cause: failure },
    );
  }
  const cutoffMs = Date.parse(paramOfControlUrl(task.httpRequest?.url, FIRST_CUTOFF_PARAM) ?? '');
  const dueMs = Date.parse(task.scheduleTime ?? '');
  return Number.isNaN(cutoffMs) || Number.isNaN(dueMs) ? undefined : { cutoffMs, dueMs };
}

/**
 * The control task holding the request's first cutoff, in its URL (not `requestId`: it is no work of the
 * request, so status, cancel and the request's end do not count it). Due after every memory of it; its
 * delivery does nothing and is answered 204.
 */
function cutoffTaskOf(share: CutoffShare, request: RerunRequest, dueMs: number): NewTask {
  const url = new URL(share.selfUrl);
  url.searchParams.set(FIRST_CUTOFF_PARAM, new Date(request.cutoffMs).toISOString());
  return {
    name: taskNameIn(share.queue, firstCutoffTaskId(request.requestId)).name,
    scheduleTime: new Date(dueMs).toISOString(),
    httpRequest: controlRequestOf(share, url, { kind: FIRST_CUTOFF_KIND }),
  };
}
