/**
 * rerunHttp as a real child process on a fixed 127.0.0.1 port: started, killed with SIGKILL, and started
 * again on the same port (the control queue's target stays the same). The child (rerun-child.ts) is bundled
 * once by esbuild, its packages left to node_modules, and run on this Node.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { resolve } from 'node:path';
import { build } from 'esbuild';

const ROOT = resolve(import.meta.dirname, '../..');
/** Git-ignored scratch space inside the project, so the bundle's packages resolve from node_modules. */
const OUT_DIR = resolve(ROOT, '.bench-tmp');

let bundled: Promise<string> | undefined;

function bundle(): Promise<string> {
  bundled ??= (async () => {
    mkdirSync(OUT_DIR, { recursive: true });
    // One file, rewritten by each test run: nothing piles up.
    const outfile = resolve(OUT_DIR, 'rerun-child.mjs');
    await build({
      entryPoints: [resolve(import.meta.dirname, 'rerun-child.ts')],
      outfile,
      bundle: true,
      platform: 'node',
      format: 'esm',
      packages: 'external',
      logLevel: 'silent',
    });
    return outfile;
  })();
  return bundled;
}

/** A free port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address() as { port: number };
  await new Promise<void>((done) => server.close(() => done()));
  return port;
}

export interface RerunProcess {
  readonly url: string;
  /** SIGKILL, and resolves once it has exited. */
  kill(): Promise<void>;
}

/** Starts rerunHttp in a child on `port` with `env`; resolves once it listens. */
export async function startRerunProcess(port: number, env: Record<string, string>): Promise<RerunProcess> {
  const file = await bundle();
  const child: ChildProcess = spawn(process.execPath, [file], {
    env: { PATH: process.env.PATH ?? '', METADATA_SERVER_DETECTION: 'none', ...env, PORT: String(port) },
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  await new Promise<void>((done, fail) => {
    child.once('message', () => done());
    child.once('exit', (code) => fail(new Error(`rerun child exited (${code}) before listening`)));
  });
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  return {
    url: `http://127.0.0.1:${port}/`,
    async kill() {
      child.kill('SIGKILL');
      await exited;
    },
  };
}
