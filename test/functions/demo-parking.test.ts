/**
 * The demo's parking walkthrough (README "Parking", scripts/start.ts): the demo world in-process, a sweep
 * parks the welcome e-mail about to be dropped, the fix ships, and an unpark brings it home once.
 */
import { afterEach, expect, it } from 'vitest';
import { startEmulator, type Emulator } from '../../emulator/server.js';
import {
  DEMO_EMAILS_PARKING_QUEUE,
  DEMO_EMAILS_QUEUE,
  DEMO_QUEUE,
  demoSeed,
  startDemoTarget,
  type DemoTarget,
} from '../../scripts/demo.js';
import { startRerunServer, type RerunServer } from '../helpers/rerun-server.js';

let target: DemoTarget;
let emulator: Emulator;
let server: RerunServer;

afterEach(async () => {
  await server.close();
  await emulator.stop();
  await target.close();
});

async function tasksOf(queue: string): Promise<{ name: string }[]> {
  const response = await fetch(`${emulator.url}/v2/${queue}/tasks`);
  return ((await response.json()) as { tasks?: { name: string }[] }).tasks ?? [];
}

it('the demo parks the e-mail at risk before the fix and brings it home after', async () => {
  target = await startDemoTarget(0);
  emulator = await startEmulator({ port: 0, seed: demoSeed(target.url, Date.now()) });
  server = await startRerunServer(
    { RERUN_QUEUES: `${DEMO_QUEUE},${DEMO_EMAILS_QUEUE}`, RERUN_PARK: 'true' },
    {},
    emulator,
    { redriveArmingDelayMs: 200 },
  );
  const swept = await server.post({ kind: 'sweep', queues: [DEMO_EMAILS_QUEUE] });
  expect(swept.status).toBe(200);
  expect(swept.body.counts.parked).toBe(1);
  expect((await tasksOf(DEMO_EMAILS_PARKING_QUEUE)).length).toBe(1);
  expect(await tasksOf(DEMO_EMAILS_QUEUE)).toEqual([]);

  await fetch(`${target.url}/fix`, { method: 'POST' });
  const unparked = await server.post({ kind: 'unpark', queues: [DEMO_EMAILS_QUEUE], verify: '5s' });
  expect(unparked.status).toBe(200);
  expect(unparked.body.counts).toMatchObject({ redriven: 1, verdicts: { succeeded: 1 } });
  expect(await tasksOf(DEMO_EMAILS_PARKING_QUEUE)).toEqual([]);
  expect(await tasksOf(DEMO_EMAILS_QUEUE)).toEqual([]);
});
