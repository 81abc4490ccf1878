/**
 * The demo world for `npm start`: a queue of failed tasks in the emulator, and a target that fails
 * until it is "fixed".
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Seed } from '../emulator/server.js';

export const DEMO_QUEUE = 'projects/demo-project/locations/us-central1/queues/orders';
/** A queue with short retries, whose failed task is at risk of being dropped: the parking demo. */
export const DEMO_EMAILS_QUEUE = 'projects/demo-project/locations/us-central1/queues/emails';
/** Its parking queue, PAUSED (docs/parking.md "Parking queues"); deploy.sh --park creates one in a project. */
export const DEMO_EMAILS_PARKING_QUEUE = `${DEMO_EMAILS_QUEUE}-parked`;

/**
 * A target that answers 503 until POST /fix, then 200; except payment captures, whose payload it refuses
 * (400) whatever the fix: a second kind of failure, which the fix does not cover.
 */
export interface DemoTarget {
  readonly url: string;
  readonly isFixed: () => boolean;
  readonly close: () => Promise<void>;
}

export async function startDemoTarget(port: number): Promise<DemoTarget> {
  let fixed = false;
  const server: Server = createServer((req, res) => {
    req.resume();
    if (req.url === '/fix' && req.method === 'POST') {
      fixed = true;
      res.writeHead(200, { 'Content-Type': 'text/plain' }).end('fixed: tasks will succeed from now on\n');
      return;
    }
    if (req.url?.startsWith('/payments/')) {
      res.writeHead(400, { 'Content-Type': 'text/plain' }).end('invalid payment payload\n');
      return;
    }
    res
      .writeHead(fixed ? 200 : 503, { 'Content-Type': 'text/plain' })
      .end(fixed ? 'ok\n' : 'downstream unavailable\n');
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const { port: listening } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${listening}`,
    isFixed: () => fixed,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/**
 * Twelve tasks that failed ten minutes ago with 503 and wait out a long backoff, two never attempted
 * (scheduled for later on purpose), one in flight: rerun must force the twelve and leave the rest alone.
 * Twelve, so that before the fix the breaker (five verdicts, more than half failed again) holds the rest.
 * Three payment captures failed with 400 (a bad payload): a second failure cluster, which the fix does not
 * cover; their URL carries a token-like segment, which a cluster's signature masks.
 */
export function demoSeed(targetUrl: string, nowMs: number): Seed {
  const at = (offsetMs: number) => new Date(nowMs + offsetMs).toISOString();
  const minute = 60_000;
  /** A task whose attempts all failed, the last `failedAgoMin` minutes ago, due again in `nextInMin`. */
  const failedTask = (
    id: string,
    url: string,
    attempts: number,
    [createdAgoMin, failedAgoMin, nextInMin]: readonly [number, number, number],
    responseStatus: { code: number; message: string },
  ) => ({
    name: `${DEMO_QUEUE}/tasks/${id}`,
    httpRequest: { url, httpMethod: 'POST' as const },
    createTime: at(-createdAgoMin * minute),
    scheduleTime: at(nextInMin * minute),
    dispatchCount: attempts,
    responseCount: attempts,
    firstAttempt: { dispatchTime: at(-(createdAgoMin - 1) * minute) },
    lastAttempt: {
      scheduleTime: at(-failedAgoMin * minute),
      dispatchTime: at(-failedAgoMin * minute),
      responseTime: at(-failedAgoMin * minute + 150),
      responseStatus,
    },
  });
  const failed = Array.from({ length: 12 }, (_, i) =>
    failedTask(`order-${1001 + i}`, `${targetUrl}/orders/${1001 + i}`, 4, [60, 10, 50], {
      code: 14,
      message: 'UNAVAILABLE(14): HTTP status code 503',
    }),
  );
  const refused = Array.from({ length: 3 }, (_, i) =>
    failedTask(
      `payment-${4001 + i}`,
      `${targetUrl}/payments/${4001 + i}/capture/tok_${(9_301_775 * (i + 7)).toString(36)}Xq?attempt=1`,
      3,
      [40, 8, 40],
      { code: 3, message: 'INVALID_ARGUMENT(3): HTTP status code 400' },
    ),
  );
  const later = Array.from({ length: 2 }, (_, i) => ({
    name: `${DEMO_QUEUE}/tasks/report-${2001 + i}`,
    httpRequest: { url: `${targetUrl}/reports/${2001 + i}`, httpMethod: 'POST' as const },
    createTime: at(-5 * minute),
    scheduleTime: at(120 * minute),
  }));
  const inFlight = {
    name: `${DEMO_QUEUE}/tasks/order-3001`,
    httpRequest: { url: `${targetUrl}/orders/3001`, httpMethod: 'POST' as const },
    createTime: at(-30 * minute),
    scheduleTime: at(-1 * minute),
    dispatchCount: 1,
    responseCount: 0,
    firstAttempt: { dispatchTime: at(-1 * minute) },
    lastAttempt: { scheduleTime: at(-1 * minute), dispatchTime: at(-1 * minute) },
  };
  return {
    queues: [
      {
        name: DEMO_QUEUE,
        state: 'RUNNING',
        rateLimits: { maxDispatchesPerSecond: 5, maxConcurrentDispatches: 10 },
        retryConfig: { maxAttempts: 100, minBackoff: '10s', maxBackoff: '3600s', maxDoublings: 16 },
        tasks: [...failed, ...refused, ...later, inFlight],
      },
      {
        name: DEMO_EMAILS_QUEUE,
        state: 'RUNNING',
        retryConfig: { maxAttempts: 5, minBackoff: '60s', maxBackoff: '600s', maxDoublings: 3 },
        tasks: [
          {
            ...failedTask('welcome-5001', `${targetUrl}/emails/5001`, 4, [20, 5, 10], {
              code: 14,
              message: 'UNAVAILABLE(14): HTTP status code 503',
            }),
            name: `${DEMO_EMAILS_QUEUE}/tasks/welcome-5001`,
          },
        ],
      },
      { name: DEMO_EMAILS_PARKING_QUEUE, state: 'PAUSED', tasks: [] },
    ],
  };
}
