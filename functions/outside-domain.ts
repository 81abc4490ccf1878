/**
 * The Functions Framework runs every request inside a `node:domain`. Everything a handler then creates,
 * every promise and callback, is tagged with that domain and enters and leaves it when it runs, at a cost
 * in CPU and memory a long run feels. A handler wrapped here does its work outside the domain
 * (docs/architecture.md "The framework's domain").
 */
import type { Domain } from 'node:domain';

/** `handler`, called with the framework's domain left for the call and entered again after it. */
export function outsideDomain<Args extends unknown[], Result>(
  handler: (...args: Args) => Result,
): (...args: Args) => Result {
  return (...args) => {
    const domain = (process as { domain?: Domain | null }).domain;
    if (!domain) return handler(...args);
    domain.exit();
    try {
      return handler(...args);
    } finally {
      domain.enter();
    }
  };
}
