/**
 * A real rerunHttp behind the Functions Framework's server on 127.0.0.1, against a real emulator.
 */
import type { AddressInfo } from 'node:net';
import * as ff from '@google-cloud/functions-framework';
import { getTestServer } from '@google-cloud/functions-framework/testing';
import { afterEach } from 'vitest';
import '../../functions/framework-errors.js';
import { rerunHttpHandler } from '../../functions/rerun-http.js';
import { startEmulator, type Emulator, type EmulatorOptions } from '../../emulator/server.js';
import { createRuntime, type Runtime, type RuntimeOptions } from '../../shared/platform/runtime.js';
import { logSink } from './log-sink.js';

let registered = 0;

export interface RerunServer {
  readonly url: string;
  readonly emulator: Emulator;
  readonly runtime: Runtime;
  readonly logs: ReturnType<typeof logSink>;
  /** POSTs a JSON event; answers the status and parsed body. */
  post(body: unknown, headers?: Record<string, string>): Promise<{ status: number; body: any }>;
  close(): Promise<void>;
}

/** Starts an emulator (unless given one) and a rerunHttp configured by `env` on top of test defaults. */
export async function startRerunServer(
  env: Record<string, string>,
  emulatorOptions: EmulatorOptions = {},
  existing?: Emulator,
  runtimeOptions: Omit<RuntimeOptions, 'logDestination'> = {},
): Promise<RerunServer> {
  const emulator =
    existing ??
    (await startEmulator({ port: 0, runTaskQuota: { limit: 6000, windowMs: 60_000 }, ...emulatorOptions }));
  const logs = logSink();
  const runtime = createRuntime(
    {
      RERUN_MAX_RATE: '100',
      RERUN_CONCURRENCY: '8',
      LOG_LEVEL: 'debug',
      CLOUD_TASKS_EMULATOR_HOST: emulator.host,
      ...env,
    },
    { logDestination: logs.stream, ...runtimeOptions },
  );
  const name = `rerunHttpTest${++registered}`;
  ff.http(name, rerunHttpHandler(runtime));
  const server = getTestServer(name);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  let closed: Promise<void> | undefined;
  return {
    url,
    emulator,
    runtime,
    logs,
    async post(body, headers = {}) {
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', ...headers },
        body: typeof body === 'string' ? body : JSON.stringify(body),
      });
      const text = await response.text();
      return { status: response.status, body: text ? JSON.parse(text) : undefined };
    },
    close() {
      // Once: a test may close its server before the file's hook does.
      closed ??= (async () => {
        await new Promise<void>((resolve) => server.close(() => resolve()));
        if (!existing) await emulator.stop();
      })();
      return closed;
    },
  };
}

/**
 * For a test file: `start` starts a server as startRerunServer does, and each server a test started is
 * closed after that test (the hook is registered here).
 */
export function rerunServersPerTest(): { start: typeof startRerunServer } {
  const started: RerunServer[] = [];
  afterEach(async () => {
    await Promise.all(started.splice(0).map((server) => server.close()));
  });
  return {
    async start(...args) {
      const server = await startRerunServer(...args);
      started.push(server);
      return server;
    },
  };
}
