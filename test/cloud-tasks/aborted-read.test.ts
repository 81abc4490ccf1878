/**
 * A read answered ABORTED or CANCELLED says nothing about the queue or the task (AIP-194: ABORTED is
 * retried at a higher level): the queue is left undone, so the request is not acknowledged
 * (docs/acknowledgement.md "What counts as undone").
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createCloudTasksClient } from '../../shared/cloud-tasks/client.js';
import { parseQueueName } from '../../shared/cloud-tasks/names.js';
import { ListBudget } from '../../shared/run/list-budget.js';
import { Pacer, QueueAttempts } from '../../shared/run/pace.js';
import { Plan, type PlanMode } from '../../shared/run/plan.js';
import { isQueueUndone } from '../../shared/run/undone.js';
import { resolveScope } from '../../shared/triggers/scope.js';
import { startCloudTasksProxy, type CloudTasksProxy } from '../helpers/cloud-tasks-proxy.js';
import { failedTask } from '../helpers/seeds.js';
import { configOf, ORDERS, requestOf, silentLog, startWorld, type World } from '../run/stage-fixtures.js';

const MODE: PlanMode = {
  readsBodies: false,
  canary: undefined,
  startsAttemptsAgain: false,
  bypassesDispatchLimit: true,
  pacersOf: (queue) => queue.pacers,
  isOwnWork: () => false,
};

let world: World;
let proxy: CloudTasksProxy | undefined;
beforeEach(async () => {
  world = await startWorld();
  world.emulator.load({ queues: [{ name: ORDERS, tasks: [failedTask(ORDERS, 'a', world.target.url)] }] });
});
afterEach(async () => {
  await proxy?.close();
  await world.stop();
});

/** A plan whose calls go through a proxy that answers the first call to `path` (a GET) with `answer`. */
async function planRefusing(path: string, answer: { status: number; text: string }): Promise<Plan> {
  let refused = false;
  proxy = await startCloudTasksProxy(world.emulator.host, (call) => {
    if (refused || call.method !== 'GET' || call.url.split('?')[0] !== `/v2/${path}`) return call;
    refused = true;
    return answer;
  });
  const resolved = resolveScope(requestOf(), configOf().allowlist);
  if (!resolved.ok) throw new Error('refused');
  return new Plan(requestOf(), resolved.scope, {
    tasks: createCloudTasksClient({ emulatorHost: proxy.host }),
    pacer: new Pacer(50),
    queueAttempts: new QueueAttempts(),
    log: silentLog(),
    now: Date.now,
    mode: MODE,
    lists: new ListBudget(Date.now),
  });
}

const ABORTED = {
  status: 409,
  text: JSON.stringify({ error: { code: 409, message: 'Transaction aborted.', status: 'ABORTED' } }),
};
/** A bare 499 (no status in the JSON): CANCELLED by its HTTP status. */
const CANCELLED = { status: 499, text: JSON.stringify({ error: { code: 499, message: 'Cancelled.' } }) };

describe('a queue read answered ABORTED or CANCELLED', () => {
  it.each([
    ['ABORTED', ABORTED],
    ['CANCELLED', CANCELLED],
  ])('GetQueue answered %s: the queue is undone', async (status, answer) => {
    const plan = await planRefusing(ORDERS, answer);
    expect(await plan.openQueue(parseQueueName(ORDERS)!)).toBeUndefined();
    const [report] = plan.queueReports;
    expect(report!.error).toContain(status);
    expect(isQueueUndone(report!)).toBe(true);
  });

  it.each([
    ['ABORTED', ABORTED],
    ['CANCELLED', CANCELLED],
  ])("the listing's first page answered %s: the queue is undone", async (status, answer) => {
    const plan = await planRefusing(`${ORDERS}/tasks`, answer);
    const queue = (await plan.openQueue(parseQueueName(ORDERS)!))!;
    for await (const page of plan.pages(queue)) expect(page).toBeUndefined();
    expect(queue.report.error).toContain(status);
    expect(isQueueUndone(queue.report)).toBe(true);
  });
});
