/**
 * Child of the cold-start bench: imports one module (argv[2], a path) and reports the time the import took,
 * the time since the process started, and peak RSS.
 */
import { pathToFileURL } from 'node:url';
import { peakRssKb, sendResult } from './child.js';

export interface ImportChildResult {
  readonly importMs: number;
  /** From process start (performance.timeOrigin) to the end of the import. */
  readonly sinceStartMs: number;
  readonly maxRssKb: number;
}

const startMs = performance.now();
await import(pathToFileURL(process.argv[2]!).href);
const endMs = performance.now();
sendResult({
  importMs: endMs - startMs,
  sinceStartMs: endMs,
  maxRssKb: peakRssKb(),
} satisfies ImportChildResult);
