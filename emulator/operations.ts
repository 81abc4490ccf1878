/**
 * The long-running operations of the batch methods (BatchCreateTasks, BatchDeleteTasks): their state, the
 * request IDs that name them, and their JSON as `google.longrunning.Operation` with Any-packed metadata and
 * response. No I/O and no clock: every method that needs the time takes it.
 * Shapes from google/cloud/tasks/v2beta3/cloudtasks.proto (the v2 reference pages show the same messages).
 */
import { randomBytes } from 'node:crypto';
import { ApiError, codeNumber, type StatusName } from './errors.js';
import { formatTimestamp, HTTP_METHODS, TASK_VIEWS } from './proto-json.js';
import type { Task } from './resources.js';

/** Which batch method made the operation. */
export type BatchKind = 'create' | 'delete';

/**
 * `BatchCreateTasksMetadata.State` and `BatchDeleteTasksMetadata.State` by name; the two enums number them
 * differently, and only the create one has CANCELLED.
 */
export type OperationState = 'RUNNING' | 'SUCCEEDED' | 'PARTIALLY_SUCCEEDED' | 'FAILED' | 'CANCELLED';

const STATE_NUMBERS: Record<BatchKind, Partial<Record<OperationState, number>>> = {
  create: { RUNNING: 1, SUCCEEDED: 2, FAILED: 3, CANCELLED: 4, PARTIALLY_SUCCEEDED: 5 },
  delete: { RUNNING: 1, SUCCEEDED: 2, PARTIALLY_SUCCEEDED: 3, FAILED: 4 },
};

/** The API surface a path used; the Any `@type` URLs follow it. */
export type ApiVersion = 'v2' | 'v2beta3';

/** One operation. */
export interface OperationRecord {
  /** `projects/P/locations/L/operations/ID` */
  readonly name: string;
  readonly kind: BatchKind;
  readonly startMs: number;
  endMs?: number;
  state: OperationState;
  /** Failed items by their index in the request. */
  readonly failed: Map<number, { status: StatusName; message: string }>;
  /** BatchCreateTasks: the created tasks as answered then (string enums). */
  readonly created: Task[];
  /** The operation's own error (all deletes failed, FAILED, CANCELLED). */
  error?: { status: StatusName; message: string };
}

/** How long a finished operation, and the request ID that named it, is remembered. */
export const OPERATION_RETENTION_MS = 24 * 3_600_000;

/** The message BatchDeleteTasks' operation carries when every delete failed (cloudtasks.proto). */
export const NONE_SUCCEEDED =
  'None of the requests succeeded, refer to BatchDeleteTasksMetadata.failed_requests for individual error details';

const REQUEST_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i;

/** Whether `id` has the proto's UUID4 format (8-4-4-4-12 hex digits, version 4, RFC 4122 variant). */
export function isRequestId(id: string): boolean {
  return REQUEST_ID.test(id);
}

/** The operations of one emulator, by name and by request ID. */
export class Operations {
  readonly #byName = new Map<string, OperationRecord>();
  readonly #byRequestId = new Map<string, { operation: OperationRecord; fingerprint: string }>();
  /** The request-ID key each operation was started under. */
  readonly #keys = new Map<string, string>();

  /**
   * The operation an earlier call with this request ID started, if any.
   * @throws ApiError ALREADY_EXISTS when that call asked for something else (another method, queue or
   * contents): the emulator's choice, since Google's pages do not say.
   */
  findByRequestId(
    location: string,
    requestId: string,
    fingerprint: string,
    nowMs: number,
  ): OperationRecord | undefined {
    this.#forgetOld(nowMs);
    const seen = this.#byRequestId.get(`${location}|${requestId}`);
    if (!seen) return undefined;
    if (seen.fingerprint !== fingerprint) {
      throw new ApiError(
        'ALREADY_EXISTS',
        `Request ID ${requestId} was already used for a different request; use a new request ID.`,
      );
    }
    return seen.operation;
  }

  /** Starts a RUNNING operation under `location`, remembered under `requestId` when given. */
  start(
    location: string,
    kind: BatchKind,
    nowMs: number,
    request?: { requestId: string; fingerprint: string },
  ): OperationRecord {
    this.#forgetOld(nowMs);
    const operation: OperationRecord = {
      name: `${location}/operations/${randomBytes(8).toString('hex')}`,
      kind,
      startMs: nowMs,
      state: 'RUNNING',
      failed: new Map(),
      created: [],
    };
    this.#byName.set(operation.name, operation);
    if (request) {
      const key = `${location}|${request.requestId}`;
      this.#byRequestId.set(key, { operation, fingerprint: request.fingerprint });
      this.#keys.set(operation.name, key);
    }
    return operation;
  }

  /**
   * The operation of that name.
   * @throws ApiError NOT_FOUND.
   */
  get(name: string, nowMs: number): OperationRecord {
    this.#forgetOld(nowMs);
    const operation = this.#byName.get(name);
    if (!operation) throw new ApiError('NOT_FOUND', `Operation ${name} not found.`);
    return operation;
  }

  // Finished operations older than the retention are dropped, with their request IDs.
  #forgetOld(nowMs: number): void {
    for (const [name, operation] of this.#byName) {
      if (operation.endMs === undefined || operation.endMs + OPERATION_RETENTION_MS > nowMs) break;
      this.#byName.delete(name);
      const key = this.#keys.get(name);
      if (key === undefined) continue;
      this.#byRequestId.delete(key);
      this.#keys.delete(name);
    }
  }
}

/**
 * Ends an operation: SUCCEEDED when no item failed, else PARTIALLY_SUCCEEDED; a batch delete of which every
 * item failed also carries ABORTED, as cloudtasks.proto says.
 */
export function finish(operation: OperationRecord, items: number, nowMs: number): void {
  operation.endMs = nowMs;
  if (operation.failed.size === 0) {
    operation.state = 'SUCCEEDED';
    return;
  }
  operation.state = 'PARTIALLY_SUCCEEDED';
  if (operation.kind === 'delete' && operation.failed.size === items) {
    operation.error = { status: 'ABORTED', message: NONE_SUCCEEDED };
  }
}

/** Ends an operation FAILED or CANCELLED with its error (the outcome of its items is not reported). */
export function abort(
  operation: OperationRecord,
  state: 'FAILED' | 'CANCELLED',
  status: StatusName,
  nowMs: number,
): void {
  operation.endMs = nowMs;
  operation.state = state;
  operation.failed.clear();
  operation.created.length = 0;
  operation.error = {
    status,
    message:
      state === 'CANCELLED'
        ? 'The batch operation was cancelled.'
        : 'The batch operation failed to complete; the outcome of its requests is unknown.',
  };
}

/** The operation as `google.longrunning.Operation` JSON, for the API version the caller used. */
export function operationJson(
  operation: OperationRecord,
  version: ApiVersion,
  numericEnums: boolean,
): object {
  const pkg = `type.googleapis.com/google.cloud.tasks.${version}`;
  const prefix = operation.kind === 'create' ? 'BatchCreateTasks' : 'BatchDeleteTasks';
  const metadata: Record<string, unknown> = {
    '@type': `${pkg}.${prefix}Metadata`,
    startTime: formatTimestamp(operation.startMs),
  };
  if (operation.endMs !== undefined) metadata.endTime = formatTimestamp(operation.endMs);
  metadata.state = numericEnums ? STATE_NUMBERS[operation.kind][operation.state] : operation.state;
  if (operation.failed.size > 0) {
    const failedRequests: Record<string, { code: number; message: string }> = {};
    for (const [index, { status, message }] of operation.failed) {
      failedRequests[String(index)] = { code: codeNumber(status), message };
    }
    metadata.failedRequests = failedRequests;
  }
  const done = operation.state !== 'RUNNING';
  const json: Record<string, unknown> = { name: operation.name, metadata, done };
  if (!done) return json;
  if (operation.error) {
    json.error = { code: codeNumber(operation.error.status), message: operation.error.message };
  } else if (operation.kind === 'create') {
    const tasks = numericEnums ? operation.created.map(numericTask) : operation.created;
    json.response = { '@type': `${pkg}.BatchCreateTasksResponse`, ...(tasks.length ? { tasks } : {}) };
  } else {
    json.response = { '@type': 'type.googleapis.com/google.protobuf.Empty' };
  }
  return json;
}

function numericTask(task: Task): Task {
  const { httpRequest } = task;
  return {
    ...task,
    httpRequest: { ...httpRequest, httpMethod: HTTP_METHODS.indexOf(String(httpRequest.httpMethod)) },
    view: TASK_VIEWS.indexOf(String(task.view)),
  };
}
