import { describe, expect, it } from 'vitest';
import { applyFieldMask, parseFieldMask } from '../../emulator/field-mask.js';
import { startEmulator } from '../../emulator/server.js';

const task = {
  name: 'projects/p-1/locations/l/queues/q/tasks/t',
  httpRequest: { url: 'https://x/y', headers: { Authorization: 'Bearer secret' } },
  lastAttempt: { dispatchTime: '2026-01-01T00:00:00Z', responseStatus: { code: 13 } },
};

describe('field masks (partial responses)', () => {
  it.each<[string, unknown]>([
    ['name', { name: task.name }],
    ['httpRequest/url', { httpRequest: { url: 'https://x/y' } }],
    ['name,lastAttempt(responseStatus)', { name: task.name, lastAttempt: { responseStatus: { code: 13 } } }],
    ['httpRequest/url,httpRequest/headers', { httpRequest: task.httpRequest }],
    ['missing', {}],
  ])('%s', (mask, expected) => {
    expect(applyFieldMask(task, parseFieldMask(mask))).toEqual(expected);
  });

  it('applies to each element of a list', () => {
    const page = { tasks: [task, task], nextPageToken: 'n' };
    expect(applyFieldMask(page, parseFieldMask('tasks(name),nextPageToken'))).toEqual({
      tasks: [{ name: task.name }, { name: task.name }],
      nextPageToken: 'n',
    });
  });

  it.each(['', 'a(b', 'a,,b', 'a)'])('rejects %j', (mask) => {
    expect(() => parseFieldMask(mask)).toThrow();
  });

  it('is honoured by the server, and a bad mask is INVALID_ARGUMENT', async () => {
    const queue = 'projects/p-1/locations/us-central1/queues/q';
    const emulator = await startEmulator({
      seed: {
        queues: [
          {
            name: queue,
            tasks: [
              { id: 't', httpRequest: { url: 'https://x/y', headers: { A: 'b' } }, scheduleTime: '+1h' },
            ],
          },
        ],
      },
    });
    try {
      const ok = await fetch(`${emulator.url}/v2/${queue}/tasks?fields=tasks(name,httpRequest/url)`);
      expect(await ok.json()).toEqual({
        tasks: [{ name: `${queue}/tasks/t`, httpRequest: { url: 'https://x/y' } }],
      });
      const bad = await fetch(`${emulator.url}/v2/${queue}/tasks?fields=tasks(name`);
      expect(bad.status).toBe(400);
    } finally {
      await emulator.stop();
    }
  });
});
