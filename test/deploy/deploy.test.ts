import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CONFIG_KEYS, Env, loadConfig } from '../../shared/config.js';
import { parseDurationMs } from '../../shared/duration.js';
import { httpDelivery, parseRerunEvent } from '../../shared/events.js';
import {
  CI_SA,
  CONTROL,
  createSandbox,
  flagOf,
  HTTP_URL,
  INVOKER_SA,
  isCall,
  MAIL,
  MONITORING_AGENT,
  normalizeCalls,
  ORDERS,
  printedCommands,
  printedEnvFiles,
  PROJECT,
  PROJECT_NUMBER,
  removeSandboxes,
  REPO,
  RUNTIME_SA,
  TRIGGER_SA,
  UNNAMED,
} from './harness.js';

const BASE = ['--project', PROJECT, '--queue', ORDERS, '--queue', MAIL];
const FULL = [...BASE, '--cloud-builds', '--invoker', `serviceAccount:${CI_SA}`];
const EMULATOR_KEY = 'CLOUD_TASKS_EMULATOR_HOST';
const DEPLOYED_KEYS = CONFIG_KEYS.filter((key) => key !== EMULATOR_KEY);
/** Keys the schema cannot do without (no default, not optional). */
const REQUIRED_KEYS = CONFIG_KEYS.filter((key) => !Env.shape[key].safeParse(undefined).success);

afterAll(removeSandboxes);

function queueOf(call: readonly string[]): string {
  return `projects/${PROJECT}/locations/${flagOf(call, 'location')}/queues/${call[3]}`;
}

function deploysOf(calls: readonly string[][], fn?: string): string[][] {
  return calls.filter((call) => isCall(call, 'functions', 'deploy') && (fn === undefined || call[2] === fn));
}

describe('deploy.sh --dry-run', () => {
  it('prints every gcloud command and runs none', () => {
    const sandbox = createSandbox();
    const result = sandbox.run(['--dry-run', ...FULL]);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    expect(result.calls).toEqual([]);
    const commands = printedCommands(result.stdout);
    expect(commands.length).toBeGreaterThan(20);
    for (const command of commands) expect(command.slice(-2)).toEqual([`--project=${PROJECT}`, '--quiet']);
    expect(result.stdout).toMatch(/^# dry run: /m);
  });

  it('prints exactly the commands a first real run makes', () => {
    const dry = createSandbox().run(['--dry-run', ...FULL]);
    const real = createSandbox().run(FULL);
    expect(real.status).toBe(0);
    // Where a real run reads an answer (the project number), a dry run prints a placeholder.
    const printed = printedCommands(dry.stdout).map((command) =>
      command.map((arg) => arg.replace('service-PROJECT_NUMBER@', `service-${PROJECT_NUMBER}@`)),
    );
    expect(normalizeCalls(printed)).toEqual(normalizeCalls(real.calls));
  });

  it('prints the environment it deploys, valid for the configuration schema', () => {
    const dry = createSandbox().run(['--dry-run', ...BASE, '--control-queue', CONTROL]);
    const files = printedEnvFiles(dry.stdout);
    expect(files).toHaveLength(2);
    for (const env of files) expect(() => loadConfig(env)).not.toThrow();
    expect(files[1]).toMatchObject({ RERUN_CONTROL_QUEUE: CONTROL, RERUN_INVOKER_SA: INVOKER_SA });
  });

  it('prints the removal with --delete, and runs none', () => {
    const result = createSandbox().run(['--dry-run', '--delete', ...FULL]);
    expect(result.status).toBe(0);
    expect(result.calls).toEqual([]);
    const commands = printedCommands(result.stdout).map((command) => command.slice(0, 3).join(' '));
    expect(commands).toEqual(
      expect.arrayContaining([
        'functions delete rerun-http',
        'functions delete rerun-pubsub',
        'functions delete rerun-builds',
        'pubsub topics delete',
        'iam service-accounts delete',
      ]),
    );
    expect(commands.some((command) => command.includes('create') || command.includes('deploy'))).toBe(false);
  });
});

describe('deploy.sh against a fake gcloud', () => {
  it('grants on the named queues only, the two roles, to the runtime account, and nothing project-wide', () => {
    const result = createSandbox().run(FULL);
    expect(result.status).toBe(0);
    const queueGrants = result.calls
      .filter((call) => isCall(call, 'tasks', 'queues', 'add-iam-policy-binding'))
      .map((call) => `${queueOf(call)} ${flagOf(call, 'member')} ${flagOf(call, 'role')}`);
    expect(queueGrants.sort()).toEqual(
      [ORDERS, MAIL]
        .flatMap((queue) =>
          ['viewer', 'taskRunner'].map(
            (role) => `${queue} serviceAccount:${RUNTIME_SA} roles/cloudtasks.${role}`,
          ),
        )
        .sort(),
    );
    expect(queueGrants.join('\n')).not.toContain(UNNAMED);
    const iamCalls = result.calls.filter((call) => call.some((arg) => arg.includes('iam-policy-binding')));
    expect(
      iamCalls.every((call) => !['projects', 'organizations', 'resource-manager'].includes(call[0]!)),
    ).toBe(true);
    for (const call of result.calls) {
      expect(call).not.toContain('--allow-unauthenticated');
      expect(call.join(' ')).not.toMatch(/allUsers|allAuthenticatedUsers/);
    }
  });

  it('deploys rerunHttp private and both functions on nodejs22 gen2 with the runtime account', () => {
    const sandbox = createSandbox();
    const result = sandbox.run(FULL);
    expect(result.status).toBe(0);
    const deploys = deploysOf(result.calls);
    expect(deploys.map((call) => call[2])).toEqual(['rerun-http', 'rerun-pubsub', 'rerun-builds']);
    for (const call of deploys) {
      expect(call).toContain('--gen2');
      expect(flagOf(call, 'runtime')).toBe('nodejs22');
      expect(flagOf(call, 'service-account')).toBe(RUNTIME_SA);
      expect(flagOf(call, 'source')).toBe(REPO);
      expect(flagOf(call, 'env-vars-file')).toBeDefined();
      expect(
        call.some((arg) => arg.startsWith('--set-env-vars') || arg.startsWith('--update-env-vars')),
      ).toBe(false);
    }
    const [http, pubsub, builds] = deploys as [string[], string[], string[]];
    expect(http).toEqual(
      expect.arrayContaining(['--trigger-http', '--no-allow-unauthenticated', '--entry-point=rerunHttp']),
    );
    expect(pubsub).toEqual(
      expect.arrayContaining(['--retry', '--trigger-topic=rerun', '--entry-point=rerunPubsub']),
    );
    expect(builds).toEqual(
      expect.arrayContaining(['--retry', '--trigger-topic=cloud-builds', '--entry-point=rerunPubsub']),
    );
    for (const event of [pubsub, builds]) expect(flagOf(event, 'trigger-service-account')).toBe(TRIGGER_SA);
    // The trigger's account holds run.invoker on the event functions, the CI account on rerunHttp.
    const state = sandbox.snapshot();
    expect(state['binding/function:rerun-pubsub']).toBe(`serviceAccount:${TRIGGER_SA} roles/run.invoker\n`);
    expect(state['binding/function:rerun-builds']).toBe(`serviceAccount:${TRIGGER_SA} roles/run.invoker\n`);
    expect(state['binding/function:rerun-http']).toBe(`serviceAccount:${CI_SA} roles/run.invoker\n`);
    expect(Object.keys(state).filter((path) => path.startsWith('topic/'))).toEqual([
      'topic/cloud-builds',
      'topic/rerun',
    ]);
  });

  it('deploys environment names of the configuration schema only, the required ones included', () => {
    const sandbox = createSandbox();
    expect(sandbox.run(BASE).status).toBe(0);
    for (const fn of ['rerun-http', 'rerun-pubsub']) {
      // NODE_OPTIONS is V8 tuning, the one variable deployed that is not configuration.
      const { NODE_OPTIONS, ...env } = sandbox.deployedEnv(fn);
      expect(NODE_OPTIONS).toBe('--max-semi-space-size=4');
      for (const key of Object.keys(env)) expect(CONFIG_KEYS as readonly string[]).toContain(key);
      for (const key of REQUIRED_KEYS) expect(env).toHaveProperty(key);
      // Two functions pace themselves: each gets half of the project's RunTask quota.
      expect(env).toEqual({
        RERUN_QUEUES: `${ORDERS},${MAIL}`,
        RERUN_TIME_BUDGET: '50s',
        RERUN_MAX_RATE: '0.5',
      });
      // deploy.sh's default budget is the schema's default.
      expect(loadConfig(env).timeBudgetMs).toBe(loadConfig({ RERUN_QUEUES: ORDERS }).timeBudgetMs);
    }
  });

  it('splits the RunTask quota three ways when Cloud Build notifications get their own function', () => {
    const sandbox = createSandbox();
    expect(sandbox.run([...BASE, '--cloud-builds']).status).toBe(0);
    for (const fn of ['rerun-http', 'rerun-pubsub', 'rerun-builds']) {
      expect(sandbox.deployedEnv(fn).RERUN_MAX_RATE).toBe('0.33');
    }
  });

  it('deploys every configuration key it is given, from flags or the environment, but never the emulator', () => {
    const routesFile = join(createSandbox().dir, 'routes.json');
    const routes = [{ name: 'orders "failing"', when: { policyName: 'orders-failing' }, queues: [ORDERS] }];
    writeFileSync(routesFile, `${JSON.stringify(routes, null, 2)}\n`);
    // A sample value for every key of the schema: a key added to the schema fails here until
    // deploy.sh deploys it (and it gets a sample).
    const samples: Record<string, string> = {
      RERUN_QUEUES: `${ORDERS},${MAIL}`,
      RERUN_MAX_TASKS: '250',
      RERUN_CONCURRENCY: '2',
      RERUN_MAX_RATE: '0.5',
      RERUN_TIME_BUDGET: '2m',
      RERUN_ROUTES: routesFile,
      RERUN_CONTROL_QUEUE: CONTROL,
      RERUN_SELF_URL: 'https://rerun.example.com/hook',
      RERUN_INVOKER_SA: CI_SA,
      CLOUD_TASKS_EMULATOR_HOST: 'localhost:8123',
      LOG_LEVEL: 'debug',
    };
    for (const key of CONFIG_KEYS)
      expect(samples, `add a sample for ${key}, and deploy it in deploy.sh`).toHaveProperty(key);
    const sandbox = createSandbox();
    const result = sandbox.run(['--project', PROJECT], samples);
    expect(result.status).toBe(0);
    const { NODE_OPTIONS: _tuning, ...env } = sandbox.deployedEnv('rerun-http');
    expect(Object.keys(env).sort()).toEqual([...DEPLOYED_KEYS].sort());
    expect(env).not.toHaveProperty(EMULATOR_KEY);
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
    expect(sandbox.deployedEnv('rerun-pubsub')).toEqual(sandbox.deployedEnv('rerun-http'));
    // A flag wins over the environment.
    const flagged = createSandbox();
    expect(flagged.run([...BASE, '--max-tasks', '7'], { RERUN_MAX_TASKS: '9' }).status).toBe(0);
    expect(flagged.deployedEnv('rerun-http').RERUN_MAX_TASKS).toBe('7');
  });

  it.each([
    ['50s', '60s'],
    ['2m', '130s'],
    ['1500ms', '12s'],
    ['530s', '540s'],
  ])('sizes the timeouts to the budget: %s gives %s', (budget, timeout) => {
    const sandbox = createSandbox();
    const result = sandbox.run([...BASE, '--time-budget', budget]);
    expect(result.status).toBe(0);
    for (const call of deploysOf(result.calls)) {
      expect(flagOf(call, 'timeout')).toBe(timeout);
      const timeoutMs = parseDurationMs(flagOf(call, 'timeout') ?? '') ?? 0;
      expect(timeoutMs).toBeGreaterThan(parseDurationMs(budget) ?? Infinity);
      expect(timeoutMs).toBeLessThanOrEqual(540_000);
    }
  });

  it('runs a second time with the same commands, changes nothing and fails on nothing', () => {
    const sandbox = createSandbox();
    const first = sandbox.run(FULL);
    expect(first.status).toBe(0);
    const after = sandbox.snapshot();
    const second = sandbox.run(FULL);
    expect(second.stderr).not.toMatch(/deploy\.sh|ERROR/);
    expect(second.status).toBe(0);
    expect(sandbox.snapshot()).toEqual(after);
    expect(second.stdout).toMatch(/already exists/);
    // The same commands, except that what a lookup found is updated or kept rather than created.
    const expected = normalizeCalls(first.calls)
      .map((call) =>
        isCall(call, 'scheduler', 'jobs', 'create')
          ? ['scheduler', 'jobs', 'update', ...call.slice(3)]
          : call,
      )
      .filter((call) => !isCall(call, 'beta', 'monitoring', 'channels', 'create'));
    expect(normalizeCalls(second.calls)).toEqual(expected);
    expect(second.calls.filter((call) => isCall(call, 'beta', 'monitoring', 'channels', 'create'))).toEqual(
      [],
    );
    expect(Object.keys(after).filter((path) => path.startsWith('channel/'))).toHaveLength(1);
  });

  it('creates the sweep job with a valid sweep event, and updates it on the next run', () => {
    const sandbox = createSandbox();
    expect(sandbox.run([...BASE, '--schedule', '0 * * * *']).status).toBe(0);
    const result = sandbox.run([...BASE, '--schedule', '*/5 * * * *', '--time-zone', 'Europe/Paris']);
    const update = result.calls.find((call) =>
      isCall(call, 'scheduler', 'jobs', 'update', 'pubsub', 'rerun-sweep'),
    );
    expect(update).toBeDefined();
    expect(flagOf(update!, 'schedule')).toBe('*/5 * * * *');
    expect(flagOf(update!, 'time-zone')).toBe('Europe/Paris');
    expect(flagOf(update!, 'topic')).toBe('rerun');
    const body: unknown = JSON.parse(flagOf(update!, 'message-body') ?? '');
    expect(parseRerunEvent(body, httpDelivery(body, Date.now()))).toMatchObject({
      success: true,
      data: { kind: 'sweep' },
    });
    const none = createSandbox().run([...BASE, '--no-sweep']);
    expect(none.status).toBe(0);
    expect(none.calls.some((call) => call[0] === 'scheduler')).toBe(false);
  });

  it('creates the monitoring channel on the rerun topic, then lets its service agent publish there', () => {
    const sandbox = createSandbox();
    const result = sandbox.run(BASE);
    expect(result.status).toBe(0);
    const creates = result.calls.filter((call) => isCall(call, 'beta', 'monitoring', 'channels', 'create'));
    expect(creates).toHaveLength(1);
    expect(flagOf(creates[0]!, 'type')).toBe('pubsub');
    expect(flagOf(creates[0]!, 'channel-labels')).toBe(`topic=projects/${PROJECT}/topics/rerun`);
    expect(sandbox.snapshot()['binding/topic:rerun']).toBe(
      `serviceAccount:${MONITORING_AGENT} roles/pubsub.publisher\n`,
    );
    expect(result.stdout).toContain(`projects/${PROJECT}/notificationChannels/4101`);
  });

  it('sets up queued mode: control queue, invoker account, and rerunHttp learning its own URL', () => {
    const sandbox = createSandbox();
    const args = [...BASE, '--control-queue', CONTROL];
    const first = sandbox.run(args);
    expect(first.status).toBe(0);
    // rerunHttp is deployed once without queued mode to learn its URL, then with it.
    const httpDeploys = deploysOf(first.calls, 'rerun-http');
    expect(httpDeploys).toHaveLength(2);
    const env = sandbox.deployedEnv('rerun-http');
    expect(env).toMatchObject({
      RERUN_CONTROL_QUEUE: CONTROL,
      RERUN_SELF_URL: HTTP_URL,
      RERUN_INVOKER_SA: INVOKER_SA,
    });
    expect(() => loadConfig(env)).not.toThrow();
    expect(sandbox.deployedEnv('rerun-pubsub')).toEqual(sandbox.deployedEnv('rerun-http'));
    const state = sandbox.snapshot();
    expect(state[`binding/queue:${CONTROL.replaceAll('/', '~')}`]).toBe(
      `serviceAccount:${RUNTIME_SA} roles/cloudtasks.enqueuer\n`,
    );
    expect(state[`binding/service-account:${INVOKER_SA}`]).toBe(
      `serviceAccount:${RUNTIME_SA} roles/iam.serviceAccountUser\n`,
    );
    expect(state['binding/function:rerun-http']).toBe(`serviceAccount:${INVOKER_SA} roles/run.invoker\n`);
    const second = sandbox.run(args);
    expect(second.status).toBe(0);
    expect(deploysOf(second.calls, 'rerun-http')).toHaveLength(1);
    expect(sandbox.snapshot()).toEqual(state);
  });

  it('waits for IAM to see an account it just created', () => {
    const result = createSandbox().run(BASE, { FAKE_GCLOUD_IAM_LAG: '1' });
    expect(result.status).toBe(0);
    expect(result.stdout).toContain('not visible to IAM yet');
    const grants = result.calls.filter((call) => isCall(call, 'tasks', 'queues', 'add-iam-policy-binding'));
    expect(grants).toHaveLength(5);
  });

  it('stops at the first failing gcloud command and names it', () => {
    const sandbox = createSandbox();
    const result = sandbox.run(BASE, { FAKE_GCLOUD_FAIL: 'functions deploy rerun-pubsub' });
    expect(result.status).toBe(1);
    expect(result.stderr).toContain(
      'deploy.sh: this gcloud command failed:\n  gcloud functions deploy rerun-pubsub',
    );
    expect(result.stderr).toContain('PERMISSION_DENIED');
    expect(result.calls.at(-1)?.slice(0, 3)).toEqual(['functions', 'deploy', 'rerun-pubsub']);
  });

  it('changes nothing when a queue does not exist', () => {
    const result = createSandbox({ queues: [ORDERS] }).run(BASE);
    expect(result.status).toBe(2);
    expect(result.stderr).toContain(`deploy.sh: queue ${MAIL} not found: create it first, or fix --queue`);
    expect(result.calls.every((call) => call.includes('describe'))).toBe(true);
  });

  it('ends with how to call the hook from Cloud Build and GitHub Actions, and where the logs are', () => {
    const result = createSandbox().run(FULL);
    expect(result.status).toBe(0);
    const out = result.stdout;
    expect(out).toContain(`rerunHttp (rerun-http): ${HTTP_URL}`);
    expect(out).toContain(`gcloud auth print-identity-token --audiences='${HTTP_URL}'`);
    expect(out).toContain('uses: google-github-actions/auth@v2');
    expect(out).toContain(`id_token_audience: ${HTTP_URL}`);
    expect(out).toContain(`service_account: ${CI_SA}`);
    expect(out).toContain('Authorization: Bearer ${{ steps.auth.outputs.id_token }}');
    expect(out).toContain('resource.labels.service_name="rerun-http"');
    const bodies = [...out.matchAll(/-d '(\{.*\})'/g)].map((match) => JSON.parse(match[1]!) as unknown);
    expect(bodies).toHaveLength(2);
    for (const body of bodies)
      expect(parseRerunEvent(body, httpDelivery(body, Date.now())).success).toBe(true);
  });

  it('removes everything with --delete, twice without failing, leaving the queues alone', () => {
    const sandbox = createSandbox();
    expect(sandbox.run([...FULL, '--control-queue', CONTROL]).status).toBe(0);
    const removed = sandbox.run([...FULL, '--control-queue', CONTROL, '--delete']);
    expect(removed.stderr).not.toMatch(/deploy\.sh|ERROR/);
    expect(removed.status).toBe(0);
    const left = Object.entries(sandbox.snapshot()).filter(([, content]) => content !== '');
    // cloud-builds stays: other tools publish and read there.
    expect(left.map(([path]) => path)).toEqual(['topic/cloud-builds']);
    const again = sandbox.run([...FULL, '--control-queue', CONTROL, '--delete']);
    expect(again.status).toBe(0);
    expect(again.stdout).toContain('already gone');
  });
});
