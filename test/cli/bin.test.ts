import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { BIN } from './run-cli.js';

// Makes the shim's own process look like Node 20 (execArgv: its children do not inherit it).
const AS_NODE_20 = `--import=data:text/javascript,Object.defineProperty(process.versions,"node",{value:"20.20.2"})`;

function runShim(bin: string, args: string[], nodeArgs: string[] = []) {
  return spawnSync(process.execPath, [...nodeArgs, bin, ...args], { encoding: 'utf8' });
}

describe('the bin shims', () => {
  it('on Node 22 or later run the CLI with this Node', () => {
    const result = runShim(BIN, ['--version']);
    expect(result.status).toBe(0);
    expect(result.stdout).toBe(`cloud-tasks-rerun 0.1.0 (Node.js ${process.version}, ${process.execPath})\n`);
  });

  it("on an older Node re-run the CLI with the project's own Node (the node devDependency)", () => {
    const result = runShim(BIN, ['--version'], [AS_NODE_20]);
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(
      /^cloud-tasks-rerun 0\.1\.0 \(Node\.js v22\.\d+\.\d+, .*node_modules\/node\/bin\/node\)\n$/,
    );
  });

  it('on an older Node without the project Node say in one line which version is needed (exit 2)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rerun-bin-'));
    try {
      cpSync(fileURLToPath(new URL('../../bin', import.meta.url)), join(dir, 'bin'), { recursive: true });
      writeFileSync(join(dir, 'package.json'), '{"type":"module"}');
      for (const bin of ['cloud-tasks-rerun', 'cloud-tasks-emulator']) {
        const result = runShim(join(dir, 'bin', `${bin}.js`), ['--help'], [AS_NODE_20]);
        expect(result.status).toBe(2);
        expect(result.stdout).toBe('');
        expect(result.stderr).toBe(`${bin} needs Node.js 22 or later; this is Node.js v20.20.2\n`);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('rebuild once when a source is newer than the build (a git pull since), then run the new build', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rerun-bin-'));
    try {
      const root = fileURLToPath(new URL('../..', import.meta.url));
      cpSync(join(root, 'bin'), join(dir, 'bin'), { recursive: true });
      writeFileSync(join(dir, 'package.json'), '{"type":"module"}');
      mkdirSync(join(dir, 'node_modules/node/bin'), { recursive: true });
      symlinkSync(join(root, 'node_modules/node/bin/node'), join(dir, 'node_modules/node/bin/node'));
      // A stand-in for tsc: it writes the new build.
      mkdirSync(join(dir, 'node_modules/typescript/bin'), { recursive: true });
      writeFileSync(
        join(dir, 'node_modules/typescript/bin/tsc'),
        `require('node:fs').writeFileSync(${JSON.stringify(join(dir, 'build/scripts/cli/main.js'))}, 'console.log("new build")');`,
      );
      writeFileSync(join(dir, 'node_modules/typescript/package.json'), '{"type":"commonjs"}');
      mkdirSync(join(dir, 'build/scripts/cli'), { recursive: true });
      writeFileSync(join(dir, 'build/scripts/cli/main.js'), 'console.log("old build")');
      utimesSync(join(dir, 'build/scripts/cli/main.js'), new Date(1_000_000), new Date(1_000_000));
      mkdirSync(join(dir, 'shared'));
      writeFileSync(join(dir, 'shared/pulled.ts'), 'export {};');
      const bin = join(dir, 'bin/cloud-tasks-rerun.js');

      const first = runShim(bin, [], [AS_NODE_20]);
      expect(first.stderr).toBe(
        'cloud-tasks-rerun: sources changed since the last build; building (tsc -p tsconfig.build.json)...\n',
      );
      expect(first.stdout).toBe('new build\n');
      const again = runShim(bin, [], [AS_NODE_20]);
      expect(again.stderr).toBe('');
      expect(again.stdout).toBe('new build\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the emulator bin runs the emulator the same way', () => {
    const result = runShim(
      BIN.replace('cloud-tasks-rerun.js', 'cloud-tasks-emulator.js'),
      ['--help'],
      [AS_NODE_20],
    );
    expect(result.status).toBe(0);
    expect(result.stdout).toContain('Usage: cloud-tasks-emulator');
  });
});
