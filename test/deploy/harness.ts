/**
 * Runs deploy.sh in a sandbox: a temporary directory whose `bin/gcloud` is the fake of fake-gcloud.sh,
 * first on PATH, so no test can reach Google Cloud. The environment is built from scratch (the test
 * runner's own variables, LOG_LEVEL among them, must not leak into the deployed configuration).
 */
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';

export const REPO = resolve(import.meta.dirname, '../..');
export const DEPLOY = join(REPO, 'deploy.sh');
export const FAKE_GCLOUD = join(import.meta.dirname, 'fake-gcloud.sh');
/** The bash that runs deploy.sh, by its path: the fake gcloud's `#!` line names it. */
const BASH = spawnSync('bash', ['-c', 'command -v bash'], { encoding: 'utf8' }).stdout.trim();

export const PROJECT = 'shop-prod';
export const PROJECT_NUMBER = '123456789012';
export const ORDERS = `projects/${PROJECT}/locations/us-central1/queues/orders`;
export const MAIL = `projects/${PROJECT}/locations/europe-west1/queues/mail`;
export const CONTROL = `projects/${PROJECT}/locations/us-central1/queues/ops-control`;
/** A queue that exists but is never named: nothing may be granted on it. */
export const UNNAMED = `projects/${PROJECT}/locations/us-central1/queues/payments`;
export const RUNTIME_SA = `rerun-runtime@${PROJECT}.iam.gserviceaccount.com`;
export const PUSH_SA = `rerun-push@${PROJECT}.iam.gserviceaccount.com`;
export const BUILD_SA = `rerun-build@${PROJECT}.iam.gserviceaccount.com`;
export const INVOKER_SA = `rerun-invoker@${PROJECT}.iam.gserviceaccount.com`;
export const CI_SA = `ci@${PROJECT}.iam.gserviceaccount.com`;
export const MONITORING_AGENT = `service-${PROJECT_NUMBER}@gcp-sa-monitoring-notification.iam.gserviceaccount.com`;
export const PUBSUB_AGENT = `service-${PROJECT_NUMBER}@gcp-sa-pubsub.iam.gserviceaccount.com`;
/** The service's deterministic URL (https://SERVICE-PROJECT_NUMBER.REGION.run.app). */
export const HTTP_URL = `https://rerun-http-${PROJECT_NUMBER}.us-central1.run.app`;
/** The custom roles deploy.sh defines, by their full names. */
export const RUNNER_ROLE = `projects/${PROJECT}/roles/rerun_runner`;
export const REDRIVE_ROLE = `projects/${PROJECT}/roles/rerun_redrive`;
export const CONTROL_ROLE = `projects/${PROJECT}/roles/rerun_control`;
export const LISTER_ROLE = `projects/${PROJECT}/roles/rerun_lister`;
export const OPERATIONS_ROLE = `projects/${PROJECT}/roles/rerun_operations`;

/** The fake's policy key of a queue. */
export const queueKey = (queue: string): string => `queue:${queue}`;

/** A deployment's smallest flags: the project and two queues. */
export const BASE = ['--project', PROJECT, '--queue', ORDERS, '--queue', MAIL];
/** The ready alerting policy file. */
export const POLICY = join(REPO, 'scripts/monitoring/queue-failing-attempts-policy.json');
/** Every option that creates or grants something. */
export const FULL = [
  ...BASE,
  '--cloud-builds',
  '--invoker',
  `serviceAccount:${CI_SA}`,
  '--alert-policy',
  POLICY,
  '--redrive',
  '--redrive-act-as',
  CI_SA,
];
/** The control queue deploy.sh creates by default. */
export const OWN_CONTROL = `projects/${PROJECT}/locations/us-central1/queues/rerun-control`;
/** The runtime account as an IAM member. */
export const RUNTIME = `serviceAccount:${RUNTIME_SA}`;

export interface RunResult {
  readonly status: number;
  readonly stdout: string;
  readonly stderr: string;
  /** The gcloud calls this run made, each as its argv (without the leading `gcloud`). */
  readonly calls: string[][];
}

export interface Sandbox {
  readonly dir: string;
  /** Runs deploy.sh with these arguments; `env` adds to (or, with undefined, removes from) the base. */
  run(args: readonly string[], env?: Record<string, string | undefined>): RunResult;
  /** Every gcloud call made in this sandbox so far. */
  allCalls(): string[][];
  /** The fake's resources: path (kind/id) to content. */
  snapshot(): Record<string, string>;
  /** The environment file the service was last deployed with, parsed. */
  deployedEnv(service?: string): Record<string, string>;
  /** The "member role" lines of a resource's IAM policy in the fake (kind:id, e.g. queue:NAME). */
  bindings(resource: string): string[];
}

const sandboxes: string[] = [];

/** Removes every sandbox created so far (call it in afterAll). */
export function removeSandboxes(): void {
  for (const dir of sandboxes.splice(0)) rmSync(dir, { recursive: true, force: true });
}

/** Creates a sandbox with the fake gcloud; `queues` exist in it, `accounts` too. */
export function createSandbox(
  options: { queues?: readonly string[]; accounts?: readonly string[] } = {},
): Sandbox {
  const dir = mkdtempSync(join(tmpdir(), 'deploy-test-'));
  sandboxes.push(dir);
  const bin = join(dir, 'bin');
  const state = join(dir, 'state');
  mkdirSync(bin);
  // One process a call: bash itself runs the fake (a `#!/bin/sh` line that execs bash would start two).
  writeFileSync(join(bin, 'gcloud'), `#!${BASH}\n. '${FAKE_GCLOUD}' "$@"\n`);
  chmodSync(join(bin, 'gcloud'), 0o755);
  const log = join(state, 'calls.log');
  const readCalls = (): string[][] => (existsSync(log) ? parseCallLog(readFileSync(log, 'utf8')) : []);
  const base: Record<string, string> = {
    PATH: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}`,
    HOME: dir,
    TMPDIR: dir,
    LANG: 'C.UTF-8',
    CLOUDSDK_CONFIG: join(dir, 'gcloud-config'),
    FAKE_GCLOUD_STATE: state,
    FAKE_GCLOUD_QUEUES: (options.queues ?? [ORDERS, MAIL, CONTROL, UNNAMED]).join(' '),
    FAKE_GCLOUD_ACCOUNTS: (options.accounts ?? [CI_SA]).join(' '),
    DEPLOY_RETRY_DELAY: '0',
  };
  return {
    dir,
    run(args, env = {}) {
      const before = readCalls().length;
      const merged: Record<string, string> = { ...base };
      for (const [key, value] of Object.entries(env)) {
        if (value === undefined) delete merged[key];
        else merged[key] = value;
      }
      const result = spawnSync('bash', [DEPLOY, ...args], {
        cwd: dir,
        env: merged,
        encoding: 'utf8',
        // One run is a few hundred bash processes: seconds alone, several times that on a loaded machine.
        timeout: 80_000,
      });
      if (result.error) throw result.error;
      return {
        status: result.status ?? -1,
        stdout: result.stdout,
        stderr: result.stderr,
        calls: readCalls().slice(before),
      };
    },
    allCalls: readCalls,
    snapshot() {
      const root = join(state, 'r');
      const files: Record<string, string> = {};
      const walk = (folder: string): void => {
        if (!existsSync(folder)) return;
        for (const entry of readdirSync(folder, { withFileTypes: true })) {
          const path = join(folder, entry.name);
          if (entry.isDirectory()) walk(path);
          else files[relative(root, path)] = readFileSync(path, 'utf8');
        }
      };
      walk(root);
      return files;
    },
    deployedEnv(service = 'rerun-http') {
      return parseEnvFile(readFileSync(join(state, 'r', 'service-env', service), 'utf8'));
    },
    bindings(resource) {
      const path = join(state, 'r', 'binding', resource.replaceAll('/', '~'));
      return existsSync(path)
        ? readFileSync(path, 'utf8')
            .split('\n')
            .filter((line) => line !== '')
        : [];
    },
  };
}

/** The fake's log: one call a line, each argument followed by the 0x1f byte. */
export function parseCallLog(text: string): string[][] {
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => line.split('\x1f').slice(0, -1));
}

/**
 * The environment file deploy.sh writes: YAML lines `KEY: "value"` whose values are JSON strings
 * (double-quoted YAML scalars with the same escapes).
 */
export function parseEnvFile(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const match = /^([A-Z][A-Z0-9_]*): (".*")$/.exec(line);
    if (!match) throw new Error(`not a KEY: "value" line: ${line}`);
    env[match[1]!] = JSON.parse(match[2]!) as string;
  }
  return env;
}

/** Splits a command line printed by deploy.sh (bare words, '...' quoting, backslash escapes). */
export function shellWords(line: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw new Error(`unterminated quote in: ${line}`);
      word += line.slice(i + 1, end);
      i = end;
      inWord = true;
    } else if (c === '\\') {
      word += line[i + 1] ?? '';
      i++;
      inWord = true;
    } else if (c === ' ') {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else {
      word += c;
      inWord = true;
    }
  }
  if (inWord) words.push(word);
  return words;
}

/** The gcloud commands a dry run printed, each as its argv (without the leading `gcloud`). */
export function printedCommands(stdout: string): string[][] {
  return stdout
    .split('\n')
    .filter((line) => line.startsWith('gcloud '))
    .map((line) => shellWords(line).slice(1));
}

/** The environment files a dry run printed (`#   KEY: "value"` lines after each `environment in` note). */
export function printedEnvFiles(stdout: string): Record<string, string>[] {
  const files: Record<string, string>[] = [];
  for (const block of stdout.split(/^# environment in .*:$/m).slice(1)) {
    const lines = block.split('\n').slice(1);
    const end = lines.findIndex((line) => !line.startsWith('#   '));
    files.push(
      parseEnvFile(
        lines
          .slice(0, end < 0 ? lines.length : end)
          .map((line) => line.slice(4))
          .join('\n'),
      ),
    );
  }
  return files;
}

/** The value of `--name=value` in a call, or undefined. */
export function flagOf(call: readonly string[], name: string): string | undefined {
  const prefix = `--${name}=`;
  return call.find((arg) => arg.startsWith(prefix))?.slice(prefix.length);
}

/** Whether a call starts with these words (`functions`, `deploy`, ...). */
export function isCall(call: readonly string[], ...words: string[]): boolean {
  return words.every((word, i) => call[i] === word);
}

/** Calls with deploy.sh's temporary work folder replaced, to compare runs. */
export function normalizeCalls(calls: readonly (readonly string[])[]): string[][] {
  return calls.map((call) => call.map((arg) => arg.replace(/=\S*\/deploy-rerun\.[^/]+\//, '=<work>/')));
}

/**
 * A dry run and a first real run with `flags`, each in a sandbox of its own: the real run, and the
 * commands the dry run printed with the answers a real run reads (the project number, a new channel) in
 * place of its placeholders.
 */
export function dryAndRealRun(flags: readonly string[]): { printed: string[][]; real: RunResult } {
  const dry = createSandbox().run(['--dry-run', ...flags]);
  const real = createSandbox().run(flags);
  const printed = printedCommands(dry.stdout).map((command) =>
    command.map((arg) => arg.replaceAll('PROJECT_NUMBER', PROJECT_NUMBER).replace('CHANNEL_ID', '4101')),
  );
  return { printed, real };
}

/**
 * Calls made comparable across runs: the work folder left out (normalizeCalls), and the configuration
 * label, a hash of the environment (which holds the URL and so the project number).
 */
export function unlabelled(calls: readonly (readonly string[])[]): string[][] {
  return normalizeCalls(calls).map((call) =>
    call.map((arg) => arg.replace(/rerun-config=\w+/, 'rerun-config=<hash>')),
  );
}

/** The resources of one kind in a snapshot (`service`, `topic`, ...), by id. */
export function resourcesOf(snapshot: Record<string, string>, kind: string): Record<string, string> {
  return Object.fromEntries(
    Object.entries(snapshot)
      .filter(([path]) => path.startsWith(`${kind}/`))
      .map(([path, content]) => [path.slice(kind.length + 1).replaceAll('~', '/'), content]),
  );
}
