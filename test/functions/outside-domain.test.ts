/**
 * The handlers work outside the Functions Framework's per-request domain (docs/architecture.md "The
 * framework's domain"): a real framework server on 127.0.0.1, with probes that say whether a domain is
 * entered where the handler starts and after it awaits.
 */
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import * as ff from '@google-cloud/functions-framework';
import { getTestServer } from '@google-cloud/functions-framework/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { outsideDomain } from '../../functions/outside-domain.js';

const inDomain = (): boolean => Boolean((process as { domain?: unknown }).domain);

/** Where a probe looked: at its start, and after an await. */
interface Seen {
  readonly atStart: boolean;
  readonly afterAwait: boolean;
}

async function probe(): Promise<Seen> {
  const atStart = inDomain();
  await new Promise((resolve) => setTimeout(resolve, 5));
  return { atStart, afterAwait: inDomain() };
}

let server: Server | undefined;
afterEach(async () => {
  await new Promise((resolve) => server?.close(resolve) ?? resolve(undefined));
  server = undefined;
});

let registered = 0;
async function serve(name: string): Promise<string> {
  server = getTestServer(name);
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
}

async function viaHttp(wrap: boolean): Promise<Seen> {
  const name = `domainProbeHttp${++registered}`;
  const handler = async (_req: ff.Request, res: ff.Response) => void res.json(await probe());
  ff.http(name, wrap ? outsideDomain(handler) : handler);
  const response = await fetch(await serve(name), { method: 'POST' });
  return (await response.json()) as Seen;
}

async function viaCloudEvent(wrap: boolean): Promise<Seen> {
  const name = `domainProbeEvent${++registered}`;
  let seen: Seen | undefined;
  const handler = async () => {
    seen = await probe();
  };
  ff.cloudEvent(name, wrap ? outsideDomain(handler) : handler);
  const response = await fetch(await serve(name), {
    method: 'POST',
    headers: {
      'Content-Type': 'application/json',
      'ce-type': 'google.cloud.pubsub.topic.v1.messagePublished',
      'ce-id': '1',
      'ce-source': '//pubsub.googleapis.com/projects/p/topics/t',
      'ce-specversion': '1.0',
    },
    body: JSON.stringify({ message: { data: '' } }),
  });
  expect(response.status).toBe(204);
  return seen!;
}

describe("the framework's per-request domain", () => {
  it('is entered for an HTTP function, and left by one wrapped in outsideDomain', async () => {
    expect(await viaHttp(false)).toEqual({ atStart: true, afterAwait: true });
    expect(await viaHttp(true)).toEqual({ atStart: false, afterAwait: false });
  });

  it('is entered for a CloudEvent function, and left by one wrapped in outsideDomain', async () => {
    expect(await viaCloudEvent(false)).toEqual({ atStart: true, afterAwait: true });
    expect(await viaCloudEvent(true)).toEqual({ atStart: false, afterAwait: false });
  });

  it('is entered again once the wrapped call returns, so the framework leaves it as it entered it', async () => {
    const { create } = await import('node:domain');
    const domain = create();
    const seen = domain.run(() => {
      const inside = outsideDomain(() => inDomain())();
      return { inside, after: (process as { domain?: unknown }).domain === domain };
    });
    expect(seen).toEqual({ inside: false, after: true });
    expect(inDomain()).toBe(false);
  });
});
