import type { Response } from '@google-cloud/functions-framework';

/** Canonical status names for the HTTP codes this function answers with. */
const STATUS: Record<number, string> = {
  400: 'INVALID_ARGUMENT',
  403: 'PERMISSION_DENIED',
  404: 'NOT_FOUND',
  405: 'UNIMPLEMENTED',
  413: 'OUT_OF_RANGE',
  415: 'INVALID_ARGUMENT',
  500: 'INTERNAL',
  503: 'UNAVAILABLE',
};

/** Sends an error in Google's shape (AIP-193): `{"error":{"code","status","message","details"}}`. */
export function sendGoogleError(res: Response, code: number, message: string, details: object[] = []): void {
  res.status(code).json({ error: { code, status: STATUS[code] ?? 'UNKNOWN', message, details } });
}

/** A google.rpc.BadRequest detail naming each offending field. */
export function badRequestDetail(fields: readonly string[], description: string): object {
  return {
    '@type': 'type.googleapis.com/google.rpc.BadRequest',
    fieldViolations: fields.map((field) => ({ field, description })),
  };
}
