import { z } from 'zod';
import { parseDurationMs } from '../platform/duration.js';
import { Match } from './events.js';
import { parseQueueName } from '../cloud-tasks/names.js';

/**
 * A duration as written (`30s`, `10m`): validated here, kept as text so a route's options enter the event
 * schema exactly as an event's would.
 */
const DurationText = z
  .string()
  .refine((text) => parseDurationMs(text) !== undefined, 'not a duration like 30s, 10m or 2h');

/** A match as written: validated by the events' own Match schema at start-up, kept as JSON. */
const MatchJson = z.record(z.string(), z.unknown()).superRefine((value, ctx) => {
  const parsed = Match.safeParse(value);
  if (parsed.success) return;
  for (const issue of parsed.error.issues) {
    if (issue.code !== 'unrecognized_keys') ctx.addIssue({ ...issue, code: 'custom' });
    else {
      for (const key of issue.keys) {
        ctx.addIssue({ code: 'custom', message: `unknown match field "${key}"`, path: [...issue.path, key] });
      }
    }
  }
});

const Labels = z.record(z.string(), z.string());

/** Keys of `when` that look at a Cloud Monitoring incident, and those that look at a Cloud Build. */
const ALERT_CONDITIONS = ['policyName', 'policyUserLabels'] as const;
const BUILD_CONDITIONS = ['buildTriggerId', 'buildSubstitutions'] as const;

/**
 * One entry of RERUN_ROUTES: which alert incidents or builds it catches (every condition in `when` must
 * hold; first route in the list wins), and what the rerun covers. Options are those of an event
 * and are validated by the same schema when the rerun is built.
 */
export const Route = z.strictObject({
  /** Logged with every run the route starts. */
  name: z.string().min(1).max(200),
  when: z
    .strictObject({
      /** The alert policy's display name (`incident.policy_name`), exactly. */
      policyName: z.string().min(1).optional(),
      /** Labels the policy must carry (`incident.policy_user_labels`): each key with this value. */
      policyUserLabels: Labels.refine(
        (labels) => Object.keys(labels).length > 0,
        'name at least one label',
      ).optional(),
      /** The build trigger's ID (`Build.buildTriggerId`), exactly. */
      buildTriggerId: z.string().min(1).optional(),
      /** Substitutions the build must carry (`Build.substitutions`), e.g. `{"_SERVICE": "orders-api"}`. */
      buildSubstitutions: Labels.refine(
        (labels) => Object.keys(labels).length > 0,
        'name at least one substitution',
      ).optional(),
    })
    .superRefine((when, ctx) => {
      const alert = ALERT_CONDITIONS.some((key) => when[key] !== undefined);
      const build = BUILD_CONDITIONS.some((key) => when[key] !== undefined);
      if (!alert && !build) {
        ctx.addIssue({
          code: 'custom',
          message: `a route needs at least one condition: ${[...ALERT_CONDITIONS, ...BUILD_CONDITIONS].join(', ')}`,
        });
      } else if (alert && build) {
        ctx.addIssue({
          code: 'custom',
          message: 'a route matches alert policies or build triggers, not both: split it in two',
        });
      }
    }),
  /**
   * Queues to rerun. Default: for an incident on a `cloud_tasks_queue`, its queue; otherwise every
   * allowlisted queue. For an incident on a queue they are added to the incident's own queue.
   */
  queues: z
    .array(z.string().refine((name) => parseQueueName(name) !== undefined, 'not a valid queue name'))
    .min(1)
    .max(100)
    .optional(),
  match: MatchJson.optional(),
  /** Rerun when an incident opens, not only when it closes (alerts only). */
  onOpen: z.boolean().default(false),
  /** Widens an incident's window back by this much: failures begin before an incident opens. */
  lookback: DurationText.optional(),
  dryRun: z.boolean().optional(),
  maxTasks: z.number().int().min(1).optional(),
  force: z.boolean().optional(),
  minBackoffLeft: DurationText.optional(),
  maxRate: z.number().positive().optional(),
  canary: z
    .union([
      z.strictObject({ count: z.number().int().min(1).max(100), wait: DurationText.optional() }),
      z.literal(false),
    ])
    .optional(),
  mode: z.enum(['run', 'redrive']).optional(),
  lastAttempts: z.boolean().optional(),
  verify: DurationText.optional(),
  breaker: z
    .union([
      z.strictObject({
        maxFailedAgain: z.number().min(0).max(1).optional(),
        minVerdicts: z.number().int().min(1).optional(),
      }),
      z.literal(false),
    ])
    .optional(),
});
export type Route = z.infer<typeof Route>;

export const Routes = z.array(Route).max(1000);
export type Routes = z.infer<typeof Routes>;

/** What an incident offers to routing. */
export interface AlertFacts {
  readonly policyName: string | undefined;
  readonly policyUserLabels: Readonly<Record<string, string>>;
}

/** What a build offers to routing. */
export interface BuildFacts {
  readonly buildTriggerId: string | undefined;
  readonly substitutions: Readonly<Record<string, string>>;
}

/** The first alert route whose every condition holds for the incident; undefined when none does. */
export function routeForAlert(routes: Routes, facts: AlertFacts): Route | undefined {
  return routes.find(({ when }) => {
    if (when.policyName === undefined && when.policyUserLabels === undefined) return false;
    if (when.policyName !== undefined && when.policyName !== facts.policyName) return false;
    return when.policyUserLabels === undefined || isSubset(when.policyUserLabels, facts.policyUserLabels);
  });
}

/** The first build route whose every condition holds for the build; undefined when none does. */
export function routeForBuild(routes: Routes, facts: BuildFacts): Route | undefined {
  return routes.find(({ when }) => {
    if (when.buildTriggerId === undefined && when.buildSubstitutions === undefined) return false;
    if (when.buildTriggerId !== undefined && when.buildTriggerId !== facts.buildTriggerId) return false;
    return when.buildSubstitutions === undefined || isSubset(when.buildSubstitutions, facts.substitutions);
  });
}

function isSubset(
  wanted: Readonly<Record<string, string>>,
  actual: Readonly<Record<string, string>>,
): boolean {
  return Object.entries(wanted).every(([key, value]) => Object.hasOwn(actual, key) && actual[key] === value);
}
