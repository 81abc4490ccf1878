/**
 * The run's end on Pub/Sub, end to end: rerunHttp against the Cloud Tasks emulator, publishing to the local
 * Pub/Sub endpoint; and the notifier alone for its retry and deadline.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startPubsubServer, type PubsubServer } from '../../emulator/pubsub-server.js';
import { createLogger } from '../../shared/platform/log.js';
import { createNotifier } from '../../shared/notify/publish.js';
import { logSink } from '../helpers/log-sink.js';
import { rerunServersPerTest, startRerunServer, type RerunServer } from '../helpers/rerun-server.js';
import { failedTask, queueName } from '../helpers/seeds.js';
import { targetPerTest } from '../helpers/target-server.js';
import { reportWith } from './report-fixture.js';

const ORDERS = queueName('orders');
const TOPIC = 'projects/test-project/topics/rerun-runs';
const OPERATION = 'logging.googleapis.com/operation';

const target = targetPerTest({ respond: () => 200 });
const servers = rerunServersPerTest();
let pubsub: PubsubServer;
let server: RerunServer | undefined;

beforeEach(async () => {
  pubsub = await startPubsubServer();
});
afterEach(async () => {
  await pubsub.close();
});

async function serverWith(env: Record<string, string> = {}): Promise<RerunServer> {
  server = await servers.start({
    RERUN_QUEUES: ORDERS,
    RERUN_NOTIFY_TOPIC: TOPIC,
    PUBSUB_EMULATOR_HOST: pubsub.host,
    ...env,
  });
  server.emulator.load({
    queues: [
      {
        name: ORDERS,
        tasks: [
          failedTask(ORDERS, 'a', target.url, {
            headers: { Authorization: 'Bearer secret-token' },
            body: 'secret-body',
          }),
          failedTask(ORDERS, 'b', target.url),
        ],
      },
    ],
  });
  return server;
}

const event = { kind: 'fix-deployed', reason: 'PR 42', queues: [ORDERS] };

describe('the run-finished message', () => {
  it('is published exactly once per finished run, with the summary as data and filterable attributes', async () => {
    const s = await serverWith();
    const answer = await s.post(event);
    expect(answer.status).toBe(200);
    expect(pubsub.messages).toHaveLength(1);
    const [message] = pubsub.messages;
    expect(message!.topic).toBe(TOPIC);
    expect(message!.attributes).toEqual({
      event: 'run-finished',
      kind: 'fix-deployed',
      runId: answer.body.runId,
      requestId: answer.body.requestId,
      outcome: 'recovered',
    });
    const data = JSON.parse(message!.data);
    expect(data).toMatchObject({
      event: 'run-finished',
      runId: answer.body.runId,
      kind: 'fix-deployed',
      reason: 'PR 42',
      outcome: 'recovered',
      cutoff: answer.body.cutoff,
      counts: answer.body.counts,
      queues: answer.body.queues,
      failedAgain: [],
    });
    expect(data.counts).toMatchObject({ dispatched: 2, verdicts: { succeeded: 2, failedAgain: 0 } });
    expect(data.requestId).toBe(answer.body.requestId);
    expect(message!.data).not.toContain('secret');
    expect(s.logs.text()).not.toContain('secret');

    const second = await s.post({ ...event, reason: 'PR 43' });
    expect(pubsub.messages).toHaveLength(2);
    expect(pubsub.messages[1]!.attributes['runId']).toBe(second.body.runId);
    const published = s.logs.lines().filter((line) => line['message'] === 'notification published');
    expect(published.map((line) => line['runId'])).toEqual([answer.body.runId, second.body.runId]);
  });

  it('is not published on a dry run', async () => {
    const s = await serverWith();
    const answer = await s.post({ ...event, dryRun: true });
    expect(answer.status).toBe(200);
    expect(answer.body.counts.dispatched).toBe(2);
    expect(pubsub.requests).toBe(0);
  });

  it('is not published without RERUN_NOTIFY_TOPIC', async () => {
    const s = await serverWith({ RERUN_NOTIFY_TOPIC: '' });
    expect((await s.post(event)).status).toBe(200);
    expect(pubsub.requests).toBe(0);
  });

  it('is retried after a 503 and a reset, and the run answers as it would have', async () => {
    const s = await serverWith();
    pubsub.injectFaults(503, 'reset');
    const answer = await s.post(event);
    expect(answer.status).toBe(200);
    expect(answer.body.counts).toMatchObject({ matched: 2, dispatched: 2 });
    expect(pubsub.requests).toBe(3);
    expect(pubsub.messages).toHaveLength(1);
    const published = s.logs.lines().find((line) => line['message'] === 'notification published');
    expect(published).toMatchObject({
      severity: 'INFO',
      attempts: 3,
      runId: answer.body.runId,
      topic: TOPIC,
    });
    expect(s.logs.lines().some((line) => line['message'] === 'notification not published')).toBe(false);
  });
});

describe('run logs', () => {
  it('carry the run operation on every line of a run, and only that run', async () => {
    const s = await serverWith();
    const dry = await s.post({ ...event, dryRun: true });
    const real = await s.post(event);
    const lines = s.logs.lines();
    const runIds = [dry.body.runId, real.body.runId];
    for (const runId of runIds) {
      const ofRun = lines.filter((line) => line['runId'] === runId);
      // started, two task lines, finished (and the real run's notification line)
      expect(ofRun.length).toBeGreaterThanOrEqual(4);
      for (const line of ofRun) {
        expect(line[OPERATION]).toMatchObject({ id: runId, producer: 'cloud-tasks-rerun' });
      }
    }
    for (const line of lines.filter((line) => !runIds.includes(line['runId']))) {
      expect(line).not.toHaveProperty(OPERATION);
    }
  });
  it("give a run's ERROR line Error Reporting's @type, and publish nothing for a refused request", async () => {
    const s = await serverWith();
    const answer = await s.post({ ...event, queues: [queueName('elsewhere')] });
    expect(answer.status).toBe(403);
    const errors = s.logs.lines().filter((line) => line['severity'] === 'ERROR');
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({
      '@type': 'type.googleapis.com/google.devtools.clouderrorreporting.v1beta1.ReportedErrorEvent',
      message: 'request names queues outside the allowlist; nothing called',
      [OPERATION]: { producer: 'cloud-tasks-rerun' },
    });
    expect((errors[0]![OPERATION] as { id: string }).id).toBe(errors[0]!['runId']);
    expect(pubsub.requests).toBe(0);
  });
});

describe('createNotifier', () => {
  const report = reportWith({}, { runId: 'run-7', kind: 'sweep' });

  it('gives up at the deadline with one WARN line, and never throws', async () => {
    const sink = logSink();
    let nowMs = 1_000;
    const notifier = createNotifier(
      { notifyTopic: TOPIC, pubsubEmulatorHost: pubsub.host },
      createLogger('info', sink.stream),
      // A fake clock that moves 200 ms per reading: the 2 s budget is spent after five attempts.
      { backoffMs: () => 1, now: () => (nowMs += 200) },
    );
    pubsub.injectFaults(...Array<503>(10).fill(503));
    await expect(notifier.runFinished(report, 3_000)).resolves.toBeUndefined();
    expect(pubsub.messages).toHaveLength(0);
    expect(pubsub.requests).toBe(5);
    const lines = sink.lines();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      severity: 'WARNING',
      message: 'notification not published',
      runId: 'run-7',
      topic: TOPIC,
      retryable: true,
      [OPERATION]: { id: 'run-7', producer: 'cloud-tasks-rerun' },
    });
    expect(lines[0]!['error']).toMatch(/^UNAVAILABLE: /);
  });

  it('does not retry an answer that will not change', async () => {
    const sink = logSink();
    // The Cloud Tasks emulator answers the Pub/Sub path 404: a permanent answer.
    const other = await startRerunServer({ RERUN_QUEUES: ORDERS });
    try {
      const notifier = createNotifier(
        { notifyTopic: TOPIC, pubsubEmulatorHost: other.emulator.host },
        createLogger('info', sink.stream),
        { backoffMs: () => 1 },
      );
      await notifier.runFinished(report, Date.now() + 5_000);
      expect(sink.lines()).toMatchObject([
        { message: 'notification not published', attempts: 1, retryable: false },
      ]);
    } finally {
      await other.close();
    }
  });
});
