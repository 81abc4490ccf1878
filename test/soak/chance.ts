/**
 * What a soak draws: where it kills a process (at the n-th call of a method about a queue, its tasks
 * included, since the delivery began, or some milliseconds in), and a fault that may pass meanwhile.
 */
import type { Fault } from '../../emulator/faults.js';
import { postJson } from '../helpers/http.js';
import type { CrashWorld, ProcessSetup } from '../helpers/crash-world.js';
import type { RerunProcess } from '../helpers/rerun-process.js';

export type KillPoint =
  { readonly method: string; readonly queue: string; readonly nth: number } | { readonly ms: number };

/** A kind of call to kill at: the method, the queue, and the most such calls a delivery makes. */
export interface CallKind {
  readonly method: string;
  readonly queue: string;
  readonly upTo: number;
}

/** Rounds of each soak: SOAK_ROUNDS, 12 by default. */
export const ROUNDS = Array.from({ length: Number(process.env.SOAK_ROUNDS ?? 12) }, (_, round) => round);

/** A fix-deployed event of the round, its cutoff a second ago. */
export const fixDeployed = (mode: 'run' | 'redrive', round: number) => ({
  kind: 'fix-deployed',
  mode,
  verify: '0s',
  requestId: `soak-${round}`,
  deployedAt: new Date(Date.now() - 1_000).toISOString(),
});

export const pick = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)]!;
/** A whole number from 1 to `n`. */
export const upTo = (n: number): number => 1 + Math.floor(Math.random() * n);

/**
 * In half the rounds, a fault that may pass on some of the calls about `queues` (docs/emulator.md): lost
 * answers, creates that land late, 503; by batch, also operations that end FAILED or keep running.
 */
export function faultOf(batch: boolean, queues: readonly string[]): Fault | undefined {
  const resources = [...queues];
  const batchFaults: Fault[] = [
    { method: 'BatchCreateTasks', kind: 'lost-response', rate: 0.3, resources },
    { method: 'BatchCreateTasks', kind: 'late-landing', delayMs: 1_500, rate: 0.3, resources },
    { method: 'BatchCreateTasks', kind: 'operation-failed', applied: 50, rate: 0.3, resources },
    { method: 'BatchDeleteTasks', kind: 'lost-response', rate: 0.3, resources },
    { method: 'BatchDeleteTasks', kind: 'operation-running', forMs: 2_000, rate: 0.3, resources },
    { method: 'ListTasks', kind: 503, rate: 0.2, resources },
  ];
  const perTaskFaults: Fault[] = [
    { method: 'CreateTask', kind: 'lost-response', rate: 0.1, resources },
    { method: 'CreateTask', kind: 'late-landing', delayMs: 1_500, rate: 0.1, resources },
    { method: 'DeleteTask', kind: 'lost-response', rate: 0.1, resources },
    { method: 'GetTask', kind: 503, rate: 0.1, resources },
    { method: 'ListTasks', kind: 503, rate: 0.2, resources },
  ];
  return Math.random() < 0.5 ? pick(batch ? batchFaults : perTaskFaults) : undefined;
}

/** One kill point, or two in four rounds of ten: at one of `calls`, or up to 3 s in. */
export function killPoints(calls: readonly CallKind[]): KillPoint[] {
  const one = (): KillPoint => {
    const index = Math.floor(Math.random() * (calls.length + 1));
    const call = calls[index];
    return call ? { method: call.method, queue: call.queue, nth: upTo(call.upTo) } : { ms: upTo(3_000) };
  };
  return Math.random() < 0.4 ? [one(), one()] : [one()];
}

/** Whether a call's resource is the queue or one of its tasks. */
const isAbout = (name: string, queue: string): boolean => name === queue || name.startsWith(`${queue}/`);

/** The calls of `method` about `queue` (its tasks included) the emulator received since its `firstCall`-th. */
export function callsSince(world: CrashWorld, firstCall: number, method: string, queue: string): number {
  return world.emulator.calls.slice(firstCall).filter((c) => c.method === method && isAbout(c.name, queue))
    .length;
}

/** Delivers `event` to `child` and kills it at `point`, or once the delivery has ended. */
async function deliverAndKill(
  world: CrashWorld,
  child: RerunProcess,
  event: object,
  point: KillPoint,
): Promise<void> {
  const firstCall = world.emulator.calls.length;
  const startMs = Date.now();
  let ended = false;
  const delivery = postJson(child.url, event)
    .catch(() => undefined)
    .finally(() => (ended = true));
  const reached = () =>
    'ms' in point
      ? Date.now() - startMs >= point.ms
      : callsSince(world, firstCall, point.method, point.queue) >= point.nth;
  while (!ended && !reached()) await new Promise((resolve) => setTimeout(resolve, 2));
  await child.kill();
  await delivery;
}

/** One request's ordeal: where its deliveries are killed, the fault beside them, and what comes first. */
export interface Ordeal {
  readonly event: object;
  readonly kills: readonly KillPoint[];
  readonly fault: Fault | undefined;
  /** Awaited before the last delivery (settling what the killed ones left), when it should come later. */
  readonly beforeAgain?: () => Promise<void>;
}

/**
 * Delivers the event to a fresh process per kill point, each killed there, with the fault on; then, the
 * fault cleared, to a fresh process once more. Answers that last process, which must have answered 200.
 */
export async function killedThenAgain(
  world: CrashWorld,
  port: number,
  setup: ProcessSetup,
  ordeal: Ordeal,
): Promise<RerunProcess> {
  const { event, kills, fault, beforeAgain } = ordeal;
  if (fault) world.emulator.injectFault(fault);
  for (const point of kills) await deliverAndKill(world, await world.rerunProcess(port, setup), event, point);
  world.emulator.clearFaults();
  const last = await world.rerunProcess(port, setup);
  await beforeAgain?.();
  const again = await postJson(last.url, event);
  if (again.status !== 200) throw new Error(`the last delivery answered ${again.status}`);
  return last;
}
