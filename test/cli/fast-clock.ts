/**
 * Loaded with `node --import` (Node strips its types) into the command line under test, through
 * NODE_OPTIONS so the bin shim's child has it too: its clock runs FAST_CLOCK times faster than the wall
 * clock, Date and timers alike, so a run of minutes by its own clock takes seconds. The emulator's clock
 * is not touched.
 */
import { syncBuiltinESMExports } from 'node:module';
import timers from 'node:timers';
import timersPromises from 'node:timers/promises';

const factor = Number(process.env.FAST_CLOCK);
if (!(factor > 0)) throw new Error(`FAST_CLOCK must be a number above 0, got "${process.env.FAST_CLOCK}"`);

const RealDate = Date;
const realNow = RealDate.now.bind(RealDate);
const originMs = realNow();
const now = (): number => Math.round(originMs + (realNow() - originMs) * factor);

class FastDate extends RealDate {
  constructor(...args: [] | [string | number | Date]) {
    if (args.length === 0) super(now());
    else super(args[0]);
  }
  static override now(): number {
    return now();
  }
}
globalThis.Date = FastDate as DateConstructor;

const scaled = (ms: number | undefined): number | undefined =>
  ms !== undefined && ms > 0 ? ms / factor : ms;
const { setTimeout: realSetTimeout, setInterval: realSetInterval } = globalThis;
const realSleep = timersPromises.setTimeout;
globalThis.setTimeout = ((fn: (...args: unknown[]) => void, ms?: number, ...args: unknown[]) =>
  realSetTimeout(fn, scaled(ms), ...args)) as typeof setTimeout;
globalThis.setInterval = ((fn: (...args: unknown[]) => void, ms?: number, ...args: unknown[]) =>
  realSetInterval(fn, scaled(ms), ...args)) as typeof setInterval;
timers.setTimeout = globalThis.setTimeout;
timers.setInterval = globalThis.setInterval;
timersPromises.setTimeout = <T>(ms?: number, value?: T, options?: Parameters<typeof realSleep>[2]) =>
  realSleep(scaled(ms), value, options);
syncBuiltinESMExports();
