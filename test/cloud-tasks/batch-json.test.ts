import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { batchCreateJson, createRequestBytes } from '../../shared/cloud-tasks/batch-json.js';
import type { NewTask } from '../../shared/cloud-tasks/client.js';

/** What JSON.stringify would send: the request the bytes must parse to. */
const QUEUE = 'projects/p/locations/l/queues/q';
const expected = (tasks: readonly NewTask[]) => ({
  requests: tasks.map((task) => ({ task, responseView: 'BASIC', parent: QUEUE })),
});
const parsed = (bytes: Buffer): unknown => JSON.parse(bytes.toString('utf8'));

const base64 = randomBytes(3_000).toString('base64');
const urlSafe = base64.replaceAll('+', '-').replaceAll('/', '_');

describe('batchCreateJson', () => {
  it('writes base64 bodies as they are, beside fields JSON escapes, for both kinds of request', () => {
    const tasks: NewTask[] = [
      {
        name: 'projects/p/locations/l/queues/q/tasks/é"1',
        httpRequest: {
          url: 'https://example.test/ü?a="b"',
          httpMethod: 'POST',
          headers: { 'X-Quote"': 'line\nbreak\\', 'Content-Type': 'application/json' },
          body: base64,
          oidcToken: { serviceAccountEmail: 'sa@p.iam.gserviceaccount.com' },
        },
        scheduleTime: '2026-12-05T00:00:00.000Z',
        dispatchDeadline: '600s',
      },
      { name: 'projects/p/locations/l/queues/q/tasks/2', httpRequest: { body: urlSafe } },
      {
        name: 'projects/p/locations/l/queues/q/tasks/3',
        appEngineHttpRequest: { relativeUri: '/x', body: base64 },
      },
    ];
    const bytes = batchCreateJson(QUEUE, tasks);
    expect(parsed(bytes)).toEqual(expected(tasks));
    // Written apart: each body appears in the bytes exactly as given.
    expect(bytes.toString('latin1')).toContain(`"body":"${base64}"`);
    expect(bytes.toString('latin1')).toContain(`"body":"${urlSafe}"`);
  });

  it('sends a body that is not plain base64, or is short, or is missing, through JSON.stringify', () => {
    const tasks: NewTask[] = [
      { name: 't1', httpRequest: { url: 'u', body: `${base64}"\\\u0001é` } },
      { name: 't2', httpRequest: { url: 'u', body: 'c2hvcnQ=' } },
      { name: 't3', httpRequest: { url: 'u' } },
      { name: 't4' },
    ];
    const bytes = batchCreateJson(QUEUE, tasks);
    expect(bytes.toString('utf8')).toBe(JSON.stringify(expected(tasks)));
  });

  it('writes an empty batch, and a batch of one', () => {
    expect(parsed(batchCreateJson(QUEUE, []))).toEqual({ requests: [] });
    const one: NewTask[] = [{ name: 't', httpRequest: { body: base64 } }];
    expect(parsed(batchCreateJson(QUEUE, one))).toEqual(expected(one));
  });

  it('counts at least what each task adds to the request, so a batch is kept under its size by counting', () => {
    const tasks: NewTask[] = [
      { name: `${QUEUE}/tasks/a`, httpRequest: { url: 'https://example.test/ü', body: base64 } },
      {
        name: `${QUEUE}/tasks/b`,
        httpRequest: { url: 'u', headers: { 'X-Note': 'é"\\'.repeat(500) }, body: 'c2hvcnQ=' },
      },
      { name: `${QUEUE}/tasks/c`, appEngineHttpRequest: { relativeUri: '/x' } },
    ];
    const empty = batchCreateJson(QUEUE, []).length;
    for (const task of tasks) {
      expect(createRequestBytes(task)).toBeGreaterThanOrEqual(batchCreateJson(QUEUE, [task]).length - empty);
    }
  });
});
