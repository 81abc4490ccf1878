/**
 * `cloud-tasks-rerun parked`: the tasks parked from each named home queue, read from its parking queue in
 * the FULL view (the record is in headers). Only the record is shown: never a body or another header's
 * value (docs/parking.md "Seeing them").
 */
import { toCloudTasksError, type CloudTasksClient, type Task } from '../../shared/cloud-tasks/client.js';
import { parkingQueueOf, taskIdOf, type QueueName } from '../../shared/cloud-tasks/names.js';
import { parkedRecordOf, TASK_RETENTION_MS } from '../../shared/run/park-rules.js';
import { headerOf, ORIGINAL_TASK_HEADER } from '../../shared/run/copy.js';
import { EXPIRY_WARNING_MS } from '../../shared/run/park.js';

/** One parked task, as shown. */
export interface ParkedView {
  /** The parked copy's name: its ID is what `unpark --task-id` takes. */
  readonly task: string;
  /** The task it was parked from (the first of its copies). */
  readonly originalTask: string | undefined;
  readonly parkedAt: string | undefined;
  /** The original's attempts (its dispatch count) when it was parked. */
  readonly attempts: number | undefined;
  /** The original's last attempt's status (a google.rpc.Code and Cloud Tasks' message). */
  readonly lastStatus: { readonly code: number; readonly message?: string } | undefined;
  readonly parkCount: number;
  readonly possiblyDone: boolean;
  /** When Cloud Tasks deletes the parked copy: 31 days after it was created (parked). */
  readonly deletedBy: string | undefined;
  /** Within EXPIRY_WARNING_MS (3 days) of that, or that unknown. */
  readonly deletedSoon: boolean;
}

/** One home queue's parked tasks, or why they could not be read. */
export interface ParkedQueueView {
  readonly queue: string;
  readonly parkingQueue: string;
  /** The parking queue's state: anything but PAUSED dispatches parked tasks (and unpark refuses them). */
  readonly state?: string | undefined;
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
      const { state } = await tasks.getQueue(parking);
      for await (const page of tasks.listTasks(parking, 'FULL')) {
        for (const task of page) view.tasks.push(parkedViewOf(task, nowMs));
      }
      views.push({ ...view, state });
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
    lastStatus: status && {
      code: status.code ?? 0,
      ...(status.message !== undefined && { message: status.message }),
    },
    parkCount: record.parkCount,
    possiblyDone: record.possiblyDone,
    deletedBy: deletedByMs === undefined ? undefined : new Date(deletedByMs).toISOString(),
    // Unknown counts as soon: the safe side.
    deletedSoon: deletedByMs === undefined || deletedByMs - nowMs <= EXPIRY_WARNING_MS,
  };
}

/**
 * The views as text: one block per home queue, one line per parked task, led by the parked task's ID
 * (what `unpark --task-id` takes) and the task it was parked from.
 */
export function formatParked(views: readonly ParkedQueueView[]): string {
  const lines: string[] = [];
  for (const view of views) {
    lines.push(`${view.queue}: ${view.error ?? `${view.tasks.length} parked in ${view.parkingQueue}`}`);
    if (view.error === undefined && view.state !== 'PAUSED') {
      lines.push(
        `  warning: ${view.parkingQueue} is ${view.state ?? 'in no known state'}, not PAUSED: its tasks are dispatched, and unpark refuses them (pause it: gcloud tasks queues pause)`,
      );
    }
    for (const task of view.tasks) {
      const flags = [
        task.possiblyDone ? 'possibly done' : undefined,
        task.deletedSoon ? 'deleted soon' : undefined,
      ].filter((flag) => flag !== undefined);
      const status = task.lastStatus
        ? `${task.lastStatus.code}${task.lastStatus.message ? ` ${task.lastStatus.message}` : ''}`
        : '?';
      lines.push(
        [
          `  ${taskIdOf(task.task)}`,
          `from ${task.originalTask ? shortName(task.originalTask, view.queue) : '?'}`,
          `parked ${task.parkedAt ?? '?'} (${task.parkCount}x)`,
          `attempts ${task.attempts ?? '?'}`,
          `last ${status}`,
          `deleted by ${task.deletedBy ?? '?'}${flags.length > 0 ? `  [${flags.join(', ')}]` : ''}`,
        ].join('  '),
      );
    }
  }
  return lines.join('\n');
}

/** A task of the home queue by its ID; another queue's by its full name. */
function shortName(task: string, home: string): string {
  return task.startsWith(`${home}/tasks/`) ? taskIdOf(task) : task;
}
