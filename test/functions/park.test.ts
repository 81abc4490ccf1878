/**
 * Parking (docs/parking.md): a sweep moves the failed tasks that Cloud Tasks may drop before the next sweep
 * into their queue's PAUSED parking queue, through a real rerunHttp against the emulator. The emulator's
 * own log says whether any task was dropped; its clock is moved on by hand.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock, startEmulator, type Emulator } from '../../emulator/server.js';
import { parkingQueueOf, parseQueueName, parseTaskName } from '../../shared/cloud-tasks/names.js';
import { PARK_HEADER, parkedCopyOf, parkedNameOf } from '../../shared/run/park-rules.js';
import { startRerunServer, type RerunServer } from '../helpers/rerun-server.js';
import { failedTask, queueName } from '../helpers/seeds.js';
import { startTarget, type Target } from '../helpers/target-server.js';

const MINUTE = 60_000;
const ORDERS = queueName('orders');
const EMAILS = queueName('emails');
const parkingOf = (queue: string) => parkingQueueOf(parseQueueName(queue)!).name;
const ACCOUNT = 'tasks@test-project.iam.gserviceaccount.com';
const SECRET_HEADER = 'hunter2-header-value';
const SECRET_BODY = 'secret-body-text';

let clock: ManualClock;
let emulator: Emulator;
let target: Target;
let server: RerunServer;
let emulatorLog: string[];

/** Long backoffs: 10 min, 20 min, ...; five attempts. */
const LONG = { maxAttempts: 5, minBackoff: '600s', maxBackoff: '3600s', maxDoublings: 16 };
/** Short backoffs: 1 s up to 10 s; five attempts. */
const SHORT = { maxAttempts: 5, minBackoff: '1s', maxBackoff: '10s', maxDoublings: 3 };

beforeEach(async () => {
  clock = new ManualClock(Date.now());
  emulatorLog = [];
  target = await startTarget({ respond: () => 500 });
  emulator = await startEmulator({
    port: 0,
    clock,
    runTaskQuota: { limit: 6000, windowMs: 60_000 },
    log: (line: string) => emulatorLog.push(line),
  });
  server = await startRerunServer({ RERUN_QUEUES: `${ORDERS},${EMAILS}` }, {}, emulator);
});
afterEach(async () => {
  await server.close();
  await emulator.stop();
  await target.stop();
});

function seed(parkingState: 'PAUSED' | 'RUNNING' = 'PAUSED') {
  const last = failedTask(ORDERS, 'last', target.url, {
    attempts: 4,
    nextMs: 10 * MINUTE,
    headers: { 'X-Secret': SECRET_HEADER },
    body: SECRET_BODY,
  });
  (last.httpRequest as Record<string, unknown>).oidcToken = {
    serviceAccountEmail: ACCOUNT,
    audience: 'https://work.example',
  };
  emulator.load({
    queues: [
      {
        name: ORDERS,
        retryConfig: LONG,
        tasks: [last, failedTask(ORDERS, 'early', target.url, { attempts: 1, nextMs: 10 * MINUTE })],
      },
      {
        name: EMAILS,
        retryConfig: SHORT,
        tasks: [failedTask(EMAILS, 'short', target.url, { attempts: 2, nextMs: 2 * MINUTE })],
      },
      { name: parkingOf(ORDERS), state: parkingState, tasks: [] },
      { name: parkingOf(EMAILS), state: parkingState, tasks: [] },
    ],
  });
}

const sweep = (extra: Record<string, unknown> = {}) =>
  server.post({ kind: 'sweep', park: true, canary: false, verify: '0s', ...extra });

/**
 * A sweep of orders whose parked copy's create is held while the original's last attempt starts (and
 * hangs until the sweep has answered, then fails).
 */
async function sweepWhileLastAttemptRuns() {
  let release!: () => void;
  const held = new Promise<number>((resolve) => (release = () => resolve(500)));
  target.setRespond(() => held);
  emulator.injectFault({ method: 'CreateTask', kind: 'delay', delayMs: 400, times: 1 });
  const running = sweep({ queues: [ORDERS] });
  await new Promise((resolve) => setTimeout(resolve, 150));
  await fetch(`${emulator.url}/v2/${ORDERS}/tasks/last:run`, { method: 'POST', body: '{}' });
  const answer = await running;
  release();
  return answer;
}

/** The row of the task `last` in a sweep's answer. */
const lastRowOf = (answer: { body: any }) => answer.body.tasks.find((r: any) => r.task.endsWith('/last'));

/** The name a plain parked copy of `last` takes. */
const PLAIN_PARKED = parkedNameOf(
  parseTaskName(`${ORDERS}/tasks/last`)!,
  parkingQueueOf(parseQueueName(ORDERS)!),
).name;

async function getTask(name: string, view: 'BASIC' | 'FULL' = 'FULL'): Promise<any> {
  const response = await fetch(`${emulator.url}/v2/${name}?responseView=${view}`);
  return response.status === 200 ? response.json() : undefined;
}

async function listTasks(queue: string): Promise<any[]> {
  const response = await fetch(`${emulator.url}/v2/${queue}/tasks?responseView=FULL`);
  return ((await response.json()) as { tasks?: any[] }).tasks ?? [];
}

const header = (task: any, name: string): string | undefined => {
  const headers: Record<string, string> = task.httpRequest.headers ?? {};
  const key = Object.keys(headers).find((k) => k.toLowerCase() === name.toLowerCase());
  return key === undefined ? undefined : headers[key];
};

describe('parking', () => {
  it('parks the tasks at risk, with long and short backoffs, forces the rest, and none is dropped', async () => {
    seed();
    const answer = await sweep();
    expect(answer.status).toBe(200);
    const byTask = new Map(answer.body.tasks.map((row: any) => [row.task.split('/').pop(), row]));
    expect(byTask.get('last')).toMatchObject({ outcome: 'parked' });
    // Two attempts left, but seconds apart: at risk, though the next attempt is not the last.
    expect(byTask.get('short')).toMatchObject({ outcome: 'parked' });
    expect(byTask.get('early')).toMatchObject({ outcome: 'dispatched' });
    expect(answer.body.counts.parked).toBe(2);
    expect(answer.body.parking).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ queue: ORDERS, parkingQueue: parkingOf(ORDERS), parked: 1, atRisk: 1 }),
        expect.objectContaining({ queue: EMAILS, parkingQueue: parkingOf(EMAILS), parked: 1, atRisk: 1 }),
      ]),
    );

    const [parked] = await listTasks(parkingOf(ORDERS));
    expect(parked.name).toBe((byTask.get('last') as any).copy);
    expect(Buffer.from(parked.httpRequest.body, 'base64').toString()).toBe(SECRET_BODY);
    expect(header(parked, 'X-Secret')).toBe(SECRET_HEADER);
    expect(parked.httpRequest.oidcToken).toBeUndefined();
    expect(header(parked, PARK_HEADER.oidcAccount)).toBe(ACCOUNT);
    expect(header(parked, PARK_HEADER.oidcAudience)).toBe('https://work.example');
    expect(header(parked, 'X-Rerun-Original-Task')).toBe(`${ORDERS}/tasks/last`);
    expect(header(parked, PARK_HEADER.originalQueue)).toBe(ORDERS);
    expect(header(parked, PARK_HEADER.dispatchCount)).toBe('4');
    expect(header(parked, PARK_HEADER.lastStatusCode)).toBe('13');
    expect(header(parked, PARK_HEADER.parkCount)).toBe('1');
    expect(await getTask(`${ORDERS}/tasks/last`)).toBeUndefined();

    // The next sweep's period passes with the target still failing: nothing was dropped meanwhile, and
    // the parking queues dispatched nothing.
    await clock.advance(20 * MINUTE);
    expect(emulatorLog.filter((line) => line.includes('failed permanently'))).toEqual([]);
    expect(await listTasks(parkingOf(ORDERS))).toHaveLength(1);
    expect(await listTasks(parkingOf(EMAILS))).toHaveLength(1);
    expect(emulator.dispatches.filter((d) => d.task.includes('-parked/'))).toEqual([]);

    const logged = server.logs.text();
    expect(logged).not.toContain(SECRET_HEADER);
    expect(logged).not.toContain(SECRET_BODY);
    expect(logged).not.toContain(Buffer.from(SECRET_BODY).toString('base64'));
    expect(JSON.stringify(answer.body)).not.toContain(SECRET_HEADER);
  });

  it('counts and logs the parked copies near their 31 days: an alert, not a re-park', async () => {
    seed();
    const old = failedTask(parkingOf(ORDERS), 'old', target.url);
    emulator.load({
      queues: [
        {
          name: parkingOf(ORDERS),
          state: 'PAUSED',
          tasks: [{ ...old, createTime: new Date(Date.now() - 29 * 24 * 60 * MINUTE).toISOString() }],
        },
      ],
    });
    const answer = await sweep({ queues: [ORDERS] });
    expect(answer.body.parking).toEqual([expect.objectContaining({ queue: ORDERS, expiringSoon: 1 })]);
    const warning = server.logs.lines().find((line) => line.message === 'parked tasks near their 31 days');
    expect(warning).toMatchObject({ queue: ORDERS, expiringSoon: 1 });
    expect(await listTasks(parkingOf(ORDERS))).toHaveLength(2);
  });

  it.each(['PAUSED', 'DISABLED'] as const)(
    'parks nothing of a %s home queue for its attempts: it makes none',
    async (state) => {
      const last = failedTask(ORDERS, 'last', target.url, { attempts: 4, nextMs: 10 * MINUTE });
      emulator.load({
        queues: [
          { name: ORDERS, state, retryConfig: LONG, tasks: [last] },
          { name: parkingOf(ORDERS), state: 'PAUSED', tasks: [] },
        ],
      });
      const answer = await sweep({ queues: [ORDERS] });
      expect(answer.body.parking).toEqual([expect.objectContaining({ queue: ORDERS, atRisk: 0 })]);
      expect(await listTasks(parkingOf(ORDERS))).toEqual([]);
    },
  );

  it('a dry run counts what it would park alike in its rows and per queue, and moves nothing', async () => {
    seed();
    const answer = await sweep({ dryRun: true });
    expect(answer.body.counts.parked).toBe(2);
    const parked = answer.body.parking
      .map((queue: any) => queue.parked)
      .reduce((a: number, b: number) => a + b);
    expect(parked).toBe(2);
    expect(await listTasks(parkingOf(ORDERS))).toEqual([]);
  });

  it('a sweep that parked a task and then met an unreachable queue answers its report, not "nothing was dispatched"', async () => {
    const last = failedTask(ORDERS, 'last', target.url, { attempts: 4, nextMs: 10 * MINUTE });
    emulator.load({
      queues: [
        { name: ORDERS, retryConfig: LONG, tasks: [last] },
        { name: EMAILS, retryConfig: SHORT, tasks: [] },
        { name: parkingOf(ORDERS), state: 'PAUSED', tasks: [] },
      ],
    });
    emulator.injectFault({ method: 'GetQueue', kind: 503, resources: [EMAILS] });
    const answer = await sweep();
    expect(answer.status).toBe(200);
    expect(answer.body.counts.parked).toBe(1);
    expect(answer.body.continueWith.incompleteQueues).toEqual([EMAILS]);
  });

  it('without park, a sweep leaves the tasks at risk alone as before', async () => {
    seed();
    const answer = await sweep({ park: false });
    const byTask = new Map(answer.body.tasks.map((row: any) => [row.task.split('/').pop(), row]));
    expect(byTask.get('last')).toMatchObject({ outcome: 'skipped', skipReason: 'last-attempt' });
    expect(answer.body.counts.parked).toBe(0);
    expect(answer.body.parking).toBeUndefined();
    expect(await listTasks(parkingOf(ORDERS))).toEqual([]);
  });

  it('lastAttempts forces the tasks at risk instead of parking them', async () => {
    seed();
    const answer = await sweep({ lastAttempts: true });
    expect(answer.body.counts.parked).toBe(0);
    const byTask = new Map(answer.body.tasks.map((row: any) => [row.task.split('/').pop(), row]));
    expect(byTask.get('last')).toMatchObject({ outcome: 'dispatched' });
    expect(byTask.get('short')).toMatchObject({ outcome: 'skipped', skipReason: 'due-soon' });
  });

  it('refuses a running parking queue: a clear error, and nothing moved', async () => {
    seed('RUNNING');
    const answer = await sweep();
    const row = answer.body.tasks.find((r: any) => r.task.endsWith('/last'));
    expect(row).toMatchObject({ outcome: 'failed' });
    expect(row.error).toContain(parkingOf(ORDERS));
    expect(row.error).toContain('not PAUSED');
    expect(await getTask(`${ORDERS}/tasks/last`)).toBeDefined();
    expect(await listTasks(parkingOf(ORDERS))).toEqual([]);
  });

  it('a copy made by a run that stopped before the delete is adopted: the task is parked once', async () => {
    seed();
    // The first half of a move that stopped: the parked copy exists, and the original too.
    const original = await getTask(`${ORDERS}/tasks/last`);
    const parking = parseQueueName(parkingOf(ORDERS))!;
    const name = parkedNameOf(parseTaskName(original.name)!, parking);
    const task = parkedCopyOf(original, name, parseQueueName(ORDERS)!, Date.now(), false);
    const made = await fetch(`${emulator.url}/v2/${parking.name}/tasks`, {
      method: 'POST',
      body: JSON.stringify({ task }),
    });
    expect(made.status).toBe(200);
    const answer = await sweep();
    const again = await sweep();
    expect(answer.body.counts.parked).toBe(2);
    expect(again.body.counts.parked).toBe(0);
    expect((await listTasks(parkingOf(ORDERS))).map((t) => t.name)).toEqual([name.name]);
    expect(await getTask(original.name)).toBeUndefined();
  });

  it.each([
    ['', []],
    [
      ", its plain copy's delete sent again after a failure that may pass",
      [{ method: 'DeleteTask', kind: 503, times: 1, resources: [PLAIN_PARKED] }],
    ],
  ] as const)(
    'keeps the parked copy, marked possibly done, when the last attempt starts during the move%s',
    async (_, faults) => {
      seed();
      faults.forEach((fault) => emulator.injectFault({ ...fault, resources: [...fault.resources] }));
      const row = lastRowOf(await sweepWhileLastAttemptRuns());
      expect(row).toMatchObject({ outcome: 'parked', possiblyDone: true });
      const parked = await listTasks(parkingOf(ORDERS));
      expect(parked.map((t) => t.name)).toEqual([row.copy]);
      expect(header(parked[0], PARK_HEADER.possiblyDone)).toBe('true');
    },
  );

  it('a plain parked copy that cannot be deleted beside its marked one: not parked, and the row says what is left', async () => {
    seed();
    emulator.injectFault({ method: 'DeleteTask', kind: 403, times: 5, resources: [PLAIN_PARKED] });
    const row = lastRowOf(await sweepWhileLastAttemptRuns());
    expect(row.outcome).toBe('failed');
    expect(row.error).toMatch(/plain parked copy could not be deleted/);
    const parked = await listTasks(parkingOf(ORDERS));
    expect(parked.map((t) => header(t, PARK_HEADER.possiblyDone)).sort()).toEqual(['true', undefined]);
  });

  it('a running original that cannot be deleted once its copy is marked: not parked, the move left to its recovery', async () => {
    seed();
    emulator.injectFault({ method: 'DeleteTask', kind: 503, times: 10, resources: [`${ORDERS}/tasks/last`] });
    const row = lastRowOf(await sweepWhileLastAttemptRuns());
    expect(row.outcome).toBe('deferred');
    expect(row.error).toMatch(/original could not be deleted/);
  });

  it('an original deleted by another move while it could not run (a sweep beside this one): parked, not possibly done', async () => {
    seed();
    emulator.injectFault({ method: 'CreateTask', kind: 'delay', delayMs: 400, times: 1 });
    const running = sweep({ queues: [ORDERS] });
    await new Promise((resolve) => setTimeout(resolve, 150));
    // Its next attempt is ten minutes away: only a move can have taken it.
    expect((await fetch(`${emulator.url}/v2/${ORDERS}/tasks/last`, { method: 'DELETE' })).status).toBe(200);
    const answer = await running;
    const row = answer.body.tasks.find((r: any) => r.task.endsWith('/last'));
    expect(row).toMatchObject({ outcome: 'parked' });
    expect(row.possiblyDone).toBeUndefined();
    const parked = await listTasks(parkingOf(ORDERS));
    expect(parked.map((t) => t.name)).toEqual([row.copy]);
    expect(header(parked[0], PARK_HEADER.possiblyDone)).toBeUndefined();
  });
});

describe('unparking', () => {
  const unpark = (extra: Record<string, unknown> = {}) =>
    server.post({ kind: 'unpark', queues: [ORDERS, EMAILS], verify: '0s', ...extra });
  const received = (id: string) => target.requests.filter((r) => r.path === `/work/${id}`);

  it('parks without acting as the token account, and brings each task home once with its token', async () => {
    seed();
    emulator.setActAs([]);
    const parked = await sweep();
    expect(parked.body.counts.parked).toBe(2);
    const before = target.requests.length;

    // Without actAs, a token-carrying task cannot go home: it stays parked.
    const refused = await unpark();
    expect(refused.body.tasks.find((r: any) => r.skipReason === 'cannot-act-as')).toBeDefined();
    expect(await listTasks(parkingOf(ORDERS))).toHaveLength(1);

    emulator.setActAs(undefined);
    target.setRespond(() => 200);
    const answer = await unpark({ requestId: 'unpark-after-fix' });
    expect(answer.status).toBe(200);
    expect(answer.body.kind).toBe('unpark');
    expect(answer.body.counts.redriven).toBe(1);
    expect(await listTasks(parkingOf(ORDERS))).toEqual([]);
    const [home] = (await listTasks(ORDERS)).filter(
      (t) => header(t, 'X-Rerun-Original-Task') === `${ORDERS}/tasks/last`,
    );
    expect(home.httpRequest.oidcToken).toEqual({
      serviceAccountEmail: ACCOUNT,
      audience: 'https://work.example',
    });
    expect(header(home, PARK_HEADER.originalQueue)).toBeUndefined();
    expect(header(home, PARK_HEADER.parkCount)).toBe('1');

    await clock.advance(30_000);
    const [delivered] = received('last').slice(-1);
    expect(received('last').length).toBe(
      1 + target.requests.slice(0, before).filter((r) => r.path === '/work/last').length,
    );
    expect(delivered!.body).toBe(SECRET_BODY);
    expect(delivered!.headers['x-secret']).toBe(SECRET_HEADER);

    // The same request again moves nothing.
    const replay = await unpark({ requestId: 'unpark-after-fix' });
    expect(replay.body.counts.redriven).toBe(0);
    expect(server.logs.text()).not.toContain(SECRET_HEADER);
  });

  it('two unpark requests racing move each task once', async () => {
    seed();
    await sweep();
    target.setRespond(() => 200);
    const [a, b] = await Promise.all([
      unpark({ requestId: 'manual' }),
      unpark({ requestId: 'fix-deployed' }),
    ]);
    expect(a.body.counts.redriven + b.body.counts.redriven).toBeGreaterThanOrEqual(2);
    expect(await listTasks(parkingOf(ORDERS))).toEqual([]);
    await clock.advance(30_000);
    const homeCopies = (await listTasks(ORDERS)).filter(
      (t) => header(t, PARK_HEADER.parkCount) !== undefined,
    );
    expect(homeCopies).toEqual([]);
    expect(received('last')).toHaveLength(1);
    expect(received('short')).toHaveLength(1);
  });

  it('leaves a task parked while possibly done, unless the request says so', async () => {
    seed();
    await sweepWhileLastAttemptRuns();
    target.setRespond(() => 200);
    const dry = await unpark({ queues: [ORDERS], dryRun: true });
    expect(dry.body.tasks).toEqual([
      expect.objectContaining({ outcome: 'skipped', skipReason: 'possibly-done' }),
    ]);
    const dryAll = await unpark({ queues: [ORDERS], dryRun: true, possiblyDone: true });
    expect(dryAll.body.tasks).toEqual([
      expect.objectContaining({
        outcome: 'redriven',
        notes: [expect.stringContaining('may have been done')],
      }),
    ]);
    const kept = await unpark({ queues: [ORDERS] });
    expect(kept.body.skipped['possibly-done']).toBe(1);
    const brought = await unpark({ queues: [ORDERS], possiblyDone: true });
    expect(brought.body.counts.redriven).toBe(1);
  });

  it('a fix-deployed request brings the parked tasks home after its run, unless includeParked is false', async () => {
    seed();
    await sweep();
    target.setRespond(() => 200);
    const without = await server.post({
      kind: 'fix-deployed',
      queues: [ORDERS, EMAILS],
      verify: '0s',
      includeParked: false,
      requestId: 'a',
    });
    expect(without.body.unparked).toBeUndefined();
    expect(await listTasks(parkingOf(ORDERS))).toHaveLength(1);
    const answer = await server.post({
      kind: 'fix-deployed',
      queues: [ORDERS, EMAILS],
      verify: '0s',
      includeParked: true,
      requestId: 'b',
    });
    expect(answer.status).toBe(200);
    expect(answer.body.unparked).toMatchObject({ kind: 'unpark', counts: { redriven: 2 } });
    expect(answer.body.continueWith).toBeUndefined();
    expect(await listTasks(parkingOf(ORDERS))).toEqual([]);
    await clock.advance(30_000);
    expect(received('last')).toHaveLength(1);
    expect(received('short')).toHaveLength(1);
  });

  it("an unpark riding on a request that is refused leaves the run's report standing, and logs under its own runId", async () => {
    seed();
    await sweep();
    target.setRespond(() => 200);
    // EMAILS grants nothing now: the run reports it refused, and the unpark's permission check refuses.
    emulator.setPermissions({ [EMAILS]: [] });
    const answer = await server.post({
      kind: 'fix-deployed',
      queues: [ORDERS, EMAILS],
      verify: '0s',
      includeParked: true,
    });
    expect(answer.status).toBe(200);
    expect(answer.body.unparkError).toMatch(/nothing was created or deleted/);
    expect(answer.body.unparked).toBeUndefined();
    expect(await listTasks(parkingOf(ORDERS))).toHaveLength(1);
    const runIds = (message: string) =>
      server.logs
        .lines()
        .filter((line) => line.message === message)
        .map((line) => line.runId);
    expect(runIds('unpark not done; the parked tasks stay parked')).toEqual([`${answer.body.runId}-unpark`]);
    expect(runIds('rerun finished').filter((id) => id === answer.body.runId)).toHaveLength(1);
  });

  it('a home queue without a parking queue has nothing parked: the request is complete', async () => {
    emulator.load({ queues: [{ name: ORDERS, tasks: [failedTask(ORDERS, 'x', target.url)] }] });
    const answer = await server.post({
      kind: 'fix-deployed',
      queues: [ORDERS],
      verify: '0s',
      includeParked: true,
    });
    expect(answer.status).toBe(200);
    expect(answer.body.unparked.queues).toEqual([expect.objectContaining({ queue: ORDERS, complete: true })]);
    expect(answer.body.continueWith).toBeUndefined();
  });

  it('leaves a task parked more than three times where it is, and reports it', async () => {
    seed();
    const original = await getTask(`${ORDERS}/tasks/last`);
    const parking = parseQueueName(parkingOf(ORDERS))!;
    const name = parkedNameOf(parseTaskName(original.name)!, parking);
    const task = parkedCopyOf(original, name, parseQueueName(ORDERS)!, Date.now(), false);
    task.httpRequest!.headers![PARK_HEADER.parkCount] = '4';
    await fetch(`${emulator.url}/v2/${parking.name}/tasks`, {
      method: 'POST',
      body: JSON.stringify({ task }),
    });
    const answer = await unpark({ queues: [ORDERS] });
    expect(answer.body.tasks).toEqual([
      expect.objectContaining({ task: name.name, skipReason: 'park-limit' }),
    ]);
    expect(await listTasks(parking.name)).toHaveLength(1);
  });

  it('never runs a parked task: a request naming one is refused, and no RunTask is sent', async () => {
    seed();
    const parked = await sweep({ queues: [ORDERS] });
    const copy = parked.body.tasks.find((r: any) => r.outcome === 'parked').copy;
    const answer = await server.post({ kind: 'tasks', tasks: [copy], force: true, lastAttempts: true });
    expect(answer.status).toBe(403);
    expect(JSON.stringify(answer.body)).toContain(copy);
    expect(emulator.calls.filter((c) => c.method === 'RunTask' && c.name.includes('-parked/'))).toEqual([]);
  });

  it('a dry run notes a home queue that now sends its tasks elsewhere (httpTarget.uriOverride)', async () => {
    seed();
    await sweep({ queues: [ORDERS] });
    const override = (mode: 'ALWAYS' | 'IF_NOT_EXISTS') =>
      emulator.load({
        queues: [
          {
            name: ORDERS,
            httpTarget: { uriOverride: { host: 'elsewhere.example', uriOverrideEnforceMode: mode } },
          },
        ],
      });
    override('ALWAYS');
    const always = await unpark({ queues: [ORDERS], dryRun: true });
    expect(always.body.tasks).toEqual([
      expect.objectContaining({
        outcome: 'redriven',
        notes: [expect.stringContaining('overrides the target URL')],
      }),
    ]);
    // IF_NOT_EXISTS leaves a task that has its own URL where it is.
    override('IF_NOT_EXISTS');
    const ifNot = await unpark({ queues: [ORDERS], dryRun: true });
    expect(ifNot.body.tasks[0]).not.toHaveProperty('notes');
  });

  it('refuses an unpark mode other than redrive, naming the field', async () => {
    const answer = await server.post({ kind: 'unpark', mode: 'run' });
    expect(answer.status).toBe(400);
    expect(JSON.stringify(answer.body)).toContain('mode');
  });
});
