/**
 * A time line of a bench child, to find where its memory goes. Loaded into the redriving child with
 * `BENCH_RECOVERY_NODE_FLAGS="--import $PWD/build/bench/trace.js"`, it samples the process's memory every
 * 100 ms and notes each HTTP call as it starts; at exit it writes both, in time order, to
 * `trace-<pid>.tsv` in the temporary folder (TMPDIR). Each line: milliseconds since the child started,
 * then `memory` with RSS, heap used, heap total and array buffers in MB, or `call` with the method and
 * the path (its project and location left out). Read it for its shape: tracing costs a little CPU.
 */
import { subscribe } from 'node:diagnostics_channel';
import { writeFileSync } from 'node:fs';
import type { ClientRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const SAMPLE_MS = 100;
const MB = 1024 * 1024;
const startMs = Date.now();
const lines: string[] = [];
const sinceStart = (): number => Date.now() - startMs;

subscribe('http.client.request.start', (message) => {
  const { request } = message as { request: ClientRequest };
  const path = request.path.replace(/projects\/[^/]+\/locations\/[^/]+\//, '');
  lines.push(`${sinceStart()}\tcall\t${request.method} ${path}`);
});

setInterval(() => {
  const { rss, heapUsed, heapTotal, arrayBuffers } = process.memoryUsage();
  const sizes = [rss, heapUsed, heapTotal, arrayBuffers].map((bytes) => (bytes / MB).toFixed(1));
  lines.push([sinceStart(), 'memory', ...sizes].join('\t'));
}, SAMPLE_MS).unref();

process.on('exit', () => writeFileSync(join(tmpdir(), `trace-${process.pid}.tsv`), `${lines.join('\n')}\n`));
