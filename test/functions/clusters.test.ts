/**
 * Failure clusters end to end (docs/selection.md "Failure clusters"): a seeded queue with three kinds of
 * failure, one of them behind a token in the URL path. Ids are the same in every plan and run; selecting a
 * cluster forces exactly that cluster, judged by the emulator's own RunTask records; no token, body or
 * header value reaches a signature, the report or a log line.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startRerunServer, type RerunServer } from '../helpers/rerun-server.js';
import { failedTask, queueName } from '../helpers/seeds.js';
import { startTarget, type Target } from '../helpers/target-server.js';

const ORDERS = queueName('orders');
const TOKEN = 'tok_Zx81Qv4Lp2';
const SECRET_HEADER = 'Bearer h3aderSecret';
const SECRET_BODY = '{"card":"4242-secret-body"}';

let target: Target;
let server: RerunServer;

beforeEach(async () => {
  target = await startTarget({ respond: () => 200 });
  server = await startRerunServer({ RERUN_QUEUES: ORDERS });
  const secrets = { headers: { Authorization: SECRET_HEADER }, body: SECRET_BODY };
  server.emulator.load({
    queues: [
      {
        name: ORDERS,
        tasks: [
          ...Array.from({ length: 6 }, (_, i) =>
            failedTask(ORDERS, `order-${i}`, target.url, {
              httpStatus: 503,
              url: `${target.url}/orders/${1000 + i}`,
              attempts: 2 + i,
              ...secrets,
            }),
          ),
          ...Array.from({ length: 4 }, (_, i) =>
            failedTask(ORDERS, `pay-${i}`, target.url, {
              httpStatus: 500,
              url: `${target.url}/payments/${TOKEN}${i}/capture?api_key=${TOKEN}`,
              ...secrets,
            }),
          ),
          ...Array.from({ length: 2 }, (_, i) =>
            failedTask(ORDERS, `gone-${i}`, target.url, {
              httpStatus: 404,
              url: `${target.url}/orders/${i}`,
            }),
          ),
        ],
      },
    ],
  });
});
afterEach(async () => {
  await server.close();
  await target.stop();
});

const plan = async (extra: Record<string, unknown> = {}) =>
  (await server.post({ kind: 'fix-deployed', queues: [ORDERS], dryRun: true, ...extra })).body;

describe('failure clusters', () => {
  it('group the matched tasks by status and masked target, with the same ids in every plan and run', async () => {
    const first = await plan();
    expect(first.clusters.map((c: any) => [c.status, c.target, c.count])).toEqual([
      ['UNAVAILABLE 503', `${new URL(target.url).host}/orders/{id}`, 6],
      ['INTERNAL 500', `${new URL(target.url).host}/payments/{id}/capture`, 4],
      ['NOT_FOUND 404', `${new URL(target.url).host}/orders/{id}`, 2],
    ]);
    expect(first.clusters[0].attempts).toEqual({ min: 2, max: 7 });
    const second = await plan({ reason: 'another request' });
    expect(second.clusters.map((c: any) => c.id)).toEqual(first.clusters.map((c: any) => c.id));
    const run = await server.post({ kind: 'fix-deployed', queues: [ORDERS], verify: '0s' });
    expect(run.status).toBe(200);
    expect(run.body.clusters.map((c: any) => c.id)).toEqual(first.clusters.map((c: any) => c.id));
  });

  it('select by id: exactly that cluster is forced', async () => {
    const { clusters } = await plan();
    const payments = clusters.find((c: any) => c.status === 'INTERNAL 500');
    const answer = await server.post({
      kind: 'fix-deployed',
      queues: [ORDERS],
      clusters: [payments.id],
      verify: '0s',
    });
    expect(answer.status).toBe(200);
    expect(answer.body.counts).toMatchObject({ matched: 4, dispatched: 4 });
    const forced = server.emulator.calls
      .filter((c) => c.method === 'RunTask')
      .map((c) => c.name.split('/').pop());
    expect(forced.sort()).toEqual(['pay-0', 'pay-1', 'pay-2', 'pay-3']);
    expect(answer.body.clusters.map((c: any) => c.id)).toEqual([payments.id]);
  });

  it('refuses an id that is not one, naming the field', async () => {
    const answer = await server.post({ kind: 'fix-deployed', queues: [ORDERS], clusters: ['not-an-id'] });
    expect(answer.status).toBe(400);
    expect(JSON.stringify(answer.body)).toContain('clusters[0]');
  });

  it('carry no token, body or header value, in the report or any log line', async () => {
    await plan();
    await server.post({ kind: 'fix-deployed', queues: [ORDERS], verify: '0s' });
    const text = JSON.stringify(await plan()) + JSON.stringify(server.logs.lines());
    expect(text).toContain('/payments/{id}/capture');
    for (const secret of [TOKEN, 'api_key', 'h3aderSecret', '4242-secret-body'])
      expect(text).not.toContain(secret);
  });
});
