import { z } from 'zod';
import { DurationMs } from './duration.js';
import { Match } from './events.js';
import { parseQueueName } from './names.js';

/**
 * RERUN_ROUTES: maps Cloud Monitoring alert policies and Cloud Build triggers to the queues (and match)
 * a rerun should cover. A route matches when every condition in `when` holds.
 */
export const Route = z.strictObject({
  name: z.string().min(1).max(200),
  when: z
    .strictObject({
      policyName: z.string().min(1).optional(),
      policyUserLabels: z.record(z.string(), z.string()).optional(),
      buildTriggerId: z.string().min(1).optional(),
      buildSubstitutions: z.record(z.string(), z.string()).optional(),
    })
    .refine((when) => Object.keys(when).length > 0, 'a route needs at least one condition'),
  queues: z
    .array(z.string().refine((name) => parseQueueName(name) !== undefined, 'not a valid queue name'))
    .min(1),
  match: Match.optional(),
  /** Rerun on an incident that opens, not only when it closes. */
  onOpen: z.boolean().default(false),
  dryRun: z.boolean().optional(),
  maxTasks: z.number().int().min(1).optional(),
  force: z.boolean().optional(),
  minBackoffLeft: DurationMs.optional(),
  canary: z.strictObject({ count: z.number().int().min(1).max(100), wait: z.string() }).optional(),
});
export type Route = z.infer<typeof Route>;

export const Routes = z.array(Route);
export type Routes = z.infer<typeof Routes>;
