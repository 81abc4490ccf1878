/**
 * What the caller may do: the Cloud Tasks permissions it holds (for every queue, or queue by queue) and the
 * service accounts it may act as. Calls without the permission answer PERMISSION_DENIED with Cloud Tasks'
 * real message. https://cloud.google.com/tasks/docs/reference-access-control
 */
import { ApiError, errorInfo } from './errors.js';
import type { ApiMethod } from './faults.js';

/**
 * The permissions the caller holds: one list for every queue (and the project), or lists by full queue name,
 * with `'*'` for the project and the queues not named (which otherwise hold every permission).
 */
export type PermissionGrant = readonly string[] | Readonly<Record<string, readonly string[]>>;

/**
 * The permission each method needs on its queue (ListQueues, CreateQueue and GetOperation: on the project).
 */
export const METHOD_PERMISSIONS: Readonly<Record<ApiMethod, string | undefined>> = {
  CreateQueue: 'cloudtasks.queues.create',
  // Also when UpdateQueue creates the queue (the emulator asks for no create permission then; not confirmed).
  UpdateQueue: 'cloudtasks.queues.update',
  GetQueue: 'cloudtasks.queues.get',
  ListQueues: 'cloudtasks.queues.list',
  PauseQueue: 'cloudtasks.queues.pause',
  ResumeQueue: 'cloudtasks.queues.resume',
  DeleteQueue: 'cloudtasks.queues.delete',
  // Anyone may ask which permissions they hold.
  TestIamPermissions: undefined,
  CreateTask: 'cloudtasks.tasks.create',
  GetTask: 'cloudtasks.tasks.get',
  ListTasks: 'cloudtasks.tasks.list',
  DeleteTask: 'cloudtasks.tasks.delete',
  RunTask: 'cloudtasks.tasks.run',
  // The v2beta3 batchCreate page names cloudtasks.tasks.create on the queue.
  BatchCreateTasks: 'cloudtasks.tasks.create',
  // The v2beta3 batchDelete page names cloudtasks.tasks.batchDelete, which no IAM role lists and so cannot be
  // granted; the emulator asks for the delete permission the roles do hold (not confirmed).
  BatchDeleteTasks: 'cloudtasks.tasks.delete',
  // Listed in the Cloud Tasks IAM roles page (admin, editor, viewer, enqueuer); held on the project.
  GetOperation: 'cloudtasks.operations.get',
  Unknown: undefined,
};

/** The permission a FULL responseView needs besides the method's own. */
export const FULL_VIEW_PERMISSION = 'cloudtasks.tasks.fullView';

/** The permissions and service accounts the caller holds; by default everything. */
export class Iam {
  #grant: PermissionGrant | undefined;
  #actAs: ReadonlySet<string> | undefined;

  constructor(
    options: { permissions?: PermissionGrant | undefined; actAs?: readonly string[] | undefined } = {},
  ) {
    this.setPermissions(options.permissions);
    this.setActAs(options.actAs);
  }

  /**
   * Replaces the permissions held; undefined = every permission on every queue.
   * @throws Error naming `permissions` when it is not a list of strings or an object of such lists.
   */
  setPermissions(grant: PermissionGrant | undefined): void {
    if (grant !== undefined && !isGrant(grant))
      throw new Error('permissions must be a list of permission names, or an object of such lists by queue');
    this.#grant = grant;
  }

  /**
   * Replaces the service accounts the caller may act as; undefined = any.
   * @throws Error naming `actAs` when it is not a list of strings.
   */
  setActAs(accounts: readonly string[] | undefined): void {
    if (accounts !== undefined && !isStringList(accounts))
      throw new Error('actAs must be a list of service account emails');
    this.#actAs = accounts === undefined ? undefined : new Set(accounts);
  }

  /** Whether the caller holds `permission` on `queue` (a full queue name; undefined for the project). */
  holds(permission: string, queue: string | undefined): boolean {
    const grant = this.#grant;
    if (grant === undefined) return true;
    if (isList(grant)) return grant.includes(permission);
    const list = (queue === undefined ? undefined : grant[queue]) ?? grant['*'];
    return list === undefined || list.includes(permission);
  }

  /**
   * Checks that the caller holds `permission` on `queue`.
   * @throws ApiError PERMISSION_DENIED naming the permission and `resource`.
   */
  require(permission: string | undefined, resource: string, queue: string | undefined): void {
    if (permission !== undefined && !this.holds(permission, queue))
      throw permissionDenied(permission, resource);
  }

  /**
   * Checks that the caller may act as the service account (`iam.serviceAccounts.actAs`), as CreateTask demands
   * for a task carrying an OIDC or OAuth token.
   * @throws ApiError PERMISSION_DENIED naming the account.
   */
  requireActAs(serviceAccountEmail: string): void {
    if (this.#actAs !== undefined && !this.#actAs.has(serviceAccountEmail))
      throw permissionDenied('iam.serviceAccounts.actAs', serviceAccountEmail);
  }
}

/**
 * The PERMISSION_DENIED Cloud Tasks answers, with its real message (as quoted in googleapis/nodejs-tasks#249
 * and googleapis/repo-automation-bots#5598) and an ErrorInfo naming the permission.
 */
export function permissionDenied(permission: string, resource: string): ApiError {
  return new ApiError(
    'PERMISSION_DENIED',
    `The principal (user or service account) lacks IAM permission "${permission}" for the resource ` +
      `"${resource}" (or the resource may not exist).`,
    [errorInfo('IAM_PERMISSION_DENIED', { permission, resource }, 'cloudtasks.googleapis.com')],
  );
}

function isList(grant: PermissionGrant): grant is readonly string[] {
  return Array.isArray(grant);
}

function isGrant(value: unknown): value is PermissionGrant {
  if (isStringList(value)) return true;
  return typeof value === 'object' && value !== null && Object.values(value).every(isStringList);
}

function isStringList(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'string');
}
