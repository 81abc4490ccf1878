/**
 * Queue-level overrides of HTTP tasks, v2 `Queue.httpTarget`: how a queue records them, checks them, answers
 * them as JSON, and applies them to a task's request at dispatch. The task itself keeps its own URL, method
 * and headers; only what is sent changes, and it follows the queue's current settings, so an UpdateQueue
 * redirects the tasks already waiting.
 * https://cloud.google.com/tasks/docs/reference/rest/v2/projects.locations.queues#HttpTarget
 *
 * The installed @google-cloud/tasks (7.1.0) has no `http_target` in its v2 protos; the names and enums here
 * are those of the v2 REST reference and discovery document, which are the v2beta3 target.proto messages
 * (UriOverride, PathOverride, QueryOverride, HttpTarget.Header, HttpTarget.HeaderOverride) in the v2 package.
 */
import { invalidPayload } from './errors.js';
import { BODY_METHODS, type HttpRequestRecord } from './model.js';
import { HTTP_METHODS, URI_OVERRIDE_ENFORCE_MODES, URI_SCHEMES, type Decoded } from './proto-json.js';

/** `UriOverride`. `scheme`, `host` and `port` are proto3 `optional`: present (even at 0) means given. */
export interface UriOverrideRecord {
  scheme?: 'SCHEME_UNSPECIFIED' | 'HTTP' | 'HTTPS';
  host?: string;
  port?: number;
  pathOverride?: { path: string };
  queryOverride?: { queryParams: string };
  /** Absent = URI_OVERRIDE_ENFORCE_MODE_UNSPECIFIED, which "defaults to ALWAYS". */
  uriOverrideEnforceMode?: 'IF_NOT_EXISTS' | 'ALWAYS';
}

/** `HttpTarget` as a queue keeps it. */
export interface HttpTargetRecord {
  uriOverride?: UriOverrideRecord;
  /** Absent = HTTP_METHOD_UNSPECIFIED: the task's own method. */
  httpMethod?: string;
  headerOverrides?: Array<{ header: { key: string; value: string } }>;
  oauthToken?: { serviceAccountEmail: string; scope: string };
  oidcToken?: { serviceAccountEmail: string; audience: string };
}

/**
 * What is sent for one attempt: the task's request with the queue's overrides applied (the task's headers,
 * then the queue's header overrides; no body when the overridden method takes none).
 */
export type OutgoingRequest = HttpRequestRecord;

const FIELD = 'queue.http_target';
// RFC 9110 token: what node:http accepts as a header name.
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
// A DNS name or IPv4 address, or a bracketed IPv6 address: a host, without scheme, port, path or user.
const HOST = /^(?:[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?|\[[0-9A-Fa-f:.]+\])$/;

/**
 * The record of a decoded `HttpTarget`, after the checks Cloud Tasks documents (and a few the emulator adds so
 * that no dispatch can fail on the queue's own settings: a host, port and header names a request can carry).
 * @throws ApiError INVALID_ARGUMENT naming the field, e.g. `queue.http_target.uri_override.host`.
 */
export function httpTargetOf(decoded: Decoded): HttpTargetRecord {
  const record: HttpTargetRecord = {};
  const uri = decoded.uriOverride as Decoded | undefined;
  if (uri) record.uriOverride = uriOverrideOf(uri, `${FIELD}.uri_override`);
  const method = decoded.httpMethod as string | undefined;
  if (method !== undefined && method !== 'HTTP_METHOD_UNSPECIFIED') record.httpMethod = method;
  const headers = (decoded.headerOverrides as Decoded[] | undefined) ?? [];
  if (headers.length > 0) {
    record.headerOverrides = headers.map((h, i) => headerOverrideOf(h, `${FIELD}.header_overrides[${i}]`));
  }
  const oauth = decoded.oauthToken as Decoded | undefined;
  const oidc = decoded.oidcToken as Decoded | undefined;
  check(!(oauth && oidc), FIELD, 'can have only one of oauth_token and oidc_token');
  // "Note that both the service account email and the scope [audience] MUST be specified when using the
  // queue-level authorization override." (HttpTarget, target.proto)
  if (oauth) {
    record.oauthToken = {
      serviceAccountEmail: required(oauth.serviceAccountEmail, `${FIELD}.oauth_token.service_account_email`),
      scope: required(oauth.scope, `${FIELD}.oauth_token.scope`),
    };
  }
  if (oidc) {
    record.oidcToken = {
      serviceAccountEmail: required(oidc.serviceAccountEmail, `${FIELD}.oidc_token.service_account_email`),
      audience: required(oidc.audience, `${FIELD}.oidc_token.audience`),
    };
  }
  return record;
}

function uriOverrideOf(uri: Decoded, at: string): UriOverrideRecord {
  const record: UriOverrideRecord = {};
  if (uri.scheme !== undefined) record.scheme = uri.scheme as NonNullable<UriOverrideRecord['scheme']>;
  if (uri.host !== undefined) {
    const host = uri.host as string;
    // "Host value cannot be an empty string (INVALID_ARGUMENT)."
    check(host !== '', `${at}.host`, 'must not be empty');
    check(HOST.test(host), `${at}.host`, 'must be a host name or address, without scheme, port or path');
    record.host = host;
  }
  if (uri.port !== undefined) {
    const port = uri.port as number;
    // "the port value must be a positive integer. Setting the port to 0 (Zero) clears the URI port."
    check(
      port >= 0 && port <= 65_535,
      `${at}.port`,
      'must be a port number from 1 to 65535, or 0 to clear the port',
    );
    record.port = port;
  }
  const path = uri.pathOverride as Decoded | undefined;
  if (path) record.pathOverride = { path: (path.path as string | undefined) ?? '' };
  const query = uri.queryOverride as Decoded | undefined;
  if (query) record.queryOverride = { queryParams: (query.queryParams as string | undefined) ?? '' };
  const mode = uri.uriOverrideEnforceMode as string | undefined;
  if (mode === 'IF_NOT_EXISTS' || mode === 'ALWAYS') record.uriOverrideEnforceMode = mode;
  return record;
}

function headerOverrideOf(override: Decoded, at: string): { header: { key: string; value: string } } {
  const header = override.header as Decoded | undefined;
  const key = required(header?.key, `${at}.header.key`);
  check(HEADER_NAME.test(key), `${at}.header.key`, 'must be a valid HTTP header name');
  const value = (header?.value as string | undefined) ?? '';
  check(!/[\r\n\0]/.test(value), `${at}.header.value`, 'must not contain CR, LF or NUL');
  return { header: { key, value } };
}

/** `httpTarget` as the API answers it: proto3 JSON, enums by name or number, int64 `port` as a string. */
export function httpTargetJson(target: HttpTargetRecord, numericEnums: boolean): Record<string, unknown> {
  const json: Record<string, unknown> = {};
  const uri = target.uriOverride;
  if (uri) {
    const uriJson: Record<string, unknown> = {};
    if (uri.scheme !== undefined)
      uriJson.scheme = numericEnums ? URI_SCHEMES.indexOf(uri.scheme) : uri.scheme;
    if (uri.host !== undefined) uriJson.host = uri.host;
    if (uri.port !== undefined) uriJson.port = String(uri.port);
    if (uri.pathOverride) uriJson.pathOverride = uri.pathOverride.path ? { path: uri.pathOverride.path } : {};
    if (uri.queryOverride) {
      const { queryParams } = uri.queryOverride;
      uriJson.queryOverride = queryParams ? { queryParams } : {};
    }
    if (uri.uriOverrideEnforceMode) {
      uriJson.uriOverrideEnforceMode = numericEnums
        ? URI_OVERRIDE_ENFORCE_MODES.indexOf(uri.uriOverrideEnforceMode)
        : uri.uriOverrideEnforceMode;
    }
    json.uriOverride = uriJson;
  }
  if (target.httpMethod)
    json.httpMethod = numericEnums ? HTTP_METHODS.indexOf(target.httpMethod) : target.httpMethod;
  if (target.headerOverrides) {
    json.headerOverrides = target.headerOverrides.map(({ header }) => ({
      header: header.value === '' ? { key: header.key } : { key: header.key, value: header.value },
    }));
  }
  if (target.oauthToken) json.oauthToken = { ...target.oauthToken };
  if (target.oidcToken) json.oidcToken = { ...target.oidcToken };
  return json;
}

/** The record as a decoded `HttpTarget` again (UpdateQueue merges masks on decoded queues). */
export function httpTargetDecoded(target: HttpTargetRecord): Decoded {
  return structuredClone(target) as unknown as Decoded;
}

/**
 * The request an attempt sends: the task's own, with the queue's `httpTarget` applied.
 *
 * - `uriOverride` in ALWAYS mode (or unspecified, which defaults to ALWAYS) replaces each part it gives:
 *   scheme (SCHEME_UNSPECIFIED is HTTPS), host, port (0 clears it), path (`""` clears it), query (`""`
 *   clears it). In IF_NOT_EXISTS mode "queue-level configuration is only applied where task-level
 *   configuration does not exist": Cloud Tasks' guide reads that as tasks that carry no routing of their own
 *   (BufferTask tasks), and every task the emulator holds has its own URL, so the URL is left alone.
 * - `httpMethod` replaces the task's method; a method that takes no body sends none.
 * - `headerOverrides` set their headers over the task's own of the same name.
 * - A queue-level OAuth or OIDC token replaces the task's own token.
 */
export function outgoingRequest(
  http: HttpRequestRecord,
  target: HttpTargetRecord | undefined,
): OutgoingRequest {
  const httpMethod = target?.httpMethod ?? http.httpMethod;
  const headers = { ...http.headers };
  for (const { header } of target?.headerOverrides ?? []) {
    const lower = header.key.toLowerCase();
    for (const key of Object.keys(headers)) if (key.toLowerCase() === lower) delete headers[key];
    headers[header.key] = header.value;
  }
  const request: OutgoingRequest = { url: overriddenUrl(http.url, target?.uriOverride), httpMethod, headers };
  if (http.body !== undefined && BODY_METHODS.has(httpMethod)) request.body = http.body;
  const oauthToken = target?.oauthToken ?? (target?.oidcToken ? undefined : http.oauthToken);
  const oidcToken = target?.oidcToken ?? (target?.oauthToken ? undefined : http.oidcToken);
  if (oauthToken) request.oauthToken = oauthToken;
  if (oidcToken) request.oidcToken = oidcToken;
  return request;
}

/** The task's URL with the queue's `uriOverride` applied (see {@link outgoingRequest}). */
export function overriddenUrl(url: string, uri: UriOverrideRecord | undefined): string {
  if (!uri || uri.uriOverrideEnforceMode === 'IF_NOT_EXISTS') return url;
  let out: URL;
  try {
    out = new URL(url);
  } catch {
    return url; // the dispatch itself reports the bad URL
  }
  if (uri.scheme !== undefined) out.protocol = uri.scheme === 'HTTP' ? 'http:' : 'https:';
  if (uri.host !== undefined) out.hostname = uri.host;
  if (uri.port !== undefined) out.port = uri.port === 0 ? '' : String(uri.port);
  if (uri.pathOverride) out.pathname = uri.pathOverride.path;
  if (uri.queryOverride) out.search = uri.queryOverride.queryParams;
  return out.toString();
}

function required(value: unknown, field: string): string {
  check(typeof value === 'string' && value !== '', field, 'is required');
  return value as string;
}

function check(ok: boolean, field: string, rule: string): void {
  if (!ok) throw invalidPayload(`Invalid value for ${field}: it ${rule}.`, field);
}
