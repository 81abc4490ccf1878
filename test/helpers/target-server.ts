/**
 * A tiny real HTTP target on 127.0.0.1 (port 0) for tasks to be dispatched to: it records every request and
 * answers with the status its `respond` function scripts (default 200).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach } from 'vitest';

/** One request the target received. */
export interface TargetRequest {
  path: string;
  method: string;
  /** Lower-cased header names, as node:http gives them. */
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** Decides the HTTP status of an answer; a promise that never settles leaves the request hanging. */
export type Respond = (request: TargetRequest) => number | Promise<number>;

/** A running target. */
export interface Target {
  /** `http://127.0.0.1:PORT` */
  readonly url: string;
  /** Every request received, in arrival order. */
  readonly requests: TargetRequest[];
  /** Replaces how the target answers from now on. */
  setRespond(respond: Respond): void;
  /** Closes the target, cutting any request still hanging. */
  stop(): Promise<void>;
}

/** Starts a target. */
export async function startTarget(options: { respond?: Respond } = {}): Promise<Target> {
  let respond: Respond = options.respond ?? (() => 200);
  const requests: TargetRequest[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const request: TargetRequest = {
        path: req.url ?? '/',
        method: req.method ?? 'GET',
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
      };
      requests.push(request);
      Promise.resolve()
        .then(() => respond(request))
        .then(
          (status) => res.writeHead(status, { 'Content-Type': 'text/plain' }).end(String(status)),
          () => res.writeHead(500).end('respond failed'),
        )
        .catch(() => res.destroy());
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    setRespond: (next) => {
      respond = next;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * For a test file: a target started before each of its tests and stopped after it (the hooks are registered
 * here). What it returns stands for the running test's target.
 */
export function targetPerTest(options: { respond?: Respond } = {}): Target {
  let current: Target | undefined;
  beforeEach(async () => {
    current = await startTarget(options);
  });
  afterEach(async () => {
    await current?.stop();
    current = undefined;
  });
  const running = (): Target => {
    if (!current) throw new Error('the target runs only while a test does');
    return current;
  };
  return {
    get url() {
      return running().url;
    },
    get requests() {
      return running().requests;
    },
    setRespond: (respond) => running().setRespond(respond),
    stop: () => running().stop(),
  };
}
