/**
 * The command line, parsed (node's util.parseArgs) into one of the commands: plan, run and unpark build
 * the same event JSON that rerunHttp takes (docs/events.md), flag for field; status and cancel name a
 * request; queues and parked name queues to show. Pure.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { parseDurationMs } from '../../shared/platform/duration.js';
import { httpDelivery, parseRerunEvent } from '../../shared/triggers/events.js';
import { isParkingQueue, parseQueueName } from '../../shared/cloud-tasks/names.js';
import { parseControlEvent } from '../../shared/control/status.js';
import { HELP, type CommandName } from './help.js';
import { DEFAULT_LIST_CALLS } from './queues.js';

/** Bad input on the command line: the message names the flag; nothing has been called. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** Where a command goes: the core in this process, or a deployed rerunHttp. */
export interface Target {
  /** rerunHttp's URL; undefined = run the core here. */
  readonly url: string | undefined;
  readonly json: boolean;
}

/** plan, run or unpark: the event, and where it goes. */
export interface RerunCommand extends Target {
  readonly kind: 'rerun';
  readonly name: 'plan' | 'run' | 'unpark';
  /** The event, as rerunHttp takes it. */
  readonly event: Record<string, unknown>;
  readonly queues: readonly string[];
  /** The arguments after the command name, to print the command that continues an incomplete run. */
  readonly args: readonly string[];
  /** `--budget`: the run's time budget, as typed (it becomes RERUN_TIME_BUDGET); undefined = the default. */
  readonly budget: string | undefined;
}

/** status or cancel of a queued request. */
export interface ControlCommand extends Target {
  readonly kind: 'control';
  readonly name: 'status' | 'cancel';
  readonly requestId: string;
  readonly controlQueue: string | undefined;
}

/** queues: the overview of the named (or allowlisted) queues. */
export interface QueuesCommand {
  readonly kind: 'queues';
  readonly queues: readonly string[];
  /** At most this many list calls in all (ListTasks and ListQueues). */
  readonly maxListCalls: number;
  readonly json: boolean;
}

/** parked: the parked tasks of the named home queues (docs/parking.md "Seeing them"). */
export interface ParkedCommand {
  readonly kind: 'parked';
  readonly queues: readonly string[];
  readonly json: boolean;
}

export type Command =
  | { readonly kind: 'help'; readonly text: string }
  | { readonly kind: 'version' }
  | RerunCommand
  | ControlCommand
  | QueuesCommand
  | ParkedCommand;

const COMMON = {
  json: { type: 'boolean' },
  url: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

/** The selection and the options plan, run and unpark share. */
const SELECT_FLAGS = {
  ...COMMON,
  queue: { type: 'string', multiple: true },
  'task-id': { type: 'string', multiple: true },
  cluster: { type: 'string', multiple: true },
  'task-id-glob': { type: 'string' },
  'url-prefix': { type: 'string' },
  'response-code': { type: 'string', multiple: true },
  'min-attempts': { type: 'string' },
  'max-attempts': { type: 'string' },
  'failed-since': { type: 'string' },
  'failed-until': { type: 'string' },
  'created-before': { type: 'string' },
  'created-after': { type: 'string' },
  reason: { type: 'string' },
  'max-tasks': { type: 'string' },
  canary: { type: 'string' },
  verify: { type: 'string' },
  'request-id': { type: 'string' },
  'no-breaker': { type: 'boolean' },
  budget: { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

const RERUN_FLAGS = {
  ...SELECT_FLAGS,
  'deployed-at': { type: 'string' },
  'max-rate': { type: 'string' },
  mode: { type: 'string' },
  force: { type: 'boolean' },
  'last-attempts': { type: 'boolean' },
  'min-backoff-left': { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

const UNPARK_FLAGS = {
  ...SELECT_FLAGS,
  'possibly-done': { type: 'boolean' },
  'dry-run': { type: 'boolean' },
} as const satisfies ParseArgsConfig['options'];

const PARKED_FLAGS = {
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  queue: { type: 'string', multiple: true },
} as const satisfies ParseArgsConfig['options'];

const QUEUES_FLAGS = {
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  queue: { type: 'string', multiple: true },
  'max-list-calls': { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

const CONTROL_FLAGS = {
  ...COMMON,
  'request-id': { type: 'string' },
  'control-queue': { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

/** The flags each command takes: the help text and docs/cli.md "Flags" list the same ones (a test checks). */
export const COMMAND_FLAGS: Record<Exclude<CommandName, 'main'>, ParseArgsConfig['options']> = {
  plan: RERUN_FLAGS,
  run: RERUN_FLAGS,
  unpark: UNPARK_FLAGS,
  queues: QUEUES_FLAGS,
  parked: PARKED_FLAGS,
  status: CONTROL_FLAGS,
  cancel: CONTROL_FLAGS,
};

/** The flag that sets each event field (zod names fields; the operator typed flags). */
const FLAG_OF_FIELD: Record<string, string> = {
  queues: '--queue',
  clusters: '--cluster',
  'match.taskIds': '--task-id',
  'match.taskIdGlob': '--task-id-glob',
  'match.urlPrefix': '--url-prefix',
  'match.responseCodes': '--response-code',
  'match.minAttempts': '--min-attempts',
  'match.maxAttempts': '--max-attempts',
  'match.failedSince': '--failed-since',
  'match.failedUntil': '--failed-until',
  'match.createdBefore': '--created-before',
  'match.createdAfter': '--created-after',
  deployedAt: '--deployed-at',
  reason: '--reason',
  maxTasks: '--max-tasks',
  maxRate: '--max-rate',
  canary: '--canary',
  'canary.count': '--canary',
  'canary.wait': '--canary',
  mode: '--mode',
  verify: '--verify',
  requestId: '--request-id',
  minBackoffLeft: '--min-backoff-left',
  possiblyDone: '--possibly-done',
  dryRun: '--dry-run',
};

/**
 * Parses the arguments after the program name. Throws UsageError naming the flag (or the name) at fault;
 * `nowMs` is only used to validate the event as rerunHttp would.
 */
export function parseCommand(argv: readonly string[], nowMs: number): Command {
  const [name, ...args] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    return { kind: 'help', text: HELP[(args[0] as CommandName | undefined) ?? 'main'] ?? HELP.main };
  }
  if (name === '--version') return { kind: 'version' };
  if (name === 'plan' || name === 'run') return parseRerun(name, args, nowMs);
  if (name === 'status' || name === 'cancel') return parseControl(name, args);
  if (name === 'unpark') return parseUnpark(args, nowMs);
  if (name === 'queues') return parseQueues(args);
  if (name === 'parked') return parseParked(args);
  throw new UsageError(`unknown command "${name}": use ${COMMAND_NAMES.join(', ')}`);
}

/** Every command's name, as a person types it. */
export const COMMAND_NAMES = ['plan', 'run', 'unpark', 'queues', 'parked', 'status', 'cancel'] as const;

function parseParked(args: readonly string[]): Command {
  const values = parseFlags(args, PARKED_FLAGS);
  if (values.help) return { kind: 'help', text: HELP.parked };
  const queues = homeQueueNames(values.queue);
  if (queues.length === 0)
    throw new UsageError('--queue is required: the home queues whose parked tasks to show');
  return { kind: 'parked', queues, json: values.json ?? false };
}

function parseUnpark(args: readonly string[], nowMs: number): Command {
  const values = parseFlags(args, UNPARK_FLAGS);
  if (values.help) return { kind: 'help', text: HELP.unpark };
  homeQueueNames(values.queue);
  const event = compact({
    kind: 'unpark',
    ...selectionOf(values),
    possiblyDone: values['possibly-done'],
    dryRun: values['dry-run'],
  });
  return rerunCommandOf('unpark', event, values, args, nowMs);
}

function parseQueues(args: readonly string[]): Command {
  const values = parseFlags(args, QUEUES_FLAGS);
  if (values.help) return { kind: 'help', text: HELP.queues };
  queueNames(values.queue);
  const maxListCalls = wholeNumber('--max-list-calls', values['max-list-calls']) ?? DEFAULT_LIST_CALLS;
  if (maxListCalls < 1 || maxListCalls > 600) {
    throw new UsageError(
      `--max-list-calls must be 1 to 600 (the project's list calls a minute), got ${maxListCalls}`,
    );
  }
  return { kind: 'queues', queues: values.queue ?? [], maxListCalls, json: values.json ?? false };
}

function parseRerun(name: 'plan' | 'run', args: readonly string[], nowMs: number): Command {
  const values = parseFlags(args, RERUN_FLAGS);
  if (values.help) return { kind: 'help', text: HELP[name] };
  const event = compact({
    kind: 'fix-deployed',
    ...selectionOf(values),
    deployedAt: values['deployed-at'],
    dryRun: name === 'plan',
    maxRate: positiveNumber('--max-rate', values['max-rate']),
    mode: values.mode,
    force: values.force,
    lastAttempts: values['last-attempts'],
    minBackoffLeft: values['min-backoff-left'],
  });
  return rerunCommandOf(name, event, values, args, nowMs);
}

type SelectValues = ReturnType<typeof parseFlags<typeof SELECT_FLAGS>>;

/** The event fields of the selection and the options plan, run and unpark share. */
function selectionOf(values: SelectValues): Record<string, unknown> {
  const match = compact({
    taskIds: values['task-id'],
    taskIdGlob: values['task-id-glob'],
    urlPrefix: values['url-prefix'],
    responseCodes: values['response-code']?.map((code) => (/^\d+$/.test(code) ? Number(code) : code)),
    minAttempts: wholeNumber('--min-attempts', values['min-attempts']),
    maxAttempts: wholeNumber('--max-attempts', values['max-attempts']),
    failedSince: values['failed-since'],
    failedUntil: values['failed-until'],
    createdBefore: values['created-before'],
    createdAfter: values['created-after'],
  });
  return compact({
    queues: queueNames(values.queue).length > 0 ? values.queue : undefined,
    match: Object.keys(match).length > 0 ? match : undefined,
    clusters: values.cluster,
    reason: values.reason,
    maxTasks: wholeNumber('--max-tasks', values['max-tasks']),
    canary: canaryOf(values.canary),
    verify: values.verify,
    requestId: values['request-id'],
    breaker: values['no-breaker'] ? false : undefined,
  });
}

/** The event checked as rerunHttp would check it, and where it goes. */
function rerunCommandOf(
  name: RerunCommand['name'],
  event: Record<string, unknown>,
  values: SelectValues,
  args: readonly string[],
  nowMs: number,
): RerunCommand {
  const parsed = parseRerunEvent(event, httpDelivery(event, nowMs));
  if (!parsed.success) throw usageErrorOf(parsed.error.fields, parsed.error.message);
  const url = urlOf(values.url);
  return {
    kind: 'rerun',
    name,
    event,
    queues: values.queue ?? [],
    args,
    url,
    json: values.json ?? false,
    budget: budgetOf(values.budget, url),
  };
}

/** The --queue values, each a queue name. */
function queueNames(queues: readonly string[] | undefined): readonly string[] {
  for (const queue of queues ?? []) {
    if (!parseQueueName(queue)) {
      throw new UsageError(`--queue: "${queue}" is not a queue name projects/P/locations/L/queues/Q`);
    }
  }
  return queues ?? [];
}

/** The --queue values of parked and unpark: home queues, never a parking queue itself. */
function homeQueueNames(queues: readonly string[] | undefined): readonly string[] {
  for (const queue of queueNames(queues)) {
    if (isParkingQueue(parseQueueName(queue)!)) {
      throw new UsageError(`--queue: "${queue}" is a parking queue: name its home queue`);
    }
  }
  return queues ?? [];
}

function parseControl(name: 'status' | 'cancel', args: readonly string[]): Command {
  const values = parseFlags(args, CONTROL_FLAGS);
  if (values.help) return { kind: 'help', text: HELP[name] };
  const requestId = values['request-id'];
  if (requestId === undefined) throw new UsageError(`--request-id is required: the request to ${name}`);
  const parsed = parseControlEvent({ kind: name, requestId });
  if (!parsed.success) throw usageErrorOf(parsed.error.fields, parsed.error.message);
  const controlQueue = values['control-queue'];
  if (controlQueue !== undefined && !parseQueueName(controlQueue)) {
    throw new UsageError(
      `--control-queue: "${controlQueue}" is not a queue name projects/P/locations/L/queues/Q`,
    );
  }
  return {
    kind: 'control',
    name,
    requestId,
    controlQueue,
    url: urlOf(values.url),
    json: values.json ?? false,
  };
}

function parseFlags<T extends NonNullable<ParseArgsConfig['options']>>(args: readonly string[], options: T) {
  try {
    return parseArgs({ args: [...args], options, strict: true, allowPositionals: false }).values;
  } catch (error) {
    // parseArgs names the flag: "Unknown option '--qeue'", "Option '--queue <value>' argument missing".
    throw new UsageError((error as Error).message);
  }
}

function usageErrorOf(fields: readonly string[], message: string): UsageError {
  const flags = [...new Set(fields.map((field) => FLAG_OF_FIELD[field.replace(/\[\d+\]/g, '')] ?? field))];
  const reasons = message.replace(/^invalid event: /, '').replace(/\n\s*→ at [^\n]*/g, '');
  return new UsageError(`${flags.join(', ')}: ${reasons.replace(/^✖ /gm, '').trim()}`);
}

function urlOf(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  if (!URL.canParse(text) || !/^https?:$/.test(new URL(text).protocol)) {
    throw new UsageError(`--url: "${text}" is not an http(s) URL`);
  }
  return text;
}

function wholeNumber(flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text)) throw new UsageError(`${flag} must be a whole number, got "${text}"`);
  return Number(text);
}

function positiveNumber(flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text) || value <= 0)
    throw new UsageError(`${flag} must be a number above 0, got "${text}"`);
  return value;
}

/** `--budget DURATION`: a run here only; a deployed rerunHttp keeps its own (docs/cli.md "Time budget"). */
function budgetOf(text: string | undefined, url: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  if (url !== undefined) {
    throw new UsageError(
      '--budget: a deployed rerunHttp (--url) keeps its own budget, RERUN_TIME_BUDGET where it runs',
    );
  }
  if (parseDurationMs(text) === undefined || parseDurationMs(text) === 0) {
    throw new UsageError(`--budget: "${text}" is not a duration like 30s, 10m or 2h`);
  }
  return text;
}

/** `--canary N[:WAIT]`: N tasks first, then WAIT (a duration) before going on. */
function canaryOf(text: string | undefined): { count: number; wait?: string } | undefined {
  if (text === undefined) return undefined;
  const [count, wait] = text.split(':', 2) as [string, string | undefined];
  const canary = { count: wholeNumber('--canary', count) ?? 0 };
  if (wait !== undefined && parseDurationMs(wait) === undefined) {
    throw new UsageError(`--canary: "${wait}" is not a duration like 30s, 10m or 2h (N[:WAIT])`);
  }
  return wait === undefined ? canary : { ...canary, wait };
}

function compact(record: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(record).filter(([, value]) => value !== undefined));
}
