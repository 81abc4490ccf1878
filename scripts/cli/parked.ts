/**
 * `cloud-tasks-rerun parked`: the tasks parked from each named home queue, read from its parking queue in
 * the FULL view (the record is in headers). Only the record is shown: never a body or another header's
 * value (docs/parking.md "Seeing them").
 */
import { toCloudTasksError, type CloudTasksClient, type Task } from '../../shared/cloud-tasks/client.js';
import { parkingQueueOf, type QueueName } from '../../shared/cloud-tasks/names.js';
import { parkedRecordOf, TASK_RETENTION_MS } from '../../shared/run/park-rules.js';
import { headerOf, ORIGINAL_TASK_HEADER } from '../../shared/run/copy.js';
import { EXPIRY_WARNING_MS } from '../../shared/run/park.js';

/** One parked task, as shown. */
export interface ParkedView {
  readonly task: string;
  readonly originalTask: string | undefined;
  readonly parkedAt: string | undefined;
  readonly attempts: number | undefined;
  readonly lastStatus: string | undefined;
  readonly parkCount: number;
  readonly possiblyDone: boolean;
  /** When Cloud Tasks deletes the parked copy: 31 days after it was created. */
  readonly deletedBy: string | undefined;
  /** Within EXPIRY_WARNING_MS of that. */
  readonly deletedSoon: boolean;
}

/** One home queue's parked tasks, or why they could not be read. */
export interface ParkedQueueView {
  readonly queue: string;
  readonly parkingQueue: string;
  readonly tasks: ParkedView[];
  readonly error?: string;
}

export async function readParked(
  tasks: CloudTasksClient,
  homes: readonly QueueName[],
  nowMs: number,
): Promise<ParkedQueueView[]> {
  const views: ParkedQueueView[] = [];
  for (const home of homes) {
    const parking = parkingQueueOf(home);
    const view = { queue: home.name, parkingQueue: parking.name, tasks: [] as ParkedView[] };
    try {
      for await (const page of tasks.listTasks(parking, 'FULL')) {
        for (const task of page) view.tasks.push(parkedViewOf(task, nowMs));
      }
      views.push(view);
    } catch (error) {
      const failure = toCloudTasksError(error);
      const message =
        failure.status === 'NOT_FOUND'
          ? `no parking queue ${parking.name} (deploy.sh --park creates it)`
          : failure.message;
      views.push({ ...view, error: message });
    }
  }
  return views;
}

function parkedViewOf(task: Task, nowMs: number): ParkedView {
  const record = parkedRecordOf(task);
  const { recorded } = record;
  const status = recorded.lastAttempt?.responseStatus;
  const createdMs = Date.parse(task.createTime ?? '');
  const deletedByMs = Number.isNaN(createdMs) ? undefined : createdMs + TASK_RETENTION_MS;
  return {
    task: task.name,
    originalTask: headerOf(task, ORIGINAL_TASK_HEADER),
    parkedAt: record.parkedAt,
    attempts: recorded.dispatchCount,
    lastStatus: status && `${status.code ?? 0}${status.message ? ` ${status.message}` : ''}`,
    parkCount: record.parkCount,
    possiblyDone: record.possiblyDone,
    deletedBy: deletedByMs === undefined ? undefined : new Date(deletedByMs).toISOString(),
    deletedSoon: deletedByMs === undefined || deletedByMs - nowMs <= EXPIRY_WARNING_MS,
  };
}

/** The views as text: one block per home queue, one line per parked task. */
export function formatParked(views: readonly ParkedQueueView[]): string {
  const lines: string[] = [];
  for (const view of views) {
    lines.push(`${view.queue}: ${view.error ?? `${view.tasks.length} parked in ${view.parkingQueue}`}`);
    for (const task of view.tasks) {
      const flags = [
        task.possiblyDone ? 'possibly done' : undefined,
        task.deletedSoon ? 'deleted soon' : undefined,
      ].filter((flag) => flag !== undefined);
      lines.push(
        `  ${task.originalTask ?? task.task}  parked ${task.parkedAt ?? '?'}  attempts ${task.attempts ?? '?'}  last ${task.lastStatus ?? '?'}  parked ${task.parkCount}x  deleted by ${task.deletedBy ?? '?'}${flags.length > 0 ? `  [${flags.join(', ')}]` : ''}`,
      );
    }
  }
  return lines.join('\n');
}
