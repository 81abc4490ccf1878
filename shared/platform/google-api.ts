/**
 * The one transport to Google's REST APIs (Cloud Tasks, Pub/Sub): an authenticated JSON call, its failure
 * as one error shape, and the one loop that sends a call again.
 *
 * The call goes through google-auth-library's auth client: its request headers (the token), then its gaxios
 * transporter, which gives JSON, the timeout and an AbortSignal. gaxios's own retry (retryConfig) stays
 * off: it decides by HTTP method and status and reads Retry-After, but not google.rpc.RetryInfo, and it
 * cannot tell a RunTask whose answer was lost (never resent) from a read (resent). So the loop here only waits and counts; whether a failed call
 * may be sent again is the caller's per kind of call (shared/cloud-tasks/retry.ts for Cloud Tasks), and the
 * wait honours RetryInfo, then Retry-After (docs/cloud-tasks-calls.md "When a call is sent again").
 */
import { isAscii } from 'node:buffer';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { GoogleAuth, PassThroughClient, type AuthClient } from 'google-auth-library';
import { parseProtoDurationMs } from './duration.js';
import { freeNow } from './free-bytes.js';
import type { ServerClock } from './server-clock.js';

/** A failed call: Google's error JSON when an answer came, else no answer (the call may have happened). */
export class GoogleApiError extends Error {
  override readonly name = 'GoogleApiError';
  constructor(
    message: string,
    readonly facts: {
      /** The canonical status Google named (`"NOT_FOUND"`), if any. */
      readonly status?: string;
      readonly httpStatus?: number;
      /** The API's own message. */
      readonly apiMessage?: string;
      /** No HTTP answer arrived (reset, refused, timeout). */
      readonly answerLost: boolean;
      /** No answer within the call's timeout. */
      readonly timedOut: boolean;
      /** google.rpc.RetryInfo's delay, else Retry-After's. */
      readonly retryDelayMs?: number;
      /**
       * The credentials could not be had (no client, or no token from the metadata server, token endpoint or
       * IAM): the call was never sent.
       */
      readonly noCredentials?: true;
    },
    options: { cause?: unknown } = {},
  ) {
    super(message, options);
  }
}

interface GoogleErrorBody {
  error?: {
    message?: string;
    status?: string;
    details?: { '@type'?: string; retryDelay?: string }[];
  };
}

/** Reads any failure of a call (a GaxiosError, duck-typed: gaxios may be present in more than one copy). */
export function googleApiErrorOf(error: unknown, service: string): GoogleApiError {
  if (error instanceof GoogleApiError) return error;
  const response = (
    error as { response?: { status?: unknown; data?: unknown; headers?: unknown } } | undefined
  )?.response;
  if (typeof response?.status === 'number') {
    const body = (typeof response.data === 'object' ? response.data : undefined) as
      GoogleErrorBody | undefined;
    const retryInfo = body?.error?.details?.find(
      (d) => d['@type'] === 'type.googleapis.com/google.rpc.RetryInfo',
    );
    const retryDelayMs = parseProtoDurationMs(retryInfo?.retryDelay) ?? retryAfterMs(response.headers);
    const status = body?.error?.status;
    const apiMessage = body?.error?.message;
    return new GoogleApiError(
      `${status ?? `HTTP ${response.status}`}: ${apiMessage ?? 'no message'}`,
      {
        ...(status !== undefined && { status }),
        httpStatus: response.status,
        ...(apiMessage !== undefined && { apiMessage }),
        answerLost: false,
        timedOut: false,
        ...(retryDelayMs !== undefined && { retryDelayMs }),
      },
      { cause: error },
    );
  }
  const code = (error as { code?: unknown } | undefined)?.code;
  const timedOut = code === 'TimeoutError' || (error as Error | undefined)?.name === 'TimeoutError';
  const what = typeof code === 'string' ? code : (error as Error | undefined)?.message;
  return new GoogleApiError(
    `no answer from ${service} (${what})`,
    { answerLost: true, timedOut },
    { cause: error },
  );
}

/** Retry-After in seconds or as an HTTP date (RFC 9110), from gaxios's Headers or a plain object. */
function retryAfterMs(headers: unknown): number | undefined {
  const value = headerOf(headers, 'retry-after');
  if (typeof value !== 'string' || value === '') return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const atMs = Date.parse(value);
  return Number.isNaN(atMs) ? undefined : Math.max(0, atMs - Date.now());
}

/** One header of an answer (lower-case name). */
function headerOf(headers: unknown, name: string): unknown {
  // Duck-typed: gaxios may answer with its fetch's own Headers class.
  const get = (headers as { get?: unknown } | undefined)?.get;
  return typeof get === 'function'
    ? (get as (name: string) => unknown).call(headers, name)
    : (headers as Record<string, unknown> | undefined)?.[name];
}

/** One call: a path relative to the API's base URL (an absolute path names another version). */
export interface ApiCall {
  readonly method: 'GET' | 'POST' | 'DELETE';
  readonly path: string;
  readonly params?: object | undefined;
  /** The request's JSON: an object, or bytes already written (a batch of copies: batch-json.ts). */
  readonly data?: object | Buffer | undefined;
  /** Reads a successful answer's chunks; default: its JSON. A FULL task listing keeps its bodies as bytes. */
  readonly readAnswer?: ((chunks: readonly Buffer[]) => unknown) | undefined;
  /** This call's timeout; default the API's. */
  readonly timeoutMs?: number;
  /** Ends the call early (a run's budget); the call then fails with no answer. */
  readonly signal?: AbortSignal | undefined;
}

export interface GoogleApi {
  /** Sends one call, once; its failure is a GoogleApiError. */
  call<T>(call: ApiCall): Promise<T>;
}

export interface GoogleApiOptions {
  /** `https://cloudtasks.googleapis.com/v2/`; a local emulator's is plain HTTP. */
  readonly baseUrl: string;
  /** The service's name in error messages (`Cloud Tasks`). */
  readonly service: string;
  /** The OAuth scope of Application Default Credentials. */
  readonly scope: string;
  /** A local emulator: no credentials. */
  readonly local: boolean;
  /** Credentials; default Application Default Credentials. */
  readonly authClient?: AuthClient | undefined;
  readonly timeoutMs: number;
  /** Told every answer's Date header: the server's time (docs/selection.md "Two clocks"). */
  readonly serverClock?: ServerClock | undefined;
}

/** Creates the transport; credentials are looked up on first use, and again after a failed look-up. */
export function createGoogleApi(options: GoogleApiOptions): GoogleApi {
  let auth: Promise<AuthClient> | undefined;
  const authClient = (): Promise<AuthClient> =>
    (auth ??= options.authClient
      ? Promise.resolve(options.authClient)
      : options.local
        ? Promise.resolve(new PassThroughClient())
        : new GoogleAuth({ scopes: options.scope }).getClient());
  const noCredentials = (error: unknown): GoogleApiError =>
    new GoogleApiError(`no credentials for ${options.service}: ${(error as Error | undefined)?.message}`, {
      answerLost: false,
      timedOut: false,
      noCredentials: true,
    });
  return {
    async call<T>(call: ApiCall): Promise<T> {
      const url = new URL(call.path, options.baseUrl).href;
      let client: AuthClient;
      try {
        client = await authClient();
      } catch (error) {
        auth = undefined;
        throw noCredentials(error);
      }
      // The token is had in a step of its own, before the call: a token server's answer (the metadata
      // server's 404, IAM's 403) is never read as the API's (docs/cloud-tasks-calls.md "Credentials").
      let headers: Headers;
      try {
        headers = new Headers(await client.getRequestHeaders(url));
      } catch (error) {
        throw noCredentials(error);
      }
      // An object goes as its JSON text: gaxios deep-copies an object it is given, every body included.
      if (call.data) headers.set('content-type', 'application/json');
      try {
        // The auth client's transporter, with the headers had above: its request() would get them again.
        const response = await client.transporter.request<Readable | ''>({
          url,
          method: call.method,
          timeout: call.timeoutMs ?? options.timeoutMs,
          headers,
          ...(call.params && { params: call.params }),
          ...(call.data && {
            data: Buffer.isBuffer(call.data) ? call.data : JSON.stringify(call.data),
          }),
          ...(call.signal && { signal: call.signal }),
          // The answer's bytes as they came, every status's: gaxios's error keeps a streamed answer's body
          // only once read, and its ArrayBuffer is one more copy (docs/performance.md "Where the CPU goes").
          // No status throws: the credentials rerun uses are refreshed before they expire.
          responseType: 'stream',
          validateStatus: () => true,
        });
        const chunks = response.data === '' ? undefined : await chunksOf(response.data);
        const { status, headers: answered } = response;
        options.serverClock?.observe(headerOf(answered, 'date'));
        if (status >= 200 && status < 300) return okAnswer(chunks, call.readAnswer, options.service) as T;
        const data = chunks === undefined ? '' : jsonOf(textOfAll(chunks));
        throw googleApiErrorOf({ response: { status, data, headers: answered } }, options.service);
      } catch (error) {
        throw googleApiErrorOf(error, options.service);
      }
    },
  };
}

/** A streamed answer's chunks, gathered here: node:stream/consumers goes through a Blob, one more copy. */
async function chunksOf(stream: Readable): Promise<Buffer[]> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return chunks;
}

/**
 * An answer's text. Google's answers are ASCII but for the odd header or message, and ASCII read as
 * Latin-1 (the same characters) costs a fifth of decoding UTF-8 (docs/performance.md "Where the CPU goes").
 */
export function textOf(bytes: Buffer): string {
  return bytes.toString(isAscii(bytes) ? 'latin1' : 'utf8');
}

/** The text of an answer's chunks, their bytes freed at once once read. */
function textOfAll(chunks: readonly Buffer[]): string {
  const bytes = Buffer.concat(chunks);
  const text = textOf(bytes);
  freeNow(bytes);
  for (const chunk of chunks) freeNow(chunk);
  return text;
}

/**
 * A 2xx answer: its JSON object (read by `readAnswer` if given). Any other 2xx answer (none, an HTML page, a
 * bare string) is not the API's: it is taken as an answer lost (docs/cloud-tasks-calls.md "An answer that
 * is not JSON").
 */
function okAnswer(
  chunks: readonly Buffer[] | undefined,
  readAnswer: ((chunks: readonly Buffer[]) => unknown) | undefined,
  service: string,
): object {
  let answer: unknown;
  try {
    if (chunks) answer = readAnswer ? readAnswer(chunks) : JSON.parse(textOfAll(chunks));
  } catch {
    answer = undefined;
  }
  if (typeof answer === 'object' && answer !== null && !Array.isArray(answer)) return answer;
  throw new GoogleApiError(`no answer from ${service} (a 2xx answer that is not a JSON object)`, {
    answerLost: true,
    timedOut: false,
  });
}

/** An error answer's JSON; an answer that is not JSON is its text. */
function jsonOf(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/**
 * The one loop that sends a call again: `send` is tried until it succeeds or `waitMs` (the caller's rule
 * for this kind of call) answers undefined for its failure; otherwise the loop waits that long.
 */
export async function sendWithRetries<T>(
  send: (attempt: number) => Promise<T>,
  waitMs: (failure: unknown, attempt: number) => number | undefined,
  wait: (ms: number) => Promise<unknown> = sleep,
): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await send(attempt);
    } catch (failure) {
      const ms = waitMs(failure, attempt);
      if (ms === undefined) throw failure;
      await wait(ms);
    }
  }
}
