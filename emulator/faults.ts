/**
 * Injected faults: API calls answered 429, 503 or 403, held back, or whose connection is reset, at a rate or
 * for named resources, for tests and benchmarks of a client's error handling.
 */

/** The API methods the emulator serves ('Unknown' for anything else). */
export type ApiMethod =
  | 'CreateQueue'
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
  | 'Unknown';

/**
 * A fault to inject. 'reset' destroys the socket without doing the work; 'lost-response' does the work (a
 * RunTask really dispatches) and then destroys the socket instead of answering; 'delay' holds the call
 * `delayMs` real milliseconds before doing the work and answering (a client that gives up first still
 * gets its RunTask dispatched). 429 = RESOURCE_EXHAUSTED, 503 = UNAVAILABLE, 403 = PERMISSION_DENIED, all
 * in Google's error shape.
 */
export interface Fault {
  method: ApiMethod;
  kind: 429 | 503 | 403 | 'reset' | 'lost-response' | 'delay';
  /** For 'delay': how long the call is held, in real milliseconds. */
  delayMs?: number;
  /** Probability 0..1 per matching call (default 1). */
  rate?: number;
  /**
   * Only calls about these resources: a queue name hits that queue's GetQueue and ListTasks (and the calls
   * on its tasks), a task name the calls on that task. Default: every resource.
   */
  resources?: string[];
  /** @deprecated The old name of `resources`. */
  tasks?: string[];
  /** How many calls it hits, then it is spent (default unlimited). */
  times?: number;
}

/** The faults in force, matched in the order they were injected. */
export class Faults {
  #faults: Array<{ fault: Fault; left: number }> = [];

  constructor(private readonly random: () => number = Math.random) {}

  /**
   * Adds a fault.
   * @throws Error naming the field when `delayMs`, `rate` or `times` is out of range.
   */
  add(fault: Fault): void {
    const { kind, delayMs, rate, times } = fault;
    if (kind === 'delay' && !(typeof delayMs === 'number' && delayMs >= 0))
      throw new Error(`fault.delayMs must be a number of milliseconds >= 0 for a 'delay' fault`);
    if (rate !== undefined && !(rate >= 0 && rate <= 1))
      throw new Error('fault.rate must be between 0 and 1');
    if (times !== undefined && !(Number.isInteger(times) && times >= 0))
      throw new Error('fault.times must be a whole number >= 0');
    this.#faults.push({ fault, left: times ?? Infinity });
  }

  clear(): void {
    this.#faults = [];
  }

  /** The fault that hits this call, if any; each hit uses up one of its `times`. */
  take(method: ApiMethod, name: string): Fault | undefined {
    for (const entry of this.#faults) {
      const { fault } = entry;
      if (entry.left <= 0 || fault.method !== method) continue;
      const resources = fault.resources ?? fault.tasks;
      if (resources && !resources.some((r) => name === r || name.startsWith(`${r}/`))) continue;
      if (this.random() >= (fault.rate ?? 1)) continue;
      entry.left--;
      return fault;
    }
    return undefined;
  }
}
