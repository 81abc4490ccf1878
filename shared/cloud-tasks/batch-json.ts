/**
 * The JSON of a `tasks:batchCreate` request, written straight into bytes. A batch carries up to 100
 * bodies of up to 100 KB, and JSON.stringify reads every character of each to escape it, then the text is
 * copied again into bytes: most of a batch redrive's CPU (docs/performance.md "Where the CPU goes"). A
 * body kept as the bytes it came in (body-bytes.ts) is already JSON string content, and a body string
 * that is plain base64 needs no escaping: both are written as they are; all else is JSON.stringify's.
 * A body string with anything else in it (a character JSON escapes) sends the task through
 * JSON.stringify whole.
 */
import { BodyBytes, bodyBytesOf, bodyLengthOf } from './body-bytes.js';
import type { AppEngineHttpRequest, HttpRequest, NewTask } from './client.js';

/**
 * The most bytes a batch of creates is let grow to. Google's front end refuses a request over 10 MiB
 * ("Request payload size exceeds the limit: 10485760 bytes"), and 100 bodies of 100 KB are more than
 * that once in base64 (docs/redrive.md "Batch calls").
 */
export const MAX_BATCH_CREATE_BYTES = 8 * 1024 * 1024;

/**
 * At least what one task adds to a batchCreate request: its body as it is written (base64, or as it came),
 * and its other strings counted three bytes a character, more than UTF-8 or JSON's escapes make of them
 * but for control characters, and then 1 KB for the rest.
 */
export function createRequestBytes(task: NewTask): number {
  const request = task.httpRequest ?? task.appEngineHttpRequest;
  let strings =
    task.name.length + (task.httpRequest?.url ?? task.appEngineHttpRequest?.relativeUri ?? '').length;
  for (const [key, value] of Object.entries(request?.headers ?? {})) strings += key.length + value.length;
  return bodyBytesOf(task) + 3 * strings + 1024;
}

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

/**
 * `{"requests":[{"task":…,"responseView":"BASIC","parent":…},…]}`, as UTF-8 bytes. Each request names
 * the queue it creates in: a CreateTaskRequest's `parent` is required, and in a batch it must be the
 * batch's own (docs/redrive.md "Batch calls").
 */
export function batchCreateJson(parent: string, tasks: readonly NewTask[]): Buffer {
  const parts = tasks.map((task) => partOf(task, parent));
  let size = '{"requests":[]}'.length + Math.max(0, parts.length - 1);
  for (const part of parts) {
    size += Buffer.byteLength(part.json);
    if (part.raw) size += '"body":"",'.length + bodyLengthOf(part.raw.body);
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

function partOf(task: NewTask, parent: string): Part {
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
    return { json: JSON.stringify({ task, responseView: 'BASIC', parent }) };
  }
  const { body: _body, ...withoutBody } = request;
  // The request first among the task's fields, so that its JSON begins where the body goes.
  const { [key]: _request, ...others } = task;
  return {
    json: JSON.stringify({ task: { [key]: withoutBody, ...others }, responseView: 'BASIC', parent }),
    raw: { key, body },
  };
}
