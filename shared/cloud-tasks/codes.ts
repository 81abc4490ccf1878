/**
 * The canonical google.rpc.Code names that Cloud Tasks answers with and records in a task's last attempt,
 * by number (google/rpc/code.proto).
 */
export const CANONICAL_CODES = [
  'OK',
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
  'UNAUTHENTICATED',
] as const;
export type CanonicalCode = (typeof CANONICAL_CODES)[number];

/**
 * The target's HTTP status, from Cloud Tasks' message "INTERNAL(13): HTTP status code 500", or a message
 * that is the status alone ("503").
 */
export function httpStatusOf(status: { code?: number; message?: string }): number | undefined {
  const match = /HTTP status code (\d{3})|^\s*(\d{3})\s*$/.exec(status.message ?? '');
  return match ? Number(match[1] ?? match[2]) : undefined;
}
