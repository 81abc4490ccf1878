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
