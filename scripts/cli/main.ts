/**
 * `cloud-tasks-rerun`: plan, run, unpark, queues, parked, status and cancel from a terminal or a pipeline step. The core runs in
 * this process (against CLOUD_TASKS_EMULATOR_HOST or with Application Default Credentials), or the event
 * goes to a deployed rerunHttp (`--url`). The only file of the command line with side effects.
 */
import { readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { CloudTasksError, createCloudTasksClient } from '../../shared/cloud-tasks/client.js';
import { ConfigError, loadConfig } from '../../shared/platform/config.js';
import {
  cancelRequest,
  requestStatus,
  type CancelResult,
  type RequestStatus,
} from '../../shared/control/status.js';
import { httpDelivery, parseRerunEvent } from '../../shared/triggers/events.js';
import { parseQueueName } from '../../shared/cloud-tasks/names.js';
import { CloudTasksUnavailableError } from '../../shared/run/run.js';
import { createRuntime, rerun } from '../../shared/platform/runtime.js';
import {
  COMMAND_NAMES,
  parseCommand,
  UsageError,
  type ControlCommand,
  type ParkedCommand,
  type QueuesCommand,
  type RerunCommand,
} from './args.js';
import { formatParked, readParked } from './parked.js';
import { logLineSink, ProgressLine, ProgressTracker } from './progress.js';
import { formatOverview, namedQueues, readOverview } from './queues.js';
import { errorMessageOf, IdTokenError, postEvent, UnreachableError } from './remote.js';
import {
  continueCommand,
  countOf,
  EXIT,
  exitCodeOf,
  formatCommand,
  formatSummary,
  type ReportView,
} from './summary.js';

/** A failure that ends the command with this exit code and message. */
class CommandError extends Error {
  override readonly name = 'CommandError';
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

/** Runs one command line; resolves to the process exit code (docs/cli.md "Exit codes"). */
export async function runCommand(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  try {
    const command = parseCommand(argv, Date.now());
    if (command.kind === 'help') {
      process.stdout.write(`${command.text}\n`);
      return EXIT.done;
    }
    if (command.kind === 'version') {
      process.stdout.write(
        `cloud-tasks-rerun ${packageVersion()} (Node.js ${process.version}, ${process.execPath})\n`,
      );
      return EXIT.done;
    }
    if (command.kind === 'rerun') return await rerunCommand(command, env);
    if (command.kind === 'queues') return await queuesCommand(command, env);
    if (command.kind === 'parked') return await parkedCommand(command, env);
    return await controlCommand(command, env);
  } catch (error) {
    const { message, exitCode } = failureOf(error);
    process.stderr.write(`cloud-tasks-rerun: ${message}\n`);
    if (exitCode === EXIT.badInput) {
      const known = (COMMAND_NAMES as readonly string[]).includes(argv[0] ?? '');
      process.stderr.write(`Run "cloud-tasks-rerun ${known ? `${argv[0]} ` : ''}--help" for the flags.\n`);
    }
    return exitCode;
  }
}

async function rerunCommand(command: RerunCommand, env: NodeJS.ProcessEnv): Promise<number> {
  const report = command.url
    ? await remoteReport(command.url, command.event)
    : await localReport(command, env);
  if (command.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  else process.stdout.write(`${formatSummary(report, invocation(command))}\n`);
  return exitCodeOf(report);
}

async function remoteReport(url: string, event: unknown): Promise<ReportView> {
  const answer = await postEvent(url, event);
  if (answer.status === 200) return answer.body as ReportView;
  throw remoteFailure(answer.status, answer.body);
}

async function localReport(command: RerunCommand, env: NodeJS.ProcessEnv): Promise<ReportView> {
  if (!env.RERUN_QUEUES && command.queues.length === 0) {
    throw new UsageError('--queue is required: the named queues are the allowlist (or set RERUN_QUEUES)');
  }
  // On a terminal a person watches and can stop the run: no budget unless one is set (docs/cli.md
  // "Time budget"). A pipeline step keeps the function's. Neither has a service timeout.
  const onTerminal = process.stdout.isTTY === true;
  const config = { commandLine: onTerminal ? { defaultTimeBudgetMs: Number.POSITIVE_INFINITY } : {} };
  // The core's log lines feed the progress line and are not printed: they must be written whatever
  // LOG_LEVEL says.
  const runEnv = {
    ...env,
    RERUN_QUEUES: env.RERUN_QUEUES || command.queues.join(','),
    LOG_LEVEL: 'info',
    ...(command.budget !== undefined && { RERUN_TIME_BUDGET: command.budget }),
  };
  const parsed = parseRerunEvent(command.event, httpDelivery(command.event, Date.now()));
  if (!parsed.success) throw new UsageError(parsed.error.message);
  const request = parsed.data;
  const terminal = onTerminal && !command.json && !request.dryRun ? process.stdout : undefined;
  let total: number | undefined;
  if (terminal) {
    // A plan first, for the time left: listing costs no RunTask quota.
    const plan = await rerun(createRuntime(runEnv, { logDestination: discard(), config }), {
      ...request,
      dryRun: true,
      requestId: `${request.requestId}-plan`,
    });
    if (plan.ok) total = countOf(plan.report, 'dispatched') + countOf(plan.report, 'redriven');
  }
  let progress: ProgressLine | undefined;
  const stop = new AbortController();
  const runtime = createRuntime(runEnv, {
    config,
    stop: stop.signal,
    logDestination: logLineSink((line) => {
      tracker.observe(line, Date.now());
      progress?.update();
    }),
  });
  const tracker = new ProgressTracker(total, { startMs: Date.now(), budgetMs: runtime.config.timeBudgetMs });
  if (terminal) progress = new ProgressLine(terminal, tracker);
  const again = () =>
    formatCommand(continueCommand(invocation(command), { cutoff: new Date(request.cutoffMs).toISOString() }));
  // Ctrl-C: no new task starts, and the ones under way finish (a redrive never stops between its copy and
  // its delete); the summary then prints the command that continues. A second Ctrl-C quits at once.
  const interrupted = () => {
    if (!stop.signal.aborted) {
      stop.abort();
      const note = 'stopping: no new task starts; the tasks under way finish (Ctrl-C again to quit now)';
      if (progress) progress.print(note);
      else process.stderr.write(`${note}\n`);
      return;
    }
    progress?.stop();
    process.stderr.write(
      `quit: tasks already forced stay forced; a redrive cut short is finished by the same request. Continue with:\n  ${again()}\n`,
    );
    process.exit(EXIT.incomplete);
  };
  process.on('SIGINT', interrupted);
  try {
    const result = await rerun(runtime, request);
    if (!result.ok) {
      throw new UsageError(result.message);
    }
    if (stop.signal.aborted) {
      progress?.stop();
      process.stderr.write('interrupted: tasks already forced stay forced; the tasks under way finished.\n');
    }
    return result.report;
  } finally {
    process.off('SIGINT', interrupted);
    progress?.stop();
  }
}

/** The overview of the named queues, or the allowlist's; exit 1 when a queue could not be read. */
async function queuesCommand(command: QueuesCommand, env: NodeJS.ProcessEnv): Promise<number> {
  if (!env.RERUN_QUEUES && command.queues.length === 0) {
    throw new UsageError('--queue is required: the queues to show (or set RERUN_QUEUES)');
  }
  const { named, tasks } = allowedQueues(command.queues, env);
  const overview = await readOverview(tasks, named, command.maxListCalls);
  process.stdout.write(
    command.json ? `${JSON.stringify(overview, null, 2)}\n` : `${formatOverview(overview, Date.now())}\n`,
  );
  return overview.queues.some((queue) => queue.error !== undefined) ? EXIT.failed : EXIT.done;
}

/** The parked tasks of the named home queues; exit 1 when a parking queue could not be read. */
async function parkedCommand(command: ParkedCommand, env: NodeJS.ProcessEnv): Promise<number> {
  const { named, tasks } = allowedQueues(command.queues, env);
  const views = await readParked(tasks, named.queues, Date.now());
  process.stdout.write(command.json ? `${JSON.stringify(views, null, 2)}\n` : `${formatParked(views)}\n`);
  return views.some((view) => view.error !== undefined) ? EXIT.failed : EXIT.done;
}

/** The queues named (or the allowlist's), refused outside RERUN_QUEUES, and a client to read them. */
function allowedQueues(queues: readonly string[], env: NodeJS.ProcessEnv) {
  const config = loadConfig(
    { ...env, RERUN_QUEUES: env.RERUN_QUEUES || queues.join(',') },
    { commandLine: {} },
  );
  const named = namedQueues(queues, config.allowlist);
  if ('refused' in named) {
    throw new UsageError(`queues outside the allowlist (RERUN_QUEUES): ${named.refused.join(', ')}`);
  }
  return { named, tasks: createCloudTasksClient({ emulatorHost: config.emulatorHost }) };
}

function invocation(command: RerunCommand): string[] {
  return ['cloud-tasks-rerun', command.name, ...command.args];
}

async function controlCommand(command: ControlCommand, env: NodeJS.ProcessEnv): Promise<number> {
  let answer: unknown;
  if (command.url) {
    const remote = await postEvent(command.url, { kind: command.name, requestId: command.requestId });
    if (remote.status !== 200) throw remoteFailure(remote.status, remote.body);
    answer = remote.body;
  } else {
    const name = command.controlQueue ?? env.RERUN_CONTROL_QUEUE;
    if (!name)
      throw new UsageError('--control-queue (or RERUN_CONTROL_QUEUE) is required: the control queue');
    const controlQueue = parseQueueName(name);
    if (!controlQueue)
      throw new UsageError(`RERUN_CONTROL_QUEUE: "${name}" is not projects/P/locations/L/queues/Q`);
    if (command.name === 'cancel' && !(env.RERUN_SELF_URL && env.RERUN_INVOKER_SA)) {
      throw new UsageError(
        'RERUN_SELF_URL and RERUN_INVOKER_SA are required for cancel: its record is a control task',
      );
    }
    const scope = {
      tasks: createCloudTasksClient({ emulatorHost: env.CLOUD_TASKS_EMULATOR_HOST }),
      config: { controlQueue, selfUrl: env.RERUN_SELF_URL, invokerServiceAccount: env.RERUN_INVOKER_SA },
    };
    answer =
      command.name === 'status'
        ? await requestStatus(scope, command.requestId)
        : await cancelRequest(scope, command.requestId);
  }
  const counts = answer as Partial<RequestStatus & CancelResult>;
  const where = `control tasks in ${counts.controlQueue ?? '?'}`;
  process.stdout.write(
    command.json
      ? `${JSON.stringify(answer, null, 2)}\n`
      : command.name === 'status'
        ? `request ${command.requestId}: ${counts.waiting ?? 0} ${where} waiting\n`
        : `request ${command.requestId}: cancelled ${counts.cancelled ?? 0} waiting ${where} (${counts.alreadyGone ?? 0} already gone)\n`,
  );
  return EXIT.done;
}

/**
 * rerunHttp's error answers as exit codes (docs/cli.md "Exit codes"): an event refused, or credentials
 * refused (Cloud Run's 401 and 403), is 2; a retryable one 3 (docs/reports-and-logs.md "HTTP answers").
 */
function remoteFailure(status: number, body: unknown): CommandError {
  const message = `rerunHttp answered ${status}: ${errorMessageOf(body)}`;
  if ([400, 401, 403, 404, 405, 413, 415].includes(status)) return new CommandError(message, EXIT.badInput);
  if (status === 503 || status === 429)
    return new CommandError(`${message} (safe to run again)`, EXIT.incomplete);
  return new CommandError(message, EXIT.failed);
}

function failureOf(error: unknown): { message: string; exitCode: number } {
  if (error instanceof CommandError) return { message: error.message, exitCode: error.exitCode };
  if (error instanceof UsageError || error instanceof ConfigError || error instanceof IdTokenError) {
    return { message: error.message, exitCode: EXIT.badInput };
  }
  if (error instanceof CloudTasksUnavailableError) {
    return {
      message: `${error.message}; nothing was dispatched, safe to run again`,
      exitCode: EXIT.incomplete,
    };
  }
  if (error instanceof UnreachableError) {
    return { message: `${error.message}, safe to run again`, exitCode: EXIT.incomplete };
  }
  if (error instanceof CloudTasksError) {
    // A call was made: a queue that does not exist is one not read for good, not bad input.
    const exitCode =
      error.status === 'UNAVAILABLE' || error.status === 'DEADLINE_EXCEEDED' ? EXIT.incomplete : EXIT.failed;
    return { message: `Cloud Tasks: ${error.message}`, exitCode };
  }
  return { message: error instanceof Error ? error.message : String(error), exitCode: EXIT.failed };
}

function packageVersion(): string {
  // build/scripts/cli/main.js -> package.json at the project's root.
  const text = readFileSync(new URL('../../../package.json', import.meta.url), 'utf8');
  return (JSON.parse(text) as { version: string }).version;
}

function discard(): Writable {
  return new Writable({ write: (_chunk, _encoding, done) => done() });
}

process.exit(await runCommand(process.argv.slice(2), process.env));
