/**
 * Makes the recovery bench's child pay what the deployed function pays: the Functions Framework runs every
 * request in a `node:domain`, and the first domain created turns on Node's async hook for domains, which
 * then runs for every promise and callback of the process, for good. The bench calls the product's core
 * without the framework, so its figures leave this out. Use:
 * `BENCH_RECOVERY_NODE_FLAGS="--import $PWD/build/bench/framework-domain.js"` (docs/performance.md,
 * "In the deployed function").
 */
import domain from 'node:domain';

domain.create();
