/**
 * ListTasks paging: opaque tokens, BASIC and FULL views, and listings that stay correct while tasks are
 * deleted between pages (never a task twice, never a deleted one).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock, startEmulator, type Emulator, type SeedTask } from '../../emulator/server.js';
import { queueName, rest, taskName } from './helpers.js';

const ORDERS = queueName('orders');
let emulator: Emulator;

function tasks(count: number, from = 0): SeedTask[] {
  return Array.from({ length: count }, (_, i) => ({
    id: `t${from + i}`,
    httpRequest: { url: 'http://127.0.0.1:9/', body: Buffer.from(`body ${from + i}`).toString('base64') },
    scheduleTime: '+1h',
  }));
}

async function page(pageSize: number, pageToken?: string, view?: string) {
  const query = new URLSearchParams({ pageSize: String(pageSize) });
  if (pageToken) query.set('pageToken', pageToken);
  if (view) query.set('responseView', view);
  const { status, body } = await rest(emulator, 'GET', `${ORDERS}/tasks?${query.toString()}`);
  expect(status, JSON.stringify(body)).toBe(200);
  return body as {
    tasks?: Array<{ name: string; view: string; httpRequest: { body?: string } }>;
    nextPageToken?: string;
  };
}

async function listAll(
  pageSize: number,
  between: (pageIndex: number) => Promise<void> = () => Promise.resolve(),
) {
  const names: string[] = [];
  let token: string | undefined;
  for (let i = 0; ; i++) {
    const { tasks: items = [], nextPageToken } = await page(pageSize, token);
    names.push(...items.map((t) => t.name));
    if (!nextPageToken) return names;
    token = nextPageToken;
    await between(i);
  }
}

const remove = (id: string) => rest(emulator, 'DELETE', taskName('orders', id));

beforeEach(async () => {
  emulator = await startEmulator({ clock: new ManualClock(Date.parse('2026-11-22T10:00:00Z')) });
});
afterEach(async () => {
  await emulator.stop();
});

describe('ListTasks', () => {
  it('pages with 1000 by default, and BASIC leaves the body out while FULL has it', async () => {
    emulator.load({ queues: [{ name: ORDERS, tasks: tasks(1005) }] });
    const first = await page(0);
    expect(first.tasks).toHaveLength(1000);
    expect(first.tasks!.every((t) => t.view === 'BASIC' && t.httpRequest.body === undefined)).toBe(true);
    const second = await page(0, first.nextPageToken, 'FULL');
    expect(second.tasks).toHaveLength(5);
    expect(second.nextPageToken).toBeUndefined();
    expect(second.tasks!.every((t) => t.view === 'FULL' && t.httpRequest.body !== undefined)).toBe(true);
  });

  it('answers an empty queue with no tasks and no token', async () => {
    emulator.load({ queues: [{ name: ORDERS }] });
    expect(await page(10)).toEqual({});
  });

  it('never lists a task twice or a deleted task when tasks are deleted between pages', async () => {
    emulator.load({ queues: [{ name: ORDERS, tasks: tasks(30) }] });
    const names = await listAll(10, async (pageIndex) => {
      if (pageIndex !== 0) return;
      for (const id of ['t0', 't5', 't12', 't19', 't25', 't29']) expect((await remove(id)).status).toBe(200);
      emulator.load({ queues: [{ name: ORDERS, tasks: tasks(2, 100) }] });
    });
    expect(new Set(names).size).toBe(names.length);
    expect(names).toHaveLength(10 + 16 + 2); // page one, the 16 unseen survivors, the 2 added
    for (const id of ['t12', 't19', 't25', 't29']) expect(names).not.toContain(taskName('orders', id));
    expect(names).toContain(taskName('orders', 't101'));
  });

  it('keeps a page token valid across the compaction of many deletions', async () => {
    emulator.load({ queues: [{ name: ORDERS, tasks: tasks(300) }] });
    const first = await page(100);
    // Delete every even task and the odd ones from t101 to t119: 160 of 300, enough to compact the
    // listing order; 50 of them were on the first page.
    const even = Array.from({ length: 150 }, (_, i) => `t${i * 2}`);
    const odd = Array.from({ length: 10 }, (_, i) => `t${101 + i * 2}`);
    const doomed = [...even, ...odd];
    await Promise.all(doomed.map((id) => remove(id)));
    const rest1 = await page(100, first.nextPageToken);
    const rest2 = rest1.nextPageToken ? await page(100, rest1.nextPageToken) : { tasks: [] };
    const after = [...(rest1.tasks ?? []), ...(rest2.tasks ?? [])].map((t) => t.name);
    const firstNames = new Set(first.tasks!.map((t) => t.name));
    expect(after.some((n) => firstNames.has(n))).toBe(false);
    const expected = Array.from({ length: 200 }, (_, i) => `t${100 + i}`).filter(
      (id) => !doomed.includes(id),
    );
    expect(after).toEqual(expected.map((id) => taskName('orders', id)));
  });

  it('refuses a token of another queue', async () => {
    emulator.load({
      queues: [
        { name: ORDERS, tasks: tasks(3) },
        { name: queueName('billing'), tasks: tasks(3) },
      ],
    });
    const { nextPageToken } = await page(1);
    const other = await rest(emulator, 'GET', `${queueName('billing')}/tasks?pageToken=${nextPageToken}`);
    expect(other.body.error.status).toBe('INVALID_ARGUMENT');
  });
});
