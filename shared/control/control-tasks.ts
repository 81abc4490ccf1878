/**
 * Control tasks (docs/claims.md): one per (task, request, cutoff), in the control queue, sent back to rerunHttp by
 * Cloud Tasks. The same task is a claim (created before the task is forced inline, due after the run) and
 * queued mode's unit of work (due now). Cloud Tasks' name deduplication makes a second claim of the same
 * task for the same request fail with ALREADY_EXISTS on any instance.
 */
import { sha256Hex } from '../platform/hash.js';
import { z } from 'zod';
import type { HttpRequest, NewTask } from '../cloud-tasks/client.js';
import type { EventKind, RerunRequest } from '../triggers/events.js';
import { taskNameIn, type QueueName, type TaskName } from '../cloud-tasks/names.js';
import type { Config } from '../platform/config.js';

export interface ControlTarget {
  readonly queue: QueueName;
  /** rerunHttp's URL. */
  readonly selfUrl: string;
  /** The service account whose OIDC token the control task carries. */
  readonly invokerServiceAccount: string;
  /**
   * The run writing the control tasks (its runId), named in each one's URL: a create whose answer was lost
   * tells its own task from another delivery's by it (docs/claims.md "Reserved names").
   */
  readonly writtenBy: string;
}

/** Where a run (or a recovery) writes its control tasks, naming `writer`; none without a control queue. */
export function controlTargetOf(
  config: Pick<Config, 'controlQueue' | 'selfUrl' | 'invokerServiceAccount'>,
  writer: string,
): ControlTarget | undefined {
  const { controlQueue, selfUrl, invokerServiceAccount } = config;
  return controlQueue && selfUrl && invokerServiceAccount
    ? { queue: controlQueue, selfUrl, invokerServiceAccount, writtenBy: writer }
    : undefined;
}

/** The query parameter of a control task's URL that names the run that wrote it. */
const WRITTEN_BY_PARAM = 'writtenBy';

/** The run a control task's URL names as its writer; undefined when it names none. */
export function writerOfControlUrl(url: string | undefined): string | undefined {
  return paramOfControlUrl(url, WRITTEN_BY_PARAM);
}

/** One query parameter of a control task's URL; undefined when it has none (or is no URL). */
export function paramOfControlUrl(url: string | undefined, param: string): string | undefined {
  if (url === undefined) return undefined;
  try {
    return new URL(url).searchParams.get(param) ?? undefined;
  } catch {
    return undefined;
  }
}

/** rerunHttp's URL, naming the run that writes the control task. */
function controlUrlOf(target: ControlTarget): URL {
  const url = new URL(target.selfUrl);
  url.searchParams.set(WRITTEN_BY_PARAM, target.writtenBy);
  return url;
}

/** A control task's request: `body` as JSON to rerunHttp at `url`, with the invoker's OIDC token. */
export function controlRequestOf(
  target: Pick<ControlTarget, 'selfUrl' | 'invokerServiceAccount'>,
  url: URL,
  body: object,
  headers: Record<string, string> = {},
): HttpRequest {
  return {
    url: url.toString(),
    httpMethod: 'POST',
    headers: { 'Content-Type': 'application/json', ...headers },
    body: Buffer.from(JSON.stringify(body)).toString('base64'),
    oidcToken: { serviceAccountEmail: target.invokerServiceAccount, audience: target.selfUrl },
  };
}

/** What one control task carries out: one task of one request. */
export interface ControlWork extends Pick<
  RerunRequest,
  // The request's options that decide a task's fate: the control task applies them as the request did.
  'requestId' | 'cutoffMs' | 'mode' | 'reason' | 'force' | 'lastAttempts' | 'verifyMs' | 'minBackoffLeftMs'
> {
  /** The request's failure clusters, when it names any: the control task selects as the request did. */
  readonly clusters?: readonly string[] | undefined;
  /** The request's `maxRate`, when it names one: the control task's run keeps it as the request did. */
  readonly maxRatePerSecond?: number | undefined;
  readonly task: string;
  /** The request's own kind, which the request-ended notification names (the control task is a `tasks`). */
  readonly requestKind: EventKind;
}

/** The header on each control task that names its request's own kind (Cloud Tasks sends it along). */
export const REQUEST_KIND_HEADER = 'X-Rerun-Request-Kind';

/** Longest dispatch deadline Cloud Tasks allows for HTTP targets: longer than the service's timeout. */
export const CONTROL_DISPATCH_DEADLINE = '1800s';

/**
 * How many names one task's claim may take within one request: a claim released without its task being
 * acted on leaves its name reserved, and the next delivery takes the next one (docs/claims.md "Reserved
 * names").
 */
export const MAX_CLAIM_GENERATIONS = 16;

/**
 * The claim's task ID: a hex SHA-256 of the full task name, the requestId and the cutoff, and for a later
 * generation its number. Valid as a task ID, hashed (Cloud Tasks recommends hashed prefixes for named
 * tasks), and a later request (another cutoff) never meets the tombstone of an earlier one. Generation 0 is
 * also the ID of the task's redrive copy.
 */
export function claimIdOf(
  work: Pick<ControlWork, 'task' | 'requestId' | 'cutoffMs'>,
  generation = 0,
): string {
  const base = `${work.task}\n${work.requestId}\n${new Date(work.cutoffMs).toISOString()}`;
  return sha256Hex(generation === 0 ? base : `${base}\n${generation}`);
}

/** Whether `id` is one of the names the claim of `work` may take (a control task delivering its own claim). */
export function isClaimIdOf(work: Pick<ControlWork, 'task' | 'requestId' | 'cutoffMs'>, id: string): boolean {
  for (let generation = 0; generation < MAX_CLAIM_GENERATIONS; generation++) {
    if (claimIdOf(work, generation) === id) return true;
  }
  return false;
}

/** The requestId a control task's URL names (status and cancel read it from the BASIC view). */
export function requestIdOfControlUrl(url: string | undefined): string | undefined {
  return paramOfControlUrl(url, 'requestId');
}

/**
 * The control task for one task of one request, due at `scheduleMs` (a claim the inline run carries out:
 * after its budget; queued mode: its paced slot). Its body is a `tasks` event for that one task.
 */
export function controlTaskFor(
  work: ControlWork,
  target: ControlTarget,
  scheduleMs?: number,
  generation = 0,
): NewTask {
  const cutoff = new Date(work.cutoffMs).toISOString();
  const event = {
    kind: 'tasks',
    tasks: [work.task],
    cutoff,
    requestId: work.requestId,
    mode: work.mode,
    force: work.force,
    lastAttempts: work.lastAttempts,
    verify: `${work.verifyMs}ms`,
    minBackoffLeft: `${work.minBackoffLeftMs}ms`,
    ...(work.reason !== undefined && { reason: work.reason }),
    ...(work.clusters !== undefined && { clusters: work.clusters }),
    ...(work.maxRatePerSecond !== undefined && { maxRate: work.maxRatePerSecond }),
  };
  const url = controlUrlOf(target);
  url.searchParams.set('requestId', work.requestId);
  return {
    name: taskNameIn(target.queue, claimIdOf(work, generation)).name,
    ...(scheduleMs !== undefined && { scheduleTime: new Date(scheduleMs).toISOString() }),
    dispatchDeadline: CONTROL_DISPATCH_DEADLINE,
    httpRequest: controlRequestOf(target, url, event, { [REQUEST_KIND_HEADER]: work.requestKind }),
  };
}

/** What a move's recovery task carries (docs/claims.md "A crash mid-redrive"): names and a count, no body. */
export interface MoveRecovery {
  readonly kind: 'finish-move';
  /** The task being moved. */
  readonly original: string;
  /** Its copy's name. */
  readonly copy: string;
  /** The first task of the chain, which the copy's X-Rerun-Original-Task names. */
  readonly first: string;
  /** The original's dispatchCount when it was read for the copy: a higher one means it ran meanwhile. */
  readonly dispatchCount: number;
  /**
   * A park's only (docs/parking.md "The move"): until this time (RFC 3339) the original could neither run
   * on its own schedule nor reach its 31 days, so an original gone before it was deleted by the move.
   */
  readonly quietUntil?: string | undefined;
}

/**
 * The recovery task of one move (one generation of its name), due at `scheduleMs`, before the copy's
 * arming delay ends: its delivery finishes or undoes the move when the run that started it stopped.
 */
export function moveRecoveryTaskFor(
  move: Omit<MoveRecovery, 'kind'>,
  target: ControlTarget,
  scheduleMs: number,
  generation = 0,
): NewTask {
  const id = sha256Hex(`finish-move\n${move.copy}${generation === 0 ? '' : `\n${generation}`}`);
  const body: MoveRecovery = { kind: 'finish-move', ...move };
  // The URL carries the move too, so one delivery can find every recovery task due (BASIC listings).
  const url = controlUrlOf(target);
  url.searchParams.set(
    MOVE_PARAM,
    Buffer.from(JSON.stringify({ ...body, dueMs: scheduleMs })).toString('base64url'),
  );
  return {
    name: taskNameIn(target.queue, id).name,
    scheduleTime: new Date(scheduleMs).toISOString(),
    dispatchDeadline: CONTROL_DISPATCH_DEADLINE,
    httpRequest: controlRequestOf(target, url, body),
  };
}

/** A recovery task's body, as its delivery validates it. */
export const MoveRecoveryBody = z.strictObject({
  kind: z.literal('finish-move'),
  original: z.string().min(1),
  copy: z.string().min(1),
  first: z.string().min(1),
  dispatchCount: z.number().int().min(0),
  quietUntil: z.iso.datetime().optional(),
});

/** True when a JSON body is meant as a move's recovery (then MoveRecoveryBody decides if it is valid). */
export function isMoveRecoveryKind(json: unknown): boolean {
  return (json as { kind?: unknown } | null)?.kind === 'finish-move';
}

/** The query parameter of a recovery task's URL that carries its move and when it falls due. */
const MOVE_PARAM = 'finishMove';

/** The move a control task's URL carries, and when its recovery falls due; undefined for other tasks. */
export function moveOfControlUrl(url: string | undefined): (MoveRecovery & { dueMs: number }) | undefined {
  const param = paramOfControlUrl(url, MOVE_PARAM);
  if (param === undefined) return undefined;
  try {
    const json: unknown = JSON.parse(Buffer.from(param, 'base64url').toString('utf8'));
    const parsed = MoveRecoveryBody.extend({ dueMs: z.number() }).safeParse(json);
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/**
 * How long a withdrawn copy's record waits before it falls due: longer than Cloud Tasks keeps a used name
 * reserved (up to 9 days, for queues made by queue.yaml: docs/claims.md "Reserved names"). Past that, the
 * copy's name is free again and no recovery reads the record.
 */
export const COPY_WITHDRAWN_RECORD_MS = 10 * 24 * 3_600_000;

/**
 * The kinds of control task that record a fact by existing: a withdrawn copy, a cancelled request, a
 * delivery's lease. Each is named by its kind and its key, falls due after COPY_WITHDRAWN_RECORD_MS, and its
 * delivery does nothing (answered 204). Its URL names no requestId: status, cancel and a request's end do
 * not count it.
 */
const NO_OP_KINDS = ['copy-withdrawn', 'request-cancelled', 'delivery-lease'] as const;
type NoOpKind = (typeof NO_OP_KINDS)[number];

function noOpRecordNameOf(controlQueue: QueueName, kind: NoOpKind, key: string): TaskName {
  return taskNameIn(controlQueue, sha256Hex(`${kind}\n${key}`));
}

function noOpRecordTaskOf(
  kind: NoOpKind,
  key: string,
  target: Pick<ControlTarget, 'queue' | 'selfUrl' | 'invokerServiceAccount'>,
  url: URL,
  nowMs: number,
): NewTask {
  return {
    name: noOpRecordNameOf(target.queue, kind, key).name,
    scheduleTime: new Date(nowMs + COPY_WITHDRAWN_RECORD_MS).toISOString(),
    httpRequest: controlRequestOf(target, url, { kind }),
  };
}

/** True for the body of a record or lease that does nothing when it falls due (answered 204). */
export function isNoOpRecordBody(body: unknown): boolean {
  const kind = (body as { kind?: unknown } | null)?.kind;
  return NO_OP_KINDS.some((known) => known === kind);
}

/** The name of the record that `copy` was withdrawn (docs/claims.md "Withdrawn copies are recorded"). */
export function copyWithdrawnNameOf(controlQueue: QueueName, copy: string): TaskName {
  return noOpRecordNameOf(controlQueue, 'copy-withdrawn', copy);
}

/** The record that the copy `copy` was taken out (or its name used up) without running. */
export function copyWithdrawnTaskFor(copy: string, target: ControlTarget, nowMs: number): NewTask {
  return noOpRecordTaskOf('copy-withdrawn', copy, target, controlUrlOf(target), nowMs);
}

/** The name of the record that `requestId` was cancelled (docs/claims.md "Cancelled requests"). */
export function cancelRecordNameOf(controlQueue: QueueName, requestId: string): TaskName {
  return noOpRecordNameOf(controlQueue, 'request-cancelled', requestId);
}

/** The record that `requestId` was cancelled: until it falls due, no delivery of the request forces or queues. */
export function cancelRecordTaskFor(
  requestId: string,
  target: Pick<ControlTarget, 'queue' | 'selfUrl' | 'invokerServiceAccount'>,
  nowMs: number,
): NewTask {
  return noOpRecordTaskOf('request-cancelled', requestId, target, new URL(target.selfUrl), nowMs);
}

/**
 * The lease one delivery of the control task `controlTaskId` takes before it forces its task (docs/claims.md
 * "One delivery at a time"), named by the task's ID and its X-CloudTasks-TaskRetryCount: two deliveries of one
 * dispatch meet on it, a retry has a name of its own.
 */
export function deliveryLeaseTaskFor(
  controlTaskId: string,
  retryCount: string,
  target: ControlTarget,
  nowMs: number,
): NewTask {
  return noOpRecordTaskOf(
    'delivery-lease',
    `${controlTaskId}\n${retryCount}`,
    target,
    controlUrlOf(target),
    nowMs,
  );
}
