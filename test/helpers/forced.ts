/**
 * What the emulator's dispatch records say of tasks forced by RunTask: how often each was forced, and of
 * some tasks, how many were forced more than once and how many never.
 */
import type { DispatchRecord } from '../../emulator/server.js';

/** How often each task was forced (dispatched by RunTask). */
export function forcedCounts(dispatches: readonly DispatchRecord[]): Map<string, number> {
  const forced = new Map<string, number>();
  for (const d of dispatches) if (d.trigger === 'run') forced.set(d.task, (forced.get(d.task) ?? 0) + 1);
  return forced;
}

/** Of `tasks` (names, or tasks by name), those forced more than once and those never forced. */
export function forcedTwiceOrNever(
  emulator: { readonly dispatches: readonly DispatchRecord[] },
  tasks: readonly (string | { readonly name: string })[],
): { twice: number; never: number } {
  const forced = forcedCounts(emulator.dispatches);
  const names = tasks.map((task) => (typeof task === 'string' ? task : task.name));
  return {
    twice: names.filter((name) => (forced.get(name) ?? 0) > 1).length,
    never: names.filter((name) => !forced.has(name)).length,
  };
}
