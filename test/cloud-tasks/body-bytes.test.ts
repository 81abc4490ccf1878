import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { batchCreateJson } from '../../shared/cloud-tasks/batch-json.js';
import { BodyBytes, parseTaskPage } from '../../shared/cloud-tasks/body-bytes.js';
import type { NewTask, Task } from '../../shared/cloud-tasks/client.js';
import { isFreed } from '../../shared/platform/free-bytes.js';

const QUEUE = 'projects/p/locations/l/queues/q';
const base64 = (bytes: number) => randomBytes(bytes).toString('base64');

/** A page as Google writes it: pretty-printed, `"body": "…"` with a space. */
function pageBytes(page: object, indent: number | undefined = 2): Buffer {
  return Buffer.from(JSON.stringify(page, null, indent), 'utf8');
}

/** The bytes cut into chunks of `size`: a body or a `"body"` key may straddle any two. */
function chunked(bytes: Buffer, size: number): Buffer[] {
  const chunks: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += size) chunks.push(Buffer.from(bytes.subarray(at, at + size)));
  return chunks;
}

/** The page with each BodyBytes turned back into the string it stands for. */
const asJson = (page: unknown): unknown => JSON.parse(JSON.stringify(page));

const page = {
  tasks: [
    {
      name: `${QUEUE}/tasks/a`,
      httpRequest: {
        url: 'https://example.test/ü?x="body": "y"',
        headers: { 'X-Note': '"body": "not a body"', 'Content-Type': 'application/json' },
        body: base64(3_000),
      },
      dispatchCount: 3,
    },
    { name: `${QUEUE}/tasks/b`, appEngineHttpRequest: { relativeUri: '/b', body: base64(10) } },
    { name: `${QUEUE}/tasks/c`, httpRequest: { url: 'https://example.test/c' } },
    { name: `${QUEUE}/tasks/d`, httpRequest: { url: 'https://example.test/d', body: '' } },
  ],
  nextPageToken: 'next',
};

describe('parseTaskPage', () => {
  it('keeps each body as the bytes of its JSON string, and parses the rest as JSON would', () => {
    for (const indent of [2, undefined]) {
      const parsed = parseTaskPage([pageBytes(page, indent)]) as { tasks: Task[] };
      const [a, b, c, d] = parsed.tasks;
      expect(a!.httpRequest!.body).toBeInstanceOf(BodyBytes);
      expect((a!.httpRequest!.body as BodyBytes).json.toString('latin1')).toBe(
        page.tasks[0]!.httpRequest!.body,
      );
      expect(b!.appEngineHttpRequest!.body).toBeInstanceOf(BodyBytes);
      expect(c!.httpRequest).not.toHaveProperty('body');
      expect(d!.httpRequest!.body).toBeInstanceOf(BodyBytes);
      // Headers that merely contain `"body": "…"` are text, untouched.
      expect(a!.httpRequest!.headers).toEqual(page.tasks[0]!.httpRequest!.headers);
      expect(asJson(parsed)).toEqual(page);
    }
  });

  it('reads the same page whatever chunks it came in', () => {
    const bytes = pageBytes(page);
    for (const size of [1, 2, 5, 7, 64, 1000, bytes.length]) {
      expect(asJson(parseTaskPage(chunked(bytes, size)))).toEqual(page);
    }
  });

  it('keeps a body written with JSON escapes as sent, and it still stands for the same string', () => {
    const escaped = Buffer.from(
      `{"tasks":[{"name":"t","httpRequest":{"body":"YWJj\\u003d\\/"}},` +
        `{"name":"u","httpRequest":{"body":${JSON.stringify('a"b\\')},"url":"x"}}]}`,
    );
    const parsed = parseTaskPage(chunked(escaped, 9)) as { tasks: Task[] };
    const body = parsed.tasks[0]!.httpRequest!.body as BodyBytes;
    expect(body.json.toString()).toBe('YWJj\\u003d\\/');
    expect(body.toJSON()).toBe('YWJj=/');
    // An escaped quote inside a body does not end it.
    expect((parsed.tasks[1]!.httpRequest!.body as BodyBytes).toJSON()).toBe('a"b\\');
    expect(parsed.tasks[1]!.httpRequest!.url).toBe('x');
    const sent = JSON.parse(batchCreateJson(QUEUE, parsed.tasks).toString('utf8'));
    expect(sent.requests.map((r: { task: Task }) => r.task.httpRequest!.body)).toEqual(['YWJj=/', 'a"b\\']);
  });

  it('parses a page whole when a "body" key appears anywhere else, or there is none', () => {
    const elsewhere = {
      tasks: [
        { name: 't1', httpRequest: { headers: { body: 'a header named body' }, body: base64(300) } },
        { name: 't2', lastAttempt: { responseStatus: { code: 13, details: [{ body: 'detail' }] } } },
      ],
    };
    const parsed = parseTaskPage(chunked(pageBytes(elsewhere), 100)) as { tasks: Task[] };
    expect(parsed).toEqual(elsewhere);
    expect(typeof parsed.tasks[0]!.httpRequest!.body).toBe('string');
    expect(parseTaskPage([pageBytes({ tasks: [{ name: 't' }] })])).toEqual({ tasks: [{ name: 't' }] });
    expect(parseTaskPage([pageBytes({})])).toEqual({});
  });

  it('gives bodies that outlive the next page: each is a slice of its own chunk, not of a shared join', () => {
    const first = parseTaskPage(chunked(pageBytes(page), 512)) as { tasks: Task[] };
    const other = structuredClone(page);
    for (const task of other.tasks) if (task.httpRequest?.body) task.httpRequest.body = base64(3_000);
    parseTaskPage(chunked(pageBytes(other), 512));
    expect(asJson(first)).toEqual(page);
  });
});

describe('batchCreateJson with bodies kept as bytes', () => {
  it('writes them as they came, beside string bodies', () => {
    const parsed = parseTaskPage(chunked(pageBytes(page), 333)) as { tasks: Task[] };
    const tasks: NewTask[] = parsed.tasks.map((task) => ({ ...task, name: `${task.name}-copy` }));
    const sent = JSON.parse(batchCreateJson(QUEUE, tasks).toString('utf8'));
    expect(sent).toEqual({
      requests: asJson(tasks.map((task) => ({ task, responseView: 'BASIC', parent: QUEUE }))),
    });
    expect(sent.requests[0].task.httpRequest.body).toBe(page.tasks[0]!.httpRequest!.body);
  });
});

describe('bodies let go', () => {
  /** Chunks that each own their memory, as an HTTP answer's do (not views into Buffer's pool). */
  const ownChunks = (bytes: Buffer, cuts: readonly number[]): Buffer[] =>
    [0, ...cuts].map((from, i) => {
      const part = bytes.subarray(from, cuts[i] ?? bytes.length);
      const chunk = Buffer.allocUnsafeSlow(part.length);
      part.copy(chunk);
      return chunk;
    });
  const bodiesOf = (parsed: unknown): BodyBytes[] =>
    (parsed as { tasks: Task[] }).tasks.flatMap((task) => {
      const body = task.httpRequest?.body ?? task.appEngineHttpRequest?.body;
      return body instanceof BodyBytes ? [body] : [];
    });
  const freed = (chunk: Buffer) => isFreed(chunk);

  it('frees a chunk when its last body is let go, and a chunk that holds none as soon as it is read', () => {
    const bytes = pageBytes(page);
    // The first chunk holds every body; the second only the page's tail.
    const tail = bytes.indexOf('"nextPageToken"');
    const chunks = ownChunks(bytes, [tail]);
    const bodies = bodiesOf(parseTaskPage(chunks));
    expect(bodies).toHaveLength(3);
    expect(freed(chunks[1]!)).toBe(true);
    const [first, ...others] = bodies;
    first!.letGo();
    first!.letGo(); // once only: a body let go twice does not free its siblings' chunk
    expect(freed(chunks[0]!)).toBe(false);
    expect(others[0]!.json.toString('latin1')).toBe(page.tasks[1]!.appEngineHttpRequest!.body);
    for (const body of others) body.letGo();
    expect(freed(chunks[0]!)).toBe(true);
    expect(() => others[0]!.json).toThrow(/read after it was let go/);
  });

  it('frees a body joined from two chunks when it is let go, apart from the chunks it came from', () => {
    // A joined body under 4 KB would come from Buffer's pool, and be left to the collector.
    const big = structuredClone(page);
    const firstBody = (big.tasks[0]!.httpRequest!.body = base64(6_000));
    const bytes = pageBytes(big);
    const middle = bytes.indexOf(firstBody) + firstBody.length / 2;
    const chunks = ownChunks(bytes, [middle]);
    const [joined, ...others] = bodiesOf(parseTaskPage(chunks));
    expect(joined!.json.toString('latin1')).toBe(firstBody);
    joined!.letGo();
    expect(() => joined!.json).toThrow(/read after it was let go/);
    expect(freed(chunks[0]!)).toBe(true); // it held no other body
    expect(freed(chunks[1]!)).toBe(false);
    expect(others.map((body) => body.toJSON())).toEqual([page.tasks[1]!.appEngineHttpRequest!.body, '']);
  });

  it("never frees memory a chunk shares with others (Buffer's pool)", () => {
    const chunks = chunked(pageBytes(page), 512);
    expect(chunks[0]!.byteLength).toBeLessThan(chunks[0]!.buffer.byteLength);
    const parsed = parseTaskPage(chunks);
    for (const body of bodiesOf(parsed)) body.letGo();
    expect(chunks.some(freed)).toBe(false);
    expect(asJson(parsed)).toEqual(page);
  });
});
