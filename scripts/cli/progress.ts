/**
 * The live progress line of a run, read from the core's own log lines (one `task <outcome>` line per task,
 * JSON through pino): the core is not changed for the terminal.
 */
import { Writable } from 'node:stream';
import type { WriteStream } from 'node:tty';

/** Outcomes that mean the task was forced (a RunTask call, or a redrive's copy). */
const FORCED = new Set(['dispatched', 'redriven']);
const RATE_WINDOW_MS = 10_000;

/** Counts of a run so far, kept per task so that a line repeated for a verdict is not counted twice. */
export class ProgressTracker {
  private readonly outcomes = new Map<string, string>();
  private readonly verdicts = new Map<string, string>();
  private readonly forcedAtMs: number[] = [];

  /**
   * @param total the tasks a plan said would be forced, when known (for the time left).
   * @param clock when the run started and its budget (Infinity: none): the budget left, or the time elapsed.
   */
  constructor(
    private readonly total: number | undefined = undefined,
    private readonly clock: { readonly startMs: number; readonly budgetMs: number } | undefined = undefined,
  ) {}

  /** Takes one parsed log line; lines that are not about a task are ignored. */
  observe(line: Record<string, unknown>, nowMs: number): void {
    const { task, outcome, verdict } = line;
    if (typeof task !== 'string') return;
    if (typeof outcome === 'string' && !this.outcomes.has(task)) {
      this.outcomes.set(task, outcome);
      if (FORCED.has(outcome)) this.forcedAtMs.push(nowMs);
    }
    if (typeof verdict === 'string') this.verdicts.set(task, verdict);
  }

  /** The progress line: forced, verdicts, held, the rate, the time left at this rate. */
  line(nowMs: number): string {
    const forced = this.forcedAtMs.length;
    // Calls per second over the last few: intervals between them, and the wait since the last one.
    const recent = this.forcedAtMs.filter((at) => nowMs - at <= RATE_WINDOW_MS);
    const spanMs = recent.length > 1 ? nowMs - (recent[0] ?? nowMs) : 0;
    const rate = spanMs > 0 ? ((recent.length - 1) * 1000) / spanMs : undefined;
    const count = (map: Map<string, string>, value: string) =>
      [...map.values()].filter((v) => v === value).length;
    const parts = [
      `forced ${forced}${this.total === undefined ? '' : `/${this.total}`}`,
      `succeeded ${count(this.verdicts, 'succeeded')}`,
      `failed again ${count(this.verdicts, 'failed-again')}`,
      `running ${count(this.verdicts, 'running')}`,
      `held ${count(this.outcomes, 'held')}`,
      `${rate === undefined ? '-' : rate.toFixed(1)}/s`,
    ];
    if (this.total !== undefined && rate !== undefined && rate > 0) {
      parts.push(`~${formatSeconds(Math.max(0, this.total - forced) / rate)} left`);
    }
    if (this.clock) {
      const elapsedMs = Math.max(0, nowMs - this.clock.startMs);
      parts.push(
        Number.isFinite(this.clock.budgetMs)
          ? `budget ${formatSeconds(Math.max(0, this.clock.budgetMs - elapsedMs) / 1000)} left`
          : `${formatSeconds(elapsedMs / 1000)} elapsed`,
      );
    }
    return parts.join('  ');
  }
}

/** `75s` as `1m15s`. */
export function formatSeconds(seconds: number): string {
  const whole = Math.ceil(seconds);
  return whole < 60 ? `${whole}s` : `${Math.floor(whole / 60)}m${String(whole % 60).padStart(2, '0')}s`;
}

/** A log destination that parses the core's JSON lines and hands each to `onLine`. */
export function logLineSink(onLine: (line: Record<string, unknown>) => void): Writable {
  let rest = '';
  return new Writable({
    write(chunk: Buffer, _encoding, done) {
      const lines = (rest + chunk.toString()).split('\n');
      rest = lines.pop() ?? '';
      for (const text of lines) {
        try {
          if (text.trim() !== '') onLine(JSON.parse(text) as Record<string, unknown>);
        } catch {
          // Not a JSON line: nothing to count.
        }
      }
      done();
    },
  });
}

/** Redraws one line in place on a terminal, at most every `intervalMs` and once a second for the clock. */
export class ProgressLine {
  private lastDrawMs = 0;
  private stopped = false;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly terminal: WriteStream,
    private readonly tracker: ProgressTracker,
    private readonly intervalMs = 100,
  ) {
    this.timer = setInterval(() => this.draw(), 1000);
    this.timer.unref();
  }

  /** Redraws unless it was drawn less than `intervalMs` ago. */
  update(): void {
    if (!this.stopped && Date.now() - this.lastDrawMs >= this.intervalMs) this.draw();
  }

  /** Prints a line of its own above the progress line, which is redrawn below it. */
  print(text: string): void {
    this.terminal.cursorTo(0);
    this.terminal.clearLine(0);
    this.terminal.write(`${text}\n`);
    this.draw();
  }

  /** Stops redrawing and clears the line, so the summary starts on a clean line. */
  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    this.terminal.cursorTo(0);
    this.terminal.clearLine(0);
  }

  private draw(): void {
    this.lastDrawMs = Date.now();
    this.terminal.cursorTo(0);
    this.terminal.clearLine(0);
    this.terminal.write(
      this.tracker.line(this.lastDrawMs).slice(0, Math.max(20, (this.terminal.columns || 120) - 1)),
    );
  }
}
