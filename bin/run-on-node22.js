/**
 * What both bins share: run a built entry of this project on Node 22 or later. On an older Node, re-run it
 * with the project's own Node (the `node` devDependency) when it is installed, else say in one line which
 * version is needed. Before the first build (a fresh clone after `npm ci`), or when a source is newer than
 * the build (a `git pull` since), build with tsc.
 *
 * Plain JavaScript with nothing newer than Node 14 can parse, so that it gets as far as saying so.
 */
/* global process, console, URL */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { constants } from 'node:os';
import { fileURLToPath } from 'node:url';

const NEEDED_MAJOR = 22;
const root = fileURLToPath(new URL('..', import.meta.url));
/** What tsconfig.build.json compiles: a file here newer than the built entry means a rebuild is due. */
const SOURCES = ['tsconfig.build.json', 'functions', 'shared', 'emulator', 'bench', 'scripts'];
const TSC = `${root}node_modules/typescript/bin/tsc`;

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
  if (!existsSync(built)) build(program, node, 'building the project once');
  else if (isStale(built) && existsSync(TSC))
    build(program, node, 'sources changed since the last build; building');
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
 * Whether a source changed after `built` was written (a `git pull` since the last build). Without the
 * sources (an installed package) it is never stale.
 * @param {string} built
 * @returns {boolean}
 */
function isStale(built) {
  const builtMs = statSync(built).mtimeMs;
  return SOURCES.some((source) => newestMs(`${root}${source}`) > builtMs);
}

/**
 * The newest modification time of a file, or of any file under a folder; 0 when there is none.
 * @param {string} path
 * @returns {number}
 */
function newestMs(path) {
  if (!existsSync(path)) return 0;
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.mtimeMs;
  return Math.max(0, ...readdirSync(path).map((name) => newestMs(`${path}/${name}`)));
}

/**
 * @param {string} program
 * @param {string} node
 * @param {string} why what stderr says before the build
 */
function build(program, node, why) {
  if (!existsSync(TSC)) {
    console.error(`${program} is not built: run "npm ci && npm run build" in ${root}`);
    process.exit(2);
  }
  console.error(`${program}: ${why} (tsc -p tsconfig.build.json)...`);
  const result = spawnSync(node, [TSC, '-p', `${root}tsconfig.build.json`], { stdio: ['ignore', 2, 2] });
  if (result.status !== 0) process.exit(2);
}
