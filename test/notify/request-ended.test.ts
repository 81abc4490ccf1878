/**
 * Queued mode's final message: the control task that finds no other control task of its request waiting in
 * the control queue (read from the Cloud Tasks emulator) publishes the request's end.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startEmulator, type Emulator } from '../../emulator/server.js';
import { startPubsubServer, type PubsubServer } from '../../emulator/pubsub-server.js';
import { createCloudTasksClient } from '../../shared/cloud-tasks/client.js';
import { controlTaskFor, type ControlWork } from '../../shared/control/control-tasks.js';
import { createLogger } from '../../shared/platform/log.js';
import { parseQueueName } from '../../shared/cloud-tasks/names.js';
import {
  createNotifier,
  notifyRunEnd,
  requestEnded,
  type RequestEndDeps,
} from '../../shared/notify/publish.js';
import type { RerunReport } from '../../shared/run/settle.js';
import { logSink } from '../helpers/log-sink.js';
import { CONTINUE_WITH, reportWith } from './report-fixture.js';
import { queueName } from '../helpers/seeds.js';

const CONTROL = parseQueueName(queueName('rerun-control'))!;
const ORDERS = queueName('orders');
const TOPIC = 'projects/test-project/topics/rerun-runs';
const CUTOFF_MS = Date.parse('2026-11-22T10:00:00Z');

let emulator: Emulator;
let pubsub: PubsubServer;
let sink: ReturnType<typeof logSink>;
let deps: RequestEndDeps;

beforeEach(async () => {
  emulator = await startEmulator({ port: 0 });
  pubsub = await startPubsubServer();
  sink = logSink();
  const log = createLogger('info', sink.stream);
  deps = {
    tasks: createCloudTasksClient({ emulatorHost: emulator.host }),
    controlQueue: CONTROL,
    notifier: createNotifier({ notifyTopic: TOPIC, pubsubEmulatorHost: pubsub.host }, log),
    log,
  };
});
afterEach(async () => {
  await pubsub.close();
  await emulator.stop();
});

/** Control tasks of `requestId`, due in an hour so the emulator does not dispatch them. */
function loadControlTasks(requestId: string, taskIds: string[]): string[] {
  const target = {
    queue: CONTROL,
    selfUrl: 'https://rerun.example.com/hook',
    invokerServiceAccount: 'invoker@test-project.iam.gserviceaccount.com',
    writtenBy: 'run-1',
  };
  const tasks = taskIds.map((id) => {
    const work: ControlWork = {
      task: `${ORDERS}/tasks/${id}`,
      requestId,
      cutoffMs: CUTOFF_MS,
      mode: 'run',
      reason: undefined,
      requestKind: 'fix-deployed',
      force: false,
      lastAttempts: false,
      verifyMs: 30_000,
      minBackoffLeftMs: 30_000,
    };
    return controlTaskFor(work, target, Date.now() + 3_600_000);
  });
  emulator.load({ queues: [{ name: CONTROL.name, tasks: tasks as never }] });
  return tasks.map((task) => task.name.split('/').pop()!);
}

function controlRunReport(extra: Partial<RerunReport> = {}): RerunReport {
  return reportWith(
    { matched: 1, dispatched: 1 },
    { runId: 'control-run-1', kind: 'tasks', queues: [], ...extra },
  );
}

describe('requestEnded', () => {
  it('publishes nothing while another control task of the request waits, then the end once it is the last', async () => {
    const [own, other] = loadControlTasks('req-1', ['a', 'b']);
    loadControlTasks('req-2', ['c']);
    expect(await requestEnded(deps, controlRunReport(), own!, 'fix-deployed', Date.now() + 5_000)).toBe(
      false,
    );
    expect(pubsub.requests).toBe(0);

    await deps.tasks.deleteTask({ name: `${CONTROL.name}/tasks/${other}` } as never);
    // The header X-CloudTasks-TaskName carries the short task ID; its own task is still in the queue.
    expect(await requestEnded(deps, controlRunReport(), own!, 'fix-deployed', Date.now() + 5_000)).toBe(true);
    expect(pubsub.messages).toHaveLength(1);
    const [message] = pubsub.messages;
    expect(message!.attributes).toEqual({
      event: 'request-ended',
      kind: 'fix-deployed',
      runId: 'control-run-1',
      requestId: 'req-1',
    });
    expect(JSON.parse(message!.data)).toEqual({
      event: 'request-ended',
      requestId: 'req-1',
      kind: 'fix-deployed',
      cutoff: '2026-11-22T10:00:00.000Z',
      lastRunId: 'control-run-1',
    });
  });

  it('publishes nothing when the run left work (its control task runs again), or on a dry run', async () => {
    const [own] = loadControlTasks('req-1', ['a']);
    const deadline = Date.now() + 5_000;
    expect(
      await requestEnded(
        deps,
        controlRunReport({ continueWith: CONTINUE_WITH }),
        own!,
        'fix-deployed',
        deadline,
      ),
    ).toBe(false);
    expect(await requestEnded(deps, controlRunReport({ dryRun: true }), own!, 'fix-deployed', deadline)).toBe(
      false,
    );
    expect(pubsub.requests).toBe(0);
  });

  it('publishes nothing, with a WARN line, when the control queue cannot be read', async () => {
    const [own] = loadControlTasks('req-1', ['a']);
    emulator.injectFault({ method: 'ListTasks', kind: 403 });
    expect(await requestEnded(deps, controlRunReport(), own!, 'fix-deployed', Date.now() + 5_000)).toBe(
      false,
    );
    expect(pubsub.requests).toBe(0);
    expect(sink.lines()).toMatchObject([
      {
        severity: 'WARNING',
        message: 'control queue not read; request end not published',
        runId: 'control-run-1',
      },
    ]);
  });
});

describe('notifyRunEnd', () => {
  const config = { notifyTopic: TOPIC, controlQueue: CONTROL };
  const headers =
    (values: Record<string, string>) =>
    (name: string): string | undefined =>
      values[name];

  it('publishes the run-finished message for a run not delivered by the control queue', async () => {
    await notifyRunEnd(
      { ...deps, config },
      controlRunReport({ kind: 'fix-deployed' }),
      headers({}),
      Date.now() + 5_000,
    );
    expect(pubsub.messages.map((m) => m.attributes['event'])).toEqual(['run-finished']);
  });

  it("publishes a control task's run only as its request's end", async () => {
    const [own, other] = loadControlTasks('req-1', ['a', 'b']);
    const delivery = headers({ 'x-cloudtasks-taskname': own!, 'x-cloudtasks-queuename': CONTROL.queue });
    await notifyRunEnd({ ...deps, config }, controlRunReport(), delivery, Date.now() + 5_000);
    expect(pubsub.requests).toBe(0);
    await deps.tasks.deleteTask({ name: `${CONTROL.name}/tasks/${other}` } as never);
    await notifyRunEnd({ ...deps, config }, controlRunReport(), delivery, Date.now() + 5_000);
    expect(pubsub.messages.map((m) => m.attributes['event'])).toEqual(['request-ended']);
    // The kind comes from the control task's own header, and only a known kind is taken from it.
    for (const [named, kind] of [
      ['sweep', 'sweep'],
      ['not-a-kind', 'tasks'],
    ]) {
      const withKind = headers({
        'x-cloudtasks-taskname': own!,
        'x-cloudtasks-queuename': CONTROL.queue,
        'x-rerun-request-kind': named!,
      });
      await notifyRunEnd({ ...deps, config }, controlRunReport(), withKind, Date.now() + 5_000);
      expect(pubsub.messages.at(-1)!.attributes['kind']).toBe(kind);
    }
  });

  it('publishes nothing on a dry run or without a topic', async () => {
    await notifyRunEnd(
      { ...deps, config },
      controlRunReport({ dryRun: true }),
      headers({}),
      Date.now() + 5_000,
    );
    await notifyRunEnd(
      { ...deps, config: { notifyTopic: undefined, controlQueue: CONTROL } },
      controlRunReport(),
      headers({}),
      Date.now() + 5_000,
    );
    expect(pubsub.requests).toBe(0);
  });
});
