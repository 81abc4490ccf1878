/**
 * Reading the control queue by request: which control tasks (claims, queued work) of one request are still
 * waiting. The requestId is read from each control task's URL, which the BASIC view carries, so neither
 * bodies nor `cloudtasks.tasks.fullView` are needed.
 */
import type { CloudTasksClient } from '../cloud-tasks/client.js';
import { requestIdOfControlUrl } from './control-tasks.js';
import { parseTaskName, type QueueName, type TaskName } from '../cloud-tasks/names.js';

/** The control tasks of `requestId` still in the control queue. Throws CloudTasksError when it cannot be read. */
export async function waitingControlTasks(
  tasks: CloudTasksClient,
  controlQueue: QueueName,
  requestId: string,
): Promise<TaskName[]> {
  const waiting: TaskName[] = [];
  for await (const page of tasks.listTaskUrls(controlQueue)) {
    for (const task of page) {
      const name = parseTaskName(task.name);
      if (name && requestIdOfControlUrl(task.httpRequest?.url) === requestId) waiting.push(name);
    }
  }
  return waiting;
}
