/**
 * Where each original task is after a move (a redrive, a park, an unpark), for the crash tests: the target's
 * requests for it (the original's or a copy's) and the tasks still listed that are it or name it as their
 * first (`X-Rerun-Original-Task`). A task in two places has run, or will run, twice; in none, it is lost.
 */
export function placesOf(
  originals: readonly string[],
  ran: readonly string[],
  // Tasks as the REST API lists them (test/helpers/http.ts listTasksFull).
  listed: readonly Record<string, any>[],
): { twice: number; never: number } {
  const count = new Map<string, number>(originals.map((name) => [name, 0]));
  const add = (name: string) => {
    const seen = count.get(name);
    if (seen !== undefined) count.set(name, seen + 1);
  };
  for (const name of ran) add(name);
  for (const task of listed) add(String(task.httpRequest?.headers?.['X-Rerun-Original-Task'] ?? task.name));
  const counts = [...count.values()];
  return { twice: counts.filter((n) => n > 1).length, never: counts.filter((n) => n === 0).length };
}
