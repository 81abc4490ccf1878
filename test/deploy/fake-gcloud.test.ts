import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createSandbox, FAKE_GCLOUD, FULL, printedCommands, PROJECT, removeSandboxes } from './harness.js';

const state = mkdtempSync(join(tmpdir(), 'fake-gcloud-'));
afterAll(() => {
  rmSync(state, { recursive: true, force: true });
  removeSandboxes();
});

function gcloud(...args: string[]) {
  return spawnSync('bash', [FAKE_GCLOUD, ...args, `--project=${PROJECT}`, '--quiet'], {
    env: { ...process.env, FAKE_GCLOUD_STATE: state },
    encoding: 'utf8',
  });
}

/** The fake's table: command, positional arguments, flags, reference page. */
const table = readFileSync(FAKE_GCLOUD, 'utf8')
  .split("\nTABLE='")[1]!
  .split("'\n")[0]!
  .split('\n')
  .map((line) => line.split('|'));

describe('the fake gcloud', () => {
  it('refuses what the real gcloud refuses: a misspelled flag, a value on a switch, an unknown command', () => {
    const typo = gcloud('run', 'deploy', 'svc', '--regoin=us-central1', '--source=.');
    expect(typo.status).toBe(2);
    expect(typo.stderr).toContain('unrecognized arguments: --regoin');
    const value = gcloud('run', 'deploy', 'svc', '--region=us-central1', '--no-allow-unauthenticated=yes');
    expect(value.status).toBe(2);
    expect(value.stderr).toContain('wrong form');
    const old = gcloud('functions', 'deploy', 'fn', '--region=us-central1');
    expect(old.status).toBe(2);
    expect(old.stderr).toContain('Invalid choice');
    const extra = gcloud('pubsub', 'topics', 'describe', 'a', 'b');
    expect(extra.stderr).toContain('unrecognized arguments: b');
  });

  it('refuses a custom role with a Cloud Tasks permission IAM does not know', () => {
    const role = (id: string, permissions: string) =>
      gcloud('iam', 'roles', 'create', id, '--title=t', `--permissions=${permissions}`, '--stage=GA');
    const unknown = role('batch_delete', 'cloudtasks.tasks.delete,cloudtasks.tasks.batchDelete');
    expect(unknown.status).toBe(1);
    expect(unknown.stderr).toContain('Permission cloudtasks.tasks.batchDelete is not valid');
    expect(role('operations', 'cloudtasks.operations.get').status).toBe(0);
  });

  it('words a missing binding as gcloud does: with the condition only for commands that take one', () => {
    expect(gcloud('pubsub', 'topics', 'create', 'gone').status).toBe(0);
    const member = `--member=serviceAccount:nobody@${PROJECT}.iam.gserviceaccount.com`;
    const topic = gcloud(
      'pubsub',
      'topics',
      'remove-iam-policy-binding',
      'gone',
      member,
      '--role=roles/pubsub.publisher',
    );
    expect(topic.status).toBe(1);
    expect(topic.stderr).toContain('Policy binding with the specified principal and role not found!');
    const project = (...extra: string[]) =>
      gcloud('projects', 'remove-iam-policy-binding', PROJECT, member, '--role=roles/viewer', ...extra);
    expect(project('--condition=None').stderr).toContain(
      'Policy binding with the specified principal, role, and condition not found!',
    );
    expect(project('--all').stderr).toContain(
      'Policy bindings with the specified principal and role not found!',
    );
  });

  it('names a reference page for every command it knows', () => {
    expect(table.length).toBeGreaterThan(50);
    for (const [command, positional, , page] of table) {
      expect(positional, command).toMatch(/^\d\+?$/);
      expect(page, command).toBe(command!.replaceAll(' ', '/'));
    }
  });

  it('knows every command deploy.sh runs, deploying and deleting', () => {
    const sandbox = createSandbox();
    const commands = [
      ...printedCommands(sandbox.run(['--dry-run', ...FULL]).stdout),
      ...printedCommands(
        sandbox.run(['--dry-run', '--delete', '--project', PROJECT, '--region', 'us-central1']).stdout,
      ),
    ];
    const known = table.map(([command]) => command!);
    for (const command of commands) {
      const words = command.filter((word) => !word.startsWith('--')).join(' ');
      expect(
        known.some((path) => `${words} `.startsWith(`${path} `)),
        words,
      ).toBe(true);
    }
  });
});
