import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { CONFIG_KEYS, loadConfig } from '../../shared/platform/config.js';
import { httpDelivery, parseRerunEvent } from '../../shared/triggers/events.js';
import {
  BASE,
  CI_SA,
  CONTROL,
  createSandbox,
  FULL,
  HTTP_URL,
  isCall,
  MAIL,
  OPERATIONS_ROLE,
  ORDERS,
  PROJECT,
  queueKey,
  removeSandboxes,
  resourcesOf,
  RUNNER_ROLE,
  RUNTIME,
  UNNAMED,
} from './harness.js';

// deploy.sh makes a few hundred fake gcloud calls per run, each a bash process: CPU-bound, and slower
// while another suite shares the cores.
vi.setConfig({ testTimeout: 90_000 });

const writes = (calls: readonly string[][]) =>
  calls.filter((call) => !call.some((arg) => /^(describe|list|get-iam-policy)$/.test(arg)));

afterAll(removeSandboxes);

describe('deploy.sh against the fake gcloud: runs after the first', () => {
  it('runs a second time without a rebuild or a new grant, and changes nothing', () => {
    const sandbox = createSandbox();
    expect(sandbox.run(FULL).status).toBe(0);
    const after = sandbox.snapshot();
    const second = sandbox.run(FULL);
    expect(second.stderr).not.toMatch(/deploy\.sh:|ERROR/);
    expect(second.status).toBe(0);
    expect(sandbox.snapshot()).toEqual(after);
    expect(second.stdout).toContain('rerun-http is up to date');
    // What is written again is an update in place to the same settings; nothing is created or granted.
    const verbs = writes(second.calls).map((call) =>
      call.find((word) => /^(create|deploy|add-iam-policy-binding|update|enable)$/.test(word)),
    );
    expect([...new Set(verbs)].sort()).toEqual(['enable', 'update']);
  });

  it('updates the service without a rebuild when only its configuration changed', () => {
    const sandbox = createSandbox();
    expect(sandbox.run(BASE).status).toBe(0);
    const result = sandbox.run([...BASE, '--max-tasks', '7']);
    expect(result.calls.filter((call) => isCall(call, 'run', 'deploy'))).toEqual([]);
    expect(result.calls.filter((call) => isCall(call, 'run', 'services', 'update'))).toHaveLength(1);
    expect(sandbox.deployedEnv().RERUN_MAX_TASKS).toBe('7');
  });

  it('takes back what a run with one queue fewer and fewer flags no longer needs', () => {
    const sandbox = createSandbox();
    expect(sandbox.run(FULL).status).toBe(0);
    const result = sandbox.run(['--project', PROJECT, '--queue', ORDERS]);
    expect(result.status).toBe(0);
    expect(sandbox.bindings(queueKey(MAIL))).toEqual([]);
    expect(sandbox.bindings(queueKey(ORDERS))).toEqual([`${RUNTIME} ${RUNNER_ROLE}`]);
    expect(sandbox.bindings(`account:${CI_SA}`)).toEqual([]);
    expect(sandbox.bindings(`project:${PROJECT}`)).not.toContain(`${RUNTIME} ${OPERATIONS_ROLE}`);
    expect(sandbox.bindings('service:rerun-http')).not.toContain(`serviceAccount:${CI_SA} roles/run.invoker`);
    const state = sandbox.snapshot();
    expect(Object.keys(resourcesOf(state, 'subscription')).sort()).toEqual([
      'rerun-dead-letter',
      'rerun-push',
    ]);
    const policies = Object.values(resourcesOf(state, 'policy'));
    expect(policies).toHaveLength(1);
    expect(policies[0]).toContain('rerun_policy=dead-letter');
    expect(sandbox.deployedEnv().RERUN_QUEUES).toBe(ORDERS);
  });

  it('leaves nothing of its own after --delete, whatever two different deployments set up', () => {
    const sandbox = createSandbox();
    expect(sandbox.run(FULL).status).toBe(0);
    expect(sandbox.run(['--project', PROJECT, '--queue', UNNAMED, '--control-queue', CONTROL]).status).toBe(
      0,
    );
    const removed = sandbox.run(['--delete', '--project', PROJECT, '--region', 'us-central1']);
    expect(removed.stderr).not.toMatch(/deploy\.sh:|ERROR/);
    expect(removed.status).toBe(0);
    const left = Object.entries(sandbox.snapshot())
      .filter(([path, content]) => !(path.startsWith('binding/') && content === ''))
      .map(([path, content]) => (path.startsWith('role/') ? `${path} ${content.split('\n')[0]}` : path));
    // cloud-builds stays (Cloud Build and other tools use it); custom roles are soft-deleted, as IAM
    // does; the user's own control queue stays (the fake keeps the settings deploy.sh gave it).
    expect(left.sort()).toEqual([
      `queue/${CONTROL.replaceAll('/', '~')}`,
      'role/rerun_control deleted=true',
      'role/rerun_operations deleted=true',
      'role/rerun_redrive deleted=true',
      'role/rerun_runner deleted=true',
      'topic/cloud-builds',
    ]);
    // A queue that was not created here is never deleted; a later deployment undeletes the roles.
    expect(removed.calls.some((call) => isCall(call, 'tasks', 'queues', 'delete', 'ops-control'))).toBe(
      false,
    );
    const again = sandbox.run(['--delete', '--project', PROJECT, '--region', 'us-central1']);
    expect(again.status).toBe(0);
    const redeploy = sandbox.run(BASE);
    expect(redeploy.status).toBe(0);
    expect(redeploy.calls.some((call) => isCall(call, 'iam', 'roles', 'undelete', 'rerun_runner'))).toBe(
      true,
    );
  });

  it('takes back the batch operations grant and deletes its role with --delete', () => {
    const sandbox = createSandbox();
    expect(sandbox.run([...BASE, '--redrive']).status).toBe(0);
    expect(sandbox.bindings(`project:${PROJECT}`)).toContain(`${RUNTIME} ${OPERATIONS_ROLE}`);
    const removed = sandbox.run(['--delete', '--project', PROJECT, '--region', 'us-central1']);
    expect(removed.status).toBe(0);
    expect(sandbox.bindings(`project:${PROJECT}`)).toEqual([]);
    expect(resourcesOf(sandbox.snapshot(), 'role').rerun_operations).toMatch(/^deleted=true\n/);
  });
});

describe('deploy.sh against the fake gcloud: configuration and failures', () => {
  it('deploys every configuration key it is given, from flags or the environment, but never an emulator', () => {
    const routesFile = join(createSandbox().dir, 'routes.json');
    const routes = [{ name: 'orders "failing"', when: { policyName: 'orders-failing' }, queues: [ORDERS] }];
    writeFileSync(routesFile, `${JSON.stringify(routes, null, 2)}\n`);
    // A sample for every key the service reads: a key added to the schema fails here until deploy.sh
    // deploys it (and it gets a sample). The timeouts are deploy.sh's own, never taken from the caller.
    const samples: Record<string, string> = {
      RERUN_QUEUES: `${ORDERS},${MAIL}`,
      RERUN_MAX_TASKS: '250',
      RERUN_CONCURRENCY: '2',
      RERUN_MAX_RATE: '0.5',
      RERUN_TIME_BUDGET: '2m',
      RERUN_REDRIVE_CONCURRENCY: '16',
      RERUN_REDRIVE_BATCH: 'false',
      RERUN_PARK: 'true',
      RERUN_SWEEP_PERIOD: '20m',
      RERUN_ROUTES: routesFile,
      RERUN_CONTROL_QUEUE: CONTROL,
      RERUN_SELF_URL: 'https://rerun.example.com/hook',
      RERUN_INVOKER_SA: CI_SA,
      RERUN_NOTIFY_TOPIC: `projects/${PROJECT}/topics/rerun`,
      RERUN_SERVICE_TIMEOUT: '1s',
      RERUN_ACK_DEADLINE: '1s',
      CLOUD_TASKS_EMULATOR_HOST: 'localhost:8123',
      PUBSUB_EMULATOR_HOST: 'localhost:8085',
      LOG_LEVEL: 'debug',
    };
    for (const key of CONFIG_KEYS)
      expect(samples, `add a sample for ${key}, and deploy it in deploy.sh`).toHaveProperty(key);
    const sandbox = createSandbox();
    const result = sandbox.run(['--project', PROJECT], samples);
    expect(result.stderr).not.toMatch(/deploy\.sh:|ERROR/);
    expect(result.status).toBe(0);
    const { NODE_OPTIONS, ...env } = sandbox.deployedEnv();
    expect(NODE_OPTIONS).toBe('--max-semi-space-size=4');
    const emulators = ['CLOUD_TASKS_EMULATOR_HOST', 'PUBSUB_EMULATOR_HOST'];
    expect(Object.keys(env).sort()).toEqual(
      Object.keys(samples)
        .filter((key) => !emulators.includes(key))
        .sort(),
    );
    expect(env).toMatchObject({ RERUN_SERVICE_TIMEOUT: '600s', RERUN_ACK_DEADLINE: '600s' });
    const config = loadConfig(env);
    expect(config.routes).toEqual(
      loadConfig({ RERUN_QUEUES: ORDERS, RERUN_ROUTES: JSON.stringify(routes) }).routes,
    );
    expect(config).toMatchObject({
      maxTasks: 250,
      concurrency: 2,
      maxRatePerSecond: 0.5,
      timeBudgetMs: 120_000,
    });
    // A flag wins over the environment.
    const flagged = createSandbox();
    expect(flagged.run([...BASE, '--max-tasks', '7'], { RERUN_MAX_TASKS: '9' }).status).toBe(0);
    expect(flagged.deployedEnv().RERUN_MAX_TASKS).toBe('7');
  });

  it('waits for IAM to see an account it just created', () => {
    const result = createSandbox().run(BASE, { FAKE_GCLOUD_IAM_LAG: '1' });
    expect(result.status).toBe(0);
    expect(result.stdout).toContain('not visible to IAM yet');
  });

  it('stops at the first failing gcloud command and names it', () => {
    const result = createSandbox().run(BASE, { FAKE_GCLOUD_FAIL: 'run deploy rerun-http' });
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('deploy.sh: this gcloud command failed:\n  gcloud run deploy rerun-http');
    expect(result.stderr).toContain('PERMISSION_DENIED');
    expect(result.calls.at(-1)?.slice(0, 3)).toEqual(['run', 'deploy', 'rerun-http']);
  });

  it('takes only gcloud\'s NOT_FOUND texts for "already gone", not any text with 404 in it', () => {
    const sandbox = createSandbox();
    expect(sandbox.run(BASE).status).toBe(0);
    const denied =
      'PERMISSION_DENIED: Permission run.services.delete denied on projects/404404/services/rerun-http (HTTP 404 proxy)';
    const result = sandbox.run(['--delete', '--project', PROJECT, '--region', 'us-central1'], {
      FAKE_GCLOUD_FAIL: 'run services delete',
      FAKE_GCLOUD_FAIL_TEXT: denied,
    });
    expect(result.status).toBe(1);
    expect(result.stderr).toContain(denied);
  });

  it('changes nothing when a queue does not exist', () => {
    const result = createSandbox({ queues: [ORDERS] }).run(BASE);
    expect(result.status).toBe(2);
    expect(result.stderr).toContain(`deploy.sh: queue ${MAIL} not found: create it first, or fix --queue`);
    expect(result.calls.every((call) => call.includes('describe'))).toBe(true);
  });

  it('ends with how to call the service from Cloud Build and GitHub Actions, and where the logs are', () => {
    const out = createSandbox().run(FULL).stdout;
    expect(out).toContain(`rerunHttp (rerun-http): ${HTTP_URL}`);
    expect(out).toContain(`gcloud auth print-identity-token --audiences='${HTTP_URL}'`);
    expect(out).toContain(`id_token_audience: ${HTTP_URL}`);
    expect(out).toContain(`service_account: ${CI_SA}`);
    expect(out).toContain('resource.labels.service_name="rerun-http"');
    const bodies = [...out.matchAll(/-d '(\{.*\})'/g)].map((match) => JSON.parse(match[1] ?? '') as unknown);
    expect(bodies).toHaveLength(2);
    for (const body of bodies)
      expect(parseRerunEvent(body, httpDelivery(body, Date.now())).success).toBe(true);
  });
});
