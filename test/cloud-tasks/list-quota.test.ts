/**
 * A read refused for quota waits and is sent again (docs/cloud-tasks-calls.md "When a call is sent
 * again"): one 429 on a page of a listing does not break the listing off.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startEmulator, type Emulator } from '../../emulator/server.js';
import { createCloudTasksClient } from '../../shared/cloud-tasks/client.js';
import { parseQueueName } from '../../shared/cloud-tasks/names.js';
import { failedTask, queueName } from '../helpers/seeds.js';

const ORDERS = queueName('orders');

let emulator: Emulator;
beforeEach(async () => {
  // Without RetryInfo, the read backs off (up to 200 ms first) instead of waiting the 1 s it would ask.
  emulator = await startEmulator({ port: 0, quotaRetryInfo: false });
  const seeded = Array.from({ length: 1500 }, (_, i) => failedTask(ORDERS, `t${i}`, 'http://127.0.0.1:9'));
  emulator.load({ queues: [{ name: ORDERS, state: 'PAUSED', tasks: seeded }] } as never);
});
afterEach(() => emulator.stop());

describe('a listing answered RESOURCE_EXHAUSTED', () => {
  it('on its second page, once: the page is asked for again and the listing completes', async () => {
    emulator.injectFault({ method: 'ListTasks', kind: 429, after: 1, times: 1 });
    const tasks = createCloudTasksClient({ emulatorHost: emulator.host });
    const pages: number[] = [];
    for await (const page of tasks.listTasks(parseQueueName(ORDERS)!)) pages.push(page.length);
    expect(pages).toEqual([1000, 500]);
    expect(emulator.calls.filter((c) => c.method === 'ListTasks').map((c) => c.status)).toEqual([
      200, 429, 200,
    ]);
  });
});
