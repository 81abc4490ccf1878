/**
 * Pure: what rerunPubsub makes of one Pub/Sub message. A plain event, a Cloud Monitoring incident
 * notification (schema 1.2), a Cloud Build notification, or an empty sweep tick all become one event
 * object, validated and normalized by the same schema as rerunHttp's body; or a reason to ignore the
 * message; or the permanent problem that rejects it. Time is a parameter.
 */
import { z } from 'zod';
import { parseDurationMs } from '../platform/duration.js';
import {
  clipped,
  EVIDENCE_CANARY,
  InputError,
  inputErrorOf,
  parseRerunEvent,
  RequestId,
  type Delivery,
  type RerunRequest,
} from './events.js';
import { parseQueueName } from '../cloud-tasks/names.js';
import { routeForAlert, routeForBuild, type Route, type Routes } from './routes.js';

/** The Pub/Sub message inside a `messagePublished` CloudEvent (`data.message`). */
export interface PubsubMessage {
  /** The payload, base64. */
  readonly data?: string | undefined;
  readonly attributes?: Readonly<Record<string, string>> | undefined;
  readonly messageId?: string | undefined;
  /** RFC 3339; the same on every delivery of the message. */
  readonly publishTime?: string | undefined;
}

/** The Pub/Sub part of a `messagePublished` CloudEvent's data: `{message, subscription}`. */
const Envelope = z.object({
  message: z.object({
    data: z.string().nullish(),
    attributes: z.record(z.string(), z.string()).nullish(),
    // The message's requestId (docs/events.md "Request identity"), so shaped as one.
    messageId: RequestId.optional(),
    // Pub/Sub push bodies may carry the snake_case spellings as well.
    message_id: RequestId.optional(),
    publishTime: z.string().optional(),
    publish_time: z.string().optional(),
  }),
  subscription: z.string().optional(),
});

/**
 * Reads the message out of a `messagePublished` CloudEvent's data (which comes off the wire untyped).
 * A data that is no Pub/Sub message is a permanent problem, like bad JSON.
 */
export function parseEnvelope(
  data: unknown,
): { ok: true; message: PubsubMessage; subscription: string | undefined } | { ok: false; error: InputError } {
  if (!isRecord(data)) {
    return {
      ok: false,
      error: new InputError('the CloudEvent data is not a Pub/Sub message {message, subscription}', [
        'message',
      ]),
    };
  }
  const parsed = Envelope.safeParse(data);
  if (!parsed.success) return { ok: false, error: inputErrorOf(parsed.error, 'Pub/Sub message') };
  const { message, subscription } = parsed.data;
  return {
    ok: true,
    message: {
      data: message.data ?? undefined,
      attributes: message.attributes ?? undefined,
      messageId: message.messageId ?? message.message_id,
      publishTime: message.publishTime ?? message.publish_time,
    },
    subscription,
  };
}

/** Which kind of publisher the message came from. */
export type MessageSource = 'event' | 'incident' | 'build' | 'sweep';

/** What to do with one message. */
export type Decoded =
  | {
      readonly kind: 'request';
      readonly source: MessageSource;
      readonly request: RerunRequest;
      /**
       * What a redelivery repeats (incident, build or message ID), for the logs. A repeat dispatches nothing
       * because its cutoff is the same instant (docs/events.md "Cutoff"), not because the key is remembered.
       */
      readonly dedupeKey: string;
    }
  | {
      /** Nothing to do, and nothing wrong: acknowledge. */
      readonly kind: 'ignore';
      readonly source: MessageSource;
      readonly reason: string;
      readonly level: 'debug' | 'info';
    }
  | {
      /** A permanent problem: log it at ERROR and acknowledge (a redelivery would fail the same way). */
      readonly kind: 'reject';
      readonly source: MessageSource | undefined;
      readonly error: InputError;
    };

/** Cloud Build statuses (`Build.Status`); only SUCCESS means a fix shipped. */
const BUILD_STATUSES = [
  'STATUS_UNKNOWN',
  'PENDING',
  'QUEUED',
  'WORKING',
  'SUCCESS',
  'FAILURE',
  'INTERNAL_ERROR',
  'TIMEOUT',
  'CANCELLED',
  'EXPIRED',
] as const;

/** The longest `reason` an event takes. */
const MAX_REASON = 1000;
/** The longest `service` / `revision` an event takes. */
const MAX_NAME = 200;

/**
 * Decides what one message asks for. `nowMs` is the time it was received. The request is the message
 * (docs/events.md "Request identity") and its default cutoff the message's publishTime, so every delivery
 * of one message yields the same request and cutoff. A message without an ID is rejected.
 */
export function decodeMessage(message: PubsubMessage, routes: Routes, nowMs: number): Decoded {
  const { messageId } = message;
  if (messageId === undefined) {
    return reject(undefined, "a Pub/Sub message needs a messageId: it is the request's identity", [
      'message.messageId',
    ]);
  }
  const published = Date.parse(message.publishTime ?? '');
  const delivery: Delivery = {
    receivedMs: nowMs,
    requestId: messageId,
    ...(!Number.isNaN(published) && { defaultCutoffMs: published }),
  };
  const attributes = message.attributes ?? {};

  const text = decodeData(message.data);
  if (!text.ok) return { kind: 'reject', source: undefined, error: text.error };
  const isBuild = attributes.buildId !== undefined;
  if (text.value.trim() === '') {
    return isBuild
      ? decodeBuild({}, attributes, routes, delivery)
      : sweep(delivery, messageId, 'scheduled sweep (empty message)');
  }
  let json: unknown;
  try {
    json = JSON.parse(text.value);
  } catch {
    return reject(undefined, 'message data is not valid JSON', ['message.data']);
  }
  if (isBuild) return decodeBuild(json, attributes, routes, delivery);
  if (!isRecord(json)) {
    return reject(undefined, 'message data must be a JSON object: an event, an incident or a build', [
      'message.data',
    ]);
  }
  if (Object.keys(json).length === 0) return sweep(delivery, messageId, 'scheduled sweep (empty message)');
  if (!('kind' in json) && 'incident' in json && 'version' in json) {
    return decodeIncident(json, routes, delivery);
  }
  if (!('kind' in json) && looksLikeBuild(json)) return decodeBuild(json, attributes, routes, delivery);
  return decodeEvent(json, delivery, messageId);
}

function decodeEvent(json: unknown, delivery: Delivery, messageId: string): Decoded {
  const parsed = parseRerunEvent(json, delivery);
  if (!parsed.success) return { kind: 'reject', source: 'event', error: parsed.error };
  const source = parsed.data.kind === 'sweep' ? 'sweep' : 'event';
  return { kind: 'request', source, request: parsed.data, dedupeKey: `message:${messageId}` };
}

function sweep(delivery: Delivery, messageId: string, reason: string): Decoded {
  const parsed = parseRerunEvent({ kind: 'sweep', reason }, delivery);
  if (!parsed.success) return { kind: 'reject', source: 'sweep', error: parsed.error };
  return { kind: 'request', source: 'sweep', request: parsed.data, dedupeKey: `message:${messageId}` };
}

// ---- Cloud Monitoring incidents -------------------------------------------------------------------------

/** Epoch seconds; 0 and null mean "not yet" (`ended_at` of an open incident). */
const EpochSeconds = z
  .union([z.number().int().nonnegative(), z.string().regex(/^\d+$/).transform(Number)])
  .nullish()
  .transform((seconds) => (seconds ? seconds * 1000 : undefined));

/** The fields of notification schema 1.2 that rerun reads; the many others are ignored, not refused. */
const IncidentNotification = z.object({
  version: z.string(),
  incident: z.object({
    incident_id: z.string().min(1).max(200),
    scoping_project_id: z.string().nullish(),
    started_at: EpochSeconds,
    ended_at: EpochSeconds,
    state: z.string().min(1),
    resource: z
      .object({ type: z.string().nullish(), labels: z.record(z.string(), z.unknown()).nullish() })
      .nullish(),
    policy_name: z.string().nullish(),
    policy_user_labels: z.record(z.string(), z.unknown()).nullish(),
  }),
});

function decodeIncident(json: Record<string, unknown>, routes: Routes, delivery: Delivery): Decoded {
  if (json.version === 'test') {
    // Test notifications ("Send test notification" on the channel) have no stable shape: only recognise them.
    const incident = isRecord(json.incident) ? json.incident : {};
    const policy =
      typeof incident.policy_name === 'string' ? ` (${clipped(incident.policy_name, MAX_NAME)})` : '';
    return {
      kind: 'ignore',
      source: 'incident',
      level: 'info',
      reason: `test notification${policy} recognised: the channel works; nothing to rerun`,
    };
  }
  const parsed = IncidentNotification.safeParse(json);
  if (!parsed.success) {
    return { kind: 'reject', source: 'incident', error: inputErrorOf(parsed.error, 'incident notification') };
  }
  const incident = parsed.data.incident;
  const policyName = incident.policy_name ?? undefined;
  // What the payload names is echoed clipped: a log line stays within Cloud Logging's entry size.
  const policyLabel = policyName === undefined ? undefined : clipped(policyName, MAX_NAME);
  const label = `incident ${incident.incident_id}${policyLabel ? ` (${policyLabel})` : ''}`;
  const state = incident.state.toLowerCase();
  const route = routeForAlert(routes, {
    policyName,
    policyUserLabels: stringsOf(incident.policy_user_labels),
  });

  if (state !== 'open' && state !== 'closed') {
    return {
      kind: 'ignore',
      source: 'incident',
      level: 'info',
      reason: `${label} is ${clipped(state)}: nothing to rerun`,
    };
  }
  if (state === 'open' && !route?.onOpen) {
    return {
      kind: 'ignore',
      source: 'incident',
      level: 'info',
      reason: `${label} opened: the rerun waits for it to close (a route with onOpen reruns now)`,
    };
  }
  const resourceType = incident.resource?.type ?? undefined;
  const ownQueue =
    resourceType === 'cloud_tasks_queue'
      ? queueOfLabels(stringsOf(incident.resource?.labels), incident.scoping_project_id ?? undefined)
      : undefined;
  if (!ownQueue && !route) {
    return reject(
      'incident',
      `${label} on ${resourceType === undefined ? 'an unknown resource' : clipped(resourceType)} is unroutable: it names no Cloud Tasks queue ` +
        'and no route in RERUN_ROUTES matches its policy name or user labels',
      ['incident.resource', 'incident.policy_name', 'incident.policy_user_labels'],
    );
  }
  const queues = unique([...(ownQueue ? [ownQueue] : []), ...(route?.queues ?? [])]);
  const lookbackMs = route?.lookback === undefined ? 0 : (parseDurationMs(route.lookback) ?? 0);
  const since = incident.started_at === undefined ? undefined : incident.started_at - lookbackMs;
  const until = state === 'closed' ? incident.ended_at : undefined;
  const event = {
    kind: 'failure-alert',
    ...(queues.length > 0 && { queues }),
    ...(since !== undefined && { since: iso(since) }),
    ...(until !== undefined && { until: iso(until) }),
    reason: clipped(`${label} ${state === 'closed' ? 'closed' : 'opened'}`, MAX_REASON),
    // An incident also closes when failures stop only because every task sits in backoff, or when data
    // stops (autoClose): no evidence the cause is gone, so prove it on a few first.
    ...(state === 'closed' && {
      canary: { count: EVIDENCE_CANARY.count, wait: `${EVIDENCE_CANARY.waitMs / 1000}s` },
    }),
    ...routeOptions(route),
  };
  return mapped('incident', event, delivery, `incident:${incident.incident_id}:${state}`, {
    incidentId: incident.incident_id,
    ...(policyName !== undefined && { policy: policyName }),
    ...(route && { route: route.name }),
  });
}

/** `projects/{project_id}/locations/{location}/queues/{queue_id}` from a cloud_tasks_queue's labels. */
function queueOfLabels(
  labels: Record<string, string>,
  scopingProject: string | undefined,
): string | undefined {
  const project = labels.project_id ?? scopingProject;
  const { location, queue_id: queue } = labels;
  if (!project || !location || !queue) return undefined;
  return parseQueueName(`projects/${project}/locations/${location}/queues/${queue}`)?.name;
}

// ---- Cloud Build ------------------------------------------------------------------------------------------

/** The fields of the Build resource that rerun reads. */
const Build = z.object({
  id: z.string().min(1).max(200).optional(),
  status: z.string().optional(),
  buildTriggerId: z.string().nullish(),
  substitutions: z.record(z.string(), z.unknown()).nullish(),
  finishTime: z.string().nullish(),
});

function looksLikeBuild(json: Record<string, unknown>): boolean {
  return (
    typeof json.id === 'string' &&
    typeof json.status === 'string' &&
    (BUILD_STATUSES as readonly string[]).includes(json.status)
  );
}

function decodeBuild(
  json: unknown,
  attributes: Readonly<Record<string, string>>,
  routes: Routes,
  delivery: Delivery,
): Decoded {
  const parsed = Build.safeParse(json);
  if (!parsed.success) {
    return { kind: 'reject', source: 'build', error: inputErrorOf(parsed.error, 'Cloud Build notification') };
  }
  const build = parsed.data;
  const buildId = build.id ?? (attributes.buildId && clipped(attributes.buildId, MAX_NAME));
  const status = attributes.status ?? build.status;
  if (!buildId) return reject('build', 'Cloud Build notification without a build ID', ['id']);
  if (!status) return reject('build', `build ${buildId}: notification without a status`, ['status']);
  if (status !== 'SUCCESS') {
    return {
      kind: 'ignore',
      source: 'build',
      level: 'debug',
      reason: `build ${buildId} is ${clipped(status)}: only SUCCESS triggers a rerun`,
    };
  }
  const substitutions = stringsOf(build.substitutions);
  const buildTriggerId = build.buildTriggerId ?? undefined;
  const route = routeForBuild(routes, { buildTriggerId, substitutions });
  if (!route) {
    return {
      kind: 'ignore',
      source: 'build',
      level: 'info',
      reason: `build ${buildId} succeeded: no route in RERUN_ROUTES matches its trigger or substitutions`,
    };
  }
  const finishedMs = Date.parse(build.finishTime ?? '');
  const service = substitutions._SERVICE_NAME ?? substitutions._SERVICE;
  const revision = substitutions._REVISION;
  const trigger = substitutions.TRIGGER_NAME;
  const event = {
    kind: 'fix-deployed',
    ...(route.queues && { queues: route.queues }),
    ...(!Number.isNaN(finishedMs) && { deployedAt: iso(finishedMs) }),
    ...(service !== undefined && { service: clipped(service, MAX_NAME) }),
    ...(revision !== undefined && { revision: clipped(revision, MAX_NAME) }),
    reason: clipped(`build ${buildId} succeeded${trigger ? ` (trigger ${trigger})` : ''}`, MAX_REASON),
    ...routeOptions(route),
  };
  return mapped('build', event, delivery, `build:${buildId}`, {
    buildId,
    ...(buildTriggerId !== undefined && { buildTriggerId }),
    ...(substitutions.COMMIT_SHA !== undefined && { commit: substitutions.COMMIT_SHA }),
    route: route.name,
  });
}

// ---- shared -----------------------------------------------------------------------------------------------

/** Validates a mapped event through the events' schema (one normalisation path) and adds log context. */
function mapped(
  source: MessageSource,
  event: Record<string, unknown>,
  delivery: Delivery,
  dedupeKey: string,
  context: Record<string, string>,
): Decoded {
  const parsed = parseRerunEvent(event, delivery);
  if (!parsed.success) return { kind: 'reject', source, error: parsed.error };
  // Context values come from the payload (a build's commit, its trigger's ID): clipped, as the names are.
  const clippedContext = Object.fromEntries(
    Object.entries(context).map(([key, value]) => [key, clipped(value, MAX_NAME)]),
  );
  const request: RerunRequest = { ...parsed.data, context: { ...parsed.data.context, ...clippedContext } };
  return { kind: 'request', source, request, dedupeKey };
}

/** The route fields that are event options (everything but `name`, `when`, `queues`, `onOpen`, `lookback`). */
const ROUTE_OPTIONS = [
  'match',
  'dryRun',
  'maxTasks',
  'force',
  'minBackoffLeft',
  'maxRate',
  'canary',
  'mode',
  'lastAttempts',
  'verify',
  'breaker',
] as const satisfies readonly (keyof Route)[];

/** A route's options, as event fields. */
function routeOptions(route: Route | undefined): Record<string, unknown> {
  if (!route) return {};
  const options: Record<string, unknown> = {};
  for (const key of ROUTE_OPTIONS) if (route[key] !== undefined) options[key] = route[key];
  return options;
}

const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;
const UTF8 = new TextDecoder('utf-8', { fatal: true });

/** Strict base64 (standard or URL-safe) and strict UTF-8: Buffer.from alone skips bad characters silently. */
function decodeData(
  data: string | undefined,
): { ok: true; value: string } | { ok: false; error: InputError } {
  if (data === undefined || data === '') return { ok: true, value: '' };
  if (!BASE64.test(data) || data.replace(/=+$/, '').length % 4 === 1) {
    return { ok: false, error: new InputError('message data is not valid base64', ['message.data']) };
  }
  try {
    return { ok: true, value: UTF8.decode(Buffer.from(data, 'base64')) };
  } catch {
    return { ok: false, error: new InputError('message data is not UTF-8 text', ['message.data']) };
  }
}

function reject(source: MessageSource | undefined, message: string, fields: string[]): Decoded {
  return { kind: 'reject', source, error: new InputError(message, fields) };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The string-valued entries of a label map (labels are strings; anything else is ignored). */
function stringsOf(record: Record<string, unknown> | null | undefined): Record<string, string> {
  return Object.fromEntries(
    Object.entries(record ?? {}).filter((entry): entry is [string, string] => typeof entry[1] === 'string'),
  );
}

function unique(values: readonly string[]): string[] {
  return [...new Set(values)];
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}
