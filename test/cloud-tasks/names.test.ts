import { describe, expect, it } from 'vitest';
import {
  isQueueAllowed,
  parseQueueName,
  parseQueuePattern,
  parseTaskName,
  taskNameIn,
  taskNameOfQueue,
} from '../../shared/cloud-tasks/names.js';

const Q = 'projects/my-proj/locations/us-central1/queues/orders';

describe('parseTaskName', () => {
  it.each([
    [`${Q}/tasks/abc_DEF-123`, true],
    [`${Q}/tasks/0123456789012345678`, true],
    [`projects/example.com:my-proj/locations/us-central1/queues/orders/tasks/t1`, true],
    [`${Q}/tasks/${'a'.repeat(500)}`, true],
    [`${Q}/tasks/${'a'.repeat(501)}`, false],
    [`${Q}/tasks/`, false],
    [`${Q}/tasks/..`, false],
    [`${Q}/tasks/a?b`, false],
    [`${Q}/tasks/a#b`, false],
    [`${Q}/tasks/a%2Fb`, false],
    [`${Q}/tasks/a b`, false],
    [`${Q}/tasks/a/b`, false],
    [`projects/my-proj/locations/us-central1/queues/../tasks/t`, false],
    [`projects/My_Proj/locations/us-central1/queues/orders/tasks/t`, false],
    [`projects/my-proj/locations/US/queues/orders/tasks/t`, false],
    [`projects/my-proj/locations/us-central1/queues/orders_x/tasks/t`, false],
    [`projects/my-proj/locations/us-central1/queues/${'q'.repeat(101)}/tasks/t`, false],
    [`projects/my-proj/locations/us-central1/topics/orders/tasks/t`, false],
  ])('%s -> %s', (name, valid) => {
    expect(parseTaskName(name) !== undefined).toBe(valid);
  });

  it('splits a valid name into its parts', () => {
    expect(parseTaskName(`${Q}/tasks/t1`)).toEqual({
      project: 'my-proj',
      location: 'us-central1',
      queue: 'orders',
      task: 't1',
      queueName: Q,
      name: `${Q}/tasks/t1`,
    });
  });
});

describe('taskNameIn', () => {
  it('builds what parseTaskName gives, in a queue or beside a task', () => {
    const queue = parseQueueName(Q)!;
    const sibling = parseTaskName(`${Q}/tasks/other`)!;
    expect(taskNameIn(queue, 'abc_DEF-1')).toEqual(parseTaskName(`${Q}/tasks/abc_DEF-1`));
    expect(taskNameIn(sibling, 'abc_DEF-1')).toEqual(parseTaskName(`${Q}/tasks/abc_DEF-1`));
  });

  it.each(['', 'a/b', '..', 'a b', 'a'.repeat(501)])('refuses the ID %j', (id) => {
    expect(() => taskNameIn(parseQueueName(Q)!, id)).toThrow(/task ID/);
  });
});

describe('taskNameOfQueue', () => {
  const queue = parseQueueName(Q)!;

  it('gives what parseTaskName gives for a task of the queue', () => {
    expect(taskNameOfQueue(queue, `${Q}/tasks/abc_DEF-1`)).toEqual(parseTaskName(`${Q}/tasks/abc_DEF-1`));
  });

  it.each([
    `${Q}-x/tasks/t1`,
    'projects/my-proj/locations/us-central1/queues/billing/tasks/t1',
    `${Q}/task/t1`,
    `${Q}/tasks/`,
    `${Q}/tasks/a/b`,
    `${Q}/tasks/a b`,
    `${Q}/tasks/${'a'.repeat(501)}`,
    Q,
  ])('refuses %s', (name) => {
    expect(taskNameOfQueue(queue, name)).toBeUndefined();
  });
});

describe('allowlist patterns', () => {
  const allowlist = [
    parseQueuePattern('projects/my-proj/locations/us-central1/queues/orders')!,
    parseQueuePattern('projects/my-proj/locations/europe-west1/queues/*')!,
  ];
  it.each([
    [Q, true],
    ['projects/my-proj/locations/us-central1/queues/billing', false],
    ['projects/my-proj/locations/europe-west1/queues/anything', true],
    ['projects/other/locations/europe-west1/queues/anything', false],
  ])('%s allowed: %s', (name, allowed) => {
    expect(isQueueAllowed(parseQueueName(name)!, allowlist)).toBe(allowed);
  });

  it.each(['projects/*/locations/*/queues/*', Q])('accepts %s', (pattern) => {
    expect(parseQueuePattern(pattern)).toBeDefined();
  });
  it.each([
    'projects/p*/locations/l/queues/q',
    'projects/my-proj/locations/us-central1/queues',
    `${Q}/tasks/t`,
  ])('refuses %s', (pattern) => {
    expect(parseQueuePattern(pattern)).toBeUndefined();
  });
});
