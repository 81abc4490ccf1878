/**
 * Injected faults: API calls answered 429, 503 or 403, or whose connection is reset, at a rate or for named
 * resources, for tests and benchmarks of a client's error handling.
 */

/** The API methods the emulator serves ('Unknown' for anything else). */
export type ApiMethod =
  | 'CreateQueue'
  | 'GetQueue'
  | 'ListQueues'
  | 'PauseQueue'
  | 'ResumeQueue'
  | 'DeleteQueue'
  | 'CreateTask'
  | 'GetTask'
  | 'ListTasks'
  | 'DeleteTask'
  | 'RunTask'
  | 'Unknown';

/**
 * A fault to inject. 'reset' destroys the socket without doing the work; 'lost-response' does the work (a
 * RunTask really dispatches) and then destroys the socket instead of answering. 429 = RESOURCE_EXHAUSTED,
 * 503 = UNAVAILABLE, 403 = PERMISSION_DENIED, all in Google's error shape.
 */
export interface Fault {
  method: ApiMethod;
  kind: 429 | 503 | 403 | 'reset' | 'lost-response';
  /** Probability 0..1 per matching call (default 1). */
  rate?: number;
  /** Only calls on these resource names. */
  tasks?: string[];
  /** How many calls it hits, then it is spent (default unlimited). */
  times?: number;
}

/** The faults in force, matched in the order they were injected. */
export class Faults {
  #faults: Array<{ fault: Fault; left: number }> = [];

  constructor(private readonly random: () => number = Math.random) {}

  add(fault: Fault): void {
    this.#faults.push({ fault, left: fault.times ?? Infinity });
  }

  clear(): void {
    this.#faults = [];
  }

  /** The fault that hits this call, if any; each hit uses up one of its `times`. */
  take(method: ApiMethod, name: string): Fault | undefined {
    for (const entry of this.#faults) {
      const { fault } = entry;
      if (entry.left <= 0 || fault.method !== method) continue;
      if (fault.tasks && !fault.tasks.includes(name)) continue;
      if (this.random() >= (fault.rate ?? 1)) continue;
      entry.left--;
      return fault;
    }
    return undefined;
  }
}
