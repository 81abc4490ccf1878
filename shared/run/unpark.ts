/**
 * Unparking (docs/parking.md "Unparking"): a redrive whose tasks are listed in each home queue's parking
 * queue and copied home. Selection reads a parked task's recorded values; the home copy's name comes from
 * the parked task alone, so two unpark requests cannot both bring it home; the copy carries the task's
 * token again. Claims, canaries, verdicts and the breaker apply as to any redrive.
 */
import type { CloudTasksClient, Task } from '../cloud-tasks/client.js';
import { parkingQueueOf } from '../cloud-tasks/names.js';
import type { CopyShape } from './copy.js';
import { homeCopyOf, homeNameOf, parkedRecordOf } from './park-rules.js';
import { parkingRefusal } from './park.js';
import type { Listing } from './plan.js';
import type { SkipReason } from './select.js';

/** A task parked more often than this stays parked, and is reported (`park-limit`). */
export const MAX_PARK_COUNT = 3;

/** The parking queue of each home queue, its tasks read as their originals were. */
export function parkedListing(options: { readonly possiblyDone: boolean }): Listing {
  return {
    queueOf: (home) => parkingQueueOf(home),
    asSelected: (task) => parkedRecordOf(task).recorded,
    skipReasonOf: (task): SkipReason | undefined => {
      const record = parkedRecordOf(task);
      if (record.parkCount > MAX_PARK_COUNT) return 'park-limit';
      if (record.possiblyDone && !options.possiblyDone) return 'possibly-done';
      return undefined;
    },
    notesOf: (candidate) => {
      const parked = candidate.full?.take();
      return [
        ...(candidate.queue.overridesUrl
          ? ['the home queue now overrides the target URL (httpTarget.uriOverride): the task goes there']
          : []),
        ...(parked && parkedRecordOf(parked).possiblyDone
          ? ['parked while its last attempt may have run: it may have been done']
          : []),
      ];
    },
  };
}

/** A parked task brought home: named from the parked task alone, its token put back. */
export function homeCopy(tasks: CloudTasksClient): CopyShape {
  return {
    nameOf: (parked, _request, home) => homeNameOf(parked, home),
    taskOf: (parked, name, dueMs) => homeCopyOf(parked, name, dueMs),
    accountOf: (parked: Task) => parkedRecordOf(parked).tokenAccount,
    asSelected: (parked) => parkedRecordOf(parked).recorded,
    // The parking queue must still be PAUSED before each unpark.
    refusal: (queue) => parkingRefusal(tasks, queue.listed),
    originalRuns: false,
  };
}
