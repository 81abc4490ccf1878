/**
 * The flow of one task (docs/architecture.md "Stages"): claim, act, release, verify, written once for
 * every mode. The mode is a recording stand-in here (an Acting), so the test sees the order of the steps;
 * the claim registry, budget, hold, breaker and report are the real stages.
 */
import { describe, expect, it } from 'vitest';
import { Admission } from '../../shared/run/admission.js';
import { Breaker } from '../../shared/run/breaker.js';
import { Budget } from '../../shared/run/budget.js';
import { Claimer, ClaimRegistry } from '../../shared/run/claim.js';
import { TaskFlow } from '../../shared/run/flow.js';
import { Hold } from '../../shared/run/hold.js';
import type { Acted, Acting, ActListener, Unforced } from '../../shared/run/modes.js';
import type { ForcePolicy } from '../../shared/run/force.js';
import { Pacer } from '../../shared/run/pace.js';
import { BodyBytes } from '../../shared/cloud-tasks/body-bytes.js';
import type { Task } from '../../shared/cloud-tasks/client.js';
import { Handover, type Candidate, type QueueRun, type TaskUnderWay } from '../../shared/run/plan.js';
import { ReportBuilder, type TaskRow } from '../../shared/run/settle.js';
import type { Verdict } from '../../shared/run/verify.js';
import { candidateOf, ORDERS, queueRunOf, requestOf, silentLog } from './stage-fixtures.js';

type Step = `${'enter' | 'leave' | 'reserve' | 'act' | 'verify' | 'no-slot'} ${string}`;

/** A mode that records each step, forces every task (or answers `unforced`), and gives `verdict`. */
class RecordingActing implements Acting {
  readonly steps: Step[] = [];
  constructor(
    private readonly options: {
      unforced?: (task: string) => Unforced | undefined;
      verdict?: (task: string) => Verdict;
      noPlace?: boolean;
      noSlot?: boolean;
      registry?: ClaimRegistry;
    } = {},
  ) {}

  enter(queue: QueueRun): Promise<(() => void) | undefined> {
    this.steps.push(`enter ${queue.queue.queue}`);
    return Promise.resolve(
      this.options.noPlace ? undefined : () => void this.steps.push(`leave ${queue.queue.queue}`),
    );
  }
  pacersOf(queue: Pick<QueueRun, 'pacers' | 'copyPacers'>): readonly Pacer[] {
    return queue.pacers;
  }
  reserve(queue: QueueRun): number | undefined {
    this.steps.push(`reserve ${queue.queue.queue}`);
    return this.options.noSlot ? undefined : 0;
  }
  act(candidate: TaskUnderWay, _slotMs: number, _policy: ForcePolicy, done: ActListener): void {
    done.acted(this.acted(candidate));
  }
  acted(candidate: TaskUnderWay): Acted {
    const task = candidate.name.task;
    // The claim is held while the task is acted on.
    expect(this.options.registry?.tryClaim(candidate.name.name, 0)).toBe('running');
    this.steps.push(`act ${task}`);
    const unforced = this.options.unforced?.(task);
    if (unforced) return { forced: false, result: unforced };
    return {
      forced: true,
      row: { outcome: 'dispatched' },
      verify: (_windowMs, listener) => {
        this.steps.push(`verify ${task}`);
        listener.verdict({ verdict: this.options.verdict?.(task) ?? 'succeeded' });
      },
    };
  }
  noSlot(task: string): Promise<Omit<TaskRow, 'task'>> {
    this.steps.push(`no-slot ${task.split('/').pop()}`);
    return Promise.resolve({ outcome: 'deferred' });
  }
}

function flowOf(acting: RecordingActing, registry: ClaimRegistry, options: { verifyMs?: number } = {}) {
  const log = silentLog();
  const budget = new Budget(60_000);
  const hold = new Hold();
  const report = new ReportBuilder(log, false);
  const request = requestOf();
  const claimer = new Claimer(
    { registry, tasks: undefined as never, control: undefined, ownClaimId: undefined, log, now: Date.now },
    {
      requestId: request.requestId,
      cutoffMs: request.cutoffMs,
      mode: 'run',
      reason: undefined,
      requestKind: 'fix-deployed',
      force: false,
      lastAttempts: false,
      verifyMs: 0,
      minBackoffLeftMs: 0,
    },
    budget.deadlineMs,
  );
  const flow = new TaskFlow({
    acting,
    claimer,
    budget,
    hold,
    report,
    breaker: new Breaker({ maxFailedAgain: 0.5, minVerdicts: 2 }, log),
    rulesFor: () => {
      throw new Error('the stand-in mode reads no rules');
    },
    verifyMs: options.verifyMs ?? 1_000,
    canaryWaitMs: 500,
    concurrency: 1,
  });
  return { flow, report, hold };
}

const queue = () => queueRunOf({ pacers: [new Pacer(1000)] });

/** Starts a task that is not a canary and waits for its row, as recorded in the report. */
async function rowOf(
  { flow, report }: Pick<ReturnType<typeof flowOf>, 'flow' | 'report'>,
  candidate: Candidate,
): Promise<TaskRow> {
  expect(await flow.start(candidate, false)).toEqual({});
  await flow.drain();
  const row = report.rows.find((r) => r.task === candidate.name.name);
  if (!row) throw new Error(`no row for ${candidate.name.name}`);
  return row;
}

describe('TaskFlow', () => {
  it('claims, acts, releases and verifies a task, in that order, and writes its one row', async () => {
    const registry = new ClaimRegistry();
    const acting = new RecordingActing({ registry });
    const { flow, report } = flowOf(acting, registry);
    const row = await rowOf({ flow, report }, candidateOf('t1', queue()));
    expect(acting.steps).toEqual(['enter orders', 'reserve orders', 'act t1', 'verify t1', 'leave orders']);
    expect(row).toMatchObject({ outcome: 'dispatched', verdict: 'succeeded' });
    expect(report.rows).toEqual([row]);
    // Released: another run may claim it now.
    expect(registry.tryClaim(row.task, 0)).toBe('claimed');
  });

  it('skips a task another run holds as claimed, and never acts on it or takes a slot', async () => {
    const registry = new ClaimRegistry();
    const acting = new RecordingActing({ registry });
    const { flow, report } = flowOf(acting, registry);
    const candidate = candidateOf('t1', queue());
    expect(registry.tryClaim(candidate.name.name, 0)).toBe('claimed');
    await rowOf({ flow, report }, candidate);
    expect(acting.steps).toEqual(['enter orders', 'leave orders']);
    expect(report.rows).toEqual([{ task: candidate.name.name, outcome: 'skipped', skipReason: 'claimed' }]);
  });

  it('reads back only a forced task: an unforced one gets its row, released, with no verdict', async () => {
    const registry = new ClaimRegistry();
    const acting = new RecordingActing({
      registry,
      unforced: () => ({ outcome: 'skipped', skipReason: 'no-longer-matches' }),
    });
    const { flow, report } = flowOf(acting, registry);
    const candidate = candidateOf('t1', queue());
    await rowOf({ flow, report }, candidate);
    expect(acting.steps).not.toContain('verify t1');
    expect(report.rows).toEqual([
      { task: candidate.name.name, outcome: 'skipped', skipReason: 'no-longer-matches' },
    ]);
    expect(registry.tryClaim(candidate.name.name, 0)).toBe('claimed');
  });

  it('with verification off, a forced task has no verdict and is not read back', async () => {
    const registry = new ClaimRegistry();
    const acting = new RecordingActing({ registry });
    const row = await rowOf(flowOf(acting, registry, { verifyMs: 0 }), candidateOf('t1', queue()));
    expect(row).toEqual({ task: row.task, outcome: 'dispatched' });
    expect(acting.steps).not.toContain('verify t1');
  });

  it("gives the mode's answer when no place or no slot is left, and acts on nothing", async () => {
    const registry = new ClaimRegistry();
    const noPlace = new RecordingActing({ registry, noPlace: true });
    const first = flowOf(noPlace, registry);
    const row = await rowOf(first, candidateOf('t1', queue()));
    expect(row).toMatchObject({ outcome: 'deferred' });
    expect(noPlace.steps).toEqual(['enter orders', 'no-slot t1']);

    const noSlot = new RecordingActing({ registry, noSlot: true });
    const second = flowOf(noSlot, registry);
    const candidate = candidateOf('t2', queue());
    expect((await rowOf(second, candidate)).outcome).toBe('deferred');
    expect(noSlot.steps).toEqual(['enter orders', 'reserve orders', 'no-slot t2', 'leave orders']);
    // The claim made before the slot ran out was given back.
    expect(registry.tryClaim(candidate.name.name, 0)).toBe('claimed');
  });

  it('trips the breaker on verdicts, and then holds the tasks not yet started without acting on them', async () => {
    const registry = new ClaimRegistry();
    const acting = new RecordingActing({ registry, verdict: () => 'failed-again' });
    const { flow, report, hold } = flowOf(acting, registry);
    const q = queue();
    for (const id of ['t1', 't2']) await rowOf({ flow, report }, candidateOf(id, q));
    expect(hold.isHeld).toBe(true);
    const held = await rowOf({ flow, report }, candidateOf('t3', q));
    expect(held).toEqual({ task: held.task, outcome: 'held' });
    expect(acting.steps).not.toContain('act t3');
    expect(report.counts).toMatchObject({ dispatched: 2, held: 1, verdicts: { failedAgain: 2 } });
  });

  it('lets the listed body of a task it does not act on go (held)', async () => {
    const registry = new ClaimRegistry();
    const acting = new RecordingActing({ registry });
    const { flow, report, hold } = flowOf(acting, registry);
    hold.hold();
    const chunk = Buffer.alloc(64);
    const body = new BodyBytes(chunk.subarray(0, 8), { chunk, held: 1 });
    const listed: Task = { name: `${ORDERS}/tasks/t1`, httpRequest: { url: 'https://w.example/', body } };
    const candidate = { ...candidateOf('t1', queue()), full: new Handover(listed) };
    expect(await rowOf({ flow, report }, candidate)).toMatchObject({ outcome: 'held' });
    expect(() => body.json).toThrow(/read after it was let go/);
  });

  it('an act that throws leaves the claim in doubt for a while, never held for good, and the error surfaces', async () => {
    const registry = new ClaimRegistry();
    const acting = new RecordingActing({ registry });
    acting.act = (_candidate, _slotMs, _policy, done) => done.actFailed(new Error('unexpected'));
    const { flow, report } = flowOf(acting, registry);
    const candidate = candidateOf('t1', queue());
    await flow.start(candidate, false);
    // The run ends with the error: the task's row is not recorded as an outcome of its own.
    await expect(flow.drain()).rejects.toThrow('unexpected');
    expect(report.counts.matched).toBe(0);
    expect(report.rows).toEqual([]);
    expect(registry.tryClaim(candidate.name.name, Date.now())).toBe('in-doubt');
    expect(registry.tryClaim(candidate.name.name, Date.now() + 3_600_000)).toBe('claimed');
  });

  it('a read-back that fails gives its place up, and the error surfaces', async () => {
    const registry = new ClaimRegistry();
    const acting = new RecordingActing({ registry });
    let left = 0;
    acting.enter = () => Promise.resolve(() => void left++);
    acting.act = (candidate, _slotMs, _policy, done) => {
      const acted = acting.acted(candidate);
      done.acted(
        acted.forced
          ? { ...acted, verify: (_windowMs, listener) => listener.failed(new Error('lost')) }
          : acted,
      );
    };
    const { flow, report } = flowOf(acting, registry);
    await flow.start(candidateOf('t1', queue()), false);
    await expect(flow.drain()).rejects.toThrow('lost');
    expect(left).toBe(1);
    expect(report.counts.matched).toBe(0);
  });

  it('uses its place under the task cap only when the task was acted on or may have been', async () => {
    const cases: [Unforced | undefined, boolean][] = [
      [undefined, true],
      [{ outcome: 'deferred', why: 'lost-answer' }, true],
      [{ outcome: 'deferred', unsettled: true }, true],
      [{ outcome: 'failed', error: 'FAILED_PRECONDITION' }, true],
      [{ outcome: 'gone' }, false],
      [{ outcome: 'skipped', skipReason: 'in-flight' }, false],
      [{ outcome: 'deferred', why: 'out-of-time' }, false],
    ];
    for (const [unforced, used] of cases) {
      const registry = new ClaimRegistry();
      const acting = new RecordingActing({ registry, unforced: () => unforced });
      const { flow } = flowOf(acting, registry);
      const admission = new Admission(1);
      await flow.start(candidateOf('t1', queue()), false, await admission.enter());
      await flow.drain();
      expect(await admission.enter(), unforced?.outcome ?? 'dispatched').toEqual(
        used ? undefined : expect.anything(),
      );
    }
  });

  it('gives its place under the task cap back when it is not acted on: held, or no slot', async () => {
    const registry = new ClaimRegistry();
    const first = flowOf(new RecordingActing({ registry }), registry);
    first.hold.hold();
    const held = new Admission(1);
    await first.flow.start(candidateOf('t1', queue()), false, await held.enter());
    await first.flow.drain();
    expect(await held.enter()).toBeDefined();

    const second = flowOf(new RecordingActing({ registry, noSlot: true }), registry);
    const noSlot = new Admission(1);
    await second.flow.start(candidateOf('t2', queue()), false, await noSlot.enter());
    await second.flow.drain();
    expect(await noSlot.enter()).toBeDefined();

    // Queued to the control queue instead, it is acted on: the control queue forces it.
    const toControl = new RecordingActing({ registry, noSlot: true });
    toControl.noSlot = () => Promise.resolve({ outcome: 'queued' });
    const third = flowOf(toControl, registry);
    const queued = new Admission(1);
    await third.flow.start(candidateOf('t3', queue()), false, await queued.enter());
    await third.flow.drain();
    expect(await queued.enter()).toBeUndefined();
  });

  it('marks a canary row, and reads a canary back', async () => {
    const registry = new ClaimRegistry();
    const acting = new RecordingActing({ registry });
    const { flow, report } = flowOf(acting, registry);
    const row = await (await flow.start(candidateOf('t1', queue()), true)).row;
    expect(row).toMatchObject({ outcome: 'dispatched', canary: true, verdict: 'succeeded' });
    expect(report.rows).toEqual([row]);
  });
});
