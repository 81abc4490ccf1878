/**
 * Sending an event to a deployed rerunHttp: a POST with an ID token for its URL (google-auth-library),
 * except on the loopback interface (a local `npm start` or a test server needs none).
 */
import { GoogleAuth } from 'google-auth-library';

/** rerunHttp's answer: the HTTP status and the parsed JSON body. */
export interface RemoteAnswer {
  readonly status: number;
  readonly body: unknown;
}

/** True for http://127.0.0.1, http://[::1] and http://localhost: no ID token is fetched for them. */
export function isLoopbackUrl(url: string): boolean {
  const { protocol, hostname } = new URL(url);
  return protocol === 'http:' && ['127.0.0.1', 'localhost', '[::1]'].includes(hostname);
}

/**
 * POSTs one event as JSON. Throws UnreachableError when no connection to the service could be made,
 * IdTokenError when no ID token can be had (no Application Default Credentials, or credentials that
 * cannot mint ID tokens).
 */
export async function postEvent(url: string, event: unknown): Promise<RemoteAnswer> {
  const headers = new Headers({ 'Content-Type': 'application/json' });
  if (!isLoopbackUrl(url)) {
    for (const [name, value] of await idTokenHeaders(url)) headers.set(name, value);
  }
  let response: Response;
  try {
    response = await fetch(url, { method: 'POST', headers, body: JSON.stringify(event) });
  } catch (error) {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    const why = cause?.code ?? cause?.message ?? (error as Error).message;
    if (cause?.code !== undefined && CONNECT_FAILURES.has(cause.code)) {
      throw new UnreachableError(`--url: ${url} could not be reached (${why}): nothing was sent`, {
        cause: error,
      });
    }
    // Anything else (a connection lost once made, a TLS failure): the event may have been received.
    throw new Error(`--url: no answer from ${url} (${why}): the event may have been received`, {
      cause: error,
    });
  }
  const text = await response.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // Not JSON (a proxy's error page): keep the text for the message.
  }
  return { status: response.status, body };
}

/** Errors of a connection that was never made (no name, no route, no listener): nothing was sent. */
const CONNECT_FAILURES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/** Thrown when no connection to the URL could be made: nothing was sent. */
export class UnreachableError extends Error {
  override readonly name = 'UnreachableError';
}

/** Thrown when no ID token can be had for the URL: nothing was sent. */
export class IdTokenError extends Error {
  override readonly name = 'IdTokenError';
}

async function idTokenHeaders(url: string): Promise<Headers> {
  try {
    const client = await new GoogleAuth().getIdTokenClient(url);
    return await client.getRequestHeaders(url);
  } catch (error) {
    throw new IdTokenError(
      `--url: no ID token for ${url}: ${(error as Error).message} (user credentials cannot mint one: ` +
        'gcloud auth application-default login --impersonate-service-account SA)',
      { cause: error },
    );
  }
}

/** The message of a Google-shaped error body, or the body itself. */
export function errorMessageOf(body: unknown): string {
  const message = (body as { error?: { message?: unknown } } | null)?.error?.message;
  return typeof message === 'string'
    ? message
    : String(typeof body === 'string' ? body : JSON.stringify(body)).slice(0, 500);
}
