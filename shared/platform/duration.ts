import { z } from 'zod';

const DURATION_PATTERN = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/;
const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 } as const;

/** Parses a duration string such as `30s`, `10m`, `2h` or `250ms` into milliseconds; undefined if malformed. */
export function parseDurationMs(text: string): number | undefined {
  const match = DURATION_PATTERN.exec(text.trim());
  if (!match) return undefined;
  const [, amount, unit] = match as unknown as [string, string, keyof typeof UNIT_MS];
  return Math.round(Number(amount) * UNIT_MS[unit]);
}

/**
 * A zod schema turning a duration string into milliseconds, with an error naming the accepted form. The
 * value is not echoed: it may be anything a caller sent (docs/events.md "Bad input").
 */
export const DurationMs = z.string().transform((text, ctx) => {
  const ms = parseDurationMs(text);
  if (ms === undefined) {
    ctx.addIssue({ code: 'custom', message: 'not a duration like 30s, 10m or 2h' });
    return z.NEVER;
  }
  return ms;
});

/**
 * Parses a protobuf JSON Duration (`"3.5s"`, as in `RetryInfo.retryDelay` or `RetryConfig.minBackoff`)
 * into milliseconds; undefined if malformed.
 */
export function parseProtoDurationMs(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const match = /^(-?\d+(?:\.\d+)?)s$/.exec(text);
  return match ? Math.round(Number(match[1]) * 1000) : undefined;
}
