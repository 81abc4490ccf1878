import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../shared/platform/config.js';
import {
  decodeMessage,
  parseEnvelope,
  type Decoded,
  type PubsubMessage,
} from '../../shared/triggers/messages.js';
import { issuePaths } from '../../shared/triggers/events.js';
import { Routes } from '../../shared/triggers/routes.js';

const NOW = Date.parse('2026-11-22T12:00:00Z');
const PUBLISHED = '2026-11-22T11:00:05.123Z';
const ORDERS = 'projects/test-project/locations/us-central1/queues/orders';
const BILLING = 'projects/test-project/locations/us-central1/queues/billing';
const STARTED = '2026-11-22T10:00:00.000Z';
const ENDED = '2026-11-22T11:00:00.000Z';
const TRIGGER = '8f1c2d3e-4b5a-4c6d-9e8f-0a1b2c3d4e5f';
const BUILD = 'b7d4e1c2-9f3a-4c6e-8a1b-2d3e4f5a6b7c';

type Json = Record<string, any>;

function fixture(name: string): Json {
  return JSON.parse(readFileSync(new URL(`../fixtures/${name}.json`, import.meta.url), 'utf8')) as Json;
}

/** A fixture with some incident fields replaced. */
function incident(name: string, fields: Json): Json {
  const json = fixture(name);
  return { ...json, incident: { ...json.incident, ...fields } };
}

function message(data: unknown, options: Partial<PubsubMessage> = {}): PubsubMessage {
  return {
    data: typeof data === 'string' ? data : Buffer.from(JSON.stringify(data)).toString('base64'),
    messageId: '1234567890',
    publishTime: PUBLISHED,
    ...options,
  };
}

function buildMessage(json: Json): PubsubMessage {
  return message(json, { attributes: { buildId: String(json.id), status: String(json.status) } });
}

const routes = Routes.parse([
  {
    name: 'orders-uptime',
    when: { policyName: 'orders-api-down' },
    queues: [ORDERS],
    match: { urlPrefix: 'https://orders-api' },
  },
  { name: 'by-label', when: { policyUserLabels: { 'rerun-route': 'billing' } }, queues: [BILLING] },
  { name: 'orders-build', when: { buildTriggerId: TRIGGER }, queues: [ORDERS], maxTasks: 50 },
  {
    name: 'billing-build',
    when: { buildSubstitutions: { _SERVICE: 'billing-api' } },
    queues: [BILLING],
    dryRun: true,
  },
]);

function decode(msg: PubsubMessage, withRoutes: Routes = routes, nowMs = NOW): Decoded {
  return decodeMessage(msg, withRoutes, nowMs);
}

function requestOf(decoded: Decoded) {
  if (decoded.kind !== 'request') throw new Error(`expected a request, got ${JSON.stringify(decoded)}`);
  return decoded;
}

describe('decodeMessage: Cloud Monitoring incidents (schema 1.2)', () => {
  it('turns a closed incident on a queue into a failure-alert on that queue, ended_at the cutoff', () => {
    const decoded = requestOf(decode(message(fixture('incident-queue-closed'))));
    expect(decoded).toMatchObject({ source: 'incident', dedupeKey: 'incident:0.abc123:closed' });
    expect(decoded.request).toMatchObject({
      kind: 'failure-alert',
      queues: [ORDERS],
      cutoffMs: Date.parse(ENDED),
      match: { failedSince: Date.parse(STARTED), failedUntil: Date.parse(ENDED) },
      reason: 'incident 0.abc123 (orders-worker-failing) closed',
      minBackoffLeftMs: 30_000,
      dryRun: false,
      // A closed incident is no evidence that the cause is gone: a canary first (docs/execution.md "Canary").
      canary: { count: 2, waitMs: 20_000 },
      context: { incidentId: '0.abc123', policy: 'orders-worker-failing' },
    });
  });

  it('falls back to scoping_project_id when the queue labels carry no project_id', () => {
    const json = fixture('incident-queue-closed');
    const { project_id: _, ...labels } = json.incident.resource.labels;
    const decoded = requestOf(
      decode(message(incident('incident-queue-closed', { resource: { type: 'cloud_tasks_queue', labels } }))),
    );
    expect(decoded.request.queues).toEqual([ORDERS]);
  });

  it.each<[string, Json, RegExp]>([
    [
      'an open incident',
      fixture('incident-queue-open'),
      /incident 0\.abc123 \(orders-worker-failing\) opened: the rerun waits for it to close/,
    ],
    [
      'a test notification (version "test", state in capitals)',
      fixture('incident-test'),
      /^test notification \(projects\/test-project\/alertPolicies\/12345\) recognised/,
    ],
    [
      'an incident in another state',
      incident('incident-queue-closed', { state: 'acknowledged' }),
      /is acknowledged: nothing to rerun/,
    ],
  ])('logs and ignores %s', (_, json, reason) => {
    const decoded = decode(message(json));
    expect(decoded).toMatchObject({ kind: 'ignore', source: 'incident', level: 'info' });
    expect(decoded.kind === 'ignore' && decoded.reason).toMatch(reason);
  });

  it('reruns an open incident when its route says onOpen: window from started_at, cutoff the publish time', () => {
    const onOpen = Routes.parse([
      { name: 'eager', when: { policyName: 'orders-worker-failing' }, onOpen: true },
    ]);
    const decoded = requestOf(decode(message(fixture('incident-queue-open')), onOpen));
    expect(decoded.dedupeKey).toBe('incident:0.abc123:open');
    expect(decoded.request).toMatchObject({
      queues: [ORDERS],
      cutoffMs: Date.parse(PUBLISHED),
      reason: 'incident 0.abc123 (orders-worker-failing) opened',
      context: { route: 'eager' },
    });
    expect(decoded.request.match).toEqual({ failedSince: Date.parse(STARTED) });
  });

  it('routes an incident on another resource by policy name: the route gives queues and match', () => {
    const decoded = requestOf(decode(message(fixture('incident-uptime-closed'))));
    expect(decoded.request).toMatchObject({
      kind: 'failure-alert',
      queues: [ORDERS],
      cutoffMs: Date.parse(ENDED),
      match: {
        urlPrefix: 'https://orders-api',
        failedSince: Date.parse(STARTED),
        failedUntil: Date.parse(ENDED),
      },
      reason: 'incident 0.uptime789 (orders-api-down) closed',
      context: { route: 'orders-uptime' },
    });
  });

  it('routes an incident by a policy user label', () => {
    const json = incident('incident-uptime-closed', {
      policy_name: 'billing-down',
      policy_user_labels: { 'rerun-route': 'billing', team: 'pay' },
    });
    const decoded = requestOf(decode(message(json)));
    expect(decoded.request).toMatchObject({
      queues: [BILLING],
      context: { route: 'by-label', policy: 'billing-down' },
    });
  });

  it('adds a route to a queue incident: its queues, options and lookback', () => {
    const more = Routes.parse([
      {
        name: 'orders+billing',
        when: { policyUserLabels: { retry: 'orders' } },
        queues: [BILLING, ORDERS],
        maxTasks: 20,
        minBackoffLeft: '2m',
        lookback: '10m',
        canary: { count: 2 },
      },
    ]);
    const decoded = requestOf(decode(message(fixture('incident-queue-closed')), more));
    expect(decoded.request).toMatchObject({
      queues: [ORDERS, BILLING],
      maxTasks: 20,
      minBackoffLeftMs: 120_000,
      canary: { count: 2, waitMs: 20_000 },
      match: { failedSince: Date.parse(STARTED) - 600_000, failedUntil: Date.parse(ENDED) },
    });
  });

  it('rejects an incident that names no queue and that no route catches, naming the problem', () => {
    const json = incident('incident-uptime-closed', {
      policy_name: 'someone-elses-policy',
      policy_user_labels: {},
    });
    const decoded = decode(message(json));
    expect(decoded).toMatchObject({ kind: 'reject', source: 'incident' });
    expect(decoded.kind === 'reject' && decoded.error.message).toMatch(
      /incident 0\.uptime789 \(someone-elses-policy\) on uptime_url is unroutable/,
    );
  });

  it('rejects a notification whose fields have the wrong shape, naming them', () => {
    const json = incident('incident-queue-closed', { incident_id: undefined, started_at: 'yesterday' });
    const decoded = decode(message(json));
    expect(decoded.kind === 'reject' && decoded.error.fields).toEqual([
      'incident.incident_id',
      'incident.started_at',
    ]);
  });

  it('treats a queue incident with unusable labels like any other resource', () => {
    const json = incident('incident-queue-closed', {
      resource: { type: 'cloud_tasks_queue', labels: { project_id: 'test-project', queue_id: 'orders' } },
    });
    expect(decode(message(json)).kind).toBe('reject');
  });
});

describe('decodeMessage: Cloud Build notifications', () => {
  it('turns a SUCCESS of a routed trigger into a fix-deployed, finishTime the cutoff', () => {
    const decoded = requestOf(decode(buildMessage(fixture('build-success'))));
    expect(decoded).toMatchObject({ source: 'build', dedupeKey: `build:${BUILD}` });
    expect(decoded.request).toMatchObject({
      kind: 'fix-deployed',
      queues: [ORDERS],
      cutoffMs: Date.parse('2026-11-22T10:00:00.123Z'),
      maxTasks: 50,
      reason: `build ${BUILD} succeeded (trigger deploy-orders-api)`,
      context: {
        service: 'orders-api',
        buildId: BUILD,
        buildTriggerId: TRIGGER,
        commit: '3f2a9c1e0b7d6a5c4e3f2a1b0c9d8e7f6a5b4c3d',
        route: 'orders-build',
      },
    });
  });

  it('routes by a substitution', () => {
    const json = fixture('build-success');
    json.buildTriggerId = 'another-trigger';
    json.substitutions = {
      ...json.substitutions,
      _SERVICE: 'billing-api',
      _REVISION: 'billing-api-00042-xyz',
    };
    const decoded = requestOf(decode(buildMessage(json)));
    expect(decoded.request).toMatchObject({
      queues: [BILLING],
      dryRun: true,
      context: { service: 'billing-api', revision: 'billing-api-00042-xyz', route: 'billing-build' },
    });
  });

  it('recognises a build by its data alone, and takes the status from the data', () => {
    const decoded = requestOf(decode(message(fixture('build-success'))));
    expect(decoded.request.kind).toBe('fix-deployed');
  });

  it('falls back to the publish time when the build has no finishTime', () => {
    const { finishTime: _, ...json } = fixture('build-success');
    expect(requestOf(decode(buildMessage(json))).request.cutoffMs).toBe(Date.parse(PUBLISHED));
  });

  it.each<[string, Json, string]>([
    ['FAILURE', fixture('build-failure'), 'debug'],
    ['WORKING', fixture('build-working'), 'debug'],
    ['QUEUED', { ...fixture('build-working'), status: 'QUEUED' }, 'debug'],
  ])('ignores a %s build at %s', (status, json, level) => {
    expect(decode(buildMessage(json))).toEqual({
      kind: 'ignore',
      source: 'build',
      level,
      reason: `build ${BUILD} is ${status}: only SUCCESS triggers a rerun`,
    });
  });

  it('ignores a SUCCESS no route catches, at info', () => {
    const json = { ...fixture('build-success'), buildTriggerId: 'unrelated', substitutions: {} };
    expect(decode(buildMessage(json))).toMatchObject({
      kind: 'ignore',
      level: 'info',
      reason: expect.stringMatching(/no route/),
    });
    expect(decode(buildMessage(fixture('build-success')), [])).toMatchObject({
      kind: 'ignore',
      level: 'info',
    });
  });

  it('trusts the status attribute, the one a subscription filter sees', () => {
    const decoded = decode(
      message(fixture('build-success'), { attributes: { buildId: BUILD, status: 'CANCELLED' } }),
    );
    expect(decoded).toMatchObject({ kind: 'ignore', reason: expect.stringMatching(/is CANCELLED/) });
  });

  it('rejects a build notification without a status', () => {
    const { status: _, ...json } = fixture('build-success');
    const decoded = decode(message(json, { attributes: { buildId: BUILD } }));
    expect(decoded).toMatchObject({ kind: 'reject', source: 'build' });
  });
});

describe('decodeMessage: plain events and sweeps', () => {
  it('takes a plain event as the data; its default cutoff is the publish time', () => {
    const decoded = requestOf(
      decode(message({ kind: 'fix-deployed', queues: [ORDERS], service: 'orders-api' })),
    );
    expect(decoded).toMatchObject({ source: 'event', dedupeKey: 'message:1234567890' });
    expect(decoded.request).toMatchObject({
      kind: 'fix-deployed',
      queues: [ORDERS],
      cutoffMs: Date.parse(PUBLISHED),
    });
  });

  it('uses the time received when there is no publish time, and never a publish time in the future', () => {
    const none = requestOf(decode(message({ kind: 'fix-deployed' }, { publishTime: undefined })));
    expect(none.request.cutoffMs).toBe(NOW);
    const future = requestOf(
      decode(message({ kind: 'fix-deployed' }, { publishTime: '2030-01-01T00:00:00Z' })),
    );
    expect(future.request.cutoffMs).toBe(NOW);
  });

  it('clamps a deployedAt ahead of the clock to the publish time: every delivery reaches the same cutoff', () => {
    const ahead = message({ kind: 'fix-deployed', deployedAt: '2026-11-22T12:02:00Z' });
    const first = requestOf(decodeMessage(ahead, routes, NOW)).request;
    const redelivered = requestOf(decodeMessage(ahead, routes, NOW + 5 * 60_000)).request;
    expect(first).toMatchObject({ cutoffMs: Date.parse(PUBLISHED), cutoffClamped: true });
    expect(redelivered).toMatchObject({ cutoffMs: Date.parse(PUBLISHED), cutoffFromDelivery: false });
  });

  it.each<[string, PubsubMessage]>([
    ['a sweep event', message({ kind: 'sweep' })],
    ['no data', message('', { data: undefined })],
    ['empty data', message('')],
    ['whitespace', message(Buffer.from(' \n').toString('base64'))],
    ['an empty object', message({})],
  ])('sweeps every allowlisted queue with the sweep defaults on %s', (_, msg) => {
    const decoded = requestOf(decode(msg));
    expect(decoded).toMatchObject({ source: 'sweep', dedupeKey: 'message:1234567890' });
    expect(decoded.request).toMatchObject({
      kind: 'sweep',
      queues: undefined,
      minBackoffLeftMs: 300_000,
      cutoffMs: Date.parse(PUBLISHED),
    });
  });

  it('keeps the options of a sweep event', () => {
    const decoded = requestOf(
      decode(message({ kind: 'sweep', queues: [BILLING], minBackoffLeft: '1m', reason: 'nightly' })),
    );
    expect(decoded.request).toMatchObject({ queues: [BILLING], minBackoffLeftMs: 60_000, reason: 'nightly' });
  });
});

describe('decodeMessage: poison messages are rejected, naming the problem', () => {
  it.each<[string, PubsubMessage, RegExp, string[]]>([
    ['bad base64', message('not base64!'), /not valid base64/, ['message.data']],
    ['base64 of a wrong length', message('abcde'), /not valid base64/, ['message.data']],
    [
      'bytes that are not UTF-8',
      message(Buffer.from([0xff, 0xfe, 0x7b]).toString('base64')),
      /not UTF-8/,
      ['message.data'],
    ],
    ['bad JSON', message(Buffer.from('{"kind":').toString('base64')), /not valid JSON/, ['message.data']],
    ['a JSON array', message([{ kind: 'sweep' }]), /must be a JSON object/, ['message.data']],
    ['an unknown kind', message({ kind: 'purge' }), /invalid event/, ['kind']],
    [
      'a bad field',
      message({ kind: 'fix-deployed', maxTasks: -1, match: { responseCodes: ['NOPE'] } }),
      /invalid event/,
      ['maxTasks', 'match.responseCodes[0]'],
    ],
    ['a bad queue name', message({ kind: 'sweep', queues: ['orders'] }), /invalid event/, ['queues[0]']],
  ])('%s', (_, msg, problem, fields) => {
    const decoded = decode(msg);
    expect(decoded.kind).toBe('reject');
    if (decoded.kind !== 'reject') return;
    expect(decoded.error.message).toMatch(problem);
    expect([...decoded.error.fields].sort()).toEqual([...fields].sort());
  });

  it('never echoes the payload in the problem', () => {
    const decoded = decode(message({ kind: 'fix-deployed', service: 'x'.repeat(300), secret: 'hunter2' }));
    expect(decoded.kind === 'reject' && decoded.error.message).not.toContain('hunter2');
  });
});

describe('decodeMessage: every delivery of a message decodes to the same request', () => {
  it.each<[string, PubsubMessage]>([
    ['a closed incident', message(fixture('incident-queue-closed'))],
    ['a build', buildMessage(fixture('build-success'))],
    ['a plain event without deployedAt', message({ kind: 'fix-deployed' })],
    ['a sweep tick', message('')],
  ])('%s', (_, msg) => {
    const first = decode(msg, routes, NOW);
    const redelivered = decode(msg, routes, NOW + 3_600_000);
    expect(first.kind).toBe('request');
    expect(redelivered).toEqual(first);
  });
});

describe('parseEnvelope', () => {
  it('reads the message of a messagePublished CloudEvent, and the snake_case spellings', () => {
    const parsed = parseEnvelope({
      message: { data: 'e30=', attributes: { a: 'b' }, message_id: '42', publish_time: PUBLISHED },
      subscription: 'projects/test-project/subscriptions/rerun',
    });
    expect(parsed).toEqual({
      ok: true,
      message: { data: 'e30=', attributes: { a: 'b' }, messageId: '42', publishTime: PUBLISHED },
      subscription: 'projects/test-project/subscriptions/rerun',
    });
  });

  it.each<[string, unknown, string]>([
    ['no data', undefined, 'message'],
    ['no message', { subscription: 's' }, 'message'],
    ['data that is not text', { message: { data: 42 } }, 'message.data'],
    ['attributes that are not strings', { message: { attributes: { n: 1 } } }, 'message.attributes.n'],
  ])('refuses %s, naming the field', (_, data, field) => {
    const parsed = parseEnvelope(data);
    expect(parsed.ok).toBe(false);
    expect(!parsed.ok && parsed.error.fields).toEqual([field]);
  });
});

describe('RERUN_ROUTES', () => {
  const Q = ORDERS;
  it.each<[string, unknown, string]>([
    ['no condition', [{ name: 'r', when: {}, queues: [Q] }], '[0].when'],
    [
      'alert and build conditions together',
      [{ name: 'r', when: { policyName: 'p', buildTriggerId: 't' }, queues: [Q] }],
      '[0].when',
    ],
    ['an unknown condition', [{ name: 'r', when: { policy: 'p' }, queues: [Q] }], '[0].when.policy'],
    ['a bad queue', [{ name: 'r', when: { policyName: 'p' }, queues: ['orders'] }], '[0].queues[0]'],
    [
      'a bad match',
      [{ name: 'r', when: { policyName: 'p' }, match: { responseCodes: ['NOPE'] } }],
      '[0].match.responseCodes[0]',
    ],
    [
      'an unknown match field',
      [{ name: 'r', when: { policyName: 'p' }, match: { regex: '.*' } }],
      '[0].match.regex',
    ],
    [
      'a bad duration',
      [{ name: 'r', when: { buildTriggerId: 't' }, minBackoffLeft: '5 minutes' }],
      '[0].minBackoffLeft',
    ],
    [
      'a bad canary wait',
      [{ name: 'r', when: { buildTriggerId: 't' }, canary: { count: 1, wait: 'soon' } }],
      '[0].canary.wait',
    ],
    ['empty labels', [{ name: 'r', when: { policyUserLabels: {} } }], '[0].when.policyUserLabels'],
  ])('refuses %s at start-up', (_, json, path) => {
    const parsed = Routes.safeParse(json);
    expect(parsed.success).toBe(false);
    expect(parsed.error && issuePaths(parsed.error)).toContain(path);
  });

  it('stops start-up with a ConfigError naming RERUN_ROUTES and the field', () => {
    const env = {
      RERUN_QUEUES: Q,
      RERUN_ROUTES: JSON.stringify([
        { name: 'r', when: { policyName: 'p' }, match: { minAttempts: 'three' } },
      ]),
    };
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(/RERUN_ROUTES\[0\]\.match\.minAttempts/);
  });

  it('takes the routes documented in docs/triggers.md "Routes"', () => {
    const config = loadConfig({
      RERUN_QUEUES: Q,
      RERUN_ROUTES: JSON.stringify([
        {
          name: 'orders-api down',
          when: { policyName: 'orders-api-down' },
          queues: [Q],
          match: { urlPrefix: 'https://orders-api' },
          lookback: '10m',
        },
        {
          name: 'orders deploys',
          when: { buildTriggerId: TRIGGER },
          queues: [Q],
          canary: { count: 3, wait: '20s' },
        },
        { name: 'billing deploys', when: { buildSubstitutions: { _SERVICE: 'billing-api' } }, maxTasks: 200 },
      ]),
    });
    expect(config.routes.map((route) => route.name)).toEqual([
      'orders-api down',
      'orders deploys',
      'billing deploys',
    ]);
  });
});
