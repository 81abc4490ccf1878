/**
 * Google's REST error model: canonical codes, their HTTP statuses, and the `{"error":{...}}` body.
 * https://google.aip.dev/193 and google/rpc/code.proto
 */

/** Canonical code names with their number and HTTP status (google/rpc/code.proto). */
export const CANONICAL_CODES = {
  OK: [0, 200],
  CANCELLED: [1, 499],
  UNKNOWN: [2, 500],
  INVALID_ARGUMENT: [3, 400],
  DEADLINE_EXCEEDED: [4, 504],
  NOT_FOUND: [5, 404],
  ALREADY_EXISTS: [6, 409],
  PERMISSION_DENIED: [7, 403],
  RESOURCE_EXHAUSTED: [8, 429],
  FAILED_PRECONDITION: [9, 400],
  ABORTED: [10, 409],
  OUT_OF_RANGE: [11, 400],
  UNIMPLEMENTED: [12, 501],
  INTERNAL: [13, 500],
  UNAVAILABLE: [14, 503],
  DATA_LOSS: [15, 500],
  UNAUTHENTICATED: [16, 401],
} as const satisfies Record<string, readonly [number, number]>;

/** A canonical status name such as `NOT_FOUND`. */
export type StatusName = keyof typeof CANONICAL_CODES;

/** One typed entry of `error.details` (`google.rpc.ErrorInfo`, `RetryInfo`, `BadRequest`, `Help`, ...). */
export type ErrorDetail = { '@type': string } & Record<string, unknown>;

/** The JSON body of an error answer. */
export interface ErrorBody {
  error: { code: number; message: string; status: StatusName; details: ErrorDetail[] };
}

/** An API error answered in Google's shape; thrown by handlers and turned into the HTTP answer by the server. */
export class ApiError extends Error {
  override readonly name = 'ApiError';

  constructor(
    readonly status: StatusName,
    message: string,
    readonly details: ErrorDetail[] = [],
  ) {
    super(message);
  }

  /** The HTTP status that carries this canonical code. */
  get httpStatus(): number {
    return CANONICAL_CODES[this.status][1];
  }

  /** The `{"error":{"code","message","status","details"}}` body. */
  toBody(): ErrorBody {
    return {
      error: { code: this.httpStatus, message: this.message, status: this.status, details: this.details },
    };
  }
}

/** The number of a canonical code (`NOT_FOUND` is 5). */
export function codeNumber(status: StatusName): number {
  return CANONICAL_CODES[status][0];
}

// The mapping Google's own clients use (google-gax `rpcCodeFromHttpStatusCode`).
const HTTP_TO_STATUS: ReadonlyMap<number, StatusName> = new Map([
  [400, 'INVALID_ARGUMENT'],
  [401, 'UNAUTHENTICATED'],
  [403, 'PERMISSION_DENIED'],
  [404, 'NOT_FOUND'],
  [409, 'ABORTED'],
  [416, 'OUT_OF_RANGE'],
  [429, 'RESOURCE_EXHAUSTED'],
  [499, 'CANCELLED'],
  [501, 'UNIMPLEMENTED'],
  [503, 'UNAVAILABLE'],
  [504, 'DEADLINE_EXCEEDED'],
]);

/** The canonical code for a target's HTTP answer, as recorded in `lastAttempt.responseStatus`. */
export function statusForHttp(httpStatus: number): StatusName {
  const known = HTTP_TO_STATUS.get(httpStatus);
  if (known) return known;
  if (httpStatus >= 200 && httpStatus < 300) return 'OK';
  if (httpStatus >= 400 && httpStatus < 500) return 'FAILED_PRECONDITION';
  if (httpStatus >= 500 && httpStatus < 600) return 'INTERNAL';
  return 'UNKNOWN';
}

/** `google.rpc.BadRequest` with one field violation, as Google's front end attaches to payload errors. */
export function badRequest(description: string, field?: string): ErrorDetail {
  const violation = field ? { field, description } : { description };
  return { '@type': 'type.googleapis.com/google.rpc.BadRequest', fieldViolations: [violation] };
}

/** `google.rpc.Help` with one link. */
export function help(description: string, url: string): ErrorDetail {
  return { '@type': 'type.googleapis.com/google.rpc.Help', links: [{ description, url }] };
}

/** `google.rpc.ErrorInfo`. */
export function errorInfo(
  reason: string,
  metadata: Record<string, string>,
  domain = 'googleapis.com',
): ErrorDetail {
  return { '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason, domain, metadata };
}

/** `google.rpc.RetryInfo` with a delay written as a protobuf Duration (`"12.345s"`). */
export function retryInfo(delayMs: number): ErrorDetail {
  return { '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay: formatDuration(delayMs) };
}

/** An INVALID_ARGUMENT about the request payload, with the BadRequest detail Google's front end adds. */
export function invalidPayload(message: string, field?: string): ApiError {
  return new ApiError('INVALID_ARGUMENT', message, [badRequest(message, field)]);
}

/** The plain NOT_FOUND Cloud Tasks answers for a missing task or queue. */
export function notFound(): ApiError {
  return new ApiError('NOT_FOUND', 'Requested entity was not found.');
}

/** Formats milliseconds as a protobuf JSON Duration: `"600s"`, `"0.100s"`, `"12.345s"`. */
export function formatDuration(ms: number): string {
  const whole = Math.max(0, Math.round(ms));
  const seconds = Math.floor(whole / 1000);
  const millis = whole % 1000;
  return millis === 0 ? `${seconds}s` : `${seconds}.${String(millis).padStart(3, '0')}s`;
}
