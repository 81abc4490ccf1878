/**
 * The built entry point as Cloud Run functions runs it: the Functions Framework's own CLI, one target
 * per process, configuration from the environment.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startEmulator, type Emulator } from '../../emulator/server.js';
import { freePort } from '../helpers/rerun-process.js';
import { failedTask, queueName } from '../helpers/seeds.js';
import { startTarget, type Target } from '../helpers/target-server.js';

// The framework's CLI (its package `bin`), started with node directly: npx would add ~0.45 s.
const frameworkMain = join(
  dirname(createRequire(import.meta.url).resolve('@google-cloud/functions-framework')),
  'main.js',
);
const ORDERS = queueName('orders');

let child: ChildProcess | undefined;
let emulator: Emulator | undefined;
let target: Target | undefined;

beforeAll(() => {
  if (!existsSync('build/functions/index.js'))
    throw new Error('build/ is missing: run `npm run build` first (npm test does)');
});
afterEach(async () => {
  child?.kill();
  child = undefined;
  await emulator?.stop();
  await target?.stop();
});

/** The framework's CLI serving `targetName` from the package main, or from the module at `source`. */
function startFunction(targetName: string, port: number, env: Record<string, string>, source?: string) {
  let output = '';
  const args = [frameworkMain, `--target=${targetName}`, `--port=${port}`];
  if (source) args.push(`--source=${source}`);
  child = spawn(process.execPath, args, {
    env: { PATH: process.env.PATH ?? '', NODE_ENV: 'production', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child!.on('exit', resolve));
  return { output: () => output, exited };
}

async function waitForServer(url: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    try {
      await fetch(url, { method: 'OPTIONS' });
      return;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  throw new Error(`${url} did not start`);
}

describe('the deployed entry point', () => {
  it('serves rerunHttp from the built package main', async () => {
    target = await startTarget({ respond: () => 200 });
    emulator = await startEmulator({
      port: 0,
      seed: { queues: [{ name: ORDERS, tasks: [failedTask(ORDERS, 'a', target.url)] }] },
    });
    const port = await freePort();
    const fn = startFunction('rerunHttp', port, {
      RERUN_QUEUES: ORDERS,
      CLOUD_TASKS_EMULATOR_HOST: emulator.host,
      RERUN_MAX_RATE: '50',
    });
    const url = `http://127.0.0.1:${port}/`;
    await waitForServer(url);

    const ok = await fetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: '{"kind":"fix-deployed"}',
    });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({
      kind: 'fix-deployed',
      counts: { dispatched: 1, verdicts: { succeeded: 1 } },
    });

    const bad = await fetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: '{"kind": oops',
    });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toEqual({
      error: { code: 400, status: 'INVALID_ARGUMENT', message: 'the body is not valid JSON', details: [] },
    });
    // The framework's own error page would have echoed the body to the log.
    expect(fn.output()).not.toContain('oops');
    const lines = fn
      .output()
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(lines.find((l) => l.message === 'task dispatched')).toMatchObject({
      severity: 'INFO',
      outcome: 'dispatched',
      verdict: 'succeeded',
    });
  });

  it('stops start-up on a bad variable, naming it', async () => {
    const fn = startFunction('rerunHttp', await freePort(), { RERUN_QUEUES: ORDERS, RERUN_MAX_RATE: 'fast' });
    expect(await fn.exited).not.toBe(0);
    expect(fn.output()).toContain('RERUN_MAX_RATE');
  });
});

describe("an exception thrown from a request's callback, under the framework's CLI", () => {
  const repo = resolve(import.meta.dirname, '../..');
  const folders: string[] = [];
  afterAll(() => folders.forEach((folder) => rmSync(folder, { recursive: true, force: true })));

  /**
   * A function module whose POST handler answers nothing and throws from a timer; GET answers "up". With
   * `wrapped`, the handler is in outsideDomain, as rerunHttp and rerunPubsub are.
   */
  function strayThrowModule(wrapped: boolean): string {
    const folder = mkdtempSync(join(tmpdir(), 'stray-'));
    folders.push(folder);
    const path = join(folder, 'index.mjs');
    const outsideDomain = pathToFileURL(join(repo, 'build/functions/outside-domain.js')).href;
    writeFileSync(
      path,
      [
        `import { createRequire } from 'node:module';`,
        `import { outsideDomain } from ${JSON.stringify(outsideDomain)};`,
        `const ff = createRequire(${JSON.stringify(join(repo, 'package.json'))})('@google-cloud/functions-framework');`,
        `const handler = (req, res) => {`,
        `  if (req.method === 'GET') return void res.send('up');`,
        `  setTimeout(() => { throw new Error('a stray exception'); }, 10);`,
        `};`,
        `ff.http('stray', ${wrapped ? 'outsideDomain(handler)' : 'handler'});`,
      ].join('\n'),
    );
    return path;
  }

  it("inside the framework's domain: answered 500, and the instance goes on", async () => {
    const port = await freePort();
    const fn = startFunction('stray', port, {}, strayThrowModule(false));
    const url = `http://127.0.0.1:${port}/`;
    await waitForServer(url);
    expect((await fetch(url, { method: 'POST' })).status).toBe(500);
    expect(await (await fetch(url)).text()).toBe('up');
    expect(fn.output()).toContain('a stray exception');
  });

  it(`outside it (docs/architecture.md "The framework's domain"): the instance ends with 16`, async () => {
    const port = await freePort();
    const fn = startFunction('stray', port, {}, strayThrowModule(true));
    const url = `http://127.0.0.1:${port}/`;
    await waitForServer(url);
    // The framework answers 500 and exits at once: the answer is seldom out before the process ends.
    const answer = await fetch(url, { method: 'POST' }).then(
      (response) => response.status,
      () => 'connection closed',
    );
    expect([500, 'connection closed']).toContain(answer);
    expect(await fn.exited).toBe(16);
    expect(fn.output()).toContain('a stray exception');
  });
});
