/**
 * The claim's lifecycle with a control queue (docs/claims.md), judged by the emulator's own call and
 * dispatch records: a claim released without its task being acted on never blocks the request's next
 * delivery, and a control task is acknowledged only once its task has an outcome.
 */
import { describe, expect, it } from 'vitest';
import { cancelRecordNameOf, controlTaskFor, type ControlWork } from '../../shared/control/control-tasks.js';
import { parseQueueName } from '../../shared/cloud-tasks/names.js';
import { forcedTwiceOrNever } from '../helpers/forced.js';
import { listTasksFull } from '../helpers/http.js';
import { rerunServersPerTest, type RerunServer } from '../helpers/rerun-server.js';
import { CONTROL, CONTROL_ENV, failedTask, queueName } from '../helpers/seeds.js';
import { targetPerTest } from '../helpers/target-server.js';

const ORDERS = queueName('orders');
const ENV = { RERUN_QUEUES: ORDERS, ...CONTROL_ENV };

const target = targetPerTest({ respond: () => 200 });
const servers = rerunServersPerTest();
let server: RerunServer | undefined;

/** A server with a paused control queue (its control tasks are delivered by the test, as Cloud Tasks would). */
async function start(count: number, env: Record<string, string> = {}) {
  server = await servers.start({ ...ENV, ...env });
  const tasks = Array.from({ length: count }, (_, i) => failedTask(ORDERS, `t${i}`, target.url));
  server.emulator.load({
    queues: [
      { name: ORDERS, tasks },
      { name: CONTROL, state: 'PAUSED', tasks: [] },
    ],
  });
  return { s: server, names: tasks.map((t) => t.name) };
}

describe('claims: a released claim never blocks the next delivery', () => {
  it('the same request sent again after the breaker held the rest forces every held task', async () => {
    target.setRespond(() => 503);
    // 10 RunTask calls a second: the tasks claimed while waiting for their slot are held when it trips.
    const { s, names } = await start(24, { RERUN_MAX_RATE: '10' });
    const event = {
      kind: 'fix-deployed',
      requestId: 'deploy-held',
      deployedAt: new Date(Date.now() - 1000).toISOString(),
      verify: '2s',
    };
    const first = await s.post(event);
    expect(first.body.counts.held).toBeGreaterThan(0);
    // Held tasks whose claim was made before the breaker tripped: their claim was deleted, its name reserved.
    const claimsDeleted = s.emulator.calls.filter(
      (c) => c.method === 'DeleteTask' && c.name.startsWith(`${CONTROL}/`),
    ).length;
    expect(claimsDeleted).toBeGreaterThan(first.body.counts.dispatched);
    target.setRespond(() => 200);
    const again = await s.post({ ...event, verify: '0s' });
    expect(again.body.skipped.claimed ?? 0).toBe(0);
    expect(again.body.counts.dispatched).toBe(first.body.counts.held);
    expect(forcedTwiceOrNever(s.emulator, names)).toEqual({ twice: 0, never: 0 });
    // Every claim was released again: nothing is left to fire later.
    expect(await listTasksFull(s.emulator.url, CONTROL)).toEqual([]);
  });

  it('two deliveries racing for a released name: one wins it, each task forced once', async () => {
    const { s, names } = await start(20, { RERUN_MAX_RATE: '50' });
    const cutoff = new Date(Date.now() - 1000).toISOString();
    const event = { kind: 'fix-deployed', requestId: 'race-1', deployedAt: cutoff, verify: '0s' };
    // Generation 0 of every claim was made and released by an earlier delivery (its name is reserved).
    for (const name of names) {
      const claim = controlTaskFor(workOf(name, 'race-1', cutoff), controlTarget(), Date.now() + 60_000);
      await createAndDelete(s, claim.name);
    }
    const [a, b] = await Promise.all([s.post(event), s.post(event)]);
    expect(a.body.counts.dispatched + b.body.counts.dispatched).toBe(20);
    expect(forcedTwiceOrNever(s.emulator, names)).toEqual({ twice: 0, never: 0 });
  });
});

describe('claims: a claim whose create lost its answer', () => {
  const event = () => ({
    kind: 'fix-deployed',
    requestId: 'lost-claims',
    deployedAt: new Date(Date.now() - 1000).toISOString(),
    verify: '0s',
  });

  it("found as this run wrote it, is the run's own: each task forced now, once, and its claim deleted", async () => {
    const { s, names } = await start(6, { RERUN_MAX_RATE: '50' });
    s.emulator.injectFault({ method: 'CreateTask', kind: 'lost-response', resources: [CONTROL] });
    const r = await s.post(event());
    expect(r.status).toBe(200);
    expect(r.body.counts.dispatched).toBe(6);
    expect(r.body.skipped.claimed ?? 0).toBe(0);
    // Every claim's create landed with its answer lost, and was read back (and the cancel record, once).
    const record = cancelRecordNameOf(parseQueueName(CONTROL)!, 'lost-claims').name;
    const claimReads = s.emulator.calls.filter(
      (c) => c.method === 'GetTask' && c.name.startsWith(`${CONTROL}/`) && c.name !== record,
    ).length;
    expect(claimReads).toBe(6);
    expect(forcedTwiceOrNever(s.emulator, names)).toEqual({ twice: 0, never: 0 });
    expect(await listTasksFull(s.emulator.url, CONTROL)).toEqual([]);
  });

  it("found as another delivery wrote it, stays that delivery's: the task is skipped as claimed", async () => {
    const { s, names } = await start(6, { RERUN_MAX_RATE: '50' });
    const sent = event();
    // Another delivery of the request holds every claim.
    for (const name of names) {
      await create(
        s,
        controlTaskFor(workOf(name, sent.requestId, sent.deployedAt), controlTarget(), Date.now() + 60_000),
      );
    }
    s.emulator.injectFault({ method: 'CreateTask', kind: 'lost-response', resources: [CONTROL] });
    const r = await s.post(sent);
    expect(r.body.counts.dispatched).toBe(0);
    expect(r.body.skipped.claimed).toBe(6);
    expect(forcedTwiceOrNever(s.emulator, names)).toEqual({ twice: 0, never: 6 });
    expect(await listTasksFull(s.emulator.url, CONTROL)).toHaveLength(6);
  });
});

describe('claims: a control task is acknowledged only once its task has an outcome', () => {
  it('arriving while another delivery is creating that claim, it is answered non-2xx and forced on retry', async () => {
    const { s, names } = await start(6, { RERUN_MAX_RATE: '50' });
    const cutoff = new Date(Date.now() - 1000).toISOString();
    const requestId = 'queued-1';
    // An earlier delivery queued every task: one control task each, due now.
    const controlTasks = names.map((name) =>
      controlTaskFor(workOf(name, requestId, cutoff), controlTarget(), Date.now()),
    );
    for (const task of controlTasks) await create(s, task);
    // One second of create latency in the control queue: the resend's claims are in flight a while.
    s.emulator.injectFault({ method: 'CreateTask', kind: 'delay', delayMs: 1_000, resources: [CONTROL] });
    const claimCreates = () =>
      s.emulator.calls.filter((c) => c.method === 'CreateTask' && c.name === CONTROL).length;
    const resend = s.post({ kind: 'tasks', tasks: names, requestId, cutoff, verify: '0s' });
    await expect.poll(claimCreates).toBe(12);
    // Cloud Tasks delivers each control task meanwhile.
    const deliver = () => Promise.all(controlTasks.map((task) => deliverControlTask(s, task)));
    const during = await deliver();
    expect(during.map((d) => d.status)).toEqual(Array(6).fill(503));
    const resent = await resend;
    expect(resent.body.skipped.claimed).toBe(6);
    // Cloud Tasks retries each control task: now it forces its task.
    const retried = await deliver();
    expect(retried.map((d) => d.status)).toEqual(Array(6).fill(200));
    expect(forcedTwiceOrNever(s.emulator, names)).toEqual({ twice: 0, never: 0 });
  });
});

function controlTarget() {
  return {
    queue: parseQueueName(CONTROL)!,
    selfUrl: ENV.RERUN_SELF_URL,
    invokerServiceAccount: ENV.RERUN_INVOKER_SA,
    writtenBy: 'an-earlier-run',
  };
}

function workOf(task: string, requestId: string, cutoff: string): ControlWork {
  return {
    task,
    requestId,
    cutoffMs: Date.parse(cutoff),
    mode: 'run',
    reason: undefined,
    requestKind: 'tasks',
    force: false,
    lastAttempts: false,
    verifyMs: 0,
    minBackoffLeftMs: 30_000,
  };
}

async function create(s: RerunServer, task: object): Promise<void> {
  const made = await fetch(`${s.emulator.url}/v2/${CONTROL}/tasks`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ task }),
  });
  expect(made.status, await made.text()).toBe(200);
}

async function createAndDelete(s: RerunServer, name: string): Promise<void> {
  await create(s, {
    name,
    scheduleTime: new Date(Date.now() + 60_000).toISOString(),
    httpRequest: { url: target.url },
  });
  expect((await fetch(`${s.emulator.url}/v2/${name}`, { method: 'DELETE' })).status).toBe(200);
}

/** POSTs a control task's body with the headers Cloud Tasks sends. */
function deliverControlTask(s: RerunServer, task: ReturnType<typeof controlTaskFor>) {
  const body = Buffer.from(task.httpRequest!.body as string, 'base64').toString('utf8');
  return s.post(body, {
    'X-CloudTasks-TaskName': task.name.split('/').pop()!,
    'X-CloudTasks-QueueName': 'rerun-control',
  });
}
