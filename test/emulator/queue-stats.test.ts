/**
 * v2beta3 GetQueue with `stats` (docs/emulator.md "Queue stats"), judged by Google's own v2beta3 client in
 * REST fallback mode, and by a plain REST call for the JSON itself.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock, startEmulator, type Emulator } from '../../emulator/server.js';
import { startTarget, type Target } from '../helpers/target-server.js';
import { googleBetaClient, queueName } from './helpers.js';

const T0 = Date.UTC(2026, 11, 5, 12, 0, 0);
const QUEUE = queueName('orders');
const at = (offsetMs: number) => new Date(T0 + offsetMs).toISOString();

let clock: ManualClock;
let emulator: Emulator;
let target: Target;

beforeEach(async () => {
  clock = new ManualClock(T0);
  target = await startTarget();
  const task = (id: string, dueMs: number) => ({
    name: `${QUEUE}/tasks/${id}`,
    httpRequest: { url: `${target.url}/${id}`, httpMethod: 'POST' as const },
    scheduleTime: at(dueMs),
  });
  emulator = await startEmulator({
    clock,
    seed: {
      queues: [
        {
          name: QUEUE,
          rateLimits: { maxDispatchesPerSecond: 7, maxConcurrentDispatches: 3 },
          tasks: [task('a', 3_600_000), task('b', 600_000), task('c', 7_200_000)],
        },
      ],
    },
  });
});
afterEach(async () => {
  await emulator.stop();
  await target.stop();
});

describe('v2beta3 GetQueue', () => {
  it('answers stats only when the read mask asks for them (Google v2beta3 client, REST fallback)', async () => {
    const client = googleBetaClient(emulator);
    const [plain] = await client.getQueue({ name: QUEUE });
    expect(plain.name).toBe(QUEUE);
    expect(plain.rateLimits?.maxDispatchesPerSecond).toBe(7);
    expect(plain.stats).toBeFalsy();

    const [masked] = await client.getQueue({ name: QUEUE, readMask: { paths: ['name', 'state', 'stats'] } });
    expect(masked.name).toBe(QUEUE);
    expect(masked.state).toBe('RUNNING');
    expect(masked.rateLimits).toBeFalsy();
    expect(Number(masked.stats?.tasksCount)).toBe(3);
    const oldest = masked.stats?.oldestEstimatedArrivalTime;
    expect(Number(oldest?.seconds) * 1000).toBe(T0 + 600_000);
    expect(masked.stats?.effectiveExecutionRate).toBe(7);
    expect(Number(masked.stats?.executedLastMinuteCount ?? 0)).toBe(0);
    await client.close();
  });

  it('counts dispatches answered in the last minute and those in flight; a paused queue executes at rate 0', async () => {
    let release: (status: number) => void = () => undefined;
    target.setRespond((request) =>
      request.path === '/a' ? new Promise<number>((resolve) => (release = resolve)) : 200,
    );
    for (const id of ['a', 'b']) {
      const answer = await fetch(`${emulator.url}/v2/${QUEUE}/tasks/${id}:run`, {
        method: 'POST',
        body: '{}',
      });
      expect(answer.status).toBe(200);
    }
    await expect.poll(() => target.requests.length).toBe(2);
    await expect.poll(async () => (await statsJson()).executedLastMinuteCount).toBe('1');
    expect(await statsJson()).toMatchObject({ tasksCount: '2', concurrentDispatchesCount: '1' });
    release(200);
    await emulator.settled();
    expect(await statsJson()).toMatchObject({ executedLastMinuteCount: '2', tasksCount: '1' });
    await clock.advance(61_000);
    expect((await statsJson()).executedLastMinuteCount).toBeUndefined();
    await fetch(`${emulator.url}/v2/${QUEUE}:pause`, { method: 'POST', body: '{}' });
    expect((await statsJson()).effectiveExecutionRate).toBeUndefined();
  });

  it('names an unknown query parameter, as Google does', async () => {
    const answer = await fetch(`${emulator.url}/v2beta3/${QUEUE}?mask=stats`);
    expect(answer.status).toBe(400);
    const body = (await answer.json()) as { error: { message: string } };
    expect(body.error.message).toContain('Unknown name "mask"');
  });
});

async function statsJson(): Promise<Record<string, unknown>> {
  const answer = await fetch(`${emulator.url}/v2beta3/${QUEUE}?readMask=stats`);
  const body = (await answer.json()) as { stats?: Record<string, unknown> };
  expect(Object.keys(body)).toEqual(body.stats ? ['stats'] : []);
  return body.stats ?? {};
}
