import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { CONFIG_KEYS, ConfigError, loadConfig } from '../../shared/platform/config.js';

const Q = 'projects/p-1/locations/us-central1/queues/orders';

describe('loadConfig', () => {
  it('reads parking: RERUN_PARK and RERUN_SWEEP_PERIOD, and refuses a parking queue in RERUN_QUEUES', () => {
    expect(loadConfig({ RERUN_QUEUES: Q })).toMatchObject({ park: false, sweepPeriodMs: 15 * 60_000 });
    expect(loadConfig({ RERUN_QUEUES: Q, RERUN_PARK: 'true', RERUN_SWEEP_PERIOD: '5m' })).toMatchObject({
      park: true,
      sweepPeriodMs: 5 * 60_000,
    });
    expect(() => loadConfig({ RERUN_QUEUES: Q, RERUN_PARK: 'yes' })).toThrow(/RERUN_PARK/);
    expect(() => loadConfig({ RERUN_QUEUES: `${Q}-parked` })).toThrow(/parking queue.*RERUN_QUEUES/s);
  });

  it('applies the documented defaults', () => {
    const config = loadConfig({ RERUN_QUEUES: Q });
    expect(config).toMatchObject({
      maxTasks: 1000,
      concurrency: 4,
      maxRatePerSecond: 1,
      timeBudgetMs: 50_000,
      routes: [],
      controlQueue: undefined,
      emulatorHost: undefined,
      logLevel: 'info',
    });
    expect(config.allowlist.map((entry) => entry.pattern)).toEqual([Q]);
  });

  it('reads every key', () => {
    const config = loadConfig({
      RERUN_QUEUES: `${Q}, projects/p-1/locations/europe-west1/queues/*`,
      RERUN_MAX_TASKS: '50',
      RERUN_CONCURRENCY: '8',
      RERUN_MAX_RATE: '0.5',
      RERUN_TIME_BUDGET: '5m',
      RERUN_SERVICE_TIMEOUT: '10m',
      RERUN_ACK_DEADLINE: '600s',
      RERUN_REDRIVE_CONCURRENCY: '16',
      RERUN_ROUTES: '[]',
      RERUN_CONTROL_QUEUE: 'projects/p-1/locations/us-central1/queues/rerun-control',
      RERUN_SELF_URL: 'https://rerun-http-abc-uc.a.run.app',
      RERUN_INVOKER_SA: 'rerun-invoker@p-1.iam.gserviceaccount.com',
      CLOUD_TASKS_EMULATOR_HOST: '127.0.0.1:8123',
      LOG_LEVEL: 'debug',
    });
    expect(config).toMatchObject({
      maxTasks: 50,
      concurrency: 8,
      maxRatePerSecond: 0.5,
      timeBudgetMs: 300_000,
      redriveConcurrency: 16,
      controlQueue: { queue: 'rerun-control' },
      emulatorHost: '127.0.0.1:8123',
      logLevel: 'debug',
    });
    expect(config.allowlist).toHaveLength(2);
  });

  it('refuses a time budget that cannot fit the service timeout or the ack deadline, naming both', () => {
    expect(() =>
      loadConfig({
        RERUN_QUEUES: Q,
        RERUN_TIME_BUDGET: '55s',
        RERUN_SERVICE_TIMEOUT: '60s',
        RERUN_ACK_DEADLINE: '30s',
      }),
    ).toThrow(/RERUN_SERVICE_TIMEOUT \(60s\)[\s\S]*RERUN_ACK_DEADLINE \(30s\)/);
    expect(() => loadConfig({ RERUN_QUEUES: Q, RERUN_TIME_BUDGET: '50s' })).not.toThrow();
  });

  it('a command line has no service timeout to fit inside, and its own default budget', () => {
    const commandLine = { commandLine: { defaultTimeBudgetMs: Number.POSITIVE_INFINITY } };
    expect(loadConfig({ RERUN_QUEUES: Q, RERUN_TIME_BUDGET: '30m' }, commandLine).timeBudgetMs).toBe(
      1_800_000,
    );
    expect(loadConfig({ RERUN_QUEUES: Q }, commandLine).timeBudgetMs).toBe(Number.POSITIVE_INFINITY);
    expect(loadConfig({ RERUN_QUEUES: Q }, { commandLine: {} }).timeBudgetMs).toBe(50_000);
    expect(loadConfig({ RERUN_QUEUES: Q }).timeBudgetMs).toBe(50_000);
    expect(() => loadConfig({ RERUN_QUEUES: Q, RERUN_TIME_BUDGET: '30m' })).toThrow(/RERUN_SERVICE_TIMEOUT/);
  });

  it('reads RERUN_ROUTES from a file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'routes-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'routes.json');
    writeFileSync(
      file,
      JSON.stringify([{ name: 'orders', when: { policyName: 'orders failing' }, queues: [Q] }]),
    );
    expect(loadConfig({ RERUN_QUEUES: Q, RERUN_ROUTES: file }).routes).toHaveLength(1);
  });

  it.each<[string, Record<string, string>]>([
    ['RERUN_QUEUES', {}],
    ['RERUN_QUEUES', { RERUN_QUEUES: 'orders' }],
    [
      'RERUN_QUEUES',
      {
        RERUN_QUEUES: `${Q},${Q}-control`,
        RERUN_CONTROL_QUEUE: `${Q}-control`,
        RERUN_SELF_URL: 'https://rerun.example.run.app/',
        RERUN_INVOKER_SA: 'invoker@p-1.iam.gserviceaccount.com',
      },
    ],
    ['RERUN_MAX_TASKS', { RERUN_QUEUES: Q, RERUN_MAX_TASKS: 'lots' }],
    ['RERUN_CONCURRENCY', { RERUN_QUEUES: Q, RERUN_CONCURRENCY: '0' }],
    ['RERUN_MAX_RATE', { RERUN_QUEUES: Q, RERUN_MAX_RATE: '-1' }],
    ['RERUN_TIME_BUDGET', { RERUN_QUEUES: Q, RERUN_TIME_BUDGET: '50' }],
    ['RERUN_ROUTES', { RERUN_QUEUES: Q, RERUN_ROUTES: '[{"name":"x"}]' }],
    ['RERUN_ROUTES', { RERUN_QUEUES: Q, RERUN_ROUTES: '/nonexistent/routes.json' }],
    [
      'RERUN_ROUTES[0].queues',
      {
        RERUN_QUEUES: Q,
        RERUN_ROUTES:
          '[{"name":"x","when":{"policyName":"p"},"queues":["projects/p-1/locations/us-central1/queues/other"]}]',
      },
    ],
    ['RERUN_CONTROL_QUEUE', { RERUN_QUEUES: Q, RERUN_CONTROL_QUEUE: 'control' }],
    ['RERUN_CONTROL_QUEUE', { RERUN_QUEUES: Q, RERUN_CONTROL_QUEUE: Q }],
    ['RERUN_SELF_URL', { RERUN_QUEUES: Q, RERUN_SELF_URL: 'ftp://x' }],
    ['CLOUD_TASKS_EMULATOR_HOST', { RERUN_QUEUES: Q, CLOUD_TASKS_EMULATOR_HOST: 'http://localhost:8123' }],
    ['LOG_LEVEL', { RERUN_QUEUES: Q, LOG_LEVEL: 'loud' }],
  ])('a bad %s stops start-up with a message naming it', (key, env) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(key);
  });

  it('lists its keys for deploy.sh and the README', () => {
    expect(CONFIG_KEYS).toContain('RERUN_QUEUES');
    expect(CONFIG_KEYS).toContain('CLOUD_TASKS_EMULATOR_HOST');
  });
});
