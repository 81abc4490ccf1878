/**
 * A local clock ahead of Cloud Tasks' (docs/selection.md "Two clocks"): the cutoff, taken from the local
 * clock, would be later than the attempt the run forces, and the same request sent again would force the
 * task a second time. The emulator here keeps real time 3 s behind this process's.
 */
import { describe, expect, it } from 'vitest';
import { RealClock } from '../../emulator/server.js';
import { rerunServersPerTest } from '../helpers/rerun-server.js';
import { failedTask, queueName } from '../helpers/seeds.js';
import { targetPerTest } from '../helpers/target-server.js';

const BEHIND_MS = 3_000;

/** Real time, `BEHIND_MS` behind the local clock. */
class BehindClock extends RealClock {
  override now(): number {
    return super.now() - BEHIND_MS;
  }
}

const ORDERS = queueName('orders');
const target = targetPerTest({ respond: () => 500 });
const servers = rerunServersPerTest();

describe("a local clock ahead of Cloud Tasks'", () => {
  it('forces each task once across two deliveries of one request: the run waits for Cloud Tasks to pass the cutoff', async () => {
    const s = await servers.start(
      { RERUN_QUEUES: ORDERS, RERUN_MAX_RATE: '50' },
      { clock: new BehindClock() },
    );
    const tasks = ['t0', 't1', 't2'].map((id) =>
      failedTask(ORDERS, id, target.url, { dispatchedMs: -30 * 60_000 }),
    );
    s.emulator.load({
      queues: [{ name: ORDERS, retryConfig: { minBackoff: '600s', maxBackoff: '3600s' }, tasks }],
    });

    const first = await s.post({ kind: 'fix-deployed', verify: '0s', breaker: false });
    expect(first.body.counts.dispatched).toBe(3);
    await s.emulator.settled();
    const again = await s.post({
      kind: 'fix-deployed',
      verify: '0s',
      breaker: false,
      deployedAt: first.body.cutoff,
      requestId: first.body.requestId,
    });

    const forced = new Map<string, number>();
    for (const call of s.emulator.calls.filter((c) => c.method === 'RunTask')) {
      forced.set(call.name, (forced.get(call.name) ?? 0) + 1);
    }
    expect([...forced.values()]).toEqual([1, 1, 1]);
    expect(again.body.counts.dispatched ?? 0).toBe(0);
    expect(
      s.logs.lines().some((line) => /clock is behind the cutoff/.test(String(line.message ?? line.msg))),
    ).toBe(true);
  });
});
