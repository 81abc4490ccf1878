import { describe, expect, it } from 'vitest';
import { CONFIG_KEYS, loadConfig } from '../../shared/platform/config.js';

const RERUN_QUEUES = 'projects/p-1/locations/us-central1/queues/orders';

describe('notification configuration', () => {
  it('reads RERUN_NOTIFY_TOPIC and PUBSUB_EMULATOR_HOST, both unset by default', () => {
    expect(loadConfig({ RERUN_QUEUES })).toMatchObject({
      notifyTopic: undefined,
      pubsubEmulatorHost: undefined,
    });
    expect(
      loadConfig({
        RERUN_QUEUES,
        RERUN_NOTIFY_TOPIC: 'projects/p-1/topics/rerun-runs',
        PUBSUB_EMULATOR_HOST: 'localhost:8085',
      }),
    ).toMatchObject({ notifyTopic: 'projects/p-1/topics/rerun-runs', pubsubEmulatorHost: 'localhost:8085' });
    expect(loadConfig({ RERUN_QUEUES, RERUN_NOTIFY_TOPIC: '' }).notifyTopic).toBeUndefined();
    expect(CONFIG_KEYS).toEqual(expect.arrayContaining(['RERUN_NOTIFY_TOPIC', 'PUBSUB_EMULATOR_HOST']));
  });

  it.each([
    ['RERUN_NOTIFY_TOPIC', 'rerun-runs'],
    ['RERUN_NOTIFY_TOPIC', 'projects/p-1/subscriptions/rerun-runs'],
    ['RERUN_NOTIFY_TOPIC', 'projects/P_1/topics/rerun-runs'],
    ['RERUN_NOTIFY_TOPIC', 'projects/p-1/topics/goog-runs'],
    ['RERUN_NOTIFY_TOPIC', 'projects/p-1/topics/ab'],
    ['RERUN_NOTIFY_TOPIC', 'projects/p-1/topics/rerun-runs/extra'],
    ['PUBSUB_EMULATOR_HOST', 'http://localhost:8085'],
    ['PUBSUB_EMULATOR_HOST', 'localhost'],
  ])('refuses %s=%s, naming it', (key, value) => {
    expect(() => loadConfig({ RERUN_QUEUES, [key]: value })).toThrow(new RegExp(`at ${key}`));
  });
});
