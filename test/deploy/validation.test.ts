import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Env } from '../../shared/platform/config.js';
import { parseQueueName } from '../../shared/cloud-tasks/names.js';
import {
  CONTROL,
  createSandbox,
  DEPLOY,
  MAIL,
  ORDERS,
  PROJECT,
  removeSandboxes,
  REPO,
  type Sandbox,
} from './harness.js';

// deploy.sh makes a few hundred fake gcloud calls per run, each a bash process: CPU-bound, and slower
// while another suite shares the cores.
vi.setConfig({ testTimeout: 90_000 });

let sandbox: Sandbox;
beforeAll(() => {
  sandbox = createSandbox();
});
afterAll(() => {
  // Every test here stops before gcloud, or runs dry: the fake must never have been called.
  expect(sandbox.allCalls()).toEqual([]);
  removeSandboxes();
});

describe('deploy.sh --help', () => {
  it('lists every flag the script accepts, and calls nothing', () => {
    const result = sandbox.run(['--help']);
    expect(result.status).toBe(0);
    const script = readFileSync(DEPLOY, 'utf8');
    const accepted = [...script.matchAll(/^\s+(?:-h \| )?(--[a-z-]+)\)/gm)].map((match) => match[1]!);
    expect(accepted.length).toBeGreaterThan(20);
    for (const flag of accepted) expect(result.stdout, `--help should list ${flag}`).toContain(flag);
  });
});

describe('bad input stops with a clear message before any gcloud call', () => {
  const wildcard = `projects/${PROJECT}/locations/us-central1/queues/*`;
  const cases: [string, string[], RegExp][] = [
    ['no project', ['--queue', ORDERS], /no project: pass --project/],
    ['a bad project id', ['--project', 'Shop_Prod', '--queue', ORDERS], /is not a project ID/],
    ['no queue', ['--project', PROJECT], /no queues: pass --queue/],
    [
      'a queue id with an underscore',
      ['--project', PROJECT, '--queue', `projects/${PROJECT}/locations/us-central1/queues/bad_queue`],
      /"projects\/shop-prod\/locations\/us-central1\/queues\/bad_queue" is not a queue name/,
    ],
    [
      'a short queue name',
      ['--project', PROJECT, '--queue', 'orders'],
      /queue "orders" is not a queue name projects\/P\/locations\/L\/queues\/Q/,
    ],
    [
      'a bad name among good ones',
      ['--project', PROJECT, '--queues', `${ORDERS},${MAIL}/x`],
      /is not a queue name/,
    ],
    [
      'a wildcard outside the queue segment',
      ['--project', PROJECT, '--queue', `projects/${PROJECT}/locations/*/queues/orders`],
      /has a wildcard outside the queue segment/,
    ],
    [
      'the control queue in the allowlist',
      ['--project', PROJECT, '--queue', wildcard.replace('*', 'rerun-control')],
      /is in the allowlist: the control queue is never a rerun target/,
    ],
    [
      'a policy file that is not told to notify on CLOSED',
      ['--project', PROJECT, '--queue', ORDERS, '--alert-policy', join(REPO, 'package.json')],
      /must ask for notificationPrompts \["OPENED", "CLOSED"\]/,
    ],
    [
      'act-as without redrive',
      ['--project', PROJECT, '--queue', ORDERS, '--redrive-act-as', `a@${PROJECT}.iam.gserviceaccount.com`],
      /--redrive-act-as needs --redrive/,
    ],
    [
      'park without the sweep',
      ['--project', PROJECT, '--queue', ORDERS, '--park', '--no-sweep'],
      /--park needs the sweep \(not --no-sweep\): parking runs on it/,
    ],
    [
      'park on a schedule whose period is not read from it',
      ['--project', PROJECT, '--queue', ORDERS, '--park', '--schedule', '0 9 * * 1'],
      /--park needs --sweep-period D/,
    ],
    [
      'a sweep period that is no duration',
      ['--project', PROJECT, '--queue', ORDERS, '--park', '--sweep-period', '15'],
      /RERUN_SWEEP_PERIOD "15" is not a duration/,
    ],
    [
      'a parking queue in the allowlist',
      ['--project', PROJECT, '--queue', `${ORDERS}-parked`],
      /is a parking queue \(its ID ends in -parked\): name its home queue/,
    ],
    [
      'a notify topic without its project',
      ['--project', PROJECT, '--queue', ORDERS, '--notify-topic', 'runs'],
      /RERUN_NOTIFY_TOPIC "runs" is not a topic name/,
    ],
    [
      'a bad notification channel',
      ['--project', PROJECT, '--queue', ORDERS, '--notify-channel', 'ops@example.com'],
      /--notify-channel "ops@example.com" is not a channel name/,
    ],
    [
      'a queue of another project',
      ['--project', PROJECT, '--queue', 'projects/other-proj/locations/us-central1/queues/orders'],
      /is in project other-proj, not in the deploy project shop-prod/,
    ],
    [
      'a bad control queue',
      ['--project', PROJECT, '--queue', ORDERS, '--control-queue', 'projects/shop-prod/queues/ctl'],
      /--control-queue "projects\/shop-prod\/queues\/ctl" is not a queue name/,
    ],
    [
      'a budget that is no duration',
      ['--project', PROJECT, '--queue', ORDERS, '--time-budget', '50'],
      /not a duration/,
    ],
    [
      'a budget too long for the ack deadline',
      ['--project', PROJECT, '--queue', ORDERS, '--time-budget', '591s'],
      /does not fit: the service's timeout and the push ack deadline are 600s, so the budget is at most 590s/,
    ],
    [
      'a public invoker',
      ['--project', PROJECT, '--queue', ORDERS, '--invoker', 'allUsers'],
      /open rerunHttp to anyone/,
    ],
    [
      'an invoker without a kind',
      ['--project', PROJECT, '--queue', ORDERS, '--invoker', 'ci@x.com'],
      /not an IAM member/,
    ],
    [
      'a bad region',
      ['--project', PROJECT, '--queue', ORDERS, '--region', 'US'],
      /--region "US" is not a region/,
    ],
    [
      'a bad schedule',
      ['--project', PROJECT, '--queue', ORDERS, '--schedule', 'hourly'],
      /not a unix-cron schedule/,
    ],
    [
      'a bad name prefix',
      ['--project', PROJECT, '--queue', ORDERS, '--name', 'Rerun'],
      /--name "Rerun" must be/,
    ],
    [
      'an unknown flag',
      ['--project', PROJECT, '--queue', ORDERS, '--allow-unauthenticated'],
      /unknown argument/,
    ],
    ['a flag without its value', ['--project'], /--project needs a value/],
    [
      'a missing routes file',
      ['--project', PROJECT, '--queue', ORDERS, '--routes', 'nope.json'],
      /neither JSON nor/,
    ],
  ];
  it.each(cases)('%s', (_name, args, message) => {
    const result = sandbox.run(args);
    expect(result.stderr).toMatch(message);
    expect(result.stderr).toMatch(/^deploy\.sh: /);
    expect(result.status).toBe(2);
    expect(result.calls).toEqual([]);
  });

  it('accepts --flag=value as well as --flag value', () => {
    const result = sandbox.run([
      '--dry-run',
      `--project=${PROJECT}`,
      `--queue=${ORDERS}`,
      '--time-budget=2m',
    ]);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    expect(result.stdout).toContain('#   RERUN_TIME_BUDGET: "2m"');
  });

  it('takes the project and the queues from the environment too, and checks them the same way', () => {
    const bad = sandbox.run([], { GOOGLE_CLOUD_PROJECT: PROJECT, RERUN_QUEUES: `${ORDERS},nope` });
    expect(bad.stderr).toMatch(/queue "nope" is not a queue name/);
    expect(bad.status).toBe(2);
    const good = sandbox.run(['--dry-run'], {
      GOOGLE_CLOUD_PROJECT: PROJECT,
      RERUN_QUEUES: `${ORDERS},${MAIL}`,
    });
    expect(good.status).toBe(0);
    expect(good.stdout).toContain('tasks queues add-iam-policy-binding mail --location=europe-west1');
  });
});

describe('deploy.sh applies the rules of the product itself', () => {
  // Each name is tried with --project set to its own project, so every segment's rule is exercised.
  const names = [
    ORDERS,
    CONTROL,
    'projects/example.com:shop-prod/locations/us-central1/queues/orders',
    'projects/a1/locations/us-central1/queues/orders',
    'projects/shop-prod/locations/us-central1/queues/Orders-2',
    `projects/shop-prod/locations/us-central1/queues/${'q'.repeat(100)}`,
    `projects/shop-prod/locations/us-central1/queues/${'q'.repeat(101)}`,
    'projects/shop-prod/locations/us-central1/queues/bad.queue',
    'projects/shop-prod/locations/US-central1/queues/orders',
    'projects/shop-prod/locations/1us/queues/orders',
    'projects/shop-prod-/locations/us-central1/queues/orders',
    'projects/Shop/locations/us-central1/queues/orders',
    'projects/shop-prod/locations/us-central1/queues/orders/tasks/t',
    'projects/shop-prod/locations/us-central1/queue/orders',
    'projects/shop-prod/locations/us-central1/queues/two words',
  ];
  it.each(names)('queue name %s: accepted exactly when shared/cloud-tasks/names.ts accepts it', (name) => {
    const project = name.split('/')[1] ?? '';
    const result = sandbox.run(['--dry-run', '--project', project, '--queue', name]);
    const valid = parseQueueName(name) !== undefined;
    expect({ accepted: result.status === 0, stderr: valid ? '' : 'rejected' }).toEqual({
      accepted: valid,
      stderr: valid ? result.stderr : 'rejected',
    });
  });

  // Values where deploy.sh and the zod schema must agree (deploy.sh is stricter only on odd spellings
  // such as 1e3 or 0x10, which it refuses).
  const values: [key: keyof typeof Env.shape, flag: string, value: string][] = [
    ['RERUN_MAX_TASKS', '--max-tasks', '1'],
    ['RERUN_MAX_TASKS', '--max-tasks', '100000'],
    ['RERUN_MAX_TASKS', '--max-tasks', '100001'],
    ['RERUN_MAX_TASKS', '--max-tasks', '0'],
    ['RERUN_MAX_TASKS', '--max-tasks', '2.5'],
    ['RERUN_MAX_TASKS', '--max-tasks', 'many'],
    ['RERUN_CONCURRENCY', '--concurrency', '100'],
    ['RERUN_CONCURRENCY', '--concurrency', '101'],
    ['RERUN_MAX_RATE', '--max-rate', '0.5'],
    ['RERUN_MAX_RATE', '--max-rate', '500'],
    ['RERUN_MAX_RATE', '--max-rate', '501'],
    ['RERUN_MAX_RATE', '--max-rate', '0'],
    ['RERUN_TIME_BUDGET', '--time-budget', '250ms'],
    ['RERUN_TIME_BUDGET', '--time-budget', '1.5m'],
    ['RERUN_TIME_BUDGET', '--time-budget', '8m'],
    ['RERUN_TIME_BUDGET', '--time-budget', '50 s'],
    ['RERUN_TIME_BUDGET', '--time-budget', '5d'],
    ['LOG_LEVEL', '--log-level', 'debug'],
    ['LOG_LEVEL', '--log-level', 'verbose'],
    ['RERUN_SELF_URL', '--self-url', 'https://rerun-http-abc-uc.a.run.app'],
    ['RERUN_SELF_URL', '--self-url', 'ftp://example.com'],
    ['RERUN_SELF_URL', '--self-url', 'https://hooks.example.com:8443/rerun?team=orders'],
    ['RERUN_INVOKER_SA', '--invoker-sa', 'invoker@shop-prod.iam.gserviceaccount.com'],
    ['RERUN_INVOKER_SA', '--invoker-sa', 'invoker'],
  ];
  it.each(values)(
    '%s %s %s: accepted exactly when the configuration schema accepts it',
    (key, flag, value) => {
      const schema = Env.safeParse({ RERUN_QUEUES: ORDERS, [key]: value }).success;
      const byFlag = sandbox.run(['--dry-run', '--project', PROJECT, '--queue', ORDERS, flag, value]);
      const byEnv = sandbox.run(['--dry-run', '--project', PROJECT, '--queue', ORDERS], { [key]: value });
      expect([byFlag.status === 0, byEnv.status === 0]).toEqual([schema, schema]);
      if (!schema) expect(byFlag.stderr).toContain(`${key} "${value}"`);
    },
  );
});
