/**
 * Queued mode end to end: the planning run publishes its run-finished message, the control tasks publish
 * none each, and the last of them publishes the request's end. Cloud Tasks' part is played by the test: the
 * control queue is paused, each control task is delivered to rerunHttp with the headers Cloud Tasks sends,
 * and deleted once answered 2xx, as Cloud Tasks does.
 */
import { firstCutoffTaskId } from '../../shared/platform/first-deliveries.js';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { startPubsubServer, type PubsubServer } from '../../emulator/pubsub-server.js';
import { startRerunServer, type RerunServer } from '../helpers/rerun-server.js';
import { failedTask, queueName } from '../helpers/seeds.js';
import { startTarget, type Target } from '../helpers/target-server.js';

const ORDERS = queueName('orders');
const CONTROL = queueName('rerun-control');

let target: Target;
let pubsub: PubsubServer;
let server: RerunServer;

beforeEach(async () => {
  target = await startTarget({ respond: () => 200 });
  pubsub = await startPubsubServer();
});
afterEach(async () => {
  await server.close();
  await pubsub.close();
  await target.stop();
});

it('publishes the planning run once, and the request end once, after its last control task', async () => {
  server = await startRerunServer({
    RERUN_QUEUES: ORDERS,
    RERUN_MAX_RATE: '4',
    RERUN_TIME_BUDGET: '600ms',
    RERUN_CONTROL_QUEUE: CONTROL,
    RERUN_SELF_URL: 'https://rerun-http.example.run.app/',
    RERUN_INVOKER_SA: 'rerun-invoker@test-project.iam.gserviceaccount.com',
    RERUN_NOTIFY_TOPIC: 'projects/test-project/topics/rerun-runs',
    PUBSUB_EMULATOR_HOST: pubsub.host,
  });
  const tasks = Array.from({ length: 8 }, (_, i) => failedTask(ORDERS, `t${i}`, target.url));
  server.emulator.load({
    queues: [
      { name: ORDERS, tasks },
      { name: CONTROL, state: 'PAUSED', tasks: [] },
    ],
  });
  const planning = await server.post({ kind: 'fix-deployed', breaker: false });
  expect(planning.body.counts.queued).toBeGreaterThan(0);
  expect(pubsub.messages.map((m) => m.attributes)).toEqual([
    {
      event: 'run-finished',
      kind: 'fix-deployed',
      runId: planning.body.runId,
      requestId: planning.body.requestId,
      outcome: 'partial',
    },
  ]);

  const listed = (await (
    await fetch(`${server.emulator.url}/v2/${CONTROL}/tasks?responseView=FULL`)
  ).json()) as {
    tasks: { name: string; httpRequest: { body: string; headers: Record<string, string> } }[];
  };
  // The request's work; the control task holding its first cutoff is no work and does not delay its end.
  const work = listed.tasks.filter((t) => !t.name.endsWith(firstCutoffTaskId(planning.body.requestId)));
  expect(work).toHaveLength(planning.body.counts.queued);
  const runIds: string[] = [];
  for (const task of work) {
    // As Cloud Tasks delivers it: the task's own headers, and its name and queue.
    const delivered = await server.post(Buffer.from(task.httpRequest.body, 'base64').toString(), {
      'X-Rerun-Request-Kind': task.httpRequest.headers['X-Rerun-Request-Kind']!,
      'X-CloudTasks-TaskName': task.name.split('/').pop()!,
      'X-CloudTasks-QueueName': 'rerun-control',
    });
    expect(delivered.status).toBe(200);
    runIds.push(delivered.body.runId);
    await fetch(`${server.emulator.url}/v2/${task.name}`, { method: 'DELETE' });
  }

  expect(pubsub.messages).toHaveLength(2);
  const end = pubsub.messages[1]!;
  expect(end.attributes).toEqual({
    event: 'request-ended',
    // The request's own kind, not its control tasks' `tasks`.
    kind: 'fix-deployed',
    runId: runIds.at(-1),
    requestId: planning.body.requestId,
  });
  expect(JSON.parse(end.data)).toMatchObject({
    event: 'request-ended',
    requestId: planning.body.requestId,
    cutoff: planning.body.cutoff,
    lastRunId: runIds.at(-1),
  });
});
