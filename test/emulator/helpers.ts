/** Shared bits of the emulator tests: Google's own client pointed at an emulator, and raw REST calls. */
import { CloudTasksClient, v2beta3 } from '@google-cloud/tasks';
import { PassThroughClient } from 'google-auth-library';
import type { Emulator } from '../../emulator/server.js';

export const PROJECT = 'my-project';
export const LOCATION = `projects/${PROJECT}/locations/us-central1`;
export const queueName = (id: string) => `${LOCATION}/queues/${id}`;
export const taskName = (queue: string, id: string) => `${queueName(queue)}/tasks/${id}`;

/** Google's client in REST fallback mode, unchanged, against the emulator. */
export function googleClient(emulator: Emulator): CloudTasksClient {
  return new CloudTasksClient({
    fallback: true,
    apiEndpoint: '127.0.0.1',
    port: Number(emulator.host.split(':')[1]),
    protocol: 'http',
    authClient: new PassThroughClient(),
  });
}

/**
 * Google's v2beta3 client in REST fallback mode, unchanged, against the emulator. `fallback: 'rest'` (not
 * `true`): only then does the client give its operations client Cloud Tasks' own operations.get path under
 * /v2beta3; with `true` it polls the generic `/v1/operations/...`, which Cloud Tasks does not serve.
 */
export function googleBetaClient(emulator: Emulator): v2beta3.CloudTasksClient {
  return new v2beta3.CloudTasksClient({
    fallback: 'rest',
    apiEndpoint: '127.0.0.1',
    port: Number(emulator.host.split(':')[1]),
    protocol: 'http',
    authClient: new PassThroughClient(),
  });
}

/** A raw REST call; answers the status and parsed JSON body. */
export async function rest(
  emulator: Emulator,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: any }> {
  const init: RequestInit = { method, headers: { 'Content-Type': 'application/json' } };
  if (body !== undefined) init.body = typeof body === 'string' ? body : JSON.stringify(body);
  const response = await fetch(`${emulator.url}/v2/${path}`, init);
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined };
}

/** The gRPC code and message of the error a call of Google's client rejects with. */
export async function codeOf(call: Promise<unknown>): Promise<{ code: number; message: string }> {
  try {
    await call;
  } catch (err) {
    const { code, message } = err as { code: number; message: string };
    return { code, message };
  }
  throw new Error('the call succeeded');
}

/** A schedule time an hour from now, as Google's client takes a Timestamp. */
export const inAnHour = () => ({ seconds: Math.floor(Date.now() / 1000) + 3600 });
