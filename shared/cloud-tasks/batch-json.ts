/**
 * The JSON of a `tasks:batchCreate` request, written straight into bytes. A batch carries up to 100
 * bodies of up to 100 KB, and JSON.stringify reads every character of each to escape it, then the text is
 * copied again into bytes: most of a batch redrive's CPU (docs/performance.md "Where the CPU goes"). A
 * body kept as the bytes it came in (body-bytes.ts) is already JSON string content, and a body string
 * that is plain base64 needs no escaping: both are written as they are; all else is JSON.stringify's.
 * A body string with anything else in it (a character JSON escapes) sends the task through
 * JSON.stringify whole.
 */
import { BodyBytes } from './body-bytes.js';
import type { AppEngineHttpRequest, HttpRequest, NewTask } from './client.js';

/** The base64 alphabets (standard and URL-safe) with padding: nothing JSON escapes. */
const NOT_BASE64 = /[^A-Za-z0-9+/=_-]/;
/** Shorter bodies gain nothing from being written apart. */
const MIN_RAW_BODY = 256;

/** One request of the batch: its JSON, and its body where that is written as it is. */
interface Part {
  readonly json: string;
  /** The body, written as `"body":"…"` first in the request's `httpRequest` or `appEngineHttpRequest`. */
  readonly raw?: { readonly key: 'httpRequest' | 'appEngineHttpRequest'; readonly body: BodyBytes | string };
}

/** `{"requests":[{"task":…,"responseView":"BASIC"},…]}`, as UTF-8 bytes. */
export function batchCreateJson(tasks: readonly NewTask[]): Buffer {
  const parts = tasks.map(partOf);
  let size = '{"requests":[]}'.length + Math.max(0, parts.length - 1);
  for (const part of parts) {
    size += Buffer.byteLength(part.json);
    if (part.raw) size += '"body":"",'.length + lengthOf(part.raw.body);
  }
  const bytes = Buffer.allocUnsafe(size);
  let at = bytes.write('{"requests":[');
  parts.forEach((part, i) => {
    if (i > 0) at += bytes.write(',', at);
    if (!part.raw) {
      at += bytes.write(part.json, at);
      return;
    }
    // The request's JSON begins `{"task":{"<key>":{`; the body goes first in that object.
    const open = `{"task":{"${part.raw.key}":{`;
    const rest = part.json.slice(open.length);
    at += bytes.write(`${open}"body":"`, at);
    const body = part.raw.body;
    at += body instanceof BodyBytes ? body.json.copy(bytes, at) : bytes.write(body, at, 'latin1');
    at += bytes.write(rest.startsWith('}') ? `"${rest}` : `",${rest}`, at);
  });
  at += bytes.write(']}', at);
  // The size counted a separator after every raw body; a request with nothing else needs none.
  return bytes.subarray(0, at);
}

function partOf(task: NewTask): Part {
  const key = task.httpRequest
    ? 'httpRequest'
    : task.appEngineHttpRequest
      ? 'appEngineHttpRequest'
      : undefined;
  const request: HttpRequest | AppEngineHttpRequest | undefined = key && task[key];
  const body = request?.body;
  const raw =
    body instanceof BodyBytes ||
    (typeof body === 'string' && body.length >= MIN_RAW_BODY && !NOT_BASE64.test(body));
  if (!key || !request || !raw) {
    return { json: JSON.stringify({ task, responseView: 'BASIC' }) };
  }
  const { body: _body, ...withoutBody } = request;
  // The request first among the task's fields, so that its JSON begins where the body goes.
  const { [key]: _request, ...others } = task;
  return {
    json: JSON.stringify({ task: { [key]: withoutBody, ...others }, responseView: 'BASIC' }),
    raw: { key, body },
  };
}

function lengthOf(body: BodyBytes | string): number {
  return body instanceof BodyBytes ? body.json.length : body.length;
}
