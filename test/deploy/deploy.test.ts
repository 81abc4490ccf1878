import { afterAll, describe, expect, it, vi } from 'vitest';
import { loadConfig } from '../../shared/platform/config.js';
import { httpDelivery, parseRerunEvent } from '../../shared/triggers/events.js';
import {
  BASE,
  BUILD_SA,
  CI_SA,
  CONTROL_ROLE,
  createSandbox,
  dryAndRealRun,
  flagOf,
  FULL,
  HTTP_URL,
  INVOKER_SA,
  isCall,
  LISTER_ROLE,
  MAIL,
  MONITORING_AGENT,
  OPERATIONS_ROLE,
  ORDERS,
  OWN_CONTROL,
  printedCommands,
  printedEnvFiles,
  PROJECT,
  PROJECT_NUMBER,
  PUBSUB_AGENT,
  PUSH_SA,
  queueKey,
  REDRIVE_ROLE,
  removeSandboxes,
  REPO,
  resourcesOf,
  RUNNER_ROLE,
  type RunResult,
  RUNTIME,
  RUNTIME_SA,
  type Sandbox,
  UNNAMED,
  unlabelled,
} from './harness.js';

// deploy.sh makes a few hundred fake gcloud calls per run, each a bash process: CPU-bound, and slower
// while another suite shares the cores.
vi.setConfig({ testTimeout: 90_000 });

afterAll(removeSandboxes);

/** One first deployment with every option, shared by the tests that only read what it did. */
let full: { sandbox: Sandbox; result: RunResult } | undefined;
function fullDeployment(): { sandbox: Sandbox; result: RunResult } {
  if (!full) {
    const sandbox = createSandbox();
    full = { sandbox, result: sandbox.run(FULL) };
    expect(full.result.status).toBe(0);
  }
  return full;
}

describe('deploy.sh --dry-run', () => {
  it('prints every gcloud command, each with --project and --quiet, and runs none', () => {
    const result = createSandbox().run(['--dry-run', ...FULL]);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    expect(result.calls).toEqual([]);
    const commands = printedCommands(result.stdout);
    expect(commands.length).toBeGreaterThan(40);
    for (const command of commands) expect(command.slice(-2)).toEqual([`--project=${PROJECT}`, '--quiet']);
  });

  it('prints exactly the commands a first real run makes, and the fake accepts every one of them', () => {
    const { printed, real } = dryAndRealRun(FULL);
    expect(real.stderr).not.toMatch(/deploy\.sh:|ERROR/);
    expect(real.status).toBe(0);
    expect(unlabelled(printed)).toEqual(unlabelled(real.calls));
  });

  it('prints the environment it deploys, valid for the configuration schema', () => {
    const [env, ...more] = printedEnvFiles(createSandbox().run(['--dry-run', ...BASE]).stdout);
    expect(more).toEqual([]);
    expect(() => loadConfig(env)).not.toThrow();
    expect(env).toMatchObject({
      RERUN_QUEUES: `${ORDERS},${MAIL}`,
      RERUN_MAX_RATE: '1',
      RERUN_CONTROL_QUEUE: OWN_CONTROL,
      RERUN_INVOKER_SA: INVOKER_SA,
      RERUN_SELF_URL: HTTP_URL.replace(PROJECT_NUMBER, 'PROJECT_NUMBER'),
      RERUN_SERVICE_TIMEOUT: '600s',
      RERUN_ACK_DEADLINE: '600s',
    });
  });

  it('passes the metric, dashboard and policy files to the gcloud commands that take them', () => {
    const commands = printedCommands(createSandbox().run(['--dry-run', ...FULL]).stdout);
    const fileOf = (words: string[], name: string) =>
      commands.filter((c) => isCall(c, ...words)).map((c) => flagOf(c, name)?.split('/').at(-1));
    expect(fileOf(['logging', 'metrics', 'create', 'rerun_task_outcomes'], 'config-from-file')).toEqual([
      'task-outcomes-metric.json',
    ]);
    expect(fileOf(['logging', 'metrics', 'create', 'rerun_runs'], 'config-from-file')).toEqual([
      'runs-metric.json',
    ]);
    expect(fileOf(['monitoring', 'dashboards', 'create'], 'config-from-file')).toEqual(['dashboard.json']);
    expect(fileOf(['monitoring', 'policies', 'create'], 'policy-from-file')).toEqual([
      'dead-letter-policy.json',
      'queue-failing-attempts-policy.json',
    ]);
  });

  it('prints the removal with --delete, creates nothing, and needs no queue', () => {
    const result = createSandbox().run([
      '--dry-run',
      '--delete',
      '--project',
      PROJECT,
      '--region',
      'us-central1',
    ]);
    expect(result.status).toBe(0);
    expect(result.calls).toEqual([]);
    const commands = printedCommands(result.stdout).map((command) => command.slice(0, 3).join(' '));
    expect(commands).toEqual(
      expect.arrayContaining([
        'run services delete',
        'pubsub topics delete',
        'pubsub subscriptions delete',
        'logging metrics delete',
        'monitoring dashboards delete',
        'iam service-accounts delete',
      ]),
    );
    expect(commands.some((command) => /create|deploy|add-iam/.test(command))).toBe(false);
  });
});

describe('deploy.sh against the fake gcloud: least privilege', () => {
  it('defines the custom roles with exactly the permissions the product uses', () => {
    const sandbox = createSandbox();
    expect(
      sandbox.run([...FULL, '--queue', `projects/${PROJECT}/locations/asia-east1/queues/*`]).status,
    ).toBe(0);
    const roles = resourcesOf(sandbox.snapshot(), 'role');
    expect(roles).toEqual({
      rerun_runner:
        'deleted=false\npermissions=cloudtasks.queues.get,cloudtasks.tasks.get,cloudtasks.tasks.list,cloudtasks.tasks.run\n',
      rerun_redrive:
        'deleted=false\npermissions=cloudtasks.tasks.create,cloudtasks.tasks.delete,cloudtasks.tasks.fullView\n',
      rerun_lister: 'deleted=false\npermissions=cloudtasks.queues.list\n',
      rerun_control:
        'deleted=false\npermissions=cloudtasks.queues.get,cloudtasks.tasks.create,cloudtasks.tasks.delete,cloudtasks.tasks.get,cloudtasks.tasks.list\n',
      rerun_operations: 'deleted=false\npermissions=cloudtasks.operations.get\n',
    });
  });

  it('grants the runner role on the named queues only, and at project level only the build role', () => {
    const sandbox = createSandbox();
    const result = sandbox.run([...BASE, '--invoker', `serviceAccount:${CI_SA}`]);
    expect(result.status).toBe(0);
    for (const queue of [ORDERS, MAIL])
      expect(sandbox.bindings(queueKey(queue))).toEqual([`${RUNTIME} ${RUNNER_ROLE}`]);
    expect(sandbox.bindings('service:rerun-http')).toContain(`serviceAccount:${CI_SA} roles/run.invoker`);
    expect(sandbox.bindings(queueKey(UNNAMED))).toEqual([]);
    expect(sandbox.bindings(`project:${PROJECT}`)).toEqual([`serviceAccount:${BUILD_SA} roles/run.builder`]);
    expect(sandbox.bindings(queueKey(OWN_CONTROL))).toEqual([`${RUNTIME} ${CONTROL_ROLE}`]);
    for (const call of result.calls) {
      expect(call).not.toContain('--allow-unauthenticated');
      expect(call.join(' ')).not.toMatch(
        /allUsers|allAuthenticatedUsers|roles\/cloudtasks\.(taskRunner|admin)/,
      );
    }
  });

  it('with --redrive, adds the redrive role on the queues and the right to act as each named account', () => {
    const { sandbox } = fullDeployment();
    expect(sandbox.bindings(queueKey(ORDERS))).toEqual([
      `${RUNTIME} ${RUNNER_ROLE}`,
      `${RUNTIME} ${REDRIVE_ROLE}`,
    ]);
    expect(sandbox.bindings(`account:${CI_SA}`)).toEqual([`${RUNTIME} roles/iam.serviceAccountUser`]);
  });

  it('with --redrive, grants reading batch operations on the project, and a second run changes nothing', () => {
    const sandbox = createSandbox();
    const redrive = [...BASE, '--redrive'];
    expect(sandbox.run(redrive).status).toBe(0);
    // Operations are per location and Cloud Tasks IAM is per project or queue: the project it is.
    expect(sandbox.bindings(`project:${PROJECT}`).sort()).toEqual(
      [`${RUNTIME} ${OPERATIONS_ROLE}`, `serviceAccount:${BUILD_SA} roles/run.builder`].sort(),
    );
    for (const queue of [ORDERS, MAIL])
      expect(sandbox.bindings(queueKey(queue))).not.toContain(`${RUNTIME} ${OPERATIONS_ROLE}`);
    const state = sandbox.snapshot();
    const again = sandbox.run(redrive);
    expect(again.status).toBe(0);
    expect(
      again.calls.filter((call) =>
        call.some((word) => /^(create|undelete|add-iam-policy-binding)$/.test(word)),
      ),
    ).toEqual([]);
    expect(again.calls.filter((call) => isCall(call, 'iam', 'roles', 'update'))).toEqual([]);
    expect(sandbox.snapshot()).toEqual(state);
  });

  it('takes the operations grant back when a later run turns batches off (RERUN_REDRIVE_BATCH=false)', () => {
    const sandbox = createSandbox();
    expect(sandbox.run([...BASE, '--redrive']).status).toBe(0);
    expect(sandbox.bindings(`project:${PROJECT}`)).toContain(`${RUNTIME} ${OPERATIONS_ROLE}`);
    // One call per task reads no operation; the redrive role on the queues stays.
    expect(sandbox.run([...BASE, '--redrive'], { RERUN_REDRIVE_BATCH: 'false' }).status).toBe(0);
    expect(sandbox.bindings(`project:${PROJECT}`)).toEqual([`serviceAccount:${BUILD_SA} roles/run.builder`]);
    expect(sandbox.bindings(queueKey(ORDERS))).toContain(`${RUNTIME} ${REDRIVE_ROLE}`);
  });

  it('with --redrive and RERUN_REDRIVE_BATCH=false, neither creates nor grants the operations role', () => {
    const sandbox = createSandbox();
    const result = sandbox.run([...BASE, '--redrive'], { RERUN_REDRIVE_BATCH: 'false' });
    expect(result.status).toBe(0);
    expect(sandbox.bindings(`project:${PROJECT}`)).toEqual([`serviceAccount:${BUILD_SA} roles/run.builder`]);
    expect(Object.keys(resourcesOf(sandbox.snapshot(), 'role')).sort()).toEqual([
      'rerun_control',
      'rerun_redrive',
      'rerun_runner',
    ]);
    expect(sandbox.deployedEnv().RERUN_REDRIVE_BATCH).toBe('false');
  });

  it('for a * queue segment, grants the runner and lister roles on the project instead', () => {
    const sandbox = createSandbox();
    const all = `projects/${PROJECT}/locations/us-central1/queues/*`;
    expect(sandbox.run(['--project', PROJECT, '--queue', all]).status).toBe(0);
    expect(sandbox.bindings(`project:${PROJECT}`).sort()).toEqual(
      [
        `${RUNTIME} ${RUNNER_ROLE}`,
        `${RUNTIME} ${LISTER_ROLE}`,
        `serviceAccount:${BUILD_SA} roles/run.builder`,
      ].sort(),
    );
    expect(sandbox.deployedEnv().RERUN_QUEUES).toBe(all);
  });

  it('deploys rerunHttp with Cloud Run from source: nodejs22, one instance, concurrency 8, private, the build account', () => {
    const { result } = fullDeployment();
    const deploys = result.calls.filter((call) => isCall(call, 'run', 'deploy'));
    expect(deploys).toHaveLength(1);
    const [deploy] = deploys as [string[]];
    expect(deploy[2]).toBe('rerun-http');
    expect(deploy).toEqual(
      expect.arrayContaining([
        '--function=rerunHttp',
        '--base-image=nodejs22',
        `--source=${REPO}`,
        '--max-instances=1',
        '--concurrency=8',
        '--no-allow-unauthenticated',
        '--timeout=600s',
        `--service-account=${RUNTIME_SA}`,
        `--build-service-account=projects/${PROJECT}/serviceAccounts/${BUILD_SA}`,
      ]),
    );
    expect(deploy.some((arg) => arg.startsWith('--set-env-vars'))).toBe(false);
  });
});

describe('deploy.sh against the fake gcloud: the delivery path', () => {
  it('pushes the rerun topic to the service with an OIDC token, a 600s ack deadline, retries and a dead letter', () => {
    const { sandbox } = fullDeployment();
    const subscriptions = resourcesOf(sandbox.snapshot(), 'subscription');
    for (const [id, topic] of [
      ['rerun-push', 'rerun'],
      ['rerun-builds-push', 'cloud-builds'],
    ] as const) {
      const settings = subscriptions[id]!.split('\n');
      expect(settings).toEqual(
        expect.arrayContaining([
          `--topic=${topic}`,
          `--push-endpoint=${HTTP_URL}`,
          `--push-auth-service-account=${PUSH_SA}`,
          '--ack-deadline=600',
          '--min-retry-delay=10s',
          '--dead-letter-topic=rerun-dead-letter',
          '--max-delivery-attempts=10',
        ]),
      );
      expect(sandbox.bindings(`subscription:${id}`)).toEqual([
        `serviceAccount:${PUBSUB_AGENT} roles/pubsub.subscriber`,
      ]);
    }
    // The dead letters are kept for reading, and an alert watches their topic.
    expect(subscriptions['rerun-dead-letter']).toContain('--topic=rerun-dead-letter');
    expect(sandbox.bindings('topic:rerun-dead-letter')).toEqual([
      `serviceAccount:${PUBSUB_AGENT} roles/pubsub.publisher`,
    ]);
    const policies = Object.values(resourcesOf(sandbox.snapshot(), 'policy'));
    expect(
      policies.some(
        (policy) => policy.includes('rerun-dead-letter') && policy.includes('rerun_policy=dead-letter'),
      ),
    ).toBe(true);
    // Pushes authenticate as the push account, which may invoke the service; Pub/Sub may sign its tokens.
    expect(sandbox.bindings('service:rerun-http')).toContain(`serviceAccount:${PUSH_SA} roles/run.invoker`);
    expect(sandbox.bindings(`account:${PUSH_SA}`)).toEqual([
      `serviceAccount:${PUBSUB_AGENT} roles/iam.serviceAccountTokenCreator`,
    ]);
  });

  it('creates the control queue to never give a claim up, at the RunTask quota, signed as the invoker account', () => {
    const { sandbox } = fullDeployment();
    const queue = resourcesOf(sandbox.snapshot(), 'queue')[OWN_CONTROL]!.split('\n');
    expect(queue).toEqual(expect.arrayContaining(['--max-attempts=-1', '--max-dispatches-per-second=1']));
    expect(sandbox.bindings(`account:${INVOKER_SA}`)).toEqual([`${RUNTIME} roles/iam.serviceAccountUser`]);
    expect(sandbox.bindings('service:rerun-http')).toContain(
      `serviceAccount:${INVOKER_SA} roles/run.invoker`,
    );
    const env = sandbox.deployedEnv();
    expect(env).toMatchObject({
      RERUN_CONTROL_QUEUE: OWN_CONTROL,
      RERUN_SELF_URL: HTTP_URL,
      RERUN_INVOKER_SA: INVOKER_SA,
    });
    expect(() => loadConfig(env)).not.toThrow();
    const none = createSandbox();
    expect(none.run([...BASE, '--no-control-queue']).status).toBe(0);
    expect(none.deployedEnv()).not.toHaveProperty('RERUN_CONTROL_QUEUE');
    expect(resourcesOf(none.snapshot(), 'queue')).toEqual({});
  });

  it('lets the runtime account publish run summaries on RERUN_NOTIFY_TOPIC, and only when it is set', () => {
    const sandbox = createSandbox();
    const topic = `projects/${PROJECT}/topics/rerun-summaries`;
    expect(sandbox.run([...BASE, '--notify-topic', topic]).status).toBe(1);
    // The topic must exist: the fake knows only the topics deploy.sh created, so use one of those.
    const own = `projects/${PROJECT}/topics/rerun`;
    expect(sandbox.run([...BASE, '--notify-topic', own]).status).toBe(0);
    expect(sandbox.bindings('topic:rerun')).toContain(`${RUNTIME} roles/pubsub.publisher`);
    expect(sandbox.deployedEnv().RERUN_NOTIFY_TOPIC).toBe(own);
    expect(sandbox.run(BASE).status).toBe(0);
    expect(sandbox.bindings('topic:rerun')).not.toContain(`${RUNTIME} roles/pubsub.publisher`);
  });

  it('takes a binding removed by someone else meanwhile as already gone (gcloud words it without a condition)', () => {
    const sandbox = createSandbox();
    const own = `projects/${PROJECT}/topics/rerun`;
    expect(sandbox.run([...BASE, '--notify-topic', own]).status).toBe(0);
    const result = sandbox.run(BASE, { FAKE_GCLOUD_GONE: 'pubsub topics remove-iam-policy-binding' });
    expect(result.stderr).not.toMatch(/deploy\.sh:/);
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(
      /\+ gcloud pubsub topics remove-iam-policy-binding .*\n==> {3}already gone\n/,
    );
    expect(sandbox.bindings('topic:rerun')).not.toContain(`${RUNTIME} roles/pubsub.publisher`);
  });

  it('creates the alerting policy of --alert-policy on the rerun channel, and the channel publishes on the topic', () => {
    const { sandbox } = fullDeployment();
    const channels = resourcesOf(sandbox.snapshot(), 'channel');
    expect(Object.keys(channels)).toEqual(['4101']);
    expect(channels['4101']).toContain(`--channel-labels=topic=projects/${PROJECT}/topics/rerun`);
    expect(sandbox.bindings('topic:rerun')).toEqual([
      `serviceAccount:${MONITORING_AGENT} roles/pubsub.publisher`,
    ]);
    const policy = Object.values(resourcesOf(sandbox.snapshot(), 'policy')).find((text) =>
      text.includes('rerun_policy=queue-failing-attempts-policy'),
    );
    expect(policy).toContain(`channel:projects/${PROJECT}/notificationChannels/4101`);
    expect(policy).toMatch(/"notificationPrompts": \[\s*"OPENED",\s*"CLOSED"\s*\]/);
  });

  it('warns when the dead-letter alert has no --notify-channel to tell, and not when it has one', () => {
    const sandbox = createSandbox();
    const warning = /WARNING: no --notify-channel: the dead-letter alert opens incidents that notify nobody/;
    expect(sandbox.run(BASE).stdout).toMatch(warning);
    // Any channel that exists will do for the warning: the rerun channel the first run created.
    const told = sandbox.run([...BASE, '--notify-channel', `projects/${PROJECT}/notificationChannels/4101`]);
    expect(told.status).toBe(0);
    expect(told.stdout).not.toMatch(warning);
  });

  it('creates the sweep job with a valid sweep event, updates it, and removes it with --no-sweep', () => {
    const sandbox = createSandbox();
    expect(sandbox.run([...BASE, '--schedule', '0 * * * *']).status).toBe(0);
    const result = sandbox.run([...BASE, '--schedule', '*/5 * * * *', '--time-zone', 'Europe/Paris']);
    const update = result.calls.find((call) =>
      isCall(call, 'scheduler', 'jobs', 'update', 'pubsub', 'rerun-sweep'),
    );
    expect(flagOf(update!, 'schedule')).toBe('*/5 * * * *');
    expect(flagOf(update!, 'time-zone')).toBe('Europe/Paris');
    expect(flagOf(update!, 'topic')).toBe('rerun');
    const body: unknown = JSON.parse(flagOf(update!, 'message-body') ?? '');
    expect(parseRerunEvent(body, httpDelivery(body, Date.now()))).toMatchObject({
      success: true,
      data: { kind: 'sweep' },
    });
    expect(sandbox.run([...BASE, '--no-sweep']).status).toBe(0);
    expect(resourcesOf(sandbox.snapshot(), 'job')).toEqual({});
  });
});
