/** Seed builders: tasks in the states the safety rules care about, relative to `now`. */
export const PROJECT = 'test-project';
export const queueName = (id: string) => `projects/${PROJECT}/locations/us-central1/queues/${id}`;

const MINUTE = 60_000;

export interface SeedTaskOptions {
  /** Offset of the last attempt's dispatch from now (default 10 minutes ago). */
  dispatchedMs?: number;
  /** Offset of the next attempt from now (default in an hour). */
  nextMs?: number;
  httpStatus?: number;
  attempts?: number;
  url?: string;
  headers?: Record<string, string>;
  body?: string;
}

/** A task whose last attempt failed and that waits out a long backoff: a rerun candidate. */
export function failedTask(queue: string, id: string, targetUrl: string, options: SeedTaskOptions = {}) {
  const now = Date.now();
  const at = (offset: number) => new Date(now + offset).toISOString();
  const dispatched = options.dispatchedMs ?? -10 * MINUTE;
  const status = options.httpStatus ?? 500;
  const attempts = options.attempts ?? 3;
  return {
    name: `${queue}/tasks/${id}`,
    httpRequest: {
      url: options.url ?? `${targetUrl}/work/${id}`,
      httpMethod: 'POST' as const,
      ...(options.headers && { headers: options.headers }),
      ...(options.body !== undefined && { body: Buffer.from(options.body).toString('base64') }),
    },
    createTime: at(-60 * MINUTE),
    scheduleTime: at(options.nextMs ?? 60 * MINUTE),
    dispatchCount: attempts,
    responseCount: attempts,
    firstAttempt: { dispatchTime: at(-59 * MINUTE) },
    lastAttempt: {
      scheduleTime: at(dispatched),
      dispatchTime: at(dispatched),
      responseTime: at(dispatched + 200),
      responseStatus: {
        code: status === 503 ? 14 : status === 404 ? 5 : 13,
        message: `${status === 503 ? 'UNAVAILABLE(14)' : status === 404 ? 'NOT_FOUND(5)' : 'INTERNAL(13)'}: HTTP status code ${status}`,
      },
    },
  };
}

/** A task scheduled for later on purpose, never attempted. */
export function laterTask(queue: string, id: string, targetUrl: string) {
  return {
    name: `${queue}/tasks/${id}`,
    httpRequest: { url: `${targetUrl}/work/${id}`, httpMethod: 'POST' as const },
    scheduleTime: new Date(Date.now() + 120 * MINUTE).toISOString(),
  };
}

/** A task whose last attempt was dispatched a minute ago and has not answered. */
export function inFlightTask(queue: string, id: string, targetUrl: string) {
  const at = new Date(Date.now() - MINUTE).toISOString();
  return {
    name: `${queue}/tasks/${id}`,
    httpRequest: { url: `${targetUrl}/work/${id}`, httpMethod: 'POST' as const },
    scheduleTime: at,
    dispatchCount: 1,
    responseCount: 0,
    firstAttempt: { dispatchTime: at },
    lastAttempt: { scheduleTime: at, dispatchTime: at },
  };
}

/** A control queue as deploy.sh makes it: one dispatch a second, eight at once, never giving a task up. */
export function controlQueue(name: string) {
  return {
    name,
    rateLimits: { maxDispatchesPerSecond: 1, maxConcurrentDispatches: 8 },
    retryConfig: { maxAttempts: -1, minBackoff: '1s', maxBackoff: '10s', maxDoublings: 3 },
    tasks: [],
  };
}

/** The control queue of tests that run with one. */
export const CONTROL = queueName('rerun-control');

/** A control queue's settings, as deploy.sh gives them (tests deliver its tasks themselves). */
export const CONTROL_ENV = {
  RERUN_CONTROL_QUEUE: CONTROL,
  RERUN_SELF_URL: 'https://rerun-http.example.run.app/',
  RERUN_INVOKER_SA: `rerun-invoker@${PROJECT}.iam.gserviceaccount.com`,
};
