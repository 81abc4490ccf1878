/**
 * Moving off the deployed control queue (another --control-queue, --no-control-queue, --delete) while
 * it still holds tasks is refused before anything is changed (docs/deploy.md "Moving the control queue").
 */
import { afterAll, describe, expect, it, vi } from 'vitest';
import {
  BASE,
  CONTROL,
  CONTROL_ROLE,
  createSandbox,
  isCall,
  OWN_CONTROL,
  PROJECT,
  queueKey,
  removeSandboxes,
  resourcesOf,
  RUNTIME,
  type RunResult,
} from './harness.js';

// Each run is a few hundred fake gcloud calls, each a bash process.
vi.setConfig({ testTimeout: 120_000 });

afterAll(removeSandboxes);

/** The calls that change something, `services enable` (idempotent, needed to read) left out. */
const changes = (result: RunResult) =>
  result.calls.filter(
    (call) =>
      !isCall(call, 'services', 'enable') &&
      !call.some((arg) => /^(describe|list|get-iam-policy)$/.test(arg)),
  );

const tasksIn = (queue: string, count: number) => ({ FAKE_GCLOUD_TASKS: `${queue}=${count}` });

describe('deploy.sh: moving off a control queue that still holds tasks', () => {
  it('is refused before anything is changed, naming the queue, the count and how to go on', () => {
    const sandbox = createSandbox();
    expect(sandbox.run(BASE).status).toBe(0);
    const before = sandbox.snapshot();

    const moved = sandbox.run([...BASE, '--control-queue', CONTROL], tasksIn(OWN_CONTROL, 3));
    expect(moved.status).toBe(2);
    expect(moved.stderr).toContain(`the control queue ${OWN_CONTROL} still holds 3 tasks`);
    expect(moved.stderr).toContain(`its control queue becomes ${CONTROL}`);
    expect(moved.stderr).toContain(
      `gcloud tasks list --queue=rerun-control --location=us-central1 --project=${PROJECT}`,
    );
    expect(moved.stderr).toContain('status and cancel');
    expect(moved.stderr).toContain('never delete a recovery task or a record by hand');
    expect(moved.stderr).toContain('--abandon-control-queue-tasks');
    expect(changes(moved)).toEqual([]);
    expect(moved.calls.filter((call) => isCall(call, 'tasks', 'list'))).toEqual([
      [
        'tasks',
        'list',
        '--queue=rerun-control',
        '--location=us-central1',
        '--limit=100',
        '--page-size=100',
        '--format=value(name)',
        `--project=${PROJECT}`,
        '--quiet',
      ],
    ]);

    const removed = sandbox.run([...BASE, '--no-control-queue'], tasksIn(OWN_CONTROL, 150));
    expect(removed.status).toBe(2);
    expect(removed.stderr).toContain('still holds at least 100 tasks');
    expect(removed.stderr).toContain('(--no-control-queue)');
    expect(changes(removed)).toEqual([]);

    const deleted = sandbox.run(
      ['--delete', '--project', PROJECT, '--region', 'us-central1'],
      tasksIn(OWN_CONTROL, 1),
    );
    expect(deleted.status).toBe(2);
    expect(deleted.stderr).toContain('still holds 1 task, and this run would stop using it (--delete)');
    expect(changes(deleted)).toEqual([]);

    expect(sandbox.snapshot()).toEqual(before);
    expect(sandbox.bindings(queueKey(OWN_CONTROL))).toEqual([`${RUNTIME} ${CONTROL_ROLE}`]);
  });

  it('is refused for a control queue the user named too, which is never deleted', () => {
    const sandbox = createSandbox();
    expect(sandbox.run([...BASE, '--control-queue', CONTROL]).status).toBe(0);
    const before = sandbox.snapshot();
    const back = sandbox.run(BASE, tasksIn(CONTROL, 2));
    expect(back.status).toBe(2);
    expect(back.stderr).toContain(`the control queue ${CONTROL} still holds 2 tasks`);
    expect(back.stderr).toContain('gcloud tasks list --queue=ops-control --location=us-central1');
    expect(changes(back)).toEqual([]);
    expect(sandbox.snapshot()).toEqual(before);
  });

  it('goes on when the queue is empty: the old grant taken back and the own queue deleted first', () => {
    const sandbox = createSandbox();
    expect(sandbox.run(BASE).status).toBe(0);
    // Tasks in another queue do not count.
    const moved = sandbox.run([...BASE, '--control-queue', CONTROL], tasksIn(CONTROL, 5));
    expect(moved.stderr).not.toMatch(/deploy\.sh:|ERROR/);
    expect(moved.status).toBe(0);
    expect(sandbox.deployedEnv().RERUN_CONTROL_QUEUE).toBe(CONTROL);
    expect(sandbox.bindings(queueKey(OWN_CONTROL))).toEqual([]);
    expect(sandbox.bindings(queueKey(CONTROL))).toEqual([`${RUNTIME} ${CONTROL_ROLE}`]);
    expect(Object.keys(resourcesOf(sandbox.snapshot(), 'queue'))).toEqual([CONTROL]);
    // The check, then at once the take-back: the deployed service writes nothing more there.
    const list = moved.calls.findIndex((call) => isCall(call, 'tasks', 'list'));
    const [first, second, ...rest] = changes(moved);
    expect(list).toBeGreaterThan(-1);
    expect(moved.calls.indexOf(first!)).toBeGreaterThan(list);
    expect(first).toEqual(expect.arrayContaining(['remove-iam-policy-binding', 'rerun-control']));
    expect(second).toEqual(expect.arrayContaining(['delete', 'rerun-control']));
    // The service (updated, or rebuilt when the source changed since the first run) comes after.
    expect(
      rest.some((call) => isCall(call, 'run', 'services', 'update') || isCall(call, 'run', 'deploy')),
    ).toBe(true);
  });

  it('goes on with --abandon-control-queue-tasks, saying what it abandons', () => {
    const sandbox = createSandbox();
    expect(sandbox.run(BASE).status).toBe(0);
    const removed = sandbox.run(
      [...BASE, '--no-control-queue', '--abandon-control-queue-tasks'],
      tasksIn(OWN_CONTROL, 4),
    );
    expect(removed.status).toBe(0);
    expect(removed.stdout).toContain(
      `WARNING: --abandon-control-queue-tasks: ${OWN_CONTROL} still holds 4 tasks`,
    );
    expect(sandbox.deployedEnv()).not.toHaveProperty('RERUN_CONTROL_QUEUE');
    expect(resourcesOf(sandbox.snapshot(), 'queue')).toEqual({});
  });
});
