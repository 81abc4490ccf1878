/**
 * Injected faults: API calls answered 429, 503 or 403, held back, or whose connection is reset, at a rate or
 * for named resources, for tests and benchmarks of a client's error handling; and, for the batch methods,
 * items that fail and operations that end FAILED or CANCELLED or keep running.
 */
import { CANONICAL_CODES, type StatusName } from './errors.js';

/** The API methods the emulator serves ('Unknown' for anything else). */
export type ApiMethod =
  | 'CreateQueue'
  | 'UpdateQueue'
  | 'GetQueue'
  | 'ListQueues'
  | 'PauseQueue'
  | 'ResumeQueue'
  | 'DeleteQueue'
  | 'TestIamPermissions'
  | 'CreateTask'
  | 'GetTask'
  | 'ListTasks'
  | 'DeleteTask'
  | 'RunTask'
  | 'BatchCreateTasks'
  | 'BatchDeleteTasks'
  | 'GetOperation'
  | 'Unknown';

/** The fault kinds that shape a batch call's operation; they stack with each other and with one other kind. */
export type BatchFaultKind = 'fail-items' | 'operation-failed' | 'operation-cancelled' | 'operation-running';

const BATCH_KINDS: ReadonlySet<Fault['kind']> = new Set<BatchFaultKind>([
  'fail-items',
  'operation-failed',
  'operation-cancelled',
  'operation-running',
]);

/**
 * A fault to inject. 'reset' destroys the socket without doing the work; 'lost-response' does the work (a
 * RunTask really dispatches) and then destroys the socket instead of answering; 'delay' holds the call
 * `delayMs` real milliseconds before doing the work and answering (a client that gives up first still
 * gets its RunTask dispatched); 'late-landing' destroys the socket at once and does the work `delayMs` real
 * milliseconds later (a create whose answer was lost lands after the caller has moved on). 429 =
 * RESOURCE_EXHAUSTED, 400 = INVALID_ARGUMENT (as an expired page token is answered), 500 = INTERNAL, 503 = UNAVAILABLE, 403 = PERMISSION_DENIED, all in Google's error shape.
 * 404 stands for a method this API surface does not have: NOT_FOUND `Method not found.` in Google's error
 * shape, as Google's front end answers a path that no method serves; 501 for one a stand-in does not
 * implement (UNIMPLEMENTED).
 *
 * Batch kinds (BatchCreateTasks, BatchDeleteTasks only): 'fail-items' fails the chosen `items` with `code`;
 * 'operation-failed' ends the operation FAILED with `code` (default INTERNAL) after applying the first
 * `applied` items; 'operation-cancelled' (BatchCreateTasks) ends it CANCELLED the same way;
 * 'operation-running' keeps it `done: false` and does its work once the emulator clock reaches `untilMs`, or
 * `forMs` after the call.
 */
export interface Fault {
  method: ApiMethod;
  kind:
    | 400
    | 404
    | 429
    | 500
    | 501
    | 503
    | 403
    | 'reset'
    | 'lost-response'
    | 'late-landing'
    | 'delay'
    | BatchFaultKind;
  /**
   * For 'delay': how long the call is held, in real milliseconds. For 'late-landing': how long after its
   * answer was lost (the socket destroyed at once) the call's work is done.
   */
  delayMs?: number;
  /** For 'fail-items': the items, by index in the request or by task name. */
  items?: Array<number | string>;
  /** For 'fail-items' (required) and 'operation-failed': the canonical code, such as 'NOT_FOUND'. */
  code?: StatusName;
  /** For 'operation-failed' and 'operation-cancelled': how many items, in request order, were applied. */
  applied?: number;
  /** For 'operation-running': the emulator clock time (ms since the epoch) at which the operation ends. */
  untilMs?: number;
  /** For 'operation-running', instead of `untilMs`: how long after the call (emulator clock ms) it ends. */
  forMs?: number;
  /** Probability 0..1 per matching call (default 1). */
  rate?: number;
  /**
   * Only calls about these resources: a queue name hits that queue's GetQueue and ListTasks (and the calls
   * on its tasks), a task name the calls on that task. Default: every resource.
   */
  resources?: string[];
  /** @deprecated The old name of `resources`. */
  tasks?: string[];
  /**
   * For an error kind (400 to 503): the call's work is done first, then the error answered, as a server
   * error that comes after the change was made.
   */
  afterWork?: boolean;
  /** How many calls it hits, then it is spent (default unlimited). */
  times?: number;
  /** How many matching calls it lets through before it hits (default 0): `after: 1` on ListTasks hits page 2. */
  after?: number;
}

/** The faults in force, matched in the order they were injected. */
export class Faults {
  #faults: Array<{ fault: Fault; left: number; passLeft: number }> = [];

  constructor(private readonly random: () => number = Math.random) {}

  /**
   * Adds a fault.
   * @throws Error naming the field when `delayMs`, `rate` or `times` is out of range.
   */
  add(fault: Fault): void {
    const { kind, delayMs, rate, times } = fault;
    if ((kind === 'delay' || kind === 'late-landing') && !(typeof delayMs === 'number' && delayMs >= 0))
      throw new Error(`fault.delayMs must be a number of milliseconds >= 0 for a '${kind}' fault`);
    if (rate !== undefined && !(rate >= 0 && rate <= 1))
      throw new Error('fault.rate must be between 0 and 1');
    if (times !== undefined && !(Number.isInteger(times) && times >= 0))
      throw new Error('fault.times must be a whole number >= 0');
    if (fault.after !== undefined && !(Number.isInteger(fault.after) && fault.after >= 0))
      throw new Error('fault.after must be a whole number >= 0');
    if (BATCH_KINDS.has(kind)) checkBatchFault(fault);
    this.#faults.push({ fault, left: times ?? Infinity, passLeft: fault.after ?? 0 });
  }

  clear(): void {
    this.#faults = [];
  }

  /** The fault (not a batch kind) that hits this call, if any; each hit uses up one of its `times`. */
  take(method: ApiMethod, name: string): Fault | undefined {
    return this.#hits(method, name, false, true)[0];
  }

  /** Every batch-kind fault that hits this call; each hit uses up one of its `times`. */
  takeBatch(method: ApiMethod, name: string): Fault[] {
    return this.#hits(method, name, true, false);
  }

  #hits(method: ApiMethod, name: string, batch: boolean, firstOnly: boolean): Fault[] {
    const hits: Fault[] = [];
    for (const entry of this.#faults) {
      const { fault } = entry;
      if (entry.left <= 0 || fault.method !== method || BATCH_KINDS.has(fault.kind) !== batch) continue;
      const resources = fault.resources ?? fault.tasks;
      if (resources && !resources.some((r) => name === r || name.startsWith(`${r}/`))) continue;
      if (entry.passLeft > 0) {
        entry.passLeft--;
        continue;
      }
      if (this.random() >= (fault.rate ?? 1)) continue;
      entry.left--;
      hits.push(fault);
      if (firstOnly) break;
    }
    return hits;
  }
}

function checkBatchFault({ method, kind, items, code, applied, untilMs, forMs }: Fault): void {
  if (method !== 'BatchCreateTasks' && method !== 'BatchDeleteTasks')
    throw new Error(`fault.method must be BatchCreateTasks or BatchDeleteTasks for a '${kind}' fault`);
  if (kind === 'operation-cancelled' && method !== 'BatchCreateTasks')
    throw new Error("fault.method must be BatchCreateTasks for an 'operation-cancelled' fault");
  if (code !== undefined && !(code in CANONICAL_CODES && code !== 'OK'))
    throw new Error('fault.code must be a canonical code name other than OK, such as NOT_FOUND');
  if (applied !== undefined && !(Number.isInteger(applied) && applied >= 0))
    throw new Error('fault.applied must be a whole number >= 0');
  if (kind === 'fail-items') {
    const valid = (item: unknown) =>
      (typeof item === 'number' && Number.isInteger(item) && item >= 0) || typeof item === 'string';
    if (!Array.isArray(items) || items.length === 0 || !items.every(valid))
      throw new Error("fault.items must list request indexes or task names for a 'fail-items' fault");
    if (code === undefined) throw new Error("fault.code is required for a 'fail-items' fault");
  }
  if (kind !== 'operation-running') return;
  const isTime = (ms: unknown) => typeof ms === 'number' && Number.isFinite(ms) && ms >= 0;
  if ((untilMs === undefined) === (forMs === undefined) || !isTime(untilMs ?? forMs))
    throw new Error(
      "fault.untilMs or fault.forMs (one of them, ms >= 0) is required for an 'operation-running' fault",
    );
}
