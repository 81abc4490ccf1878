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
  createSandbox,
  isCall,
  MAIL,
  ORDERS,
  PROJECT,
  queueKey,
  REDRIVE_ROLE,
  removeSandboxes,
  resourcesOf,
  RUNNER_ROLE,
  RUNTIME,
  type Sandbox,
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
});
