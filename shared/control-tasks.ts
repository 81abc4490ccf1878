/**
 * Queued mode (SPEC 6): one control task per matched task, sent back to rerunHttp by Cloud Tasks, which
 * then paces, retries and outlives function timeouts.
 */
import { createHash } from 'node:crypto';
import type { NewTask } from './cloud-tasks.js';
import type { QueueName } from './names.js';

export interface ControlTarget {
  readonly queue: QueueName;
  /** rerunHttp's URL. */
  readonly selfUrl: string;
  /** The service account whose OIDC token the control task carries. */
  readonly invokerServiceAccount: string;
}

/**
 * The control task for one task and cutoff. Its name is a hash of both, so a replay of the same
 * request creates nothing twice (Cloud Tasks answers ALREADY_EXISTS), and hashed IDs spread load.
 */
export function controlTaskFor(
  taskName: string,
  cutoffMs: number,
  reason: string | undefined,
  target: ControlTarget,
): NewTask {
  const cutoff = new Date(cutoffMs).toISOString();
  const id = createHash('sha256').update(`${taskName}\n${cutoff}`).digest('hex').slice(0, 40);
  const event = { kind: 'tasks', tasks: [taskName], cutoff, ...(reason !== undefined && { reason }) };
  return {
    name: `${target.queue.name}/tasks/rerun-${id}`,
    httpRequest: {
      url: target.selfUrl,
      httpMethod: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: Buffer.from(JSON.stringify(event)).toString('base64'),
      oidcToken: { serviceAccountEmail: target.invokerServiceAccount, audience: target.selfUrl },
    },
  };
}
