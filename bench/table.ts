/** The bench's output: an aligned text table, for people; the BENCH_JSON line is for tracking. */

/** One figure beside its anchor. */
export interface Row {
  readonly figure: string;
  readonly value: string;
  readonly anchor: string;
  readonly ratio: string;
  readonly goal: string;
  /** undefined: no goal, the figure is tracked only; a list when the row has one goal per anchor. */
  readonly met: boolean | readonly boolean[] | undefined;
  /** (max - min) / median over the runs. */
  readonly spread: string;
}

const HEADERS: Record<keyof Row, string> = {
  figure: 'figure',
  value: 'value (median)',
  anchor: 'anchor (same run)',
  ratio: 'ratio',
  goal: 'goal',
  met: 'met',
  spread: 'spread',
};

const metText = (met: Row['met']): string =>
  met === undefined ? '-' : typeof met === 'boolean' ? (met ? 'yes' : 'NO') : met.map(metText).join('; ');

/** Renders rows as a Markdown table (readable as plain text, and pasteable into docs/performance.md). */
export function renderTable(rows: readonly Row[]): string {
  const keys = Object.keys(HEADERS) as (keyof Row)[];
  const cells = [
    keys.map((key) => HEADERS[key]),
    ...rows.map((row) => keys.map((key) => (key === 'met' ? metText(row.met) : row[key]))),
  ];
  const widths = keys.map((_, col) => Math.max(...cells.map((line) => line[col]!.length)));
  const line = (values: string[]) =>
    `| ${values.map((value, col) => value.padEnd(widths[col]!)).join(' | ')} |`;
  return [
    line(cells[0]!),
    `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`,
    ...cells.slice(1).map(line),
  ].join('\n');
}
