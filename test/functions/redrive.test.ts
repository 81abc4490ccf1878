/**
 * Redrive (docs/redrive.md): copy each failed task into a new task due shortly, then delete the original,
 * against the emulator (its call and dispatch records are the judge) and a real local target. These tests
 * read the calls of one task at a time, so they take the one-call-per-task path (RERUN_REDRIVE_BATCH=false);
 * redrive-batch.test.ts covers the batch path.
 */
import { describe, expect, it } from 'vitest';
import { startEmulator, type SeedTask } from '../../emulator/server.js';
import { claimIdOf, copyWithdrawnNameOf, moveOfControlUrl } from '../../shared/control/control-tasks.js';
import { copyNameOf } from '../../shared/run/copy.js';
import { parseQueueName, parseTaskName } from '../../shared/cloud-tasks/names.js';
import { startCloudTasksProxy, type ProxiedCall } from '../helpers/cloud-tasks-proxy.js';
import { listTasksFull, postJson } from '../helpers/http.js';
import { rerunServersPerTest, startRerunServer, type RerunServer } from '../helpers/rerun-server.js';
import { failedTask, queueName } from '../helpers/seeds.js';
import { targetPerTest } from '../helpers/target-server.js';

const ORDERS = queueName('orders');
const SECRET_HEADER = 'key-redrive-secret-token-7f3a';
const SECRET_BODY = 'card=4111111111111111&cvv=123';
const INVOKER = 'worker@test-project.iam.gserviceaccount.com';
/** The copies fall due this long after they are made (the product's default is 10 s). */
const ARMING_MS = 300;

type Json = Record<string, any>;

const target = targetPerTest({ respond: () => 200 });
const servers = rerunServersPerTest();
let server: RerunServer | undefined;

/** A failed task carrying a body, a secret header, an OIDC token and its own dispatch deadline. */
function secretTask(id: string, extra: Json = {}) {
  const task = failedTask(ORDERS, id, target.url, {
    headers: { 'X-Api-Key': SECRET_HEADER, 'Content-Type': 'application/x-www-form-urlencoded' },
    body: SECRET_BODY,
  });
  return {
    ...task,
    httpRequest: {
      ...task.httpRequest,
      oidcToken: { serviceAccountEmail: INVOKER, audience: 'https://a.example' },
    },
    dispatchDeadline: '120s',
    ...extra,
  };
}

/** No part of a secret task's header value or body in `written`. */
function expectNoSecretIn(written: string): void {
  const secrets = [SECRET_HEADER, SECRET_BODY, Buffer.from(SECRET_BODY).toString('base64')];
  for (const secret of [...secrets, 'redrive-secret', '4111111111111111']) {
    expect(written).not.toContain(secret);
  }
}

/** `count` secret tasks, t0, t1, ... */
function secretTasks(count: number) {
  return Array.from({ length: count }, (_, i) => secretTask(`t${i}`));
}

async function start(tasks: SeedTask[], queue: Json = {}, env: Record<string, string> = {}) {
  server = await servers.start(
    { RERUN_QUEUES: ORDERS, RERUN_REDRIVE_BATCH: 'false', ...env },
    {},
    undefined,
    {
      redriveArmingDelayMs: ARMING_MS,
    },
  );
  server.emulator.load({ queues: [{ name: ORDERS, ...queue, tasks }] });
  return server;
}

const CONTROL = queueName('rerun-control');

/** As `start`, with a control queue, paused: its tasks are delivered by hand. */
async function startWithControl(tasks: SeedTask[], armingMs = ARMING_MS): Promise<RerunServer> {
  server = await servers.start(
    {
      RERUN_QUEUES: ORDERS,
      RERUN_REDRIVE_BATCH: 'false',
      RERUN_CONTROL_QUEUE: CONTROL,
      RERUN_SELF_URL: 'https://rerun-http.example.run.app/',
      RERUN_INVOKER_SA: 'rerun-invoker@test-project.iam.gserviceaccount.com',
    },
    {},
    undefined,
    { redriveArmingDelayMs: armingMs },
  );
  server.emulator.load({
    queues: [
      { name: ORDERS, tasks },
      { name: CONTROL, state: 'PAUSED', tasks: [] },
    ],
  });
  return server;
}

const callsOf = (s: RerunServer, method: string) => s.emulator.calls.filter((c) => c.method === method);
const idOf = (name: string) => name.split('/').pop()!;

async function listFull(s: RerunServer): Promise<Json[]> {
  const answer = (await (
    await fetch(`${s.emulator.url}/v2/${ORDERS}/tasks?responseView=FULL`)
  ).json()) as Json;
  return answer.tasks ?? [];
}

/** Waits until the copies have been dispatched and answered (the emulator's dispatch record). */
async function copiesAnswered(s: RerunServer, count: number): Promise<void> {
  const until = Date.now() + 10_000;
  while (s.emulator.dispatches.filter((d) => d.status !== undefined).length < count && Date.now() < until) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await s.emulator.settled();
}

/** Creates a task, due in a minute, under the name the copy of task `a` has for this request. */
async function makeTaskUnderCopyName(
  s: RerunServer,
  requestId: string,
  cutoff: string,
  headers: Record<string, string>,
): Promise<string> {
  const name = copyNameOf(parseTaskName(`${ORDERS}/tasks/a`)!, requestId, Date.parse(cutoff)).name;
  const made = await fetch(`${s.emulator.url}/v2/${ORDERS}/tasks`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({
      task: {
        name,
        scheduleTime: new Date(Date.now() + 60_000).toISOString(),
        httpRequest: { url: `${target.url}/work/a`, headers },
      },
    }),
  });
  expect(made.status).toBe(200);
  return name;
}

/**
 * A Cloud Tasks whose FULL reads and listings come back in the BASIC view, without bodies (one that
 * ignores `responseView=FULL`).
 */
function basicViewOnly(call: ProxiedCall): { status: number; text: string } {
  if (call.status !== 200 || !call.url.includes('responseView=FULL')) return call;
  const json = JSON.parse(call.text) as Json;
  for (const task of json.tasks ?? [json]) {
    task.view = 'BASIC';
    delete task.httpRequest?.body;
  }
  return { status: 200, text: JSON.stringify(json) };
}

/** A Cloud Tasks that refuses every create, quoting in its message what it was sent. */
function createsRefusedQuoting(call: ProxiedCall): { status: number; text: string } {
  if (call.method !== 'POST' || !/\/tasks(:batchCreate)?$/.test(call.url.split('?')[0]!)) return call;
  const sent = JSON.parse(call.body) as Json;
  const task = sent.task ?? sent.requests?.[0]?.task;
  const quoted = `header "${task.httpRequest.headers['X-Api-Key']}", body '${task.httpRequest.body}' (${Buffer.from(task.httpRequest.body, 'base64').toString()})`;
  const error = { code: 400, status: 'INVALID_ARGUMENT', message: `Invalid task: ${quoted}` };
  return { status: 400, text: JSON.stringify({ error }) };
}

/** A redrive of three secret tasks through `proxy` on the emulator's answers, on the batch path or not. */
async function redriveThrough(
  answer: (call: ProxiedCall) => { status: number; text: string },
  batch: string,
) {
  const emulator = await startEmulator({ port: 0 });
  const proxy = await startCloudTasksProxy(emulator.host, answer);
  try {
    server = await startRerunServer(
      { RERUN_QUEUES: ORDERS, RERUN_REDRIVE_BATCH: batch, CLOUD_TASKS_EMULATOR_HOST: proxy.host },
      {},
      emulator,
      { redriveArmingDelayMs: ARMING_MS },
    );
    emulator.load({ queues: [{ name: ORDERS, tasks: secretTasks(3) }] });
    const { body } = await server.post({ kind: 'fix-deployed', mode: 'redrive', verify: '0s' });
    const originals = ['t0', 't1', 't2'].map((id) => emulator.task(`${ORDERS}/tasks/${id}`));
    const methods = emulator.calls.map((c) => c.method);
    return { body, originals, methods, logs: server.logs.lines() };
  } finally {
    await server?.close();
    server = undefined;
    await proxy.close();
    await emulator.stop();
  }
}

describe('redrive', () => {
  it.each(['false', 'true'])(
    'copies nothing and deletes nothing when a FULL read comes back in the BASIC view (batch %s)',
    async (batch) => {
      const { body, originals, methods } = await redriveThrough(basicViewOnly, batch);
      expect(body.counts.redriven).toBe(0);
      for (const change of ['CreateTask', 'BatchCreateTasks', 'DeleteTask', 'BatchDeleteTasks']) {
        expect(methods).not.toContain(change);
      }
      for (const original of originals) {
        expect(original?.httpRequest?.body).toBe(Buffer.from(SECRET_BODY).toString('base64'));
      }
      expect(JSON.stringify(body)).toContain('BASIC view');
    },
  );

  it.each(['false', 'true'])(
    'a create refused with a message that quotes the task: no header value or body in the report or a log line (batch %s)',
    async (batch) => {
      const { body, originals, logs } = await redriveThrough(createsRefusedQuoting, batch);
      expect(body.counts).toMatchObject({ redriven: 0, failed: 3 });
      expect(originals.every((original) => original !== undefined)).toBe(true);
      const rows = body.tasks as Json[];
      expect(
        rows.every((row) => /INVALID_ARGUMENT: Invalid task: header "\[redacted\]"/.test(row.error)),
      ).toBe(true);
      expectNoSecretIn(JSON.stringify(body) + JSON.stringify(logs));
    },
  );

  it('goes on past canaries whose copies succeeded, and holds the rest when they failed again', async () => {
    const s = await start(secretTasks(4));
    const passed = await s.post({ kind: 'fix-deployed', mode: 'redrive', canary: { count: 1, wait: '5s' } });
    expect(passed.body.canary).toMatchObject({ passed: true });
    expect(passed.body.counts).toMatchObject({ matched: 4, redriven: 4, held: 0 });

    await server?.close();
    target.setRespond(() => 503);
    const t = await start(secretTasks(4));
    const failed = await t.post({ kind: 'fix-deployed', mode: 'redrive', canary: { count: 1, wait: '5s' } });
    expect(failed.body.canary).toMatchObject({ passed: false });
    expect(failed.body.counts).toMatchObject({ matched: 4, redriven: 1, held: 3 });
    expect(failed.body.tasks.find((row: Json) => row.outcome === 'redriven').verdict).toBe('failed-again');
  });

  it('copies each task with everything intact, deletes the original, and the target gets each once', async () => {
    const s = await start(['a', 'b', 'c'].map((id) => secretTask(id)));
    const { status, body } = await s.post({ kind: 'fix-deployed', mode: 'redrive', verify: '5s' });
    expect(status).toBe(200);
    expect(body.mode).toBe('redrive');
    expect(body.counts).toMatchObject({ matched: 3, redriven: 3, dispatched: 0 });
    expect(body.counts.verdicts).toEqual({ succeeded: 3, failedAgain: 0, running: 0 });
    for (const row of body.tasks) {
      const original = parseTaskName(row.task)!;
      expect(row).toMatchObject({ outcome: 'redriven', verdict: 'succeeded' });
      expect(row.copy).toBe(copyNameOf(original, body.requestId, Date.parse(body.cutoff)).name);
      expect(s.emulator.task(row.task)).toBeUndefined();
    }
    // No RunTask quota is used: the copies are dispatched by Cloud Tasks itself.
    expect(callsOf(s, 'RunTask')).toHaveLength(0);
    await copiesAnswered(s, 3);
    const received = target.requests.map((r) => idOf(r.path)).sort();
    expect(received).toEqual(['a', 'b', 'c']);
    for (const request of target.requests) {
      expect(request.method).toBe('POST');
      expect(request.body).toBe(SECRET_BODY);
      expect(request.headers['x-api-key']).toBe(SECRET_HEADER);
      expect(request.headers['content-type']).toBe('application/x-www-form-urlencoded');
      // The handler can still deduplicate by the first task's name.
      expect(request.headers['x-rerun-original-task']).toBe(`${ORDERS}/tasks/${idOf(request.path)}`);
      // A new task: a new name, and its attempt count starts again.
      expect(request.headers['x-cloudtasks-taskname']).toMatch(/^[0-9a-f]{64}$/);
      expect(request.headers['x-cloudtasks-taskretrycount']).toBe('0');
    }
  });

  it('creates the copy with the stored fields, due after the arming delay', async () => {
    const s = await start([secretTask('a')]);
    s.emulator.setPermissions(undefined);
    const started = Date.now();
    const { body } = await s.post({ kind: 'fix-deployed', mode: 'redrive', verify: '0s' });
    const [copy] = await listFull(s);
    expect(copy!.name).toBe(body.tasks[0].copy);
    expect(copy!.httpRequest).toMatchObject({
      url: `${target.url}/work/a`,
      httpMethod: 'POST',
      body: Buffer.from(SECRET_BODY).toString('base64'),
      oidcToken: { serviceAccountEmail: INVOKER, audience: 'https://a.example' },
    });
    expect(copy!.httpRequest.headers).toMatchObject({
      'X-Api-Key': SECRET_HEADER,
      'X-Rerun-Original-Task': `${ORDERS}/tasks/a`,
    });
    expect(copy!.dispatchDeadline).toBe('120s');
    expect(copy!.dispatchCount ?? 0).toBe(0);
    const dueMs = Date.parse(copy!.scheduleTime);
    expect(dueMs).toBeGreaterThanOrEqual(started + ARMING_MS - 1000);
    expect(dueMs).toBeLessThanOrEqual(Date.now() + ARMING_MS);
  });

  it('keeps the first task named when the original is itself a copy', async () => {
    const first = `${ORDERS}/tasks/the-first`;
    const task = secretTask('copy-1');
    task.httpRequest.headers = { ...task.httpRequest.headers, 'x-rerun-original-task': first };
    const s = await start([task]);
    await s.post({ kind: 'fix-deployed', mode: 'redrive', verify: '0s' });
    const [copy] = await listFull(s);
    expect(copy!.httpRequest.headers['x-rerun-original-task']).toBe(first);
    expect(Object.keys(copy!.httpRequest.headers).filter((h) => /original-task/i.test(h))).toHaveLength(1);
  });

  it('creates nothing on a second delivery of the request', async () => {
    const s = await start(['a', 'b'].map((id) => secretTask(id)));
    const event = { kind: 'fix-deployed', mode: 'redrive', verify: '0s' };
    const first = await s.post(event);
    expect(first.body.counts.redriven).toBe(2);
    const creates = callsOf(s, 'CreateTask').length;
    const second = await s.post(event);
    expect(second.body.requestId).toBe(first.body.requestId);
    expect(second.body.counts.redriven).toBe(0);
    expect(callsOf(s, 'CreateTask')).toHaveLength(creates);
    expect(callsOf(s, 'DeleteTask')).toHaveLength(2);
  });

  it('goes on after a crash between copy and delete: the next delivery finds the copy and deletes the original', async () => {
    const s = await start([secretTask('a')]);
    const cutoff = new Date(Date.now() - 1000).toISOString();
    const event = {
      kind: 'fix-deployed',
      mode: 'redrive',
      verify: '0s',
      deployedAt: cutoff,
      requestId: 'crash-1',
    };
    // The copy an earlier delivery made before its instance died.
    const copyName = await makeTaskUnderCopyName(s, 'crash-1', cutoff, {
      'X-Rerun-Original-Task': `${ORDERS}/tasks/a`,
    });
    const { body } = await s.post(event);
    const row = body.tasks.find((t: Json) => t.task === `${ORDERS}/tasks/a`);
    expect(row).toMatchObject({ outcome: 'redriven', copy: copyName });
    // The copy itself, listed and never attempted, is not a candidate.
    expect(body.tasks.find((t: Json) => t.task === copyName)).toMatchObject({
      skipReason: 'never-attempted',
    });
    expect(s.emulator.task(`${ORDERS}/tasks/a`)).toBeUndefined();
    expect(s.emulator.task(copyName)).toBeDefined();
  });

  it('refuses to delete the original when a stranger holds the copy name', async () => {
    const s = await start([secretTask('a')]);
    const cutoff = new Date(Date.now() - 1000).toISOString();
    await makeTaskUnderCopyName(s, 'stranger-1', cutoff, {});
    const { body } = await s.post({
      kind: 'fix-deployed',
      mode: 'redrive',
      verify: '0s',
      deployedAt: cutoff,
      requestId: 'stranger-1',
    });
    const row = body.tasks.find((t: Json) => t.task === `${ORDERS}/tasks/a`);
    expect(row).toMatchObject({ outcome: 'failed' });
    expect(row.error).toMatch(/not copied from this one/);
    expect(s.emulator.task(`${ORDERS}/tasks/a`)).toBeDefined();
  });

  it('keeps the copy when the answer to the delete was lost, and loses no task', async () => {
    const s = await start([secretTask('a'), secretTask('b')]);
    s.emulator.injectFault({
      method: 'DeleteTask',
      kind: 'lost-response',
      times: 1,
      resources: [`${ORDERS}/tasks/a`],
    });
    const { body } = await s.post({ kind: 'fix-deployed', mode: 'redrive', verify: '5s' });
    expect(body.counts).toMatchObject({ redriven: 2, failed: 0, gone: 0 });
    expect(callsOf(s, 'DeleteTask').filter((c) => c.name === `${ORDERS}/tasks/a`)).toHaveLength(2);
    await copiesAnswered(s, 2);
    expect(target.requests.map((r) => idOf(r.path)).sort()).toEqual(['a', 'b']);
  });

  it('resends a create that met a transient error, under the same name', async () => {
    const s = await start([secretTask('a')]);
    s.emulator.injectFault({ method: 'CreateTask', kind: 'lost-response', times: 1 });
    const { body } = await s.post({ kind: 'fix-deployed', mode: 'redrive', verify: '0s' });
    // The first create landed and lost its answer: the resend answers ALREADY_EXISTS, the copy is ours.
    expect(body.tasks[0]).toMatchObject({ outcome: 'redriven' });
    expect(callsOf(s, 'CreateTask').map((c) => c.status)).toEqual([0, 409]);
    expect(await listFull(s)).toHaveLength(1);
  });

  it('leaves no copy behind when the original finishes between the fresh read and the delete', async () => {
    const s = await start([secretTask('a')]);
    // Shorter than the arming delay: the copy is not due before the second read finds the original gone.
    s.emulator.injectFault({ method: 'CreateTask', kind: 'delay', delayMs: 150, times: 1 });
    const answer = s.post({ kind: 'fix-deployed', mode: 'redrive', verify: '0s' });
    // While the copy is being made, the original runs (someone forces it) and succeeds.
    while (callsOf(s, 'CreateTask').length === 0) await new Promise((resolve) => setTimeout(resolve, 10));
    await fetch(`${s.emulator.url}/v2/${ORDERS}/tasks/a:run`, { method: 'POST' });
    await s.emulator.settled();
    const { body } = await answer;
    expect(body.tasks[0]).toMatchObject({ outcome: 'gone' });
    expect(await listFull(s)).toHaveLength(0);
    await new Promise((resolve) => setTimeout(resolve, ARMING_MS + 200));
    await s.emulator.settled();
    expect(target.requests).toHaveLength(1);
  });

  it('withdraws the copy when the original finishes just before its delete, and says so when it cannot', async () => {
    const s = await start([secretTask('a'), secretTask('b')]);
    const cutoff = new Date(Date.now() - 1000).toISOString();
    const copyOfB = copyNameOf(parseTaskName(`${ORDERS}/tasks/b`)!, 'late-1', Date.parse(cutoff)).name;
    for (const id of ['a', 'b']) {
      s.emulator.injectFault({
        method: 'DeleteTask',
        kind: 'delay',
        delayMs: 200,
        times: 1,
        resources: [`${ORDERS}/tasks/${id}`],
      });
    }
    // b's copy cannot be withdrawn: its deletes keep answering 503.
    s.emulator.injectFault({ method: 'DeleteTask', kind: 503, resources: [copyOfB] });
    const answer = s.post({
      kind: 'fix-deployed',
      mode: 'redrive',
      verify: '0s',
      deployedAt: cutoff,
      requestId: 'late-1',
    });
    // While each delete of an original is held, the original runs and succeeds.
    for (const id of ['a', 'b']) {
      const name = `${ORDERS}/tasks/${id}`;
      while (!callsOf(s, 'DeleteTask').some((c) => c.name === name))
        await new Promise((r) => setTimeout(r, 10));
      await fetch(`${s.emulator.url}/v2/${name}:run`, { method: 'POST' });
    }
    const { body } = await answer;
    const byId = Object.fromEntries(body.tasks.map((row: Json) => [idOf(row.task), row]));
    expect(byId.a).toMatchObject({ outcome: 'gone' });
    expect(byId.b).toMatchObject({ outcome: 'failed' });
    expect(byId.b.error).toMatch(/could not be withdrawn.*may run twice/);
    // a's copy was withdrawn before it fell due: a ran once; b's copy was not (the report says so).
    await new Promise((resolve) => setTimeout(resolve, ARMING_MS + 200));
    await s.emulator.settled();
    expect(target.requests.filter((r) => idOf(r.path) === 'a')).toHaveLength(1);
  });

  it("keeps another delivery's copy when the original is gone by the second read (that delivery's move deleted it)", async () => {
    const s = await start([secretTask('a')]);
    const cutoff = new Date(Date.now() - 1_000).toISOString();
    const original = `${ORDERS}/tasks/a`;
    const copy = copyNameOf(parseTaskName(original)!, 'other-1', Date.parse(cutoff)).name;
    // Another delivery of the request made the copy, due after the arming delay, and is about to delete a.
    const made = await postJson(`${s.emulator.url}/v2/${ORDERS}/tasks`, {
      task: {
        name: copy,
        scheduleTime: new Date(Date.now() + 1_000).toISOString(),
        httpRequest: { url: `${target.url}/a`, headers: { 'X-Rerun-Original-Task': original } },
      },
    });
    expect(made.status).toBe(200);
    // This delivery's create (the second CreateTask) is held while the other delivery deletes the original.
    s.emulator.injectFault({ method: 'CreateTask', kind: 'delay', delayMs: 150, times: 1 });
    const answer = s.post({
      kind: 'fix-deployed',
      mode: 'redrive',
      verify: '0s',
      deployedAt: cutoff,
      requestId: 'other-1',
    });
    while (callsOf(s, 'CreateTask').length < 2) await new Promise((resolve) => setTimeout(resolve, 10));
    expect((await fetch(`${s.emulator.url}/v2/${original}`, { method: 'DELETE' })).status).toBe(200);
    const { body } = await answer;
    expect(body.tasks.find((row: Json) => row.task === original)).toMatchObject({ outcome: 'gone' });
    expect(s.emulator.task(copy)).toBeDefined();
    await copiesAnswered(s, 1);
    expect(target.requests.filter((r) => idOf(r.path) === 'a')).toHaveLength(1);
  });

  it('withdraws the copy when an attempt of the original starts meanwhile, and leaves the original', async () => {
    target.setRespond(() => new Promise<number>(() => undefined));
    const s = await start([secretTask('a')]);
    s.emulator.injectFault({ method: 'CreateTask', kind: 'delay', delayMs: 150, times: 1 });
    const answer = s.post({ kind: 'fix-deployed', mode: 'redrive', verify: '0s' });
    while (callsOf(s, 'CreateTask').length === 0) await new Promise((resolve) => setTimeout(resolve, 10));
    await fetch(`${s.emulator.url}/v2/${ORDERS}/tasks/a:run`, { method: 'POST' });
    const { body } = await answer;
    expect(body.tasks[0]).toMatchObject({ outcome: 'deferred' });
    expect(body.tasks[0].error).toMatch(/attempt of the original started/);
    expect(s.emulator.task(`${ORDERS}/tasks/a`)).toBeDefined();
    expect((await listFull(s)).map((t) => idOf(t.name))).toEqual(['a']);
  });

  it('copies a task on its last attempt, and on a queue meant to run one task at a time', async () => {
    // maxAttempts 5 with 4 used: RunTask would be skipped (last-attempt), but a copy starts from zero.
    const s = await start([{ ...secretTask('a'), dispatchCount: 4, responseCount: 4 }], {
      retryConfig: { maxAttempts: 5 },
      rateLimits: { maxConcurrentDispatches: 1 },
    });
    const run = await s.post({ kind: 'fix-deployed', dryRun: true });
    expect(run.body.tasks[0]).toMatchObject({ outcome: 'skipped' });
    const { body } = await s.post({ kind: 'fix-deployed', mode: 'redrive', verify: '0s' });
    expect(body.tasks[0]).toMatchObject({ outcome: 'redriven' });
  });

  it('skips a paused queue unless forced', async () => {
    const s = await start([secretTask('a')], { state: 'PAUSED' });
    const skipped = await s.post({ kind: 'fix-deployed', mode: 'redrive', verify: '0s' });
    expect(skipped.body.tasks[0]).toMatchObject({ outcome: 'skipped', skipReason: 'queue-paused' });
    expect(callsOf(s, 'CreateTask')).toHaveLength(0);
    const forced = await s.post({ kind: 'fix-deployed', mode: 'redrive', verify: '0s', force: true });
    expect(forced.body.tasks[0]).toMatchObject({ outcome: 'redriven' });
    // On the paused queue the copy waits for the queue to resume.
    expect(s.emulator.task(forced.body.tasks[0].copy)).toBeDefined();
  });

  it('answers 403 naming the missing permission, and changes nothing', async () => {
    const s = await start([secretTask('a')]);
    s.emulator.setPermissions({
      [ORDERS]: [
        'cloudtasks.queues.get',
        'cloudtasks.tasks.list',
        'cloudtasks.tasks.get',
        'cloudtasks.tasks.fullView',
        'cloudtasks.tasks.create',
      ],
    });
    const { status, body } = await s.post({ kind: 'fix-deployed', mode: 'redrive' });
    expect(status).toBe(403);
    expect(body.error).toMatchObject({ code: 403, status: 'PERMISSION_DENIED' });
    expect(body.error.message).toContain(`cloudtasks.tasks.delete on ${ORDERS}`);
    expect(body.error.details[0]).toMatchObject({ reason: 'REDRIVE_PERMISSION_DENIED' });
    for (const method of ['CreateTask', 'DeleteTask', 'GetTask', 'ListTasks'])
      expect(callsOf(s, method)).toHaveLength(0);
    expect(s.emulator.task(`${ORDERS}/tasks/a`)).toBeDefined();
  });

  it('acknowledges a Pub/Sub push of a redrive that lacks the permissions, with one ERROR line', async () => {
    const s = await start([secretTask('a')]);
    s.emulator.setPermissions({
      [ORDERS]: ['cloudtasks.queues.get', 'cloudtasks.tasks.list', 'cloudtasks.tasks.get'],
    });
    const event = { kind: 'fix-deployed', mode: 'redrive' };
    const { status } = await s.post({
      message: {
        data: Buffer.from(JSON.stringify(event)).toString('base64'),
        messageId: '981',
        publishTime: new Date().toISOString(),
      },
      subscription: 'projects/test-project/subscriptions/rerun-push',
    });
    // A redelivery would be refused the same: acknowledged, not redelivered in a loop.
    expect(status).toBe(204);
    const errors = s.logs.lines().filter((l) => l.severity === 'ERROR');
    expect(errors.map((l) => l.message)).toEqual([
      expect.stringContaining('cloudtasks.tasks.fullView, cloudtasks.tasks.create, cloudtasks.tasks.delete'),
    ]);
    expect(callsOf(s, 'CreateTask')).toHaveLength(0);
  });

  it('claims each task in the control queue, and a control task carries out its own claim', async () => {
    const s = await startWithControl([secretTask('a'), secretTask('b')]);
    const inline = await s.post({
      kind: 'tasks',
      tasks: [`${ORDERS}/tasks/a`],
      mode: 'redrive',
      verify: '0s',
    });
    expect(inline.body.tasks[0]).toMatchObject({ outcome: 'redriven' });
    // The claim and the move's recovery task were made in the control queue before the copy, and deleted
    // once the task had its outcome.
    const controlCreates = () =>
      s.emulator.calls.filter((c) => c.method === 'CreateTask' && c.name === CONTROL).length;
    const controlDeletes = () =>
      s.emulator.calls.filter((c) => c.method === 'DeleteTask' && c.name.startsWith(`${CONTROL}/`)).length;
    expect(controlCreates()).toBeGreaterThanOrEqual(2);
    expect(controlDeletes()).toBe(2);
    const createsBefore = controlCreates();
    // A control task (what Cloud Tasks delivers when a claim's instance died) names itself: it is the claim.
    const cutoff = new Date().toISOString();
    const claimId = claimIdOf({ task: `${ORDERS}/tasks/b`, requestId: 'r-b', cutoffMs: Date.parse(cutoff) });
    const delivered = await s.post(
      {
        kind: 'tasks',
        tasks: [`${ORDERS}/tasks/b`],
        mode: 'redrive',
        verify: '0s',
        cutoff,
        requestId: 'r-b',
      },
      { 'X-CloudTasks-TaskName': claimId, 'X-CloudTasks-QueueName': 'rerun-control' },
    );
    expect(delivered.status).toBe(200);
    expect(delivered.body.tasks[0]).toMatchObject({ outcome: 'redriven' });
    // No claim of its own (it is the claim): only the move's recovery task, deleted once b was moved.
    expect(controlCreates() - createsBefore).toBe(1);
    expect(controlDeletes()).toBe(3);
    expect(s.emulator.task(`${ORDERS}/tasks/b`)).toBeUndefined();
  });

  describe('with a control queue, a copy withdrawn is recorded first (docs/claims.md "Withdrawn copies are recorded")', () => {
    const A = `${ORDERS}/tasks/a`;

    /**
     * A redrive of `a` whose copy's create is held 150 ms, returned once that create has arrived: the
     * copy's name, the name of the record of its withdrawal, and the answer to come.
     */
    async function redriveHoldingTheCopy(requestId: string) {
      const s = await startWithControl([secretTask('a')], 5_000);
      const cutoff = new Date(Date.now() - 1_000).toISOString();
      const copy = copyNameOf(parseTaskName(A)!, requestId, Date.parse(cutoff)).name;
      const record = copyWithdrawnNameOf(parseQueueName(CONTROL)!, copy).name;
      s.emulator.injectFault({
        method: 'CreateTask',
        kind: 'delay',
        delayMs: 150,
        times: 1,
        resources: [ORDERS],
      });
      const answer = s.post({
        kind: 'fix-deployed',
        mode: 'redrive',
        verify: '0s',
        deployedAt: cutoff,
        requestId,
      });
      while (!callsOf(s, 'CreateTask').some((c) => c.name === ORDERS)) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      return { s, copy, record, answer };
    }

    const recoveryTasks = async (s: RerunServer) =>
      (await listTasksFull(s.emulator.url, CONTROL)).filter((t) => moveOfControlUrl(t.httpRequest?.url));

    it('an attempt of the original started meanwhile: the record, then the copy withdrawn; once due, a no-op', async () => {
      target.setRespond(() => new Promise<number>(() => undefined));
      const { s, copy, record, answer } = await redriveHoldingTheCopy('w-1');
      await fetch(`${s.emulator.url}/v2/${A}:run`, { method: 'POST' });
      const { body } = await answer;
      // Deferred, and so left to its claim in the control queue.
      expect(body.tasks[0]).toMatchObject({ outcome: 'queued' });
      expect(s.emulator.task(copy)).toBeUndefined();
      const written = s.emulator.task(record);
      expect(Date.parse(written?.scheduleTime ?? '')).toBeGreaterThan(Date.now() + 9 * 24 * 3_600_000);
      // The move settled: its recovery task is gone.
      expect(await recoveryTasks(s)).toEqual([]);
      // Delivered as Cloud Tasks delivers it, once due: its own headers and body, and the X-CloudTasks-* headers.
      const before = s.emulator.calls.length;
      const delivered = await s.post(Buffer.from(written?.httpRequest?.body ?? '', 'base64').toString(), {
        ...written?.httpRequest?.headers,
        'X-CloudTasks-QueueName': 'rerun-control',
        'X-CloudTasks-TaskName': idOf(record),
      });
      expect(delivered.status).toBe(204);
      expect(s.emulator.calls.length).toBe(before);
    });

    it('the original could not be read again and the record cannot be written: the copy stays for the recovery task', async () => {
      const { s, copy, record, answer } = await redriveHoldingTheCopy('w-2');
      // While the copy's create is held: the second read is refused, and so is every create in the control queue.
      s.emulator.injectFault({ method: 'GetTask', kind: 403, resources: [A] });
      s.emulator.injectFault({ method: 'CreateTask', kind: 503, resources: [CONTROL] });
      const { body } = await answer;
      expect(body.tasks[0]).toMatchObject({ outcome: 'queued' });
      expect(s.emulator.task(copy)).toBeDefined();
      expect(s.emulator.task(A)).toBeDefined();
      expect(s.emulator.task(record)).toBeUndefined();
      // The recovery task stays; delivered, it finishes the move.
      const [recovery] = await recoveryTasks(s);
      expect(recovery).toBeDefined();
      s.emulator.clearFaults();
      const delivered = await s.post(Buffer.from(recovery!.httpRequest.body, 'base64').toString(), {
        'X-CloudTasks-QueueName': 'rerun-control',
        'X-CloudTasks-TaskName': idOf(recovery!.name),
      });
      expect(delivered.body).toMatchObject({ outcome: 'finished' });
      expect(s.emulator.task(A)).toBeUndefined();
      expect(s.emulator.task(copy)).toBeDefined();
    });
    it("a copy's name used up by an earlier delivery and the record cannot be written: its recovery task goes, the original stays", async () => {
      const { s, copy, record, answer } = await redriveHoldingTheCopy('w-3');
      // While the copy's create is held: an earlier delivery's copy, since withdrawn, used the name up...
      const api = `${s.emulator.url}/v2`;
      const made = await postJson(`${api}/${ORDERS}/tasks`, {
        task: {
          name: copy,
          scheduleTime: new Date(Date.now() + 3_600_000).toISOString(),
          httpRequest: { url: target.url, httpMethod: 'POST' },
        },
      });
      expect(made.status).toBe(200);
      expect((await fetch(`${api}/${copy}`, { method: 'DELETE' })).status).toBe(200);
      // ...and every create in the control queue is refused from now on.
      s.emulator.injectFault({ method: 'CreateTask', kind: 503, resources: [CONTROL] });
      const { body } = await answer;
      expect(body.tasks[0]).toMatchObject({ outcome: 'failed' });
      expect(s.emulator.task(record)).toBeUndefined();
      // No recovery task is left to take the used name for a copy that ran, and delete the original.
      expect(await recoveryTasks(s)).toEqual([]);
      expect(s.emulator.task(A)).toBeDefined();
    });
  });

  it('skips a task whose token account may not be acted as, and leaves it untouched', async () => {
    const other = 'payments@test-project.iam.gserviceaccount.com';
    const b = secretTask('b');
    b.httpRequest.oidcToken = { serviceAccountEmail: other, audience: 'https://b.example' };
    const c = secretTask('c');
    c.httpRequest.oidcToken = { serviceAccountEmail: other, audience: 'https://c.example' };
    const s = await start([secretTask('a'), b, c]);
    s.emulator.setActAs([INVOKER]);
    const { body } = await s.post({ kind: 'fix-deployed', mode: 'redrive', verify: '0s' });
    const byId = Object.fromEntries(body.tasks.map((row: Json) => [idOf(row.task), row]));
    expect(byId.a).toMatchObject({ outcome: 'redriven' });
    expect(byId.b).toMatchObject({ outcome: 'skipped', skipReason: 'cannot-act-as' });
    expect(byId.c).toMatchObject({ outcome: 'skipped', skipReason: 'cannot-act-as' });
    expect(s.emulator.task(`${ORDERS}/tasks/b`)).toBeDefined();
    expect(s.emulator.task(`${ORDERS}/tasks/c`)).toBeDefined();
  });

  it('gives the copy its verdict: failed again, with its status', async () => {
    target.setRespond(() => 503);
    const s = await start([secretTask('a')]);
    const { body } = await s.post({ kind: 'fix-deployed', mode: 'redrive', verify: '5s' });
    expect(body.tasks[0]).toMatchObject({ outcome: 'redriven', verdict: 'failed-again' });
    expect(body.tasks[0].status).toMatch(/HTTP status code 503/);
  });

  it('paces copies at the queue rate, without the RunTask rate', async () => {
    const s = await start(
      secretTasks(12),
      { rateLimits: { maxDispatchesPerSecond: 20 } },
      // A RunTask rate that would take 12 s: redrive does not use it.
      { RERUN_MAX_RATE: '1' },
    );
    const started = Date.now();
    const { body } = await s.post({ kind: 'fix-deployed', mode: 'redrive', verify: '0s' });
    expect(body.counts.redriven).toBe(12);
    expect(body.queues[0].rate).toBe(20);
    const creates = callsOf(s, 'CreateTask')
      .map((c) => c.realStartMs)
      .sort((x, y) => x - y);
    // 12 copies at 20 per second: spread over at least 11 intervals of 50 ms.
    expect(creates.at(-1)! - creates[0]!).toBeGreaterThanOrEqual(11 * 50 * 0.9);
    expect(Date.now() - started).toBeLessThan(6_000);
  });

  it('defers what does not fit in the budget, and the next delivery goes on', async () => {
    const s = await start(
      secretTasks(12),
      { rateLimits: { maxDispatchesPerSecond: 10 } },
      { RERUN_TIME_BUDGET: '600ms' },
    );
    const event = { kind: 'fix-deployed', mode: 'redrive', verify: '0s', breaker: false };
    const first = await s.post(event);
    expect(first.body.counts.redriven).toBeGreaterThan(0);
    expect(first.body.counts.queued).toBe(0);
    expect(first.body.counts.redriven + first.body.counts.deferred).toBe(12);
    expect(first.body.continueWith).toMatchObject({ deferred: first.body.counts.deferred });
    let redriven = first.body.counts.redriven;
    for (let delivery = 0; delivery < 6 && redriven < 12; delivery++) {
      redriven += (await s.post(event)).body.counts.redriven;
    }
    expect(redriven).toBe(12);
    expect(callsOf(s, 'CreateTask')).toHaveLength(12);
  });

  it('does not count its own copies, listed on a later page, as matched tasks', async () => {
    // More than one listing page (1000 tasks): the copies made meanwhile are listed on the second.
    const ids = Array.from({ length: 1050 }, (_, i) => `t${i}`);
    const s = await start(
      ids.map((id) => failedTask(ORDERS, id, target.url)),
      {},
      { RERUN_MAX_TASKS: '2000', RERUN_TIME_BUDGET: '50s' },
    );
    const { body } = await s.post({ kind: 'fix-deployed', mode: 'redrive', verify: '0s' });
    expect(body.counts).toMatchObject({ matched: 1050, redriven: 1050, skipped: 0 });
    // Copies made before the second page is listed are scanned there, and not counted as matched.
    expect(body.queues[0].scanned).toBeGreaterThanOrEqual(1050);
  });

  it('says in a dry run how long each mode takes, and suggests redrive when RunTask is slower than the backoff', async () => {
    const ids = Array.from({ length: 120 }, (_, i) => `t${i}`);
    // Their own retries come within two minutes; RunTask at 1 per second needs two.
    const soon = ids.map((id, i) => failedTask(ORDERS, id, target.url, { nextMs: 60_000 + i * 100 }));
    const s = await start(soon, { rateLimits: { maxDispatchesPerSecond: 100 } }, { RERUN_MAX_RATE: '1' });
    const { body } = await s.post({ kind: 'fix-deployed', dryRun: true });
    expect(body.counts.dispatched).toBe(120);
    expect(body.estimate.runSeconds).toBeCloseTo(120 * 1.01, -1);
    expect(body.estimate.redriveSeconds).toBeCloseTo(120 / 100 + ARMING_MS / 1000, 0);
    expect(body.estimate.backoffLeftSeconds).toBeGreaterThan(60);
    expect(body.estimate.backoffLeftSeconds).toBeLessThan(75);
    expect(body.estimate.suggestion).toMatch(/"mode": "redrive"/);
    const redrive = await s.post({ kind: 'fix-deployed', dryRun: true, mode: 'redrive' });
    expect(redrive.body.counts.redriven).toBe(120);
    expect(redrive.body.estimate.suggestion).toBeUndefined();
    expect(callsOf(s, 'CreateTask')).toHaveLength(0);
    expect(callsOf(s, 'DeleteTask')).toHaveLength(0);
  });

  it('suggests nothing when RunTask finishes before the tasks would retry by themselves', async () => {
    const s = await start(
      ['a', 'b', 'c'].map((id) => failedTask(ORDERS, id, target.url)),
      {},
      { RERUN_MAX_RATE: '1' },
    );
    const { body } = await s.post({ kind: 'fix-deployed', dryRun: true });
    expect(body.estimate.runSeconds).toBeLessThan(body.estimate.backoffLeftSeconds);
    expect(body.estimate.suggestion).toBeUndefined();
  });

  it('never writes a body or a header value to a log line or the report', async () => {
    const s = await start(['a', 'b'].map((id) => secretTask(id)));
    s.emulator.injectFault({ method: 'DeleteTask', kind: 503, times: 1 });
    const { body } = await s.post({ kind: 'fix-deployed', mode: 'redrive', verify: '3s' });
    expectNoSecretIn(JSON.stringify(body) + s.logs.text());
  });
});
