/**
 * Bad input gets a 4xx naming the field, never a 5xx (docs/events.md "Bad input"): a body nested
 * thousands of levels deep, 10,000 seeded fuzzed bodies, and an unexpected answer from Cloud Tasks to
 * redrive's permission check, which gets an error naming the queue and the answer.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startEmulator, type Emulator } from '../../emulator/server.js';
import { startRerunServer, type RerunServer } from '../helpers/rerun-server.js';
import { PROJECT, queueName } from '../helpers/seeds.js';

const ORDERS = queueName('orders');
const BILLING = queueName('billing');
const CONTROL = queueName('rerun-control');

let emulator: Emulator | undefined;
let server: RerunServer | undefined;
let proxy: http.Server | undefined;

afterEach(async () => {
  await server?.close();
  await emulator?.stop();
  if (proxy) await new Promise((resolve) => proxy?.close(resolve));
  server = emulator = proxy = undefined;
});

const CONTROL_ENV = {
  RERUN_CONTROL_QUEUE: CONTROL,
  RERUN_SELF_URL: 'http://127.0.0.1:9/rerun',
  RERUN_INVOKER_SA: `rerun-invoker@${PROJECT}.iam.gserviceaccount.com`,
};

async function start(env: Record<string, string> = {}, emulatorHost?: string): Promise<RerunServer> {
  emulator = await startEmulator({ port: 0 });
  emulator.load({
    queues: [
      { name: ORDERS, tasks: [] },
      { name: CONTROL, tasks: [] },
    ],
  });
  server = await startRerunServer(
    {
      RERUN_QUEUES: `${ORDERS},${BILLING}`,
      RERUN_TIME_BUDGET: '3s',
      LOG_LEVEL: 'warn',
      ...CONTROL_ENV,
      ...(emulatorHost && { CLOUD_TASKS_EMULATOR_HOST: emulatorHost }),
      ...env,
    },
    {},
    emulator,
  );
  return server;
}

async function postRaw(url: string, body: string, headers: Record<string, string> = {}) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...headers },
    body,
  });
  const text = await response.text();
  return { status: response.status, text };
}

const nested = (depth: number, leaf = '"x"') => `${'['.repeat(depth)}${leaf}${']'.repeat(depth)}`;

describe('a body nested thousands of levels deep', () => {
  it.each([
    ['queues', `{"kind":"fix-deployed","queues":${nested(5000)}}`, 'queues[0]'],
    ['queues, without a kind', `{"queues":${nested(5000)}}`, 'kind'],
    ['match', `{"kind":"sweep","match":{"taskIds":${nested(8000)}}}`, 'match.taskIds[0]'],
  ])('in %s is answered 400 naming the field', async (_, body, field) => {
    const s = await start();
    const answer = await postRaw(s.url, body);
    expect(answer.status).toBe(400);
    const error = JSON.parse(answer.text).error;
    expect(error.details[0].fieldViolations.map((v: { field: string }) => v.field)).toContain(field);
  });
});

describe('a bad value, and unknown fields (docs/events.md "Bad input")', () => {
  const fromControlQueue = { 'X-CloudTasks-TaskName': 'c1', 'X-CloudTasks-QueueName': 'rerun-control' };
  const push = (event: unknown) => ({
    message: {
      data: Buffer.from(JSON.stringify(event)).toString('base64'),
      messageId: '5500001',
      publishTime: new Date().toISOString(),
    },
    subscription: `projects/${PROJECT}/subscriptions/rerun-push`,
  });

  it('a value is named by its field in every answer and log line, never echoed', async () => {
    const s = await start();
    const event = { kind: 'tasks', tasks: [`${ORDERS}/tasks/t1`], verify: 'card=4111111111111111' };
    const direct = await s.post(event);
    expect(direct.status).toBe(400);
    expect(direct.body.error.message).toBe(
      'invalid event: ✖ not a duration like 30s, 10m or 2h\n  → at verify',
    );
    expect(direct.body.error.details[0].fieldViolations).toEqual([
      { field: 'verify', description: 'invalid value' },
    ]);
    const dropped = await s.post(event, fromControlQueue);
    expect(dropped).toMatchObject({ status: 200, body: { dropped: { reason: 'INVALID_EVENT' } } });
    expect(dropped.body.dropped.message).toMatch(/→ at verify$/);
    expect((await s.post(push(event))).status).toBe(204);

    const lines = s.logs.lines();
    expect(lines.map((line) => line.message)).toEqual([
      'invalid event rejected',
      'invalid event rejected',
      'control task dropped: it can never be carried out',
      'message rejected; acknowledged without a rerun',
    ]);
    for (const line of lines) expect(JSON.stringify(line)).toMatch(/\bverify\b/);
    expect(JSON.stringify([direct.body, dropped.body])).not.toContain('4111111111111111');
    expect(s.logs.text()).not.toContain('4111111111111111');
  });

  it('unknown fields: each name clipped to 64 characters, at most 20 named; every line stays small', async () => {
    const s = await start();
    // 500 keys of 1,000 characters: half a megabyte of names.
    const keys = Array.from({ length: 500 }, (_, i) => `${String(i).padStart(3, '0')}${'k'.repeat(997)}`);
    const event = { kind: 'sweep', ...Object.fromEntries(keys.map((key) => [key, 1])) };
    const direct = await s.post(event);
    expect(direct.status).toBe(400);
    const fields = direct.body.error.details[0].fieldViolations.map((v: { field: string }) => v.field);
    expect(fields).toHaveLength(20);
    expect(fields[0]).toBe(`000${'k'.repeat(60)}…`);
    expect(direct.body.error.message).toMatch(/✖ unknown field\n {2}→ at 000k+…\n/);
    expect(direct.body.error.message).toMatch(/✖ and 480 more$/);
    expect(JSON.stringify(direct.body).length).toBeLessThan(8_000);
    expect((await s.post(push(event))).status).toBe(204);
    const lines = s.logs.text().trim().split('\n');
    expect(lines).toHaveLength(2);
    for (const line of lines) expect(line.length).toBeLessThan(8_000);
  });
});

describe('10,000 fuzzed bodies', () => {
  it('get no 5xx', async () => {
    const s = await start();
    const random = mulberry32(20261205);
    const bodies = Array.from({ length: 10_000 }, () => fuzzedDelivery(random));
    const fives: string[] = [];
    const statuses = new Map<number, number>();
    let next = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < bodies.length) {
          const { body, headers } = bodies[next++]!;
          const { status, text } = await postRaw(s.url, body, headers);
          statuses.set(status, (statuses.get(status) ?? 0) + 1);
          if (status >= 500) fives.push(`${status} ${text.slice(0, 200)} <- ${body.slice(0, 200)}`);
        }
      }),
    );
    expect({ fiveXX: fives.length, first: fives.slice(0, 3) }).toEqual({ fiveXX: 0, first: [] });
    // The fuzz reaches past validation: some bodies ran, some were refused, most were bad input.
    expect(statuses.get(200) ?? 0).toBeGreaterThan(100);
    expect(statuses.get(400) ?? 0).toBeGreaterThan(1000);
  }, 120_000);
});

describe("an unexpected answer to redrive's permission check", () => {
  /** A real proxy in front of the emulator that answers testIamPermissions with `status`. */
  async function proxied(target: () => Emulator | undefined, code: number, status: string) {
    proxy = http.createServer((req, res) => {
      if (req.url?.includes(':testIamPermissions')) {
        req.resume();
        res.writeHead(code, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ error: { code, status, message: `${status} from the proxy` } }));
        return;
      }
      const upstream = new URL(target()!.url);
      const forward = http.request(
        {
          host: upstream.hostname,
          port: upstream.port,
          path: req.url,
          method: req.method,
          headers: req.headers,
        },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      req.pipe(forward);
    });
    await new Promise<void>((resolve) => proxy!.listen(0, '127.0.0.1', resolve));
    return `127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  }

  it('NOT_FOUND: the queue is reported gone, naming the queue and the answer; not 500', async () => {
    const host = await proxied(() => emulator, 404, 'NOT_FOUND');
    const s = await start({ CLOUD_TASKS_EMULATOR_HOST: host });
    const answer = await s.post({ kind: 'fix-deployed', queues: [BILLING], mode: 'redrive' });
    // As any queue that no longer exists: its row says so, and nothing was created or deleted.
    expect(answer.status).toBe(200);
    expect(answer.body.queues).toMatchObject([{ queue: BILLING, complete: false }]);
    expect(answer.body.queues[0].error).toContain('NOT_FOUND');
    expect(answer.body.counts.redriven).toBe(0);
  });

  it.each([
    [500, 'INTERNAL'],
    [400, 'FAILED_PRECONDITION'],
  ])('%i %s: an error naming the queue and the answer; not 500 "internal error"', async (code, status) => {
    const host = await proxied(() => emulator, code, status);
    const s = await start({ CLOUD_TASKS_EMULATOR_HOST: host });
    const answer = await s.post({ kind: 'fix-deployed', queues: [ORDERS], mode: 'redrive' });
    // Nothing was created or deleted: safe to call again, as when Cloud Tasks is unreachable.
    expect(answer.status).toBe(503);
    expect(answer.body.error.message).toContain(ORDERS);
    expect(answer.body.error.message).toContain(status);
  });
});

// ---- the fuzzer ----------------------------------------------------------------------------------------

type Random = () => number;

const pick = <T>(random: Random, items: readonly T[]): T => items[Math.floor(random() * items.length)]!;

const KINDS = [
  'fix-deployed',
  'failure-alert',
  'sweep',
  'tasks',
  'status',
  'cancel',
  'Sweep',
  '',
  'first-cutoff',
];
const FIELDS = [
  'kind',
  'queues',
  'deployedAt',
  'match',
  'service',
  'revision',
  'since',
  'until',
  'tasks',
  'cutoff',
  'reason',
  'requestId',
  'mode',
  'dryRun',
  'maxTasks',
  'force',
  'lastAttempts',
  'canary',
  'verify',
  'breaker',
  'minBackoffLeft',
  'maxRate',
  'message',
  'subscription',
  '__proto__',
  'constructor',
];
const MATCH_FIELDS = [
  'taskIds',
  'taskIdGlob',
  'urlPrefix',
  'responseCodes',
  'minAttempts',
  'maxAttempts',
  'failedSince',
  'failedUntil',
  'createdBefore',
  'createdAfter',
];

/** A value from the shapes the schema meets: right, nearly right, and wrong. */
function value(random: Random, depth: number): unknown {
  const roll = random();
  // Deep nesting is spliced in as text: JSON.stringify itself would overflow the stack.
  if (roll < 0.02) return `@@deep:${Math.floor(random() * 6000) + 1}@@`;
  if (depth > 3 || roll < 0.5) {
    return pick(random, [
      ORDERS,
      BILLING,
      `${ORDERS}/tasks/t1`,
      `${queueName('secret')}/tasks/t1`,
      'projects/../locations/x/queues/y',
      new Date(Date.now() - random() * 1e9).toISOString(),
      new Date(Date.now() + random() * 1e9).toISOString(),
      '0000-01-01T00:00:00Z',
      '9999-12-31T23:59:59.999Z',
      '2026-02-30T00:00:00Z',
      '30s',
      '0ms',
      '99999999999999999999h',
      '1e400s',
      '-5s',
      'redrive',
      'run',
      'UNAVAILABLE',
      '*',
      'a'.repeat(Math.floor(random() * 3000)),
      '\u0000\ud800',
      '',
      0,
      -1,
      1,
      0.5,
      1e308,
      -1e308,
      2 ** 53 + 1,
      503,
      true,
      false,
      null,
    ]);
  }
  if (roll < 0.75) return Array.from({ length: Math.floor(random() * 4) }, () => value(random, depth + 1));
  const record: Record<string, unknown> = {};
  const keys = random() < 0.5 ? MATCH_FIELDS : ['count', 'wait', 'maxFailedAgain', 'minVerdicts', 'x'];
  for (let i = Math.floor(random() * 4); i > 0; i--) record[pick(random, keys)] = value(random, depth + 1);
  return record;
}

function event(random: Random): Record<string, unknown> {
  const body: Record<string, unknown> = { kind: pick(random, KINDS) };
  for (let i = Math.floor(random() * 5); i > 0; i--) {
    const field = pick(random, FIELDS);
    Object.defineProperty(body, field, {
      value: value(random, 0),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  // Often nearly valid, so the fuzz reaches past the schema into runs.
  if (random() < 0.4) {
    for (const key of Object.keys(body)) if (key !== 'kind' && random() < 0.7) delete body[key];
    body.kind = pick(random, ['fix-deployed', 'sweep', 'failure-alert']);
    body.queues = [pick(random, [ORDERS, BILLING])];
    if (random() < 0.3) body.dryRun = true;
    if (random() < 0.2) body.mode = 'redrive';
  }
  return body;
}

/** One fuzzed delivery: a plain event, a Pub/Sub push envelope, a CloudEvent, a control task, or broken text. */
function fuzzedDelivery(random: Random): { body: string; headers: Record<string, string> } {
  const json = JSON.stringify(event(random)).replace(/"@@deep:(\d+)@@"/g, (_, depth: string) =>
    nested(Number(depth), '1'),
  );
  const roll = random();
  if (roll < 0.1) return { body: json.slice(0, Math.floor(random() * json.length)), headers: {} };
  if (roll < 0.25) {
    const envelope = {
      message: {
        data: random() < 0.9 ? Buffer.from(json).toString('base64') : value(random, 0),
        messageId: String(Math.floor(random() * 1e9)),
        publishTime: random() < 0.8 ? new Date().toISOString() : value(random, 0),
        attributes: random() < 0.1 ? { buildId: 'b1', status: 'SUCCESS' } : undefined,
      },
      subscription: 'projects/p/subscriptions/s',
    };
    const headers: Record<string, string> =
      random() < 0.3
        ? {
            'ce-type': 'google.cloud.pubsub.topic.v1.messagePublished',
            'ce-id': '1',
            'ce-specversion': '1.0',
          }
        : {};
    return { body: JSON.stringify(envelope), headers };
  }
  if (roll < 0.35) {
    return {
      body: json,
      headers: {
        'X-CloudTasks-TaskName': 'fuzz',
        'X-CloudTasks-QueueName': pick(random, ['rerun-control', 'orders']),
      },
    };
  }
  return { body: json, headers: {} };
}

/** A small seeded PRNG, so the fuzz is the same on every run. */
function mulberry32(seed: number): Random {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
