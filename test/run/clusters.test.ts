import { describe, expect, it } from 'vitest';
import type { Task } from '../../shared/cloud-tasks/client.js';
import { ClusterCollector, failureSignatureOf, maskedTargetOf } from '../../shared/run/clusters.js';

const Q = 'projects/p/locations/l/queues/q';

function failed(id: string, url: string, code: number, message: string, extra: Partial<Task> = {}): Task {
  return {
    name: `${Q}/tasks/${id}`,
    httpRequest: { url },
    dispatchCount: 3,
    lastAttempt: {
      dispatchTime: '2026-12-05T10:00:00Z',
      responseTime: '2026-12-05T10:00:01Z',
      responseStatus: { code, message },
    },
    ...extra,
  };
}

const unavailable = (id: string, url: string, extra: Partial<Task> = {}) =>
  failed(id, url, 14, 'UNAVAILABLE(14): HTTP status code 503', extra);

describe('a failure signature', () => {
  it('is the canonical code with the HTTP status, and host and masked path', () => {
    const signature = failureSignatureOf(unavailable('a', 'https://orders.example.com/orders/1001'));
    expect(signature).toMatchObject({ status: 'UNAVAILABLE 503', target: 'orders.example.com/orders/{id}' });
    expect(signature?.id).toMatch(/^[0-9a-f]{8}$/);
  });

  it('has no HTTP status when the attempt had none', () => {
    const task = failed('a', 'https://x.example/a', 4, 'DEADLINE_EXCEEDED(4): deadline passed');
    expect(failureSignatureOf(task)?.status).toBe('DEADLINE_EXCEEDED');
  });

  it.each([
    ['https://h.example/api/v1/orders/1001', 'h.example/api/{id}/orders/{id}'],
    [
      'https://h.example/payments/4001/capture/tok_3Fq9Xq?sig=secret#frag',
      'h.example/payments/{id}/capture/{id}',
    ],
    ['https://h.example/users/aB3dE9fG/profile', 'h.example/users/{id}/profile'],
    ['https://h.example/hooks/sWoRdFiSh', 'h.example/hooks/{id}'],
    ['https://h.example/hooks/averyveryverylongword', 'h.example/hooks/{id}'],
    ['https://h.example/Orders/check-out/', 'h.example/Orders/check-out/'],
    ['https://user:hunter2@h.example:8443/a?token=t', 'h.example:8443/a'],
    ['https://h.example', 'h.example/'],
    ['https://h.example/a%2Fb/c', 'h.example/{id}/c'],
  ])('masks %s as %s', (url, target) => {
    expect(maskedTargetOf({ name: `${Q}/tasks/t`, httpRequest: { url } })).toBe(target);
  });

  it('never holds a token, a query, a password, a body or a header value', () => {
    const task = unavailable('t', 'https://user:hunter2@h.example/pay/tok_live_51Hx?api_key=sk_live_9', {
      httpRequest: {
        url: 'https://user:hunter2@h.example/pay/tok_live_51Hx?api_key=sk_live_9',
        headers: { Authorization: 'Bearer secret-header' },
        body: Buffer.from('{"card":"4242"}').toString('base64'),
      },
    });
    const text = JSON.stringify(failureSignatureOf(task));
    for (const secret of ['hunter2', 'tok_live', 'sk_live', 'api_key', 'secret-header', '4242', 'card']) {
      expect(text).not.toContain(secret);
    }
  });

  it('masks App Engine targets by their relative URI', () => {
    expect(
      maskedTargetOf({ name: `${Q}/tasks/t`, appEngineHttpRequest: { relativeUri: '/work/77?x=1' } }),
    ).toBe('app-engine/work/{id}');
  });

  it('belongs only to a task whose last attempt failed', () => {
    const base = unavailable('a', 'https://h.example/a');
    const { lastAttempt: _, ...never } = base;
    expect(failureSignatureOf(never)).toBeUndefined();
    expect(
      failureSignatureOf({ ...base, lastAttempt: { dispatchTime: '2026-12-05T10:00:00Z' } }),
    ).toBeUndefined();
    expect(
      failureSignatureOf({ ...base, lastAttempt: { ...base.lastAttempt, responseStatus: { code: 0 } } }),
    ).toBeUndefined();
  });

  it('has an id of the signature alone: not the task, its attempts or its times', () => {
    const a = failureSignatureOf(unavailable('a', 'https://h.example/orders/1'));
    const b = failureSignatureOf(
      unavailable('b', 'https://h.example/orders/2?x=1', {
        dispatchCount: 9,
        lastAttempt: {
          dispatchTime: '2026-12-01T00:00:00Z',
          responseTime: '2026-12-01T00:00:01Z',
          responseStatus: { code: 14, message: 'UNAVAILABLE(14): HTTP status code 503' },
        },
      }),
    );
    expect(b?.id).toBe(a?.id);
    expect(failureSignatureOf(unavailable('c', 'https://h.example/refunds/1'))?.id).not.toBe(a?.id);
    expect(
      failureSignatureOf(failed('d', 'https://h.example/orders/1', 13, 'INTERNAL(13): HTTP status code 500'))
        ?.id,
    ).not.toBe(a?.id);
  });
});

describe('ClusterCollector', () => {
  it('counts each cluster, its failure times, queues, a sample and the attempt range; largest first', () => {
    const collector = new ClusterCollector();
    collector.add(unavailable('a', 'https://h.example/orders/1', { dispatchCount: 2 }), Q);
    collector.add(
      unavailable('b', 'https://h.example/orders/2', {
        dispatchCount: 7,
        lastAttempt: {
          dispatchTime: '2026-12-05T09:00:00Z',
          responseTime: '2026-12-05T09:00:01Z',
          responseStatus: { code: 14, message: 'UNAVAILABLE(14): HTTP status code 503' },
        },
      }),
      `${Q}2`,
    );
    collector.add(failed('c', 'https://h.example/pay/9', 3, 'INVALID_ARGUMENT(3): HTTP status code 400'), Q);
    collector.add({ name: `${Q}/tasks/never` }, Q);
    expect(collector.size).toBe(2);
    const [orders, pay] = collector.largest();
    expect(orders).toMatchObject({
      target: 'h.example/orders/{id}',
      count: 2,
      oldestFailure: '2026-12-05T09:00:01.000Z',
      newestFailure: '2026-12-05T10:00:01.000Z',
      queues: [Q, `${Q}2`],
      sampleTask: `${Q}/tasks/a`,
      attempts: { min: 2, max: 7 },
    });
    expect(pay).toMatchObject({ status: 'INVALID_ARGUMENT 400', count: 1 });
    expect(collector.largest(1)).toHaveLength(1);
  });
});
