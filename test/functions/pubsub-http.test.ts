/**
 * Pub/Sub deliveries to a real rerunHttp on 127.0.0.1, against a real emulator and target: what is taken
 * for a push (docs/triggers.md), which id names a message (docs/events.md "Request identity"), that no
 * header value is echoed, and an open incident's canary (docs/events.md, `canary`).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { MESSAGE_PUBLISHED } from '../../shared/platform/delivery.js';
import { rerunServersPerTest, type RerunServer } from '../helpers/rerun-server.js';
import { failedTask, PROJECT, queueName } from '../helpers/seeds.js';
import { targetPerTest } from '../helpers/target-server.js';

const ORDERS = queueName('orders');
const SUBSCRIPTION = `projects/${PROJECT}/subscriptions/rerun-push`;
const MINUTE = 60_000;

const target = targetPerTest({ respond: () => 500 });
const servers = rerunServersPerTest();

async function start(env: Record<string, string> = {}, failed = 1): Promise<RerunServer> {
  const s = await servers.start({ RERUN_QUEUES: ORDERS, ...env });
  const tasks = Array.from({ length: failed }, (_, i) => failedTask(ORDERS, `t${i}`, target.url));
  s.emulator.load({ queues: [{ name: ORDERS, tasks }] });
  return s;
}

const base64 = (json: unknown) => Buffer.from(JSON.stringify(json)).toString('base64');

/** A Pub/Sub message; `messageId: null` leaves it out. */
function message(json: unknown, messageId: string | null = '7100001') {
  return {
    data: base64(json),
    ...(messageId !== null && { messageId }),
    publishTime: new Date().toISOString(),
  };
}

/** A binary-mode CloudEvent's headers. */
function cloudEvent(id: string, type = MESSAGE_PUBLISHED): Record<string, string> {
  return {
    'ce-id': id,
    'ce-type': type,
    'ce-specversion': '1.0',
    'ce-source': `//pubsub.googleapis.com/projects/${PROJECT}/topics/rerun`,
  };
}

const errors = (s: RerunServer) => s.logs.lines().filter((line) => line.severity === 'ERROR');

describe('a Pub/Sub push is what a push subscription sends: a subscription, and a message with its ID', () => {
  it.each<[string, unknown]>([
    ['a message and nothing else', { message: {} }],
    ['no messageId', { message: { data: base64({ kind: 'sweep' }) }, subscription: SUBSCRIPTION }],
    ['no subscription', { message: message({ kind: 'sweep' }) }],
  ])('%s: a plain event, answered 400 naming kind; nothing called', async (_, body) => {
    const s = await start();
    const answer = await s.post(body);
    expect(answer.status).toBe(400);
    expect(answer.body.error.details[0].fieldViolations.map((v: { field: string }) => v.field)).toContain(
      'kind',
    );
    expect(s.emulator.calls).toEqual([]);
  });

  it('a push as Pub/Sub sends it runs, named by its messageId (either spelling)', async () => {
    const s = await start();
    const { messageId, ...rest } = message({ kind: 'sweep', dryRun: true }, '7100002');
    const camel = await s.post({ message: { ...rest, messageId }, subscription: SUBSCRIPTION });
    expect(camel).toMatchObject({ status: 200, body: { requestId: '7100002', dryRun: true } });
    const snake = await s.post({ message: { ...rest, message_id: '7100003' }, subscription: SUBSCRIPTION });
    expect(snake).toMatchObject({ status: 200, body: { requestId: '7100003' } });
  });
});

describe('a CloudEvent: its id, and no header value echoed', () => {
  it("names a message whose data carries no messageId by the CloudEvent's id", async () => {
    const s = await start();
    const body = { message: message({ kind: 'sweep', dryRun: true }, null), subscription: SUBSCRIPTION };
    const first = await s.post(body, cloudEvent('7200001'));
    const second = await s.post(body, cloudEvent('7200002'));
    expect(first).toMatchObject({ status: 200, body: { requestId: '7200001' } });
    expect(second).toMatchObject({ status: 200, body: { requestId: '7200002' } });
  });

  it('rejects a message with no messageId and an id that is no Pub/Sub message ID, naming the field', async () => {
    const s = await start();
    const body = { message: message({ kind: 'sweep' }, null), subscription: SUBSCRIPTION };
    expect((await s.post(body, cloudEvent('id-secret-value'))).status).toBe(204);
    expect(s.emulator.calls).toEqual([]);
    expect(errors(s)).toEqual([
      expect.objectContaining({
        message: 'message rejected; acknowledged without a rerun',
        fields: ['message.messageId'],
      }),
    ]);
    expect(errors(s)[0]).not.toHaveProperty('messageId');
    expect(s.logs.text()).not.toContain('id-secret-value');
  });

  it('rejects another CloudEvent type naming the expected one, never the header; nor an unshaped id', async () => {
    const s = await start();
    const body = { message: message({ kind: 'sweep' }), subscription: SUBSCRIPTION };
    expect((await s.post(body, cloudEvent('7300001', 'type-secret-value'))).status).toBe(204);
    // An envelope that cannot be read: the line names the CloudEvent id only when it is a message ID.
    const unreadable = { message: { data: 42 } };
    expect((await s.post(unreadable, cloudEvent('id-secret-value'))).status).toBe(204);
    expect((await s.post(unreadable, cloudEvent('7300002'))).status).toBe(204);
    expect(s.emulator.calls).toEqual([]);
    const [wrongType, noId, withId] = errors(s);
    expect(wrongType).toMatchObject({
      messageId: '7100001',
      problem: `the CloudEvent type is not ${MESSAGE_PUBLISHED}`,
      fields: ['type'],
    });
    expect(noId).toMatchObject({ fields: ['message.data'] });
    expect(noId).not.toHaveProperty('messageId');
    expect(withId).toMatchObject({ messageId: '7300002', fields: ['message.data'] });
    expect(s.logs.text()).not.toMatch(/secret-value/);
  });
});

describe('an incident routed to rerun when it opens', () => {
  /** The incident fixture, started 30 minutes ago; closed a minute ago unless `open`. */
  function incident(open: boolean) {
    const json = JSON.parse(
      readFileSync(new URL('../fixtures/incident-queue-closed.json', import.meta.url), 'utf8'),
    );
    const seconds = (agoMs: number) => Math.floor((Date.now() - agoMs) / 1000);
    json.incident = {
      ...json.incident,
      started_at: seconds(30 * MINUTE),
      ended_at: open ? null : seconds(MINUTE),
      state: open ? 'open' : 'closed',
    };
    return json;
  }

  it('gets no default canary: only a closed incident does', async () => {
    const routes = [{ name: 'eager', when: { policyName: 'orders-worker-failing' }, onOpen: true }];
    const env = { RERUN_ROUTES: JSON.stringify(routes) };
    // Three tasks that failed 10 minutes ago, inside the incident; the target still fails.
    const open = await start(env, 3);
    const opened = await open.post({
      message: message(incident(true), '7400001'),
      subscription: SUBSCRIPTION,
    });
    expect(opened.status).toBe(200);
    expect(opened.body).not.toHaveProperty('canary');
    expect(opened.body.counts).toMatchObject({ dispatched: 3, held: 0 });

    const closed = await start(env, 3);
    const answer = await closed.post({
      message: message(incident(false), '7400002'),
      subscription: SUBSCRIPTION,
    });
    expect(answer.status).toBe(200);
    expect(answer.body.canary).toMatchObject({ passed: false });
    expect(answer.body.canary.tasks).toHaveLength(2);
    expect(answer.body.counts).toMatchObject({ dispatched: 2, held: 1 });
  });
});
