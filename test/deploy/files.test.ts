import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEPLOY, FAKE_GCLOUD, REPO } from './harness.js';

describe('shellcheck', () => {
  it('finds nothing in deploy.sh and the fake gcloud', () => {
    const result = spawnSync('shellcheck', ['--shell=bash', DEPLOY, FAKE_GCLOUD], { encoding: 'utf8' });
    if (result.error) {
      throw new Error(
        `shellcheck could not run (${result.error.message}): install it (apt-get install shellcheck); .ci/run does`,
      );
    }
    expect(result.stdout + result.stderr).toBe('');
    expect(result.status).toBe(0);
  });

  it('deploy.sh is executable, so ./deploy.sh works', () => {
    expect(statSync(DEPLOY).mode & 0o111).toBe(0o111);
    expect(readFileSync(DEPLOY, 'utf8')).toMatch(/^#!\/usr\/bin\/env bash\n[\s\S]*^set -euo pipefail$/m);
  });
});

/** A .gcloudignore pattern (the subset used there: names, `*`, a trailing `/` for folders) as a test. */
function ignores(pattern: string, path: string, isFolder: boolean): boolean {
  const folderOnly = pattern.endsWith('/');
  const body = folderOnly ? pattern.slice(0, -1) : pattern;
  if (folderOnly && !isFolder) return false;
  const regex = new RegExp(`^${body.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*')}$`);
  const name = path.split('/').at(-1) ?? path;
  return body.includes('/') ? regex.test(path) : regex.test(name);
}

describe('.gcloudignore', () => {
  const patterns = readFileSync(join(REPO, '.gcloudignore'), 'utf8')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
  const isIgnored = (path: string, isFolder: boolean) =>
    path.split('/').some((_, i, parts) => {
      const prefix = parts.slice(0, i + 1).join('/');
      const folder = i < parts.length - 1 || isFolder;
      return patterns.some((pattern) => ignores(pattern, prefix, folder));
    });

  it('uploads what `npm ci` and `npm run gcp-build` need, and nothing local', () => {
    for (const file of ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json']) {
      expect(isIgnored(file, false), file).toBe(false);
    }
    for (const folder of ['functions', 'shared']) expect(isIgnored(folder, true), folder).toBe(false);
    for (const folder of ['node_modules', 'build', 'test', 'bench', 'emulator', '.git', 'coverage']) {
      expect(isIgnored(folder, true), folder).toBe(true);
    }
    for (const file of ['deploy.sh', 'README.md', 'eslint.config.js', 'vitest.config.ts']) {
      expect(isIgnored(file, false), file).toBe(true);
    }
    const manifest = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as {
      main: string;
      scripts: Record<string, string>;
    };
    expect(manifest.scripts['gcp-build']).toMatch(/^tsc -p (\S+)$/);
    expect(manifest.main).toBe('build/functions/index.js');
  });

  it('keeps every file the functions import', () => {
    const seen = new Set<string>();
    const visit = (file: string): void => {
      const path = relative(REPO, file);
      if (seen.has(path)) return;
      seen.add(path);
      expect(isIgnored(path, false), `${path} is imported by the functions but not uploaded`).toBe(false);
      const source = readFileSync(file, 'utf8');
      for (const match of source.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)) {
        const target = resolve(dirname(file), match[1]!.replace(/\.js$/, '.ts'));
        if (existsSync(target)) visit(target);
      }
    };
    const roots = ['functions', 'shared']
      .flatMap((folder) => readdirSync(join(REPO, folder)).map((name) => join(REPO, folder, name)))
      .filter((file) => file.endsWith('.ts'));
    expect(roots.length).toBeGreaterThan(0);
    for (const root of roots) visit(root);
    expect(seen.has('functions/index.ts')).toBe(true);
  });
});

describe('scripts/monitoring', () => {
  const folder = join(REPO, 'scripts/monitoring');
  const read = (name: string) => readFileSync(join(folder, name), 'utf8');
  const parse = (name: string) => JSON.parse(read(name)) as Record<string, unknown>;
  const deploy = readFileSync(DEPLOY, 'utf8');

  it('holds JSON files with no placeholder deploy.sh does not fill, each used by deploy.sh', () => {
    for (const name of readdirSync(folder)) {
      expect(() => parse(name), name).not.toThrow();
      for (const [placeholder] of read(name).matchAll(/@[A-Z_]+@/g)) {
        expect(['@PROJECT@', '@NAME@', '@SERVICE@'], name).toContain(placeholder);
      }
      if (name !== 'queue-failing-attempts-policy.json') expect(deploy, name).toContain(name);
    }
  });

  it('builds the log-based metrics on the fields the run logs, with a label per extractor', () => {
    for (const name of ['task-outcomes-metric.json', 'runs-metric.json', 'parked-metric.json']) {
      const metric = parse(name) as {
        filter: string;
        metricDescriptor: { labels: { key: string }[] };
        labelExtractors: Record<string, string>;
      };
      expect(metric.filter).toContain('resource.labels.service_name="@SERVICE@"');
      // A dry run forces nothing: its lines (marked dryRun) are no outcome to count.
      expect(metric.filter).toMatch(/ AND NOT jsonPayload\.dryRun=true$/);
      expect(metric.metricDescriptor.labels.map((label) => label.key).sort()).toEqual(
        Object.keys(metric.labelExtractors).sort(),
      );
      for (const [key, extractor] of Object.entries(metric.labelExtractors)) {
        expect(extractor).toBe(`EXTRACT(jsonPayload.${key})`);
      }
    }
    expect(read('task-outcomes-metric.json')).toContain('\\"task held\\"');
    expect(read('task-outcomes-metric.json')).toContain('\\"task parked\\"');
    expect(read('parked-metric.json')).toContain('jsonPayload.message=\\"task parked\\"');
    expect(read('runs-metric.json')).toContain('jsonPayload.message=\\"rerun finished\\"');
  });

  it("charts the metrics deploy.sh creates and Cloud Tasks' queue depth and attempts", () => {
    const text = read('dashboard.json');
    for (const metric of ['@NAME@_task_outcomes', '@NAME@_runs', '@NAME@_parked']) {
      expect(text).toContain(`logging.googleapis.com/user/${metric}`);
      expect(deploy).toContain(`\${NAME}_${metric.split('_').slice(1).join('_')}`);
    }
    expect(text).toContain('cloudtasks.googleapis.com/queue/depth');
    expect(text).toContain('cloudtasks.googleapis.com/queue/task_attempt_count');
    // The parking queues' depth is the number parked now (docs/parking.md "Seeing them").
    expect(text).toContain('resource.label.queue_id=monitoring.regex.full_match(\\".*-parked\\")');
  });

  it('gives the policies notification prompts on OPENED and CLOSED', () => {
    for (const name of ['dead-letter-policy.json', 'queue-failing-attempts-policy.json']) {
      const policy = parse(name) as { alertStrategy: { notificationPrompts: string[] } };
      expect(policy.alertStrategy.notificationPrompts, name).toEqual(['OPENED', 'CLOSED']);
    }
  });
});
