/**
 * BatchCreateTasks, BatchDeleteTasks and GetOperation: a batch call checks its request as a whole, then
 * applies each item as the single-task method would, records the items that failed by their index, and
 * answers a long-running operation. Items fail one by one (not atomic); injected batch faults fail chosen
 * items, end the operation FAILED or CANCELLED, or keep it running until a time on the emulator clock.
 * https://cloud.google.com/tasks/docs/reference/rest/v2/projects.locations.queues.tasks/batchCreate
 */
import { createHash } from 'node:crypto';
import { parseQueueName, parseTaskName } from '../shared/cloud-tasks/names.js';
import type { Clock, Timer } from './clock.js';
import { ApiError, invalidPayload, type StatusName } from './errors.js';
import type { Fault } from './faults.js';
import { invalidQueueName } from './model.js';
import {
  abort,
  finish,
  isRequestId,
  operationJson,
  Operations,
  type ApiVersion,
  type BatchKind,
  type OperationRecord,
} from './operations.js';
import {
  BatchCreateTasksBody,
  BatchDeleteTasksBody,
  BetaCreateTaskBody,
  CreateTaskBody,
  decodeMessage,
  type Decoded,
} from './proto-json.js';
import type { Task } from './resources.js';
import type { Store } from './store.js';

/** The most requests one BatchCreateTasks may carry. */
export const MAX_BATCH_CREATE = 100;
/** The most names one BatchDeleteTasks may carry. */
export const MAX_BATCH_DELETE = 1000;

/** What the batch methods need from the single-task methods. */
export interface BatchDeps {
  store: Store;
  clock: Clock;
  /**
   * Creates one task from a decoded CreateTaskRequest as CreateTask does, answering it in the asked view.
   * @throws ApiError as CreateTask would.
   */
  createOne: (queue: string, request: Decoded, nowMs: number) => Task;
  /**
   * Deletes one task as DeleteTask does.
   * @throws ApiError as DeleteTask would.
   */
  deleteOne: (name: string, nowMs: number) => void;
}

/** One batch call as the API sees it. */
export interface BatchCall {
  /** The queue (BatchCreateTasks, BatchDeleteTasks) or operation (GetOperation) name from the path. */
  readonly name: string;
  readonly version: ApiVersion;
  readonly body: unknown;
  readonly numericEnums: boolean;
  /** The batch-kind faults that hit this call. */
  readonly faults: readonly Fault[];
}

/** How injected faults shape one operation. */
interface Plan {
  /** Items to fail, by index or task name, with their code. */
  readonly failures: ReadonlyMap<number | string, StatusName>;
  readonly end?: { state: 'FAILED' | 'CANCELLED'; status: StatusName; applied: number };
  readonly untilMs?: number;
}

/** The batch methods and their operations. */
export class BatchMethods {
  readonly #operations = new Operations();
  readonly #timers = new Set<Timer>();

  constructor(private readonly deps: BatchDeps) {}

  /**
   * BatchCreateTasks.
   * @throws ApiError INVALID_ARGUMENT (bad request, more than 100 items, an item without its parent or for
   * another queue),
   * NOT_FOUND (no such queue), ALREADY_EXISTS (request ID used for another request).
   */
  create(call: BatchCall): object {
    const parent = call.name;
    const body = decodeMessage(call.body, BatchCreateTasksBody, '');
    checkBodyParent(body, parent);
    const raw = (body.requests as unknown[] | undefined) ?? [];
    checkCount(raw.length, MAX_BATCH_CREATE, 'requests');
    const itemType = call.version === 'v2' ? CreateTaskBody : BetaCreateTaskBody;
    const requests = raw.map((item, i) => decodeMessage(item, itemType, `requests[${i}]`));
    // CreateTaskRequest.parent is required, and in a batch it is the batch's own (cloudtasks.proto).
    requests.forEach((request, i) => {
      if (request.parent === undefined || request.parent === '') {
        throw new ApiError('INVALID_ARGUMENT', `requests[${i}].parent is required.`);
      }
      if (request.parent !== parent) {
        throw new ApiError(
          'INVALID_ARGUMENT',
          `All tasks must be for the same queue: requests[${i}].parent ('${request.parent as string}') ` +
            `is not the batch's parent ('${parent}').`,
        );
      }
    });
    this.deps.store.getQueue(parent);
    const taskNameOf = (i: number) => (requests[i]!.task as Decoded | undefined)?.name as string | undefined;
    return this.#start(call, 'create', body, requests.length, taskNameOf, (i, nowMs) =>
      this.deps.createOne(parent, requests[i]!, nowMs),
    );
  }

  /**
   * BatchDeleteTasks.
   * @throws ApiError INVALID_ARGUMENT (bad request, more than 1000 names, a name not of a task in the queue),
   * NOT_FOUND (no such queue), ALREADY_EXISTS (request ID used for another request).
   */
  delete(call: BatchCall): object {
    const parent = call.name;
    const body = decodeMessage(call.body, BatchDeleteTasksBody, '');
    checkBodyParent(body, parent);
    const names = (body.names as string[] | undefined) ?? [];
    checkCount(names.length, MAX_BATCH_DELETE, 'names');
    names.forEach((name, i) => {
      if (!parseTaskName(name) || name.slice(0, name.lastIndexOf('/tasks/')) !== parent) {
        throw invalidPayload(
          `names[${i}] must be a task of the queue ${parent}: ` +
            `"${parent}/tasks/<TASK_ID>"; got "${name}".`,
          `names[${i}]`,
        );
      }
    });
    this.deps.store.getQueue(parent);
    return this.#start(
      call,
      'delete',
      body,
      names.length,
      (i) => names[i],
      (i, nowMs) => this.deps.deleteOne(names[i]!, nowMs),
    );
  }

  /**
   * GetOperation.
   * @throws ApiError NOT_FOUND.
   */
  getOperation(call: BatchCall): object {
    const operation = this.#operations.get(call.name, this.deps.clock.now());
    return operationJson(operation, call.version, call.numericEnums);
  }

  /** Cancels the timers of operations kept running. */
  stop(): void {
    for (const timer of this.#timers) timer.cancel();
    this.#timers.clear();
  }

  // Starts the operation, or answers the one a call with the same request ID started; its work is done at
  // once, or when the clock reaches an 'operation-running' fault's time.
  #start(
    call: BatchCall,
    kind: BatchKind,
    body: Decoded,
    count: number,
    nameOf: (index: number) => string | undefined,
    apply: (index: number, nowMs: number) => Task | void,
  ): object {
    const nowMs = this.deps.clock.now();
    const location = call.name.split('/').slice(0, 4).join('/');
    const { requestId, ...rest } = body;
    let request: { requestId: string; fingerprint: string } | undefined;
    if (typeof requestId === 'string' && requestId !== '') {
      if (!isRequestId(requestId)) {
        throw invalidPayload(
          `Invalid value at 'request_id' ("${requestId}"): it must be a UUID4 (8-4-4-4-12 hex digits).`,
          'request_id',
        );
      }
      const fingerprint = createHash('sha256')
        .update(JSON.stringify([kind, call.name, rest]))
        .digest('base64');
      // google/api/field_info.proto: a UUID4 "may be normalized to entirely lowercase letters".
      const id = requestId.toLowerCase();
      const earlier = this.#operations.findByRequestId(location, id, fingerprint, nowMs);
      if (earlier) return operationJson(earlier, call.version, call.numericEnums);
      request = { requestId: id, fingerprint };
    }
    const plan = planOf(call.faults, nowMs);
    const operation = this.#operations.start(location, kind, nowMs, request);
    const work = () => this.#work(operation, count, plan, nameOf, apply);
    if (plan.untilMs !== undefined && plan.untilMs > nowMs) {
      const timer = this.deps.clock.setTimeout(() => {
        this.#timers.delete(timer);
        work();
      }, plan.untilMs - nowMs);
      this.#timers.add(timer);
    } else {
      work();
    }
    return operationJson(operation, call.version, call.numericEnums);
  }

  #work(
    operation: OperationRecord,
    count: number,
    plan: Plan,
    nameOf: (index: number) => string | undefined,
    apply: (index: number, nowMs: number) => Task | void,
  ): void {
    const nowMs = this.deps.clock.now();
    const applied = plan.end ? Math.min(plan.end.applied, count) : count;
    for (let i = 0; i < applied; i++) {
      const name = nameOf(i);
      const injected = plan.failures.get(i) ?? (name === undefined ? undefined : plan.failures.get(name));
      if (injected) {
        operation.failed.set(i, { status: injected, message: `Injected failure (${injected}).` });
        continue;
      }
      try {
        const task = apply(i, nowMs);
        if (task) operation.created.push(task);
      } catch (err) {
        const known = err instanceof ApiError;
        operation.failed.set(i, {
          status: known ? err.status : 'INTERNAL',
          message: known ? err.message : 'Internal error.',
        });
      }
    }
    if (plan.end) abort(operation, plan.end.state, plan.end.status, nowMs);
    else finish(operation, count, nowMs);
  }
}

function planOf(faults: readonly Fault[], nowMs: number): Plan {
  const failures = new Map<number | string, StatusName>();
  let end: Plan['end'];
  let untilMs: number | undefined;
  for (const fault of faults) {
    if (fault.kind === 'fail-items') {
      for (const item of fault.items ?? []) failures.set(item, fault.code ?? 'INTERNAL');
    } else if (fault.kind === 'operation-failed' || fault.kind === 'operation-cancelled') {
      end ??= {
        state: fault.kind === 'operation-failed' ? 'FAILED' : 'CANCELLED',
        status: fault.code ?? (fault.kind === 'operation-failed' ? 'INTERNAL' : 'CANCELLED'),
        applied: fault.applied ?? 0,
      };
    } else if (fault.kind === 'operation-running') {
      untilMs = Math.max(untilMs ?? -Infinity, fault.untilMs ?? nowMs + (fault.forMs ?? 0));
    }
  }
  return { failures, ...(end ? { end } : {}), ...(untilMs === undefined ? {} : { untilMs }) };
}

function checkBodyParent(body: Decoded, parent: string): void {
  if (!parseQueueName(parent)) throw invalidQueueName();
  if (body.parent !== undefined && body.parent !== parent) {
    throw invalidPayload(
      `parent ('${body.parent as string}') must be the queue in the path ('${parent}').`,
      'parent',
    );
  }
}

function checkCount(count: number, max: number, field: string): void {
  if (count === 0) throw invalidPayload(`${field} is required.`, field);
  if (count > max)
    throw invalidPayload(`At most ${max} ${field} are allowed in one batch; got ${count}.`, field);
}
