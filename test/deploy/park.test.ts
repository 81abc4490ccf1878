/**
 * deploy.sh --park against the fake gcloud (docs/deploy.md "Parking"): the PAUSED parking queues, exactly
 * the grants parking and unparking need, the sweep told to park; a second run changes nothing; a run
 * without --park takes the grants back and leaves the queues, paused.
 */
import { createHash } from 'node:crypto';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { parkingQueueOf, parseQueueName } from '../../shared/cloud-tasks/names.js';
import {
  BASE,
  BUILD_SA,
  CI_SA,
  createSandbox,
  dryAndRealRun,
  isCall,
  MAIL,
  OPERATIONS_ROLE,
  ORDERS,
  printedCommands,
  printedEnvFiles,
  PROJECT,
  queueKey,
  REDRIVE_ROLE,
  removeSandboxes,
  resourcesOf,
  RUNNER_ROLE,
  RUNTIME,
  type Sandbox,
  unlabelled,
} from './harness.js';

vi.setConfig({ testTimeout: 90_000 });
afterAll(removeSandboxes);

const PARK_ROLE = `projects/${PROJECT}/roles/rerun_park`;
const parkingOf = (queue: string) => parkingQueueOf(parseQueueName(queue)!).name;
const ORDERS_PARKED = parkingOf(ORDERS);
const MAIL_PARKED = parkingOf(MAIL);

/** The calls of a run that change a parking queue (creates, pauses, resumes, deletes). */
const queueChanges = (calls: string[][]) =>
  calls.filter(
    (call) =>
      isCall(call, 'tasks', 'queues') &&
      /^(create|pause|resume|delete)$/.test(call[2]!) &&
      call[3]!.endsWith('-parked'),
  );

function queueState(sandbox: Sandbox, queue: string): string | undefined {
  return resourcesOf(sandbox.snapshot(), 'queue-state')[queue]?.trim();
}

/** The RERUN_SWEEP_PERIOD a dry run with these flags would deploy. */
function sweepPeriodOf(...flags: string[]): string | undefined {
  const result = createSandbox().run(['--dry-run', ...BASE, '--park', ...flags]);
  expect(result.stderr).toBe('');
  expect(result.status).toBe(0);
  return printedEnvFiles(result.stdout)[0]?.RERUN_SWEEP_PERIOD;
}

describe('deploy.sh --park', () => {
  it('creates a PAUSED parking queue beside each queue, grants exactly what parking needs, and sweeps park', () => {
    const sandbox = createSandbox();
    const result = sandbox.run([...BASE, '--park']);
    expect(result.stderr).not.toMatch(/deploy\.sh:|ERROR/);
    expect(result.status).toBe(0);
    for (const parked of [ORDERS_PARKED, MAIL_PARKED]) {
      expect(Object.keys(resourcesOf(sandbox.snapshot(), 'queue'))).toContain(parked);
      expect(queueState(sandbox, parked)).toBe('PAUSED');
      expect(sandbox.bindings(queueKey(parked))).toEqual([`${RUNTIME} ${PARK_ROLE}`]);
    }
    // Parking reads bodies and deletes on the home queues, unparking creates: the redrive role.
    expect(sandbox.bindings(queueKey(ORDERS)).sort()).toEqual(
      [`${RUNTIME} ${RUNNER_ROLE}`, `${RUNTIME} ${REDRIVE_ROLE}`].sort(),
    );
    const role = resourcesOf(sandbox.snapshot(), 'role').rerun_park!;
    expect(role).toContain(
      'permissions=cloudtasks.queues.get,cloudtasks.tasks.create,cloudtasks.tasks.delete,cloudtasks.tasks.fullView,cloudtasks.tasks.get,cloudtasks.tasks.list',
    );
    expect(sandbox.deployedEnv()).toMatchObject({ RERUN_PARK: 'true', RERUN_SWEEP_PERIOD: '15m' });

    const state = sandbox.snapshot();
    const again = sandbox.run([...BASE, '--park']);
    expect(again.status).toBe(0);
    expect(queueChanges(again.calls)).toEqual([]);
    expect(again.calls.filter((call) => call.includes('add-iam-policy-binding'))).toEqual([]);
    expect(sandbox.snapshot()).toEqual(state);
  });

  it('pauses a parking queue that exists and runs, and creates none then', () => {
    const sandbox = createSandbox({ queues: [ORDERS, MAIL, ORDERS_PARKED, `${MAIL_PARKED}:PAUSED`] });
    const result = sandbox.run([...BASE, '--park']);
    expect(result.status).toBe(0);
    expect(
      queueChanges(result.calls)
        .map((call) => `${call[2]} ${call[3]}`)
        .sort(),
    ).toEqual([`pause ${ORDERS_PARKED.split('/').pop()}`]);
    expect(queueState(sandbox, ORDERS_PARKED)).toBe('PAUSED');
  });

  it('gives a long queue ID the hashed parking queue name the service computes', () => {
    const id = `q${'x'.repeat(98)}`;
    const long = `projects/${PROJECT}/locations/us-central1/queues/${id}`;
    const sandbox = createSandbox({ queues: [long] });
    expect(sandbox.run(['--project', PROJECT, '--queue', long, '--park']).status).toBe(0);
    const hash = createHash('sha256').update(id).digest('hex').slice(0, 8);
    const parked = `projects/${PROJECT}/locations/us-central1/queues/${id.slice(0, 84)}-${hash}-parked`;
    expect(parkingOf(long)).toBe(parked);
    expect(queueState(sandbox, parked)).toBe('PAUSED');
  });

  it('for a * entry, parks beside each queue of the location now, never a parking or control queue', () => {
    const sandbox = createSandbox();
    const all = `projects/${PROJECT}/locations/us-central1/queues/*`;
    const result = sandbox.run(['--project', PROJECT, '--queue', all, '--park']);
    expect(result.status).toBe(0);
    const created = queueChanges(result.calls)
      .filter((call) => call[2] === 'create')
      .map((call) => call[3]);
    expect(created).toContain('orders-parked');
    expect(created).toContain('payments-parked');
    expect(created.filter((id) => id!.endsWith('-parked-parked') || id!.startsWith('rerun-control'))).toEqual(
      [],
    );
    const again = sandbox.run(['--project', PROJECT, '--queue', all, '--park']);
    expect(queueChanges(again.calls)).toEqual([]);
  });

  it('a run without --park takes the grants back and RERUN_PARK, and leaves the queues, paused', () => {
    const sandbox = createSandbox();
    expect(sandbox.run([...BASE, '--park']).status).toBe(0);
    const result = sandbox.run(BASE);
    expect(result.status).toBe(0);
    expect(sandbox.bindings(queueKey(ORDERS_PARKED))).toEqual([]);
    expect(sandbox.bindings(queueKey(ORDERS))).toEqual([`${RUNTIME} ${RUNNER_ROLE}`]);
    expect(sandbox.deployedEnv()).not.toHaveProperty('RERUN_PARK');
    expect(sandbox.deployedEnv()).not.toHaveProperty('RERUN_SWEEP_PERIOD');
    expect(queueChanges(result.calls)).toEqual([]);
    expect(queueState(sandbox, ORDERS_PARKED)).toBe('PAUSED');
    // --delete removes the deployment, never the parking queues with their parked tasks.
    const removed = sandbox.run(['--project', PROJECT, '--region', 'us-central1', '--delete']);
    expect(removed.status).toBe(0);
    expect(
      removed.calls.filter(
        (call) => isCall(call, 'tasks', 'queues', 'delete') && call[3]!.endsWith('-parked'),
      ),
    ).toEqual([]);
    expect(Object.keys(resourcesOf(sandbox.snapshot(), 'queue'))).toContain(ORDERS_PARKED);
  });

  it('derives the sweep period from the schedule, or asks for --sweep-period; refuses --park without the sweep', () => {
    const hourly = createSandbox().run([...BASE, '--park', '--schedule', '5 * * * *', '--dry-run']);
    expect(hourly.status).toBe(0);
    expect(hourly.stdout).toContain('RERUN_SWEEP_PERIOD');
    const odd = createSandbox().run([...BASE, '--park', '--schedule', '0 9 * * 1']);
    expect(odd.status).toBe(2);
    expect(odd.stderr).toContain('--sweep-period');
    expect(odd.calls).toEqual([]);
    const given = createSandbox();
    expect(
      given.run([...BASE, '--park', '--schedule', '0 9 * * 1', '--sweep-period', '7d']).stderr,
    ).toContain('RERUN_SWEEP_PERIOD');
    const noSweep = createSandbox().run([...BASE, '--park', '--no-sweep']);
    expect(noSweep.status).toBe(2);
    expect(noSweep.stderr).toContain('--no-sweep');
  });
  it('prints with --dry-run exactly the commands a first real run with --park makes', () => {
    const flags = [...BASE, '--park', '--redrive-act-as', CI_SA];
    const { printed, real } = dryAndRealRun(flags);
    expect(real.stderr).not.toMatch(/deploy\.sh:|ERROR/);
    expect(real.status).toBe(0);
    expect(unlabelled(printed)).toEqual(unlabelled(real.calls));
    expect(printed.filter((call) => isCall(call, 'tasks', 'queues', 'pause')).map((call) => call[3])).toEqual(
      ['orders-parked', 'mail-parked'],
    );
  });

  it('with --park alone: the park and redrive roles, the act-as grant, and no project-level operations role', () => {
    const sandbox = createSandbox();
    expect(sandbox.run([...BASE, '--park', '--redrive-act-as', CI_SA]).status).toBe(0);
    expect(Object.keys(resourcesOf(sandbox.snapshot(), 'role')).sort()).toEqual([
      'rerun_control',
      'rerun_park',
      'rerun_redrive',
      'rerun_runner',
    ]);
    expect(sandbox.bindings(`project:${PROJECT}`)).toEqual([`serviceAccount:${BUILD_SA} roles/run.builder`]);
    expect(sandbox.bindings(`project:${PROJECT}`)).not.toContain(`${RUNTIME} ${OPERATIONS_ROLE}`);
    expect(sandbox.bindings(`account:${CI_SA}`)).toEqual([`${RUNTIME} roles/iam.serviceAccountUser`]);
    // The park role is on the parking queues only; the home queues hold the runner and redrive roles.
    expect(sandbox.bindings(queueKey(MAIL)).sort()).toEqual(
      [`${RUNTIME} ${RUNNER_ROLE}`, `${RUNTIME} ${REDRIVE_ROLE}`].sort(),
    );
    // Dropping --park but keeping --redrive leaves the redrive role on the queues.
    expect(sandbox.run([...BASE, '--redrive']).status).toBe(0);
    expect(sandbox.bindings(queueKey(MAIL))).toContain(`${RUNTIME} ${REDRIVE_ROLE}`);
    expect(sandbox.bindings(queueKey(MAIL_PARKED))).toEqual([]);
  });

  it('names a parking queue as the service does, at the 100-character edge', () => {
    for (const length of [92, 93, 94, 100]) {
      const id = 'q'.repeat(length);
      const home = `projects/${PROJECT}/locations/us-central1/queues/${id}`;
      const result = createSandbox().run(['--dry-run', '--project', PROJECT, '--queue', home, '--park']);
      expect(result.status).toBe(0);
      const created = printedCommands(result.stdout)
        .filter((call) => isCall(call, 'tasks', 'queues', 'create') && call[3]!.endsWith('-parked'))
        .map((call) => `projects/${PROJECT}/locations/us-central1/queues/${call[3]}`);
      expect(created, `${length} characters`).toEqual([parkingOf(home)]);
    }
  });

  it('for a * entry, says that queues created later get theirs on the next run, and grants on each', () => {
    const sandbox = createSandbox();
    const all = `projects/${PROJECT}/locations/us-central1/queues/*`;
    const result = sandbox.run(['--project', PROJECT, '--queue', all, '--park']);
    expect(result.status).toBe(0);
    expect(result.stdout).toContain(
      `${all}: a parking queue beside each queue there now; a queue created later gets its parking queue on the next deploy run`,
    );
    const parkingQueues = Object.keys(resourcesOf(sandbox.snapshot(), 'queue')).filter((name) =>
      name.endsWith('-parked'),
    );
    expect(parkingQueues.map((name) => name.split('/').pop()).sort()).toEqual([
      'ops-control-parked',
      'orders-parked',
      'payments-parked',
    ]);
    for (const queue of parkingQueues) {
      expect(queueState(sandbox, queue)).toBe('PAUSED');
      expect(sandbox.bindings(queueKey(queue))).toEqual([`${RUNTIME} ${PARK_ROLE}`]);
    }
    // From the * entry to one named queue without --park: every parking queue there loses the park role.
    expect(sandbox.run(['--project', PROJECT, '--queue', ORDERS]).status).toBe(0);
    for (const queue of parkingQueues) {
      expect(sandbox.bindings(queueKey(queue)), queue).toEqual([]);
      expect(queueState(sandbox, queue)).toBe('PAUSED');
    }
  });

  it('never reads the policy of a parking queue that does not exist', () => {
    const sandbox = createSandbox();
    const result = sandbox.run(BASE);
    expect(result.status).toBe(0);
    const parkingCalls = result.calls.filter((call) => call.some((arg) => arg.endsWith('-parked')));
    expect(parkingCalls.map((call) => call.slice(0, 3).join(' '))).toEqual([
      'tasks queues describe',
      'tasks queues describe',
    ]);
  });

  it('derives RERUN_SWEEP_PERIOD from the schedule, or takes --sweep-period', () => {
    expect(sweepPeriodOf()).toBe('15m');
    expect(sweepPeriodOf('--schedule', '*/5 * * * *')).toBe('5m');
    expect(sweepPeriodOf('--schedule', '7 * * * *')).toBe('60m');
    expect(sweepPeriodOf('--schedule', '0 9 * * 1', '--sweep-period', '7h')).toBe('7h');
    expect(sweepPeriodOf('--schedule', '*/5 * * * *', '--sweep-period', '20m')).toBe('20m');
    for (const schedule of ['*/0 * * * *', '*/5 9-17 * * *', '0,30 * * * *']) {
      const result = createSandbox().run([...BASE, '--park', '--schedule', schedule]);
      expect(result.status, schedule).toBe(2);
      expect(result.stderr).toMatch(/^deploy\.sh: --park needs --sweep-period D/);
      expect(result.calls).toEqual([]);
    }
  });
});
