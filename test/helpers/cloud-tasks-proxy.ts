/**
 * A Cloud Tasks that behaves unlike the emulator in one way: a proxy on 127.0.0.1 in front of it, which
 * forwards each call and lets a test change the answer.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One call as the proxy received it, and the emulator's answer to it. */
export interface ProxiedCall {
  readonly method: string;
  readonly url: string;
  readonly body: string;
  readonly status: number;
  readonly text: string;
}

export interface CloudTasksProxy {
  /** For CLOUD_TASKS_EMULATOR_HOST. */
  readonly host: string;
  close(): Promise<void>;
}

/** Forwards every call to `upstream` and answers what `answer` makes of it (its status and JSON text). */
export async function startCloudTasksProxy(
  upstream: string,
  answer: (call: ProxiedCall) => { status: number; text: string },
): Promise<CloudTasksProxy> {
  const proxy = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      void (async () => {
        const body = Buffer.concat(chunks).toString();
        const forwarded = await fetch(`http://${upstream}${request.url}`, {
          method: request.method!,
          headers: { 'content-type': 'application/json' },
          ...(body && { body }),
        });
        const text = await forwarded.text();
        const changed = answer({
          method: request.method!,
          url: request.url!,
          body,
          status: forwarded.status,
          text,
        });
        response.writeHead(changed.status, { 'content-type': 'application/json' });
        response.end(changed.text);
      })();
    });
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  return {
    host: `127.0.0.1:${(proxy.address() as AddressInfo).port}`,
    close: () => new Promise<void>((resolve) => proxy.close(() => resolve())),
  };
}
