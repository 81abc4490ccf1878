/**
 * What both bins share: run a built entry of this project on Node 22 or later. On an older Node, re-run it
 * with the project's own Node (the `node` devDependency) when it is installed, else say in one line which
 * version is needed. Before the first build (a fresh clone after `npm ci`), build once with tsc.
 *
 * Plain JavaScript with nothing newer than Node 14 can parse, so that it gets as far as saying so.
 */
/* global process, console, URL */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { constants } from 'node:os';
import { fileURLToPath } from 'node:url';

const NEEDED_MAJOR = 22;
const root = fileURLToPath(new URL('..', import.meta.url));

/**
 * Runs `build/<entry>` with the arguments of this process and exits with its code.
 * @param {string} program the bin's name, for messages
 * @param {string} entry the built file, relative to build/
 */
export function runOnNode22(program, entry) {
  const node = nodeBinary();
  if (node === undefined) {
    console.error(
      `${program} needs Node.js ${NEEDED_MAJOR} or later; this is Node.js v${process.versions.node}`,
    );
    process.exit(2);
  }
  const built = `${root}build/${entry}`;
  if (!existsSync(built)) build(program, node);
  const child = spawn(node, [built, ...process.argv.slice(2)], { stdio: 'inherit' });
  // Ctrl-C reaches the child itself (same process group): the shim only waits. Signals sent to the shim
  // alone are passed on.
  process.on('SIGINT', () => undefined);
  for (const signal of /** @type {const} */ (['SIGTERM', 'SIGHUP'])) {
    process.on(signal, () => child.kill(signal));
  }
  child.on('exit', (code, signal) => process.exit(code ?? 128 + (signal ? constants.signals[signal] : 0)));
}

/** @returns {string | undefined} */
function nodeBinary() {
  if (Number(process.versions.node.split('.')[0]) >= NEEDED_MAJOR) return process.execPath;
  const own = `${root}node_modules/node/bin/node`;
  return existsSync(own) ? own : undefined;
}

/**
 * @param {string} program
 * @param {string} node
 */
function build(program, node) {
  const tsc = `${root}node_modules/typescript/bin/tsc`;
  if (!existsSync(tsc)) {
    console.error(`${program} is not built: run "npm ci && npm run build" in ${root}`);
    process.exit(2);
  }
  console.error(`${program}: building the project once (tsc -p tsconfig.build.json)...`);
  const result = spawnSync(node, [tsc, '-p', `${root}tsconfig.build.json`], { stdio: ['ignore', 2, 2] });
  if (result.status !== 0) process.exit(2);
}
