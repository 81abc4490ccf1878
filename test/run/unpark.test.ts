import { describe, expect, it } from 'vitest';
import type { Task } from '../../shared/cloud-tasks/client.js';
import { parkingQueueOf, parseQueueName, parseTaskName } from '../../shared/cloud-tasks/names.js';
import { Handover } from '../../shared/run/plan.js';
import { PARK_HEADER, parkedCopyOf, parkedNameOf } from '../../shared/run/park-rules.js';
import { MAX_PARK_COUNT, parkedListing } from '../../shared/run/unpark.js';
import { candidateOf, queueRunOf, taskName } from './stage-fixtures.js';

const home = queueRunOf();
const parking = parkingQueueOf(home.queue);

function parked(possiblyDone: boolean, parkCount?: number): Task {
  const original: Task = {
    name: taskName('t1').name,
    httpRequest: { url: 'https://work.example/t1', headers: {} },
    dispatchCount: 3,
    lastAttempt: {
      dispatchTime: '2026-12-05T10:00:00Z',
      responseTime: '2026-12-05T10:00:01Z',
      responseStatus: { code: 14 },
    },
  };
  const name = parkedNameOf(parseTaskName(original.name)!, parking);
  const copy = parkedCopyOf(original, name, parseQueueName(home.queue.name)!, Date.now(), possiblyDone);
  if (parkCount !== undefined) copy.httpRequest!.headers![PARK_HEADER.parkCount] = String(parkCount);
  return copy;
}

describe('parkedListing', () => {
  it('keeps a task parked possibly done, or parked more than MAX_PARK_COUNT times', () => {
    const listing = parkedListing({ possiblyDone: false });
    expect(listing.skipReasonOf(parked(false))).toBeUndefined();
    expect(listing.skipReasonOf(parked(true))).toBe('possibly-done');
    expect(parkedListing({ possiblyDone: true }).skipReasonOf(parked(true))).toBeUndefined();
    expect(listing.skipReasonOf(parked(false, MAX_PARK_COUNT))).toBeUndefined();
    expect(listing.skipReasonOf(parked(false, MAX_PARK_COUNT + 1))).toBe('park-limit');
  });

  it('notes, for a dry run, a home queue that overrides the target URL and a task parked possibly done', () => {
    const listing = parkedListing({ possiblyDone: true });
    const plain = { ...candidateOf('p', home), full: new Handover(parked(false)) };
    expect(listing.notesOf(plain)).toEqual([]);
    const overridden = {
      ...candidateOf('p', { ...home, overridesUrl: true }),
      full: new Handover(parked(true)),
    };
    expect(listing.notesOf(overridden)).toEqual([
      expect.stringContaining('overrides the target URL'),
      expect.stringContaining('may have been done'),
    ]);
  });
});
