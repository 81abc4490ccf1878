/**
 * Instances of the function on one emulator, as several instances of a deployed service share one Cloud
 * Tasks: for test files about what one instance cannot know of another's work.
 */
import { afterEach, beforeEach } from 'vitest';
import { startEmulator, type Emulator } from '../../emulator/server.js';
import { startRerunServer, type RerunServer } from './rerun-server.js';
import { startTarget, type Target } from './target-server.js';

export interface Instances {
  /** The emulator every instance of a test shares (a new one for each test). */
  readonly emulator: Emulator;
  /** The tasks' target (a new one for each test). */
  readonly target: Target;
  /** A new instance: its own process state (claims, memory of first deliveries), the shared emulator. */
  start(env: Record<string, string>): Promise<RerunServer>;
}

/**
 * For a test file: a target and an emulator for each test, and the instances it starts, closed after it.
 * The target answers every attempt 503 and the queue's backoff is long: a task forced twice shows.
 */
export function instancesPerTest(): Instances {
  let emulator: Emulator | undefined;
  let target: Target | undefined;
  const servers: RerunServer[] = [];
  beforeEach(async () => {
    target = await startTarget({ respond: () => 503 });
    emulator = await startEmulator({ port: 0, runTaskQuota: { limit: 60_000, windowMs: 60_000 } });
  });
  afterEach(async () => {
    for (const server of servers.splice(0)) await server.close();
    await emulator?.stop();
    await target?.stop();
  });
  return {
    get emulator() {
      if (!emulator) throw new Error('instancesPerTest: no test is running');
      return emulator;
    },
    get target() {
      if (!target) throw new Error('instancesPerTest: no test is running');
      return target;
    },
    async start(env) {
      const server = await startRerunServer(env, {}, this.emulator);
      servers.push(server);
      return server;
    },
  };
}
