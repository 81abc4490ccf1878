/** Medians and spreads of repeated measurements. */

/** Several runs of one figure: the median is the figure, min and max show the spread. */
export interface Summary {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly runs: number;
}

/** Summarizes the runs of one figure. Throws on an empty list (a bench that measured nothing is a bug). */
export function summarize(values: readonly number[]): Summary {
  if (values.length === 0) throw new Error('no measurement to summarize');
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { median, min: sorted[0]!, max: sorted.at(-1)!, runs: sorted.length };
}

/** The spread of the runs, (max - min) / median, as a fraction. */
export function spreadOf(summary: Summary): number {
  return summary.median === 0 ? 0 : (summary.max - summary.min) / summary.median;
}

/**
 * Ratios of paired runs (a[i] / b[i], measured back to back): on a noisy machine their median is steadier
 * than the ratio of two medians.
 */
export function pairedRatio(a: readonly number[], b: readonly number[]): Summary {
  const n = Math.min(a.length, b.length);
  return summarize(Array.from({ length: n }, (_, i) => a[i]! / b[i]!));
}

/** Rounds for display and JSON: `digits` significant decimals. */
export function round(value: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}
