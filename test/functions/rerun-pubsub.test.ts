/**
 * rerunPubsub behind the Functions Framework's own server on 127.0.0.1, fed real CloudEvents (binary and
 * structured mode) carrying Pub/Sub messages, against a real Cloud Tasks emulator and a real target.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ff from '@google-cloud/functions-framework';
import { getTestServer } from '@google-cloud/functions-framework/testing';
import { afterEach, beforeEach, describe, expect, it, onTestFinished } from 'vitest';
import { startEmulator, type Emulator, type SeedQueue } from '../../emulator/server.js';
import { MESSAGE_PUBLISHED, rerunPubsubHandler } from '../../functions/rerun-pubsub.js';
import { ConfigError } from '../../shared/platform/config.js';
import { createRuntime } from '../../shared/platform/runtime.js';
import { logSink } from '../helpers/log-sink.js';
import { failedTask, inFlightTask, PROJECT, queueName } from '../helpers/seeds.js';
import { startTarget, type Target } from '../helpers/target-server.js';

const ORDERS = queueName('orders');
const BILLING = queueName('billing');
const MINUTE = 60_000;
const TRIGGER = '8f1c2d3e-4b5a-4c6d-9e8f-0a1b2c3d4e5f';
const TRACE_ID = '0af7651916cd43dd8448eb211c80319c';
const TRACEPARENT = `00-${TRACE_ID}-b7ad6b7169203331-01`;

type Json = Record<string, any>;

let registered = 0;
let target: Target;
let harness: Harness | undefined;

beforeEach(async () => {
  target = await startTarget({ respond: () => 500 });
});
afterEach(async () => {
  await harness?.close();
  harness = undefined;
  await target.stop();
});

interface Harness {
  readonly url: string;
  readonly emulator: Emulator;
  readonly logs: ReturnType<typeof logSink>;
  close(): Promise<void>;
}

/** An emulator seeded with `queues`, and rerunPubsub over a runtime configured by `env`, served on port 0. */
async function start(queues: SeedQueue[], env: Record<string, string> = {}): Promise<Harness> {
  const emulator = await startEmulator({ port: 0, runTaskQuota: { limit: 6000, windowMs: 60_000 } });
  emulator.load({ queues });
  const logs = logSink();
  const runtime = createRuntime(
    {
      RERUN_QUEUES: [ORDERS, BILLING].join(','),
      RERUN_MAX_RATE: '50',
      RERUN_CONCURRENCY: '8',
      CLOUD_TASKS_EMULATOR_HOST: emulator.host,
      LOG_LEVEL: 'debug',
      ...env,
    },
    { logDestination: logs.stream },
  );
  const name = `rerunPubsubTest${++registered}`;
  ff.cloudEvent(name, rerunPubsubHandler(runtime));
  const server: Server = getTestServer(name);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  harness = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    emulator,
    logs,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await emulator.stop();
    },
  };
  return harness;
}

interface Message {
  data: string;
  attributes?: Record<string, string>;
  messageId: string;
  publishTime: string;
}

let messageIds = 0;

/** A Pub/Sub message whose data is `payload` (JSON-encoded unless a string, then base64). */
function pubsubMessage(payload: unknown, attributes?: Record<string, string>): Message {
  const text = typeof payload === 'string' ? payload : JSON.stringify(payload);
  return {
    data: Buffer.from(text).toString('base64'),
    ...(attributes && { attributes }),
    messageId: String(17_000_000_000 + ++messageIds),
    publishTime: new Date().toISOString(),
  };
}

const SOURCE = `//pubsub.googleapis.com/projects/${PROJECT}/topics/rerun`;
const SUBSCRIPTION = `projects/${PROJECT}/subscriptions/eventarc-us-central1-rerun-pubsub-sub-123`;

/** POSTs a CloudEvent in binary mode: attributes in ce-* headers, the Pub/Sub envelope as the body. */
async function sendBinary(
  h: Harness,
  message: Message | Json,
  headers: Record<string, string> = {},
): Promise<number> {
  const response = await fetch(h.url, {
    method: 'POST',
    headers: {
      'Content-Type': 'application/json',
      'ce-id': String(message.messageId ?? 'no-id'),
      'ce-specversion': '1.0',
      'ce-type': MESSAGE_PUBLISHED,
      'ce-source': SOURCE,
      'ce-time': String(message.publishTime ?? new Date().toISOString()),
      traceparent: TRACEPARENT,
      ...headers,
    },
    body: JSON.stringify({ message, subscription: SUBSCRIPTION }),
  });
  await response.arrayBuffer();
  return response.status;
}

/** POSTs a CloudEvent in structured mode: the whole event as application/cloudevents+json. */
async function sendStructured(h: Harness, message: Message): Promise<number> {
  const response = await fetch(h.url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/cloudevents+json' },
    body: JSON.stringify({
      specversion: '1.0',
      id: message.messageId,
      type: MESSAGE_PUBLISHED,
      source: SOURCE,
      time: message.publishTime,
      datacontenttype: 'application/json',
      traceparent: TRACEPARENT,
      data: { message, subscription: SUBSCRIPTION },
    }),
  });
  await response.arrayBuffer();
  return response.status;
}

function fixture(name: string): Json {
  return JSON.parse(readFileSync(new URL(`../fixtures/${name}.json`, import.meta.url), 'utf8')) as Json;
}

/** The incident fixture `name` with its window moved to [now - startedAgo, now - endedAgo]. */
function incident(name: string, startedAgoMs: number, endedAgoMs: number | null, fields: Json = {}): Json {
  const json = fixture(name);
  const seconds = (agoMs: number) => Math.floor((Date.now() - agoMs) / 1000);
  json.incident = {
    ...json.incident,
    started_at: seconds(startedAgoMs),
    ended_at: endedAgoMs === null ? null : seconds(endedAgoMs),
    ...fields,
  };
  return json;
}

function runTaskCalls(h: Harness): string[] {
  return h.emulator.calls
    .filter((c) => c.method === 'RunTask')
    .map((c) => c.name.split('/').pop()!)
    .sort();
}

function linesOf(h: Harness, messageId: string) {
  return h.logs.lines().filter((line) => line.messageId === messageId);
}

function lineOf(h: Harness, messageId: string, message: string) {
  return linesOf(h, messageId).find((line) => line.message === message);
}

describe('rerunPubsub: Cloud Monitoring incidents', () => {
  it('reruns the tasks of a closed incident on a queue in its window, once across redeliveries', async () => {
    const h = await start([
      {
        name: ORDERS,
        tasks: [
          failedTask(ORDERS, 'in-window-1', target.url),
          failedTask(ORDERS, 'in-window-2', target.url, { httpStatus: 503 }),
          failedTask(ORDERS, 'before-incident', target.url, { dispatchedMs: -45 * MINUTE }),
          inFlightTask(ORDERS, 'in-flight', target.url),
        ],
      },
      { name: BILLING, tasks: [failedTask(BILLING, 'other-queue', target.url)] },
    ]);
    const message = pubsubMessage(incident('incident-queue-closed', 30 * MINUTE, 2 * MINUTE));

    expect(await sendBinary(h, message)).toBe(204);
    expect(runTaskCalls(h)).toEqual(['in-window-1', 'in-window-2']);
    expect(lineOf(h, message.messageId, 'message accepted')).toMatchObject({
      severity: 'INFO',
      source: 'incident',
      dedupeKey: 'incident:0.abc123:closed',
      kind: 'failure-alert',
      reason: 'incident 0.abc123 (orders-worker-failing) closed',
      'logging.googleapis.com/trace': `projects/${PROJECT}/traces/${TRACE_ID}`,
    });
    expect(lineOf(h, message.messageId, 'rerun started')).toMatchObject({
      incidentId: '0.abc123',
      policy: 'orders-worker-failing',
      reason: 'incident 0.abc123 (orders-worker-failing) closed',
      'logging.googleapis.com/trace': `projects/${PROJECT}/traces/${TRACE_ID}`,
    });
    expect(lineOf(h, message.messageId, 'message done; acknowledged')).toMatchObject({
      severity: 'INFO',
      counts: { dispatched: 2 },
    });

    // Pub/Sub delivers at least once: the same message again dispatches nothing.
    expect(await sendBinary(h, message)).toBe(204);
    expect(runTaskCalls(h)).toEqual(['in-window-1', 'in-window-2']);
    const done = linesOf(h, message.messageId).filter((l) => l.message === 'message done; acknowledged');
    expect(done).toHaveLength(2);
    expect(done[1]).toMatchObject({ counts: { dispatched: 0 } });
  });

  it('logs and acknowledges an open incident and a test notification, calling nothing', async () => {
    const h = await start([{ name: ORDERS, tasks: [failedTask(ORDERS, 'a', target.url)] }]);
    const open = pubsubMessage(incident('incident-queue-open', 30 * MINUTE, null));
    const test = pubsubMessage(fixture('incident-test'));
    expect(await sendBinary(h, open)).toBe(204);
    expect(await sendStructured(h, test)).toBe(204);
    expect(h.emulator.calls).toEqual([]);
    expect(lineOf(h, open.messageId, 'message ignored')).toMatchObject({
      severity: 'INFO',
      source: 'incident',
      reason: expect.stringMatching(/incident 0\.abc123 \(orders-worker-failing\) opened/),
    });
    expect(lineOf(h, test.messageId, 'message ignored')).toMatchObject({
      severity: 'INFO',
      reason: expect.stringMatching(/^test notification/),
    });
  });

  it('routes an incident on another resource by a policy user label (structured mode)', async () => {
    const h = await start(
      [
        { name: ORDERS, tasks: [failedTask(ORDERS, 'orders-task', target.url)] },
        { name: BILLING, tasks: [failedTask(BILLING, 'billing-task', target.url)] },
      ],
      {
        RERUN_ROUTES: JSON.stringify([
          {
            name: 'orders-api',
            when: { policyUserLabels: { 'rerun-route': 'orders-api' } },
            queues: [BILLING],
          },
        ]),
      },
    );
    const message = pubsubMessage(incident('incident-uptime-closed', 30 * MINUTE, MINUTE));
    expect(await sendStructured(h, message)).toBe(204);
    expect(runTaskCalls(h)).toEqual(['billing-task']);
    expect(lineOf(h, message.messageId, 'rerun started')).toMatchObject({ route: 'orders-api' });
  });
});

describe('rerunPubsub: Cloud Build notifications', () => {
  const routes = JSON.stringify([
    { name: 'orders deploys', when: { buildTriggerId: TRIGGER }, queues: [ORDERS] },
  ]);

  function build(status: string, finishedAgoMs: number): { json: Json; attributes: Record<string, string> } {
    const json = fixture(status === 'SUCCESS' ? 'build-success' : 'build-failure');
    json.status = status;
    json.finishTime = new Date(Date.now() - finishedAgoMs).toISOString();
    return { json, attributes: { buildId: String(json.id), status } };
  }

  it('reruns what failed before a routed build succeeded, deployedAt = finishTime, once', async () => {
    const h = await start(
      [
        {
          name: ORDERS,
          tasks: [
            failedTask(ORDERS, 'before-deploy', target.url),
            failedTask(ORDERS, 'after-deploy', target.url, { dispatchedMs: -30_000 }),
          ],
        },
        { name: BILLING, tasks: [failedTask(BILLING, 'not-routed', target.url)] },
      ],
      { RERUN_ROUTES: routes },
    );
    const { json, attributes } = build('SUCCESS', MINUTE);
    const message = pubsubMessage(json, attributes);
    expect(await sendStructured(h, message)).toBe(204);
    expect(runTaskCalls(h)).toEqual(['before-deploy']);
    expect(lineOf(h, message.messageId, 'rerun started')).toMatchObject({
      kind: 'fix-deployed',
      cutoff: json.finishTime,
      service: 'orders-api',
      buildId: json.id,
      route: 'orders deploys',
    });
    expect(lineOf(h, message.messageId, 'rerun finished')).toMatchObject({ skipped: { 'after-cutoff': 1 } });
    expect(h.logs.lines().find((l) => l.task === `${ORDERS}/tasks/after-deploy`)).toMatchObject({
      outcome: 'skipped',
      skipReason: 'after-cutoff',
    });

    expect(await sendBinary(h, message)).toBe(204);
    expect(runTaskCalls(h)).toEqual(['before-deploy']);
  });

  it.each(['FAILURE', 'WORKING', 'QUEUED'])('ignores a %s build with a debug line', async (status) => {
    const h = await start([{ name: ORDERS, tasks: [failedTask(ORDERS, 'a', target.url)] }], {
      RERUN_ROUTES: routes,
    });
    const { json, attributes } = build(status, 0);
    const message = pubsubMessage(json, attributes);
    expect(await sendBinary(h, message)).toBe(204);
    expect(h.emulator.calls).toEqual([]);
    expect(lineOf(h, message.messageId, 'message ignored')).toMatchObject({
      severity: 'DEBUG',
      source: 'build',
      reason: `build ${json.id} is ${status}: only SUCCESS triggers a rerun`,
    });
  });
});

describe('rerunPubsub: Cloud Scheduler sweeps and plain events', () => {
  it.each<[string, string | Json]>([
    ['an empty message', ''],
    ['a sweep event', { kind: 'sweep', reason: 'Cloud Scheduler job rerun-sweep' }],
  ])('sweeps every allowlisted queue on %s, with 5m of minBackoffLeft', async (_, payload) => {
    const h = await start([
      {
        name: ORDERS,
        tasks: [
          failedTask(ORDERS, 'waiting', target.url),
          failedTask(ORDERS, 'due-in-2m', target.url, { nextMs: 2 * MINUTE }),
        ],
      },
      { name: BILLING, tasks: [failedTask(BILLING, 'billing-waiting', target.url)] },
    ]);
    const message = pubsubMessage(payload);
    expect(await sendBinary(h, message)).toBe(204);
    expect(runTaskCalls(h)).toEqual(['billing-waiting', 'waiting']);
    expect(h.logs.lines().find((l) => l.task === `${ORDERS}/tasks/due-in-2m`)).toMatchObject({
      outcome: 'skipped',
      skipReason: 'due-soon',
      messageId: message.messageId,
    });
    expect(lineOf(h, message.messageId, 'rerun finished')).toMatchObject({ skipped: { 'due-soon': 1 } });
    expect(lineOf(h, message.messageId, 'message accepted')).toMatchObject({
      source: 'sweep',
      kind: 'sweep',
    });
  });

  it('takes a plain event; its redelivery dispatches nothing (the cutoff is the publish time)', async () => {
    const h = await start([
      { name: ORDERS, tasks: [failedTask(ORDERS, 'a', target.url), failedTask(ORDERS, 'b', target.url)] },
    ]);
    const message = pubsubMessage({
      kind: 'fix-deployed',
      queues: [ORDERS],
      service: 'orders-api',
      reason: 'PR 4242',
    });
    expect(await sendStructured(h, message)).toBe(204);
    expect(runTaskCalls(h)).toEqual(['a', 'b']);
    await h.emulator.settled();

    expect(await sendBinary(h, message)).toBe(204);
    expect(runTaskCalls(h)).toEqual(['a', 'b']);
    const second = linesOf(h, message.messageId).filter((l) => l.message === 'message done; acknowledged')[1];
    expect(second).toMatchObject({ counts: { dispatched: 0, skipped: 2 } });
  });
});

describe('rerunPubsub: poison messages are logged once at ERROR and acknowledged', () => {
  const badBase64: Message = {
    data: 'not*base64',
    messageId: '9000000001',
    publishTime: new Date().toISOString(),
  };
  it.each<[string, () => Message, RegExp]>([
    ['bad base64', () => badBase64, /not valid base64/],
    ['bad JSON', () => pubsubMessage('{"kind": "fix-deployed",'), /not valid JSON/],
    ['a schema error', () => pubsubMessage({ kind: 'fix-deployed', maxTasks: 'all' }), /maxTasks/],
    ['an unknown kind', () => pubsubMessage({ kind: 'purge-everything' }), /kind/],
    [
      'an unroutable incident',
      () => pubsubMessage(incident('incident-uptime-closed', 30 * MINUTE, MINUTE)),
      /unroutable/,
    ],
    [
      'a queue outside the allowlist',
      () => pubsubMessage({ kind: 'sweep', queues: [queueName('payroll')] }),
      /outside the allowlist/,
    ],
  ])('%s', async (_, make, problem) => {
    const h = await start([{ name: ORDERS, tasks: [failedTask(ORDERS, 'a', target.url)] }]);
    const message = make();
    expect(await sendBinary(h, message)).toBe(204);
    expect(h.emulator.calls).toEqual([]);
    const errors = h.logs.lines().filter((l) => l.severity === 'ERROR');
    expect(errors).toHaveLength(1);
    expect(errors[0]!.messageId).toBe(message.messageId);
    expect(JSON.stringify(errors[0])).toMatch(problem);
  });

  it('names the messageId even when the envelope is unreadable, from the CloudEvent id', async () => {
    const h = await start([]);
    const response = await fetch(h.url, {
      method: 'POST',
      headers: {
        'Content-Type': 'application/json',
        'ce-id': '9000000003',
        'ce-specversion': '1.0',
        'ce-type': MESSAGE_PUBLISHED,
        'ce-source': SOURCE,
      },
      body: JSON.stringify({ message: { data: 42 } }),
    });
    expect(response.status).toBe(204);
    const errors = h.logs.lines().filter((l) => l.severity === 'ERROR');
    expect(errors).toEqual([
      expect.objectContaining({
        messageId: '9000000003',
        fields: ['message.data'],
        message: 'message rejected; acknowledged without a rerun',
      }),
    ]);
  });

  it('refuses a CloudEvent of another type', async () => {
    const h = await start([]);
    const message = pubsubMessage({ kind: 'sweep' });
    expect(await sendBinary(h, message, { 'ce-type': 'google.cloud.storage.object.v1.finalized' })).toBe(204);
    expect(h.logs.lines().filter((l) => l.severity === 'ERROR')).toEqual([
      expect.objectContaining({
        messageId: message.messageId,
        problem: expect.stringMatching(/is not google\.cloud\.pubsub\.topic\.v1\.messagePublished/),
      }),
    ]);
    expect(h.emulator.calls).toEqual([]);
  });
});

describe('rerunPubsub: transient failures are redelivered', () => {
  it.each<['GetQueue' | 'ListTasks', 503 | 'reset']>([
    ['GetQueue', 503],
    ['ListTasks', 'reset'],
  ])('%s answering %s: 500 and no RunTask; the redelivery dispatches', async (method, kind) => {
    const h = await start([{ name: ORDERS, tasks: [failedTask(ORDERS, 'a', target.url)] }], {
      RERUN_QUEUES: ORDERS,
    });
    h.emulator.injectFault({ method, kind });
    const message = pubsubMessage(incident('incident-queue-closed', 30 * MINUTE, 2 * MINUTE));

    expect(await sendBinary(h, message)).toBe(500);
    expect(runTaskCalls(h)).toEqual([]);
    expect(h.emulator.calls.filter((c) => c.method === method).length).toBeGreaterThan(1);
    expect(lineOf(h, message.messageId, 'message not acknowledged: Pub/Sub redelivers it')).toMatchObject({
      severity: 'WARNING',
    });

    h.emulator.clearFaults();
    expect(await sendBinary(h, message)).toBe(204);
    expect(runTaskCalls(h)).toEqual(['a']);
  });

  it.each([500, 400] as const)(
    'a listing that breaks off on page 2 (answered %s) is undone: not acknowledged; the redelivery finishes it',
    async (kind) => {
      // Page 1 holds 1,000 tasks that never ran (nothing matches); the failed ones are on page 2.
      const idle = Array.from({ length: 1000 }, (_, i) => ({
        name: `${ORDERS}/tasks/a${String(i).padStart(4, '0')}`,
        httpRequest: { url: target.url },
      }));
      const failed = Array.from({ length: 5 }, (_, i) => failedTask(ORDERS, `z${i}`, target.url));
      const h = await start([{ name: ORDERS, tasks: [...idle, ...failed] }], { RERUN_QUEUES: ORDERS });
      h.emulator.injectFault({ method: 'ListTasks', kind, after: 1, times: 1 });
      const message = pubsubMessage({ kind: 'fix-deployed', queues: [ORDERS], verify: '0s' });

      expect(await sendBinary(h, message)).toBe(500);
      expect(runTaskCalls(h)).toEqual([]);
      expect(await sendBinary(h, message)).toBe(204);
      expect(runTaskCalls(h).sort()).toEqual(['z0', 'z1', 'z2', 'z3', 'z4']);
    },
  );

  it('does not acknowledge a run the time budget cut short; redeliveries finish it, each task once', async () => {
    const tasks = Array.from({ length: 8 }, (_, i) => failedTask(ORDERS, `t${i}`, target.url));
    const h = await start([{ name: ORDERS, tasks }], {
      RERUN_QUEUES: ORDERS,
      RERUN_MAX_RATE: '10',
      RERUN_TIME_BUDGET: '300ms',
    });
    const message = pubsubMessage({ kind: 'fix-deployed' });
    const statuses: number[] = [];
    for (let delivery = 0; delivery < 10 && statuses.at(-1) !== 204; delivery++) {
      statuses.push(await sendBinary(h, message));
    }
    expect(statuses[0]).toBe(500);
    expect(statuses.at(-1)).toBe(204);
    expect(runTaskCalls(h)).toEqual(tasks.map((t) => t.name.split('/').pop()).sort());
    expect(
      lineOf(
        h,
        message.messageId,
        'rerun incomplete; message not acknowledged: Pub/Sub redelivers it to go on',
      ),
    ).toMatchObject({
      severity: 'WARNING',
    });
  });
});

describe('rerunPubsub: configuration', () => {
  it.each<[string, string, RegExp]>([
    [
      'a route without a condition',
      JSON.stringify([{ name: 'r', when: {}, queues: [ORDERS] }]),
      /RERUN_ROUTES\[0\]\.when/,
    ],
    [
      'a route with a bad match',
      JSON.stringify([{ name: 'r', when: { policyName: 'p' }, match: { responseCodes: ['SOMETIMES'] } }]),
      /RERUN_ROUTES\[0\]\.match\.responseCodes\[0\]/,
    ],
    [
      'a route with a bad queue',
      JSON.stringify([{ name: 'r', when: { buildTriggerId: 't' }, queues: ['orders'] }]),
      /RERUN_ROUTES\[0\]\.queues\[0\]/,
    ],
    ['routes that are not JSON', '[{"name":', /RERUN_ROUTES/],
  ])('stops start-up on %s, naming the field', (_, routes, message) => {
    const env = { RERUN_QUEUES: ORDERS, RERUN_ROUTES: routes };
    expect(() => createRuntime(env)).toThrow(ConfigError);
    expect(() => createRuntime(env)).toThrow(message);
  });

  it('reads RERUN_ROUTES from a file, and names the field of a bad one', () => {
    const dir = mkdtempSync(join(tmpdir(), 'routes-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const good = join(dir, 'good.json');
    writeFileSync(
      good,
      JSON.stringify([{ name: 'orders deploys', when: { buildTriggerId: TRIGGER }, queues: [ORDERS] }]),
    );
    expect(createRuntime({ RERUN_QUEUES: ORDERS, RERUN_ROUTES: good }).config.routes).toHaveLength(1);
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify([{ name: 'r', when: { buildTriggerId: 't' }, onOpen: 'yes' }]));
    expect(() => createRuntime({ RERUN_QUEUES: ORDERS, RERUN_ROUTES: bad })).toThrow(
      /RERUN_ROUTES\[0\]\.onOpen/,
    );
  });
});
