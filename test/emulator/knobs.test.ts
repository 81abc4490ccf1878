/**
 * The knobs tests and benchmarks use: injected faults and latency, the call record, seeds (in-process and
 * from a file with relative times), and the CLI.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { optionsFromArgs, runCli } from '../../emulator/cli.js';
import { ManualClock, readSeedFile, startEmulator, type Emulator } from '../../emulator/server.js';
import { startTarget } from '../helpers/target-server.js';
import { googleClient, queueName, rest, taskName } from './helpers.js';

const T0 = Date.parse('2026-11-22T10:00:00Z');
const ORDERS = queueName('orders');
const seed = {
  queues: [
    {
      name: ORDERS,
      state: 'PAUSED' as const,
      tasks: ['a', 'b'].map((id) => ({
        id,
        httpRequest: { url: 'http://127.0.0.1:9/', body: Buffer.from(id).toString('base64') },
        scheduleTime: '+1h',
      })),
    },
  ],
};

let emulator: Emulator | undefined;
afterEach(async () => {
  await emulator?.stop();
  emulator = undefined;
});

describe('faults', () => {
  it('answers 503, 429 and 403 in Google shape, each for as many calls as asked', async () => {
    emulator = await startEmulator({ seed });
    emulator.injectFault({ method: 'GetTask', kind: 503, times: 1 });
    emulator.injectFault({ method: 'GetTask', kind: 403, resources: [taskName('orders', 'b')] });
    emulator.injectFault({ method: 'ListTasks', kind: 429, times: 1 });

    const unavailable = await rest(emulator, 'GET', taskName('orders', 'a'));
    expect(unavailable).toMatchObject({ status: 503, body: { error: { code: 503, status: 'UNAVAILABLE' } } });
    expect((await rest(emulator, 'GET', taskName('orders', 'a'))).status).toBe(200);
    const denied = await rest(emulator, 'GET', taskName('orders', 'b'));
    expect(denied.body.error).toMatchObject({ code: 403, status: 'PERMISSION_DENIED' });
    expect(denied.body.error.message).toBe(
      `The principal (user or service account) lacks IAM permission "cloudtasks.tasks.get" for the resource ` +
        `"${taskName('orders', 'b')}" (or the resource may not exist).`,
    );

    const client = googleClient(emulator);
    try {
      await expect(client.listTasks({ parent: ORDERS }, { autoPaginate: false })).rejects.toMatchObject({
        code: 8,
      });
      const [listed] = await client.listTasks({ parent: ORDERS }, { autoPaginate: false });
      expect(listed).toHaveLength(2);
    } finally {
      await client.close();
    }
    expect(emulator.calls.map((c) => [c.method, c.status, c.fault])).toEqual([
      ['GetTask', 503, '503'],
      ['GetTask', 200, undefined],
      ['GetTask', 403, '403'],
      ['ListTasks', 429, '429'],
      ['ListTasks', 200, undefined],
    ]);
  });

  it('answers 404 "Method not found." in Google shape, as for a method the API surface does not have', async () => {
    emulator = await startEmulator({ seed });
    emulator.injectFault({ method: 'GetTask', kind: 404 });
    const missing = await rest(emulator, 'GET', taskName('orders', 'a'));
    expect(missing).toMatchObject({
      status: 404,
      body: { error: { code: 404, status: 'NOT_FOUND', message: 'Method not found.' } },
    });
    const client = googleClient(emulator);
    try {
      await expect(client.getTask({ name: taskName('orders', 'a') })).rejects.toMatchObject({ code: 5 });
    } finally {
      await client.close();
    }
    // No work was done: the task is still there.
    expect(emulator.task(taskName('orders', 'a'))).toBeDefined();
  });

  it('resets the connection without doing the work, or after doing it (lost response)', async () => {
    const target = await startTarget({ respond: () => 500 });
    try {
      emulator = await startEmulator({
        seed: { queues: [{ ...seed.queues[0]!, tasks: [{ id: 'a', httpRequest: { url: target.url } }] }] },
      });
      emulator.injectFault({ method: 'RunTask', kind: 'reset', times: 1 });
      emulator.injectFault({ method: 'RunTask', kind: 'lost-response', times: 1 });
      const runA = () => rest(emulator!, 'POST', `${taskName('orders', 'a')}:run`, {});

      await expect(runA()).rejects.toThrow();
      expect(emulator.dispatches).toHaveLength(0);
      await expect(runA()).rejects.toThrow();
      expect(emulator.dispatches).toHaveLength(1); // the work was done, the answer lost
      expect(emulator.task(taskName('orders', 'a'))?.dispatchCount).toBe(1);
      expect((await runA()).body.dispatchCount).toBe(2);
      expect(emulator.calls.map((c) => [c.status, c.fault])).toEqual([
        [0, 'reset'],
        [0, 'lost-response'],
        [200, undefined],
      ]);
    } finally {
      await target.stop();
    }
  });

  it("targets one queue's GetQueue and ListTasks while another queue works", async () => {
    const BILLING = queueName('billing');
    emulator = await startEmulator({ seed: { queues: [...seed.queues, { name: BILLING }] } });
    emulator.injectFault({ method: 'GetQueue', kind: 503, resources: [ORDERS] });
    emulator.injectFault({ method: 'ListTasks', kind: 503, resources: [ORDERS] });
    // The old field name still works.
    emulator.injectFault({ method: 'GetTask', kind: 503, tasks: [ORDERS] });
    const client = googleClient(emulator);
    try {
      const unavailable = { code: 14 };
      await expect(client.getQueue({ name: ORDERS }, { retry: null })).rejects.toMatchObject(unavailable);
      await expect(
        client.listTasks({ parent: ORDERS }, { autoPaginate: false, retry: null }),
      ).rejects.toMatchObject(unavailable);
      await expect(client.getTask({ name: taskName('orders', 'a') }, { retry: null })).rejects.toMatchObject(
        unavailable,
      );
      const [billing] = await client.getQueue({ name: BILLING });
      expect(billing.state).toBe('RUNNING');
      const [tasks] = await client.listTasks({ parent: BILLING }, { autoPaginate: false });
      expect(tasks).toEqual([]);
    } finally {
      await client.close();
    }
  });

  it('holds a delayed call, then does the work even though the client gave up (RunTask dispatches late)', async () => {
    const target = await startTarget({ respond: () => 500 });
    try {
      emulator = await startEmulator({
        seed: { queues: [{ ...seed.queues[0]!, tasks: [{ id: 'a', httpRequest: { url: target.url } }] }] },
      });
      emulator.injectFault({ method: 'RunTask', kind: 'delay', delayMs: 400, times: 1 });
      const client = googleClient(emulator);
      try {
        await expect(
          client.runTask({ name: taskName('orders', 'a') }, { timeout: 100, retry: null }),
        ).rejects.toThrow();
        expect(emulator.dispatches).toHaveLength(0); // not yet: the call is held
        await expect.poll(() => emulator!.dispatches.length, { timeout: 2_000 }).toBe(1);
        expect(emulator.dispatches[0]).toMatchObject({ trigger: 'run', task: taskName('orders', 'a') });
        const [ran] = await client.runTask({ name: taskName('orders', 'a') });
        expect(ran.dispatchCount).toBe(2);
      } finally {
        await client.close();
      }
      const [late, onTime] = emulator.calls;
      expect(late).toMatchObject({ method: 'RunTask', fault: 'delay' });
      expect(late!.realEndMs - late!.realStartMs).toBeGreaterThanOrEqual(395);
      expect(onTime!.realEndMs - onTime!.realStartMs).toBeLessThan(395);
    } finally {
      await target.stop();
    }
  });

  it('refuses a fault with a bad delayMs, rate or times, naming the field', async () => {
    emulator = await startEmulator();
    expect(() => emulator!.injectFault({ method: 'RunTask', kind: 'delay' })).toThrow('fault.delayMs');
    expect(() => emulator!.injectFault({ method: 'RunTask', kind: 503, rate: 2 })).toThrow('fault.rate');
    expect(() => emulator!.injectFault({ method: 'RunTask', kind: 503, times: -1 })).toThrow('fault.times');
  });

  it('hits at the given rate, and clearFaults removes them', async () => {
    let roll = 0.3;
    emulator = await startEmulator({ seed, random: () => roll });
    emulator.injectFault({ method: 'GetQueue', kind: 503, rate: 0.5 });
    expect((await rest(emulator, 'GET', ORDERS)).status).toBe(503);
    roll = 0.7;
    expect((await rest(emulator, 'GET', ORDERS)).status).toBe(200);
    roll = 0.1;
    emulator.clearFaults();
    expect((await rest(emulator, 'GET', ORDERS)).status).toBe(200);
  });
});

describe('latency and records', () => {
  it('adds latency before every answer and records real and emulator times', async () => {
    const clock = new ManualClock(T0);
    emulator = await startEmulator({ seed, clock, latencyMs: 150 });
    await rest(emulator, 'GET', ORDERS);
    emulator.setLatency(0);
    await clock.advance(5_000);
    await rest(emulator, 'GET', `${ORDERS}/tasks`);
    const [slow, fast] = emulator.calls;
    expect(slow).toMatchObject({ method: 'GetQueue', name: ORDERS, status: 200, startMs: T0, endMs: T0 });
    expect(slow!.realEndMs - slow!.realStartMs).toBeGreaterThanOrEqual(145);
    expect(fast).toMatchObject({ method: 'ListTasks', name: ORDERS, startMs: T0 + 5_000 });
    expect(fast!.realEndMs - fast!.realStartMs).toBeLessThan(145);
  });
});

describe('seeds', () => {
  it('loads at start and at any time; task() shows the FULL view', async () => {
    const clock = new ManualClock(T0);
    emulator = await startEmulator({ seed, clock });
    expect(emulator.task(taskName('orders', 'a'))).toMatchObject({
      view: 'FULL',
      httpRequest: { body: Buffer.from('a').toString('base64') },
      scheduleTime: '2026-11-22T11:00:00Z',
      createTime: '2026-11-22T10:00:00Z',
    });
    emulator.load({
      queues: [
        {
          name: ORDERS,
          tasks: [{ id: 'c', httpRequest: { url: 'http://127.0.0.1:9/' }, scheduleTime: '+2h' }],
        },
      ],
    });
    expect(emulator.task(taskName('orders', 'c'))?.scheduleTime).toBe('2026-11-22T12:00:00Z');
    expect(emulator.task(taskName('orders', 'missing'))).toBeUndefined();
    expect(() =>
      emulator!.load({
        queues: [{ name: ORDERS, tasks: [{ id: 'a', httpRequest: { url: 'http://x.test/' } }] }],
      }),
    ).toThrow(/seed task a .*ALREADY_EXISTS/);
    expect(() => emulator!.load({ queues: [{ name: 'projects/p/bad' }] })).toThrow(
      /seed queue projects\/p\/bad: INVALID_ARGUMENT/,
    );
  });

  it('reads a seed file with times relative to the clock at load', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'seed-'));
    try {
      const file = join(dir, 'demo.json');
      await writeFile(
        file,
        JSON.stringify({
          queues: [
            {
              name: ORDERS,
              retryConfig: { minBackoff: '1s', maxBackoff: '10m' },
              tasks: [
                {
                  id: 'failed',
                  httpRequest: { url: 'http://127.0.0.1:9/' },
                  scheduleTime: '+1h',
                  createTime: '-2h',
                  dispatchCount: 4,
                  responseCount: 4,
                  lastAttempt: {
                    dispatchTime: '-10m',
                    responseTime: '-10m',
                    responseStatus: { code: 13, message: 'INTERNAL(13): HTTP status code 500' },
                  },
                },
              ],
            },
          ],
        }),
      );
      emulator = await startEmulator({ clock: new ManualClock(T0), seed: await readSeedFile(file) });
      expect(emulator.task(taskName('orders', 'failed'))).toMatchObject({
        scheduleTime: '2026-11-22T11:00:00Z',
        createTime: '2026-11-22T08:00:00Z',
        dispatchCount: 4,
        lastAttempt: { dispatchTime: '2026-11-22T09:50:00Z' },
      });
      expect((await rest(emulator, 'GET', ORDERS)).body.retryConfig).toMatchObject({
        minBackoff: '1s',
        maxBackoff: '600s',
      });
      await writeFile(file, '{"queue": []}');
      await expect(readSeedFile(file)).rejects.toThrow(/must hold \{"queues"/);
    } finally {
      await rm(dir, { recursive: true });
    }
  });
});

describe('CLI', () => {
  it('parses its flags', async () => {
    expect(await optionsFromArgs(['--port', '9000', '--quota', '600', '--latency', '25', '--quiet'])).toEqual(
      {
        port: 9000,
        runTaskQuota: { limit: 600, windowMs: 60_000 },
        latencyMs: 25,
        dedupWindowMs: 3_600_000,
      },
    );
    const iam = [
      [
        '--quiet',
        '--dedup-window',
        '24h',
        '--act-as',
        'a@p.iam.gserviceaccount.com,b@p.iam.gserviceaccount.com',
      ],
      ['--permissions', 'cloudtasks.tasks.get, cloudtasks.tasks.list'],
    ].flat();
    expect(await optionsFromArgs(iam)).toMatchObject({
      dedupWindowMs: 86_400_000,
      actAs: ['a@p.iam.gserviceaccount.com', 'b@p.iam.gserviceaccount.com'],
      permissions: ['cloudtasks.tasks.get', 'cloudtasks.tasks.list'],
    });
    const perQueue = ['--quiet', '--permissions', `${ORDERS}=cloudtasks.tasks.get`, '--permissions', '*='];
    expect(await optionsFromArgs(perQueue)).toMatchObject({
      permissions: { [ORDERS]: ['cloudtasks.tasks.get'], '*': [] },
    });
    await expect(optionsFromArgs(['--dedup-window', 'soon'])).rejects.toThrow('--dedup-window must be');
    await expect(optionsFromArgs(['--permissions', 'a', '--permissions', `${ORDERS}=b`])).rejects.toThrow(
      '--permissions',
    );
    expect(await optionsFromArgs(['--help'])).toHaveProperty('help');
    await expect(optionsFromArgs(['--port', 'many'])).rejects.toThrow('--port must be a whole number');
    await expect(optionsFromArgs(['--bogus'])).rejects.toThrow();
  });

  it('starts on the asked port, prints its address and serves', async () => {
    const print = vi.spyOn(console, 'log').mockImplementation(() => undefined);
    try {
      emulator = await runCli(['--port', '0', '--quiet']);
      expect(emulator!.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(print).toHaveBeenCalledWith(`Cloud Tasks emulator listening on ${emulator!.url}`);
      expect((await rest(emulator!, 'GET', 'projects/my-project/locations/us-central1/queues')).body).toEqual(
        {},
      );
    } finally {
      print.mockRestore();
    }
  });
});

describe('start-up', () => {
  it('rejects a port already in use', async () => {
    emulator = await startEmulator();
    const port = Number(emulator.host.split(':')[1]);
    await expect(startEmulator({ port })).rejects.toThrow(/EADDRINUSE/);
  });
});
