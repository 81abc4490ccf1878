/**
 * Figure 5, recovery: how long a backlog of N failed tasks (~10 KB bodies) takes to leave its queue once
 * the target answers 200, `"mode":"redrive"` beside `"mode":"run"`. Each request runs in a child process
 * (recovery-child.ts) against the emulator and the target in this one, so the child's heap and RSS are the
 * product's alone. The time runs from the request to the first listing of the queue that comes back empty.
 *
 * Redrive runs at full size against a queue at 500 dispatches per second and the real RunTask quota, by
 * its batch calls (the default) and one call per task (RERUN_REDRIVE_BATCH=false), beside a floor: the same
 * emulator queue draining the same N tasks created due now through its store, no product involved, timed
 * from the first create to the first empty listing. Each round runs floor, batch, then per-task. Run mode is
 * held to 60 RunTask calls per minute: N tasks take hours, so it runs on a small sample at a compressed
 * quota (as the pacing figure does), and its real time is projected as N / (1 per second x the utilization
 * measured on the sample).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { startEmulator, type Emulator, type EmulatorOptions, type SeedTask } from '../emulator/server.js';
import type { RerunReport } from '../shared/run/settle.js';
import { baseEnv, runChild } from './child.js';
import type { RecoveryChildResult } from './recovery-child.js';
import { summarize, type Summary } from './stats.js';
import { benchQueue, failedTask, PROJECT, queueName, startTarget, type Target } from './world.js';

export interface RecoveryOptions {
  readonly runs: number;
  /** Backlog sizes redriven at full size. */
  readonly sizes: readonly number[];
  /** Bytes of each task's body (before base64). */
  readonly bodyBytes: number;
  /** The runtime's redrive arming delay (the copy's scheduleTime ahead of its create). */
  readonly armingDelayMs: number;
  /** Latency the emulator adds to every API answer (the real API answers in tens of milliseconds). */
  readonly latencyMs: number;
  /** RERUN_REDRIVE_CONCURRENCY (the product's default is 32). */
  readonly redriveConcurrency: number;
  /** The request's `verify` (e.g. "0s"); undefined keeps the product's default. */
  readonly verify: string | undefined;
  /** Every wait of one run ends after this: a run that does not finish reports what it saw. */
  readonly timeoutMs: number;
  /** Node and V8 flags of the redriving child (e.g. `--cpu-prof`); none by default. */
  readonly childFlags: readonly string[];
  /** The per-task anchor at each size (and with it calls only); off for a quick run of floor and batch. */
  readonly perTask: boolean;
  /** Adds the "calls only" anchor at each size: the batch path's calls alone (calls-only-child.ts). */
  readonly callsOnly: boolean;
  /**
   * Adds the "calls and duties" anchor at each size: those calls and the product's per-task duties, a batch
   * at a time (calls-only-child.ts with BENCH_CALLS_DUTIES=1).
   */
  readonly callsAndDuties: boolean;
  /**
   * The product's redrives write their claims and recovery tasks to a control queue, as deploy.sh deploys
   * them (its calls are counted with the rest); none by default.
   */
  readonly controlQueue: boolean;
  /**
   * The product's requests go through a Functions Framework server in the child, as the deployed function
   * takes them (docs/performance.md "In the deployed function"); through the core alone by default.
   */
  readonly throughFramework: boolean;
  /** One more size, batch redrive and floor only, with its own bodies and timeout (undefined: none). */
  readonly big: { readonly size: number; readonly bodyBytes: number; readonly timeoutMs: number } | undefined;
  /** Run mode's sample: tasks, at a quota of `ratePerSecond` compressed into windows of `windowMs`. */
  readonly runSample: { readonly tasks: number; readonly ratePerSecond: number; readonly windowMs: number };
}

/** One request, from the request to an empty queue (or the timeout). */
interface Attempt {
  readonly finished: boolean;
  /** Request to empty queue; undefined when the queue never emptied. */
  readonly recoveryMs: number | undefined;
  /** Request to report (the request's own duration, verification included). */
  readonly reportMs: number | undefined;
  /** Backlog tasks with a 2xx dispatch (of themselves or of a copy naming them). */
  readonly recovered: number;
  /** 2xx dispatches beyond the first, per backlog task, summed. */
  readonly duplicates: number;
  /** Tasks still listed at the end. */
  readonly left: number;
  /** The product's calls by method (the bench's own listings left out). */
  readonly calls: Record<string, number>;
  /** Answers other than 200 by `method status`. */
  readonly otherAnswers: Record<string, number>;
  /** Achieved RunTask rate (run mode), from the calls' starts. */
  readonly rate: number;
  /** Copies made per second, from the first create call to the last (redrive's own pace), by batch or not. */
  readonly createRate: number;
  /** Earliest dispatch minus earliest CreateTask (emulator clock): the arming delay as Cloud Tasks saw it. */
  readonly armingSeenMs: number | undefined;
  /** Request to the last copy's 2xx dispatch (undefined without copies). */
  readonly lastCopyMs: number | undefined;
  /** 2xx dispatches of tasks on their own schedule, not copies (nor RunTask): what a redrive left alone. */
  readonly ownRuns: number;
  readonly child: RecoveryChildResult | undefined;
  /** The floor only: the emulator's store creating the N tasks, first to last. */
  readonly createdInMs?: number;
  readonly note: string | undefined;
}

/** The tasks of one size and how long one run may wait for them. */
interface Load {
  readonly size: number;
  readonly bodyBytes: number;
  readonly timeoutMs: number;
  /** RERUN_TIME_BUDGET of the request. */
  readonly timeBudgetMs: number;
}

export interface RedriveSizeResult {
  readonly size: number;
  readonly runs: number;
  readonly finishedRuns: number;
  /** Over the finished runs (undefined when none finished). */
  readonly recoveryMs: Summary | undefined;
  readonly reportMs: Summary | undefined;
  /** Request to the last copy's dispatch, over the finished runs: the queue then waits only for `ownRuns`. */
  readonly lastCopyMs: Summary | undefined;
  readonly ownRuns: Summary;
  /** The product's Cloud Tasks calls per backlog task, and their medians by method. */
  readonly callsPerTask: Summary;
  readonly callsPerTaskByMethod: Record<string, number>;
  readonly runTaskCalls: Summary;
  readonly duplicates: Summary;
  readonly recovered: Summary;
  readonly armingSeenMs: number | undefined;
  readonly createsPerSecond: Summary;
  /** CPU of the redriving process per backlog task. */
  readonly cpuMsPerTask: Summary | undefined;
  readonly heapBeforeMb: Summary | undefined;
  readonly peakHeapMb: Summary | undefined;
  readonly maxRssMb: Summary | undefined;
  readonly lastCounts: RerunReport['counts'] | undefined;
  readonly otherAnswers: Record<string, number>;
  readonly notes: readonly string[];
}

/** The floor: the emulator alone draining N tasks created due now (no product involved). */
export interface FloorResult {
  readonly runs: number;
  readonly finishedRuns: number;
  /** First create to the first empty listing, over the finished runs. */
  readonly emptyMs: Summary | undefined;
  /** First create to last (the emulator's store, in the bench's process). */
  readonly createMs: Summary;
  readonly recovered: Summary;
  readonly duplicates: Summary;
  readonly notes: readonly string[];
}

/** One size: the floor, the batch redrive (the product's default) and the per-task redrive. */
export interface RecoverySizeResult {
  readonly size: number;
  readonly bodyBytes: number;
  readonly floor: FloorResult;
  readonly batch: RedriveSizeResult;
  /** RERUN_REDRIVE_BATCH=false; not measured at the big size. */
  readonly perTask: RedriveSizeResult | undefined;
  /** The batch path's calls alone (BENCH_RECOVERY_CALLS_ONLY=1); not measured at the big size. */
  readonly callsOnly: RedriveSizeResult | undefined;
  /** Those calls and the per-task duties (BENCH_RECOVERY_DUTIES=1); not measured at the big size. */
  readonly callsAndDuties: RedriveSizeResult | undefined;
}

export interface RunSampleResult {
  readonly tasks: number;
  readonly quota: { limit: number; windowMs: number; ratePerSecond: number };
  /** Achieved RunTask rate over the allowed one, from the RunTask calls' starts. */
  readonly utilization: Summary;
  readonly achievedPerSecond: Summary;
  /** The sample's own time to recovery at the compressed quota. */
  readonly sampleRecoveryMs: Summary | undefined;
  readonly recovered: Summary;
  readonly notes: readonly string[];
}

export interface RecoveryResult {
  readonly sizes: RecoverySizeResult[];
  /** BENCH_RECOVERY_BIG: batch and floor only. */
  readonly big: RecoverySizeResult | undefined;
  readonly run: RunSampleResult;
  /** Run mode at the real quota (1 per second), projected: N / (1 x utilization), seconds. */
  readonly projectedRunS: Record<number, number>;
  readonly settings: {
    bodyBytes: number;
    armingDelayMs: number;
    latencyMs: number;
    verify: string;
    queueRatePerSecond: number;
    redriveConcurrency: number;
    timeBudget: string;
    timeoutMs: number;
    controlQueue: boolean;
    throughFramework: boolean;
  };
}

/** RunTask's real quota: 60 per minute. */
const REAL_RUN_RATE = 1;
const QUEUE_RATE = 500;
const TIME_BUDGET_MS = 300_000;
// RERUN_SERVICE_TIMEOUT is the budget plus this: verification and the start-up margin fit inside it.
const SERVICE_MARGIN_MS = 100_000;
const POLL_MS = 20;
/** A wait gives up once nothing new was dispatched for this long (after the request, for a redrive). */
const STALL_MS = 15_000;
/** The backlog's own next attempts are spread over this long: doing nothing recovers the last one then. */
export const OWN_SCHEDULE_MS = 3_600_000;
/** The backlog's first own attempt is this far off: past the due-soon rule's 30 s. */
const NOT_DUE_SOON_MS = 5 * 60_000;

const realNow = () => performance.timeOrigin + performance.now();
const mb = (kb: number) => kb / 1024;

export async function benchRecovery(
  options: RecoveryOptions,
  progress: (line: string) => void,
): Promise<RecoveryResult> {
  const target = await startTarget();
  const loadOf = (size: number, bodyBytes = options.bodyBytes, timeoutMs = options.timeoutMs): Load => ({
    size,
    bodyBytes,
    timeoutMs,
    // A request given a longer timeout (the big run) gets a budget that grows with it.
    timeBudgetMs: Math.max(TIME_BUDGET_MS, timeoutMs - 120_000),
  });
  try {
    const sizes: RecoverySizeResult[] = [];
    for (const size of options.sizes)
      sizes.push(await benchSize(options, target, loadOf(size), true, progress));
    const { big: bigRun } = options;
    const big =
      bigRun &&
      (await benchSize(
        options,
        target,
        loadOf(bigRun.size, bigRun.bodyBytes, bigRun.timeoutMs),
        false,
        progress,
      ));

    const { tasks, ratePerSecond, windowMs } = options.runSample;
    const limit = Math.round((ratePerSecond * windowMs) / 1000);
    const samples: Attempt[] = [];
    for (let run = 0; run < options.runs; run++) {
      const attempt = await recoverOnce(options, target, 'run', loadOf(tasks), `run-${run}`, {
        runTaskQuota: { limit, windowMs },
        env: { RERUN_MAX_RATE: String(ratePerSecond) },
      });
      samples.push(attempt);
      progress(`recovery run sample ${tasks}: run ${run + 1}/${options.runs}: ${describe(attempt, tasks)}`);
      if (!attempt.finished) break;
    }
    const finished = samples.filter((a) => a.finished);
    // NaN when no sample finished: the rows then say so rather than project from nothing.
    const rates = finished.length > 0 ? finished.map((a) => a.rate) : [NaN];
    const utilization = summarize(rates.map((r) => r / ratePerSecond));
    const runResult: RunSampleResult = {
      tasks,
      quota: { limit, windowMs, ratePerSecond },
      utilization,
      achievedPerSecond: summarize(rates),
      sampleRecoveryMs: finished.length > 0 ? summarize(finished.map((a) => a.recoveryMs!)) : undefined,
      recovered: summarize(samples.map((a) => a.recovered)),
      notes: samples.flatMap((a) => (a.note ? [a.note] : [])),
    };
    return {
      sizes,
      big,
      run: runResult,
      projectedRunS: Object.fromEntries(
        [...options.sizes, ...(options.big ? [options.big.size] : [])].map((n) => [
          n,
          n / (REAL_RUN_RATE * utilization.median),
        ]),
      ),
      settings: {
        bodyBytes: options.bodyBytes,
        armingDelayMs: options.armingDelayMs,
        latencyMs: options.latencyMs,
        verify: options.verify ?? 'default',
        queueRatePerSecond: QUEUE_RATE,
        redriveConcurrency: options.redriveConcurrency,
        timeBudget: `${TIME_BUDGET_MS / 1000}s`,
        timeoutMs: options.timeoutMs,
        controlQueue: options.controlQueue,
        throughFramework: options.throughFramework,
      },
    };
  } finally {
    await target.close();
  }
}

/** Rounds of floor, batch redrive and (`withAnchors`, as the options ask) the anchors at one size. */
async function benchSize(
  options: RecoveryOptions,
  target: Target,
  load: Load,
  withAnchors: boolean,
  progress: (line: string) => void,
): Promise<RecoverySizeResult> {
  const perTask = withAnchors && options.perTask;
  const paths: [string, (id: string) => Promise<Attempt>][] = [
    ['floor', (id) => drainOnce(options, target, load, id)],
    ['batch', (id) => recoverOnce(options, target, 'redrive', load, id, {})],
  ];
  if (perTask) {
    const env = { RERUN_REDRIVE_BATCH: 'false' };
    paths.push(['per-task', (id) => recoverOnce(options, target, 'redrive', load, id, { env })]);
  }
  if (perTask && options.callsOnly) {
    const child = 'calls-only-child.js';
    paths.push(['calls-only', (id) => recoverOnce(options, target, 'redrive', load, id, { child })]);
  }
  if (withAnchors && options.callsAndDuties) {
    const extra = { child: 'calls-only-child.js', env: { BENCH_CALLS_DUTIES: '1' } };
    paths.push(['calls-duties', (id) => recoverOnce(options, target, 'redrive', load, id, extra)]);
  }
  const attempts = new Map(paths.map(([path]) => [path, [] as Attempt[]]));
  for (let run = 0; run < options.runs; run++) {
    for (const [path, once] of paths) {
      const done = attempts.get(path)!;
      // One run that does not finish is enough to see it: the next would likely wait as long.
      if (done.some((a) => !a.finished)) continue;
      const attempt = await once(`${path}-${load.size}-${run}`);
      done.push(attempt);
      progress(
        `recovery ${path} ${load.size}: run ${run + 1}/${options.runs}: ${describe(attempt, load.size)}`,
      );
    }
  }
  return {
    size: load.size,
    bodyBytes: load.bodyBytes,
    floor: floorResult(attempts.get('floor')!),
    batch: redriveResult(load.size, attempts.get('batch')!),
    perTask: perTask ? redriveResult(load.size, attempts.get('per-task')!) : undefined,
    callsOnly: attempts.has('calls-only') ? redriveResult(load.size, attempts.get('calls-only')!) : undefined,
    callsAndDuties: attempts.has('calls-duties')
      ? redriveResult(load.size, attempts.get('calls-duties')!)
      : undefined,
  };
}

const bodyOf = (bytes: number) => Buffer.alloc(bytes, 'x').toString('base64');

/**
 * The floor: a fresh emulator with the same queue (500 dispatches per second, the same latency), the N
 * tasks created due now through its store (no product involved), timed from the first create to the
 * first listing that comes back empty.
 */
async function drainOnce(options: RecoveryOptions, target: Target, load: Load, id: string): Promise<Attempt> {
  const queue = queueName(`recovery-${id}`);
  const body = bodyOf(load.bodyBytes);
  const tasks = Array.from({ length: load.size }, (_, i): SeedTask => ({
    name: `${queue}/tasks/order-${i}`,
    httpRequest: { url: `${target.url}/orders/${i}`, httpMethod: 'POST', body },
  }));
  const emulator = await startEmulator({
    port: 0,
    latencyMs: options.latencyMs,
    seed: benchQueue(queue, []),
  });
  try {
    const firstCreateRealMs = realNow();
    emulator.load(benchQueue(queue, tasks));
    const createdInMs = realNow() - firstCreateRealMs;
    const wait = await waitForEmpty(
      emulator,
      queue,
      firstCreateRealMs + load.timeoutMs,
      (idleMs) => idleMs > STALL_MS,
    );
    const { left, pages } = await countLeft(emulator.url, queue);
    return {
      ...tally(emulator, queue, load.size, wait.polls + pages),
      lastCopyMs: undefined,
      finished: wait.emptyAtRealMs !== undefined && left === 0,
      recoveryMs: wait.emptyAtRealMs === undefined ? undefined : wait.emptyAtRealMs - firstCreateRealMs,
      reportMs: undefined,
      left,
      child: undefined,
      createdInMs,
      note:
        wait.emptyAtRealMs === undefined
          ? `${id}: ${left} tasks still listed after ${((realNow() - firstCreateRealMs) / 1000).toFixed(0)} s`
          : undefined,
    };
  } finally {
    await emulator.stop();
  }
}

/**
 * Polls the queue's listing until it comes back empty; a listing that fails or times out counts as not
 * empty yet. Gives up at the deadline, or when `giveUp(ms since the last new dispatch)` says so.
 */
async function waitForEmpty(
  emulator: Emulator,
  queue: string,
  deadlineRealMs: number,
  giveUp: (idleMs: number) => boolean,
): Promise<{ emptyAtRealMs: number | undefined; polls: number }> {
  let polls = 0;
  let dispatches = 0;
  let lastChangeMs = realNow();
  while (realNow() < deadlineRealMs) {
    const polledAtMs = realNow();
    polls++;
    const listed = await listPage(emulator.url, queue, 1).then(
      (page) => page.count,
      () => 1,
    );
    if (listed === 0) return { emptyAtRealMs: polledAtMs, polls };
    if (emulator.dispatches.length !== dispatches) {
      dispatches = emulator.dispatches.length;
      lastChangeMs = realNow();
    }
    if (giveUp(realNow() - lastChangeMs)) break;
    await sleep(POLL_MS);
  }
  return { emptyAtRealMs: undefined, polls };
}

/** Seeds a fresh emulator with the backlog, runs one request in a child and waits for an empty queue. */
async function recoverOnce(
  options: RecoveryOptions,
  target: Target,
  mode: 'run' | 'redrive',
  load: Load,
  id: string,
  extra: {
    runTaskQuota?: EmulatorOptions['runTaskQuota'];
    env?: Record<string, string>;
    /** The child script; the product's request (recovery-child.js) by default. */
    child?: string;
  },
): Promise<Attempt> {
  const { size } = load;
  const queue = queueName(`recovery-${id}`);
  const body = bodyOf(load.bodyBytes);
  // Their own next attempts are spread over the next hour, as a backlog in backoff is, from a few minutes
  // on: none is due soon, so the product forces every one (a task due within 30 s is left to its schedule).
  const seededMs = Date.now() + NOT_DUE_SOON_MS;
  const backlog = Array.from({ length: size }, (_, i) => {
    const task = failedTask(queue, `order-${i}`, `${target.url}/orders/${i}`);
    const scheduleTime = new Date(seededMs + ((i + 1) / size) * OWN_SCHEDULE_MS).toISOString();
    return { ...task, scheduleTime, httpRequest: { ...task.httpRequest, body } };
  });
  const seed = benchQueue(queue, backlog);
  const control = options.controlQueue && mode === 'redrive' && extra.child === undefined;
  const controlQueue = queueName(`control-${id}`);
  const emulator = await startEmulator({
    port: 0,
    latencyMs: options.latencyMs,
    seed: control ? { queues: [...seed.queues, ...benchQueue(controlQueue, []).queues] } : seed,
    ...(extra.runTaskQuota && { runTaskQuota: extra.runTaskQuota }),
  });
  try {
    const event = {
      kind: 'fix-deployed',
      queues: [queue],
      mode,
      ...(options.verify !== undefined && { verify: options.verify }),
    };
    const env = baseEnv({
      CLOUD_TASKS_EMULATOR_HOST: emulator.host,
      RERUN_QUEUES: queue,
      RERUN_MAX_TASKS: String(Math.max(size, 1000)),
      RERUN_TIME_BUDGET: `${load.timeBudgetMs / 1000}s`,
      RERUN_SERVICE_TIMEOUT: `${(load.timeBudgetMs + SERVICE_MARGIN_MS) / 1000}s`,
      RERUN_REDRIVE_CONCURRENCY: String(options.redriveConcurrency),
      LOG_LEVEL: 'info',
      BENCH_EVENT: JSON.stringify(event),
      BENCH_ARMING_MS: String(options.armingDelayMs),
      BENCH_QUEUE_RATE: String(QUEUE_RATE),
      ...(options.throughFramework && extra.child === undefined && { BENCH_THROUGH_FRAMEWORK: '1' }),
      ...(control && {
        RERUN_CONTROL_QUEUE: controlQueue,
        // Nothing listens there: a claim falls due after the run, and a move's recovery task is deleted
        // once the move is settled (one that falls due first is refused, and tried again later).
        RERUN_SELF_URL: 'http://127.0.0.1:9/',
        RERUN_INVOKER_SA: `rerun-invoker@${PROJECT}.iam.gserviceaccount.com`,
      }),
      ...extra.env,
    });
    const spawnedRealMs = realNow();
    const deadlineRealMs = spawnedRealMs + load.timeoutMs;
    let child: RecoveryChildResult | undefined;
    let childError: string | undefined;
    let childDone = false;
    const childRun = runChild<RecoveryChildResult>(
      extra.child ?? 'recovery-child.js',
      [],
      env,
      load.timeoutMs,
      options.childFlags,
    ).then(
      (result) => {
        child = result;
        if (result.error !== undefined) childError = result.error;
      },
      (error: unknown) => {
        childError = error instanceof Error ? error.message : String(error);
      },
    );
    void childRun.finally(() => (childDone = true));

    // Gives up on a failed child, or once the child is done and nothing was dispatched for a while (tasks
    // left for a later attempt would keep it waiting an hour).
    const stallMs = options.armingDelayMs + STALL_MS;
    const wait = await waitForEmpty(
      emulator,
      queue,
      deadlineRealMs,
      (idleMs) => childDone && (childError !== undefined || idleMs > stallMs),
    );
    const emptyAtRealMs = wait.emptyAtRealMs;
    await childRun;
    const { left, pages } = await countLeft(emulator.url, queue);
    const { lastCopyAtMs, ...tallied } = tally(emulator, queue, size, wait.polls + pages);
    const sentRealMs = child?.sentRealMs ?? spawnedRealMs;
    return {
      ...tallied,
      // The emulator's clock is Date.now(): the same real time, to a millisecond or so.
      lastCopyMs: lastCopyAtMs === undefined ? undefined : lastCopyAtMs - sentRealMs,
      finished: emptyAtRealMs !== undefined && left === 0 && childError === undefined,
      recoveryMs: emptyAtRealMs === undefined ? undefined : emptyAtRealMs - sentRealMs,
      reportMs: child ? child.returnedRealMs - child.sentRealMs : undefined,
      left,
      child,
      note:
        childError !== undefined
          ? `${id}: ${childError.split('\n')[0]}`
          : emptyAtRealMs === undefined
            ? `${id}: ${left} tasks still listed after ${((realNow() - spawnedRealMs) / 1000).toFixed(0)} s`
            : undefined,
    };
  } finally {
    await emulator.stop();
  }
}

/** What the emulator recorded: recovered tasks and duplicates from its dispatches, calls by method. */
function tally(emulator: Emulator, queue: string, size: number, benchListings: number) {
  const okDispatches = new Map<string, number>();
  for (const dispatch of emulator.dispatches) {
    if (dispatch.status === undefined || dispatch.status < 200 || dispatch.status >= 300) continue;
    const original = headerOf(dispatch.headers, 'x-rerun-original-task') ?? dispatch.task;
    okDispatches.set(original, (okDispatches.get(original) ?? 0) + 1);
  }
  let recovered = 0;
  let duplicates = 0;
  let lastCopyAtMs: number | undefined;
  let ownRuns = 0;
  for (const dispatch of emulator.dispatches) {
    if (dispatch.status === undefined || dispatch.status < 200 || dispatch.status >= 300) continue;
    if (headerOf(dispatch.headers, 'x-rerun-original-task'))
      lastCopyAtMs = Math.max(lastCopyAtMs ?? 0, dispatch.atMs);
    else if (dispatch.trigger === 'schedule') ownRuns++;
  }
  for (let i = 0; i < size; i++) {
    const count = okDispatches.get(`${queue}/tasks/order-${i}`) ?? 0;
    if (count > 0) recovered++;
    duplicates += Math.max(0, count - 1);
  }
  const calls: Record<string, number> = {};
  const otherAnswers: Record<string, number> = {};
  for (const call of emulator.calls) {
    calls[call.method] = (calls[call.method] ?? 0) + 1;
    if (call.status !== 200) {
      const key = `${call.method} ${call.status}`;
      otherAnswers[key] = (otherAnswers[key] ?? 0) + 1;
    }
  }
  calls.ListTasks = (calls.ListTasks ?? 0) - benchListings;
  const rateOf = (method: string) => {
    const starts = emulator.calls
      .filter((call) => call.method === method && call.status === 200)
      .map((call) => call.realStartMs)
      .sort((a, b) => a - b);
    return starts.length > 1 ? (starts.length - 1) / ((starts.at(-1)! - starts[0]!) / 1000) : NaN;
  };
  const creates = emulator.calls
    .filter(
      (call) => (call.method === 'CreateTask' || call.method === 'BatchCreateTasks') && call.status === 200,
    )
    .map((call) => call.realStartMs)
    .sort((a, b) => a - b);
  // Copies made, by batch or one by one: the tasks dispatched as a copy (they name their original).
  const copies = new Set(
    emulator.dispatches.filter((d) => headerOf(d.headers, 'x-rerun-original-task')).map((d) => d.task),
  ).size;
  const createRate = creates.length > 1 ? copies / ((creates.at(-1)! - creates[0]!) / 1000) : NaN;
  const firstCreate = emulator.calls.find(
    (call) => call.method === 'CreateTask' || call.method === 'BatchCreateTasks',
  );
  // The first copy's dispatch: tasks due within minBackoffLeft are left to their own schedule, not copied.
  const firstDispatch = emulator.dispatches.find((d) => headerOf(d.headers, 'x-rerun-original-task'));
  const armingSeenMs =
    firstCreate && firstDispatch && firstDispatch.trigger === 'schedule'
      ? firstDispatch.atMs - firstCreate.startMs
      : undefined;
  return {
    recovered,
    duplicates,
    calls,
    otherAnswers,
    rate: rateOf('RunTask'),
    createRate,
    armingSeenMs,
    lastCopyAtMs,
    ownRuns,
  };
}

const headerOf = (headers: Record<string, string>, name: string) =>
  Object.entries(headers).find(([key]) => key.toLowerCase() === name)?.[1];

/** One page of the queue's listing (BASIC); every call ends within 10 s. */
async function listPage(url: string, queue: string, pageSize: number, pageToken = '') {
  const token = pageToken && `&pageToken=${encodeURIComponent(pageToken)}`;
  const response = await fetch(`${url}/v2/${queue}/tasks?pageSize=${pageSize}&responseView=BASIC${token}`, {
    signal: AbortSignal.timeout(10_000),
  });
  if (!response.ok) throw new Error(`ListTasks: HTTP ${response.status}: ${await response.text()}`);
  const page = (await response.json()) as { tasks?: unknown[]; nextPageToken?: string };
  return { count: page.tasks?.length ?? 0, next: page.nextPageToken ?? '' };
}

async function countLeft(url: string, queue: string): Promise<{ left: number; pages: number }> {
  let left = 0;
  let pages = 0;
  let token = '';
  do {
    const page = await listPage(url, queue, 1000, token);
    pages++;
    left += page.count;
    token = page.next;
  } while (token);
  return { left, pages };
}

function describe(a: Attempt, size: number): string {
  const s = (ms: number | undefined) => (ms === undefined ? '-' : `${(ms / 1000).toFixed(1)} s`);
  return [
    a.finished ? `recovered in ${s(a.recoveryMs)}` : 'DID NOT FINISH',
    `report after ${s(a.reportMs)}`,
    `${a.recovered}/${size} recovered, ${a.duplicates} duplicates, ${a.left} left`,
    `counts ${a.child?.counts ? JSON.stringify(a.child.counts) : '(no report)'}`,
    `calls ${JSON.stringify(a.calls)}`,
    ...(Object.keys(a.otherAnswers).length > 0 ? [`other answers ${JSON.stringify(a.otherAnswers)}`] : []),
    ...(a.lastCopyMs === undefined ? [] : [`last copy dispatched after ${s(a.lastCopyMs)}`]),
    ...(a.child ? [`${a.ownRuns} ran on their own schedule`] : []),
    ...(a.createdInMs === undefined ? [] : [`created in ${a.createdInMs.toFixed(0)} ms`]),
    ...(a.child
      ? [
          `peak heap ${mb(a.child.peakHeapKb).toFixed(1)} MB, peak RSS ${mb(a.child.maxRssKb).toFixed(1)} MB, CPU ${a.child.cpuMs} ms`,
        ]
      : []),
    ...(a.armingSeenMs === undefined ? [] : [`first dispatch ${a.armingSeenMs} ms after the first create`]),
    ...(Number.isFinite(a.createRate) ? [`${a.createRate.toFixed(0)} creates/s`] : []),
    ...(a.note ? [a.note] : []),
  ].join('; ');
}

function floorResult(attempts: readonly Attempt[]): FloorResult {
  const finished = attempts.filter((a) => a.finished);
  return {
    runs: attempts.length,
    finishedRuns: finished.length,
    emptyMs: finished.length > 0 ? summarize(finished.map((a) => a.recoveryMs!)) : undefined,
    createMs: summarize(attempts.map((a) => a.createdInMs!)),
    recovered: summarize(attempts.map((a) => a.recovered)),
    duplicates: summarize(attempts.map((a) => a.duplicates)),
    notes: attempts.flatMap((a) => (a.note ? [a.note] : [])),
  };
}

function redriveResult(size: number, attempts: readonly Attempt[]): RedriveSizeResult {
  const finished = attempts.filter((a) => a.finished);
  const children = attempts.flatMap((a) => (a.child ? [a.child] : []));
  const of = <T>(list: readonly T[], pick: (t: T) => number) =>
    list.length > 0 ? summarize(list.map(pick)) : undefined;
  const methods = [...new Set(attempts.flatMap((a) => Object.keys(a.calls)))].sort();
  const otherAnswers: Record<string, number> = {};
  for (const a of attempts)
    for (const [key, n] of Object.entries(a.otherAnswers)) otherAnswers[key] = (otherAnswers[key] ?? 0) + n;
  return {
    size,
    runs: attempts.length,
    finishedRuns: finished.length,
    recoveryMs: of(finished, (a) => a.recoveryMs!),
    reportMs: of(finished, (a) => a.reportMs!),
    lastCopyMs: of(
      finished.filter((a) => a.lastCopyMs !== undefined),
      (a) => a.lastCopyMs!,
    ),
    ownRuns: summarize(attempts.map((a) => a.ownRuns)),
    callsPerTask: summarize(
      attempts.map((a) => Object.values(a.calls).reduce((sum, n) => sum + n, 0) / size),
    ),
    callsPerTaskByMethod: Object.fromEntries(
      methods.map((m) => [m, summarize(attempts.map((a) => (a.calls[m] ?? 0) / size)).median]),
    ),
    runTaskCalls: summarize(attempts.map((a) => a.calls.RunTask ?? 0)),
    duplicates: summarize(attempts.map((a) => a.duplicates)),
    recovered: summarize(attempts.map((a) => a.recovered)),
    armingSeenMs: attempts[0]?.armingSeenMs,
    createsPerSecond: summarize(attempts.map((a) => a.createRate)),
    cpuMsPerTask: of(children, (c) => c.cpuMs / size),
    heapBeforeMb: of(children, (c) => mb(c.heapBeforeKb)),
    peakHeapMb: of(children, (c) => mb(c.peakHeapKb)),
    maxRssMb: of(children, (c) => mb(c.maxRssKb)),
    lastCounts: attempts.at(-1)?.child?.counts,
    otherAnswers,
    notes: attempts.flatMap((a) => (a.note ? [a.note] : [])),
  };
}
