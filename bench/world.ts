/**
 * The bench's world: queues of tasks in the states the product cares about, and a task target that answers
 * at once. Times are relative to the emulator's clock at load time ("-10m", "+2h").
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Seed, SeedTask } from '../emulator/server.js';

export const PROJECT = 'bench-project';
export const LOCATION = 'us-central1';

export const queueName = (id: string, project = PROJECT) =>
  `projects/${project}/locations/${LOCATION}/queues/${id}`;

/** A task target: answers 200 with no body, so a dispatched task succeeds and leaves its queue. */
export interface Target {
  readonly url: string;
  readonly hits: () => number;
  close(): Promise<void>;
}

export async function startTarget(): Promise<Target> {
  let hits = 0;
  const server = createServer((req, res) => {
    hits++;
    req.resume();
    req.on('end', () => res.writeHead(200, { 'Content-Length': '0' }).end());
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    hits: () => hits,
    close: () =>
      new Promise<void>((done) => {
        server.closeAllConnections();
        server.close(() => done());
      }),
  };
}

/**
 * A task whose last attempt failed with 503 `dispatchedAgo` ago and whose next attempt is an hour away: a
 * rerun candidate (when its URL matches and the attempt is before the cutoff).
 */
export function failedTask(queue: string, id: string, url: string, dispatchedAgo = '10m'): SeedTask {
  return {
    name: `${queue}/tasks/${id}`,
    httpRequest: { url, httpMethod: 'POST' },
    createTime: '-2h',
    scheduleTime: '+1h',
    dispatchCount: 4,
    responseCount: 4,
    firstAttempt: { dispatchTime: '-119m' },
    lastAttempt: {
      scheduleTime: `-${dispatchedAgo}`,
      dispatchTime: `-${dispatchedAgo}`,
      responseTime: `-${dispatchedAgo}`,
      responseStatus: { code: 14, message: 'UNAVAILABLE(14): HTTP status code 503' },
    },
  };
}

/** A task scheduled for later on purpose, never attempted. */
export function laterTask(queue: string, id: string, url: string): SeedTask {
  return {
    name: `${queue}/tasks/${id}`,
    httpRequest: { url, httpMethod: 'POST' },
    createTime: '-5m',
    scheduleTime: '+2h',
  };
}

/** A queue whose rate limits are above anything the bench asks for, so only rerun's own pacing counts. */
export function benchQueue(name: string, tasks: SeedTask[]): Seed {
  return {
    queues: [
      {
        name,
        state: 'RUNNING',
        rateLimits: { maxDispatchesPerSecond: 500, maxConcurrentDispatches: 1000 },
        retryConfig: { maxAttempts: 100, minBackoff: '10s', maxBackoff: '3600s', maxDoublings: 16 },
        tasks,
      },
    ],
  };
}

/** `count` failed candidates on `${target}/orders/`. */
export function failedQueue(name: string, count: number, target: string, prefix = 'order'): Seed {
  return benchQueue(
    name,
    Array.from({ length: count }, (_, i) => failedTask(name, `${prefix}-${i}`, `${target}/orders/${i}`)),
  );
}

/**
 * A large queue, mostly not matching a `urlPrefix: <target>/orders/` fix-deployed event with a cutoff 5
 * minutes ago: 1% candidates (failed on /orders/ 10 minutes ago), 1% matched but skipped (failed on
 * /orders/ 2 minutes ago: after the cutoff), the rest on /reports/ (half failed, half never attempted).
 */
export function scanQueue(name: string, size: number, target: string): Seed {
  const tasks: SeedTask[] = [];
  for (let i = 0; i < size; i++) {
    const slot = i % 100;
    if (slot === 0) tasks.push(failedTask(name, `order-${i}`, `${target}/orders/${i}`));
    else if (slot === 1) tasks.push(failedTask(name, `order-${i}`, `${target}/orders/${i}`, '2m'));
    else if (slot % 2 === 0) tasks.push(failedTask(name, `report-${i}`, `${target}/reports/${i}`));
    else tasks.push(laterTask(name, `report-${i}`, `${target}/reports/${i}`));
  }
  return benchQueue(name, tasks);
}
