/**
 * A task's body kept as the bytes it came in. A FULL listing page carries up to 500 bodies of up to
 * 100 KB, and a batch redrive only passes them on into `tasks:batchCreate`. Turning each into a string,
 * parsing it and writing it out again cost most of a redrive's CPU, and held every body in the JS heap
 * until its copy existed (docs/performance.md "Where the CPU goes"). Here a page's bodies stay slices of
 * the answer's bytes, outside the heap: each is the content of its JSON string as sent, escapes and all,
 * which is valid JSON string content to write again as it is (batch-json.ts).
 */
import { freeNow, isFreed, ownsMemory } from '../platform/free-bytes.js';
import { textOf } from '../platform/google-api.js';
import type { Task } from './client.js';

/**
 * The memory a body lies in (a chunk of the answer, or the body's own bytes), and how many bodies in it
 * are still held: it is freed as soon as the last is let go (docs/performance.md "Memory").
 */
interface ChunkShare {
  readonly chunk: Buffer;
  held: number;
}

export class BodyBytes {
  readonly #json: Buffer;
  #share: ChunkShare | undefined;

  /** `json`: the bytes between the quotes of the body's JSON string; `share`: the chunk they lie in. */
  constructor(json: Buffer, share?: ChunkShare) {
    this.#json = json;
    this.#share = share;
  }

  get json(): Buffer {
    if (isFreed(this.#json)) throw new Error('a task body was read after it was let go');
    return this.#json;
  }

  /** What JSON.stringify writes for it anywhere else (a single create): the string it stands for. */
  toJSON(): string {
    return JSON.parse(`"${this.json.toString('utf8')}"`) as string;
  }

  /** The string it stands for, or undefined once its memory was freed (a failed create's check). */
  textIfHeld(): string | undefined {
    return isFreed(this.#json) ? undefined : this.toJSON();
  }

  /**
   * The body will not be read again (its copy exists, or will not be made): its chunk is freed at once when
   * none of its bodies is held. Reading it after that throws rather than reading empty bytes.
   */
  letGo(): void {
    const share = this.#share;
    if (!share) return;
    this.#share = undefined;
    if (--share.held === 0) freeNow(share.chunk);
  }
}

/**
 * The bytes of the largest body a task can carry, as bodyBytesOf counts them: Cloud Tasks takes tasks of up
 * to 1 MB, and a body is written in base64.
 */
export const LARGEST_BODY_BYTES = Math.ceil((1024 * 1024) / 3) * 4;

/** The bytes of a body as it is written in JSON: as it came, or its base64 string. */
export function bodyLengthOf(body: BodyBytes | string): number {
  return body instanceof BodyBytes ? body.json.length : body.length;
}

/** The bytes of the task's body as it came (base64), or 0 without one. */
export function bodyBytesOf(task: Pick<Task, 'httpRequest' | 'appEngineHttpRequest'>): number {
  const body = task.httpRequest?.body ?? task.appEngineHttpRequest?.body;
  return body === undefined ? 0 : bodyLengthOf(body);
}

/** The task's body will not be read again: `BodyBytes.letGo`, if it came in a FULL listing. */
export function letBodyGo(task: Pick<Task, 'httpRequest' | 'appEngineHttpRequest'>): void {
  for (const request of [task.httpRequest, task.appEngineHttpRequest]) {
    if (request?.body instanceof BodyBytes) request.body.letGo();
  }
}

const BODY_KEY = Buffer.from('"body"');
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const REQUEST_KEYS = ['httpRequest', 'appEngineHttpRequest'] as const;

/**
 * A ListTasks answer, as the chunks it came in, its tasks' bodies as BodyBytes. Each string value of a
 * `"body"` key is cut out and the rest parsed as JSON with the body's index in its place. A page where
 * that does not account for every body cut out (a `"body"` key somewhere else, such as inside an error
 * detail) is parsed whole.
 *
 * A body is a slice of the chunk it came in, not of the whole answer: the answer is joined only to be
 * read, into memory the next page's join reuses. A join of its own per page, kept for as long as its
 * bodies, cost a fresh allocation each time (docs/performance.md "Where the CPU goes"). A chunk is freed
 * when its last body is let go (`BodyBytes.letGo`), and one that holds no body as soon as it is read.
 */
export function parseTaskPage(chunks: readonly Buffer[]): unknown {
  const bytes = joined(chunks);
  const skeleton: Buffer[] = [];
  const spans: { start: number; end: number }[] = [];
  let copied = 0;
  let at = bytes.indexOf(BODY_KEY);
  while (at !== -1) {
    // A `"body"` whose first quote is escaped is inside a string (a header value), not a key.
    const value = bytes[at - 1] === BACKSLASH ? undefined : stringValueAfter(bytes, at + BODY_KEY.length);
    if (value) {
      skeleton.push(bytes.subarray(copied, value.start - 1), Buffer.from(String(spans.length)));
      spans.push(value);
      copied = value.end + 1;
    }
    at = bytes.indexOf(BODY_KEY, value ? copied : at + 1);
  }
  if (spans.length === 0) return JSON.parse(textOf(bytes));
  skeleton.push(bytes.subarray(copied));
  const skeletonBytes = Buffer.concat(skeleton);
  const page: unknown = JSON.parse(textOf(skeletonBytes));
  freeNow(skeletonBytes);
  return putBack(page, bodiesOf(chunks, spans)) ? page : JSON.parse(textOf(bytes));
}

/**
 * Each span's body, holding a share of the memory it lies in: its chunk (shared with the chunk's other
 * bodies), or its own bytes if it spans two chunks and was joined. A chunk that holds no body is freed at
 * once; one that is a view into shared memory (a pool) is left to the collector.
 */
function bodiesOf(chunks: readonly Buffer[], spans: readonly { start: number; end: number }[]): BodyBytes[] {
  const shareOf = (bytes: Buffer): ChunkShare | undefined =>
    ownsMemory(bytes) ? { chunk: bytes, held: 0 } : undefined;
  const shares = chunks.map(shareOf);
  const bodies = slicesOf(chunks, spans).map(({ bytes, chunk }) => {
    const share = chunk === undefined ? shareOf(bytes) : shares[chunk];
    if (share) share.held++;
    return new BodyBytes(bytes, share);
  });
  for (const share of shares) if (share?.held === 0) freeNow(share.chunk);
  return bodies;
}

/** The most bytes the reused join keeps between pages: a FULL page of bodies of 10 KB is about 7 MB. */
const MAX_REUSED_JOIN = 16 * 1024 * 1024;
let reusedJoin = Buffer.alloc(0);

/** The chunks as one buffer, valid until the next call: the page is read at once, then let go. */
function joined(chunks: readonly Buffer[]): Buffer {
  const size = chunks.reduce((sum, chunk) => sum + chunk.length, 0);
  if (size > MAX_REUSED_JOIN) return Buffer.concat(chunks, size);
  if (reusedJoin.length < size) reusedJoin = Buffer.allocUnsafeSlow(Math.min(MAX_REUSED_JOIN, size * 2));
  let at = 0;
  for (const chunk of chunks) at += chunk.copy(reusedJoin, at);
  return reusedJoin.subarray(0, size);
}

/** The bytes of each span (in order, over the chunks joined): a slice of its chunk, or joined if it spans two. */
function slicesOf(
  chunks: readonly Buffer[],
  spans: readonly { start: number; end: number }[],
): { bytes: Buffer; chunk?: number }[] {
  let chunk = 0;
  let chunkStart = 0;
  return spans.map(({ start, end }) => {
    while (start >= chunkStart + chunks[chunk]!.length) chunkStart += chunks[chunk++]!.length;
    const local = start - chunkStart;
    if (end <= chunkStart + chunks[chunk]!.length)
      return { bytes: chunks[chunk]!.subarray(local, end - chunkStart), chunk };
    const parts = [chunks[chunk]!.subarray(local)];
    let partStart = chunkStart + chunks[chunk]!.length;
    for (let next = chunk + 1; partStart < end; partStart += chunks[next++]!.length) {
      parts.push(chunks[next]!.subarray(0, end - partStart));
    }
    return { bytes: Buffer.concat(parts, end - start) };
  });
}

/** Each task's body index replaced by its bytes; false unless they are exactly the bodies cut out, in order. */
function putBack(page: unknown, bodies: readonly BodyBytes[]): boolean {
  const tasks = (page as { tasks?: unknown } | null)?.tasks;
  if (!Array.isArray(tasks)) return false;
  let next = 0;
  for (const task of tasks as Record<string, { body?: unknown } | undefined>[]) {
    for (const key of REQUEST_KEYS) {
      const request = task[key];
      if (typeof request?.body !== 'number') continue;
      if (request.body !== next) return false;
      request.body = bodies[next++]!;
    }
  }
  return next === bodies.length;
}

/** Where the string value after a key ending at `at` lies (`: "…"`); undefined if it is no key or no string. */
function stringValueAfter(bytes: Buffer, at: number): { start: number; end: number } | undefined {
  at = afterSpace(bytes, at);
  if (bytes[at] !== COLON) return undefined;
  at = afterSpace(bytes, at + 1);
  if (bytes[at] !== QUOTE) return undefined;
  const start = at + 1;
  let end = bytes.indexOf(QUOTE, start);
  while (end !== -1 && isEscaped(bytes, end)) end = bytes.indexOf(QUOTE, end + 1);
  return end === -1 ? undefined : { start, end };
}

/** JSON's whitespace: space, tab, line feed, carriage return. */
function afterSpace(bytes: Buffer, at: number): number {
  while (bytes[at] === 0x20 || bytes[at] === 0x09 || bytes[at] === 0x0a || bytes[at] === 0x0d) at++;
  return at;
}

/** A quote inside a string is escaped by an odd run of backslashes before it. */
function isEscaped(bytes: Buffer, quote: number): boolean {
  let run = 0;
  while (bytes[quote - 1 - run] === BACKSLASH) run++;
  return run % 2 === 1;
}
