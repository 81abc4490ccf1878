import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startPubsubServer, type PubsubServer } from '../../emulator/pubsub-server.js';

let pubsub: PubsubServer;
beforeEach(async () => {
  pubsub = await startPubsubServer();
});
afterEach(() => pubsub.close());

const TOPIC = 'projects/p-1/topics/rerun-runs';

function publish(body: unknown, topic = TOPIC) {
  return fetch(`${pubsub.url}/v1/${topic}:publish`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
}

const base64 = (text: string) => Buffer.from(text).toString('base64');

describe('the local Pub/Sub publish endpoint', () => {
  it('records messages, decoded, and answers their IDs', async () => {
    const answer = await publish({
      messages: [
        { data: base64('{"a":1}'), attributes: { kind: 'sweep' } },
        { attributes: { only: 'attrs' } },
      ],
    });
    expect(answer.status).toBe(200);
    expect(await answer.json()).toEqual({ messageIds: ['1', '2'] });
    expect(pubsub.messages).toEqual([
      { topic: TOPIC, messageId: '1', data: '{"a":1}', attributes: { kind: 'sweep' } },
      { topic: TOPIC, messageId: '2', data: '', attributes: { only: 'attrs' } },
    ]);
  });

  it.each([
    ['no messages', { messages: [] }, TOPIC, 'messages'],
    ['an empty message', { messages: [{}] }, TOPIC, 'messages[0]'],
    ['data not base64', { messages: [{ data: 'not base64!' }] }, TOPIC, 'messages[0].data'],
    ['an attribute not a string', { messages: [{ attributes: { n: 1 } }] }, TOPIC, 'messages[0].attributes'],
    [
      'a topic starting with goog',
      { messages: [{ data: 'e30=' }] },
      'projects/p-1/topics/google-x',
      undefined,
    ],
  ])('answers 400 INVALID_ARGUMENT to %s', async (_name, body, topic, field) => {
    const answer = await publish(body, topic);
    expect(answer.status).toBe(400);
    const { error } = (await answer.json()) as { error: { status: string; details: unknown[] } };
    expect(error.status).toBe('INVALID_ARGUMENT');
    if (field) expect(JSON.stringify(error.details)).toContain(`"field":"${field}"`);
    expect(pubsub.messages).toHaveLength(0);
  });

  it('answers 404 to anything but publish', async () => {
    expect((await fetch(`${pubsub.url}/v1/${TOPIC}`)).status).toBe(404);
  });

  it('answers injected faults in order: 503 UNAVAILABLE, then a reset, then normally', async () => {
    pubsub.injectFaults(503, 'reset');
    const body = { messages: [{ data: base64('x') }] };
    const unavailable = await publish(body);
    expect(unavailable.status).toBe(503);
    expect(await unavailable.json()).toMatchObject({ error: { code: 503, status: 'UNAVAILABLE' } });
    await expect(publish(body)).rejects.toThrow();
    expect((await publish(body)).status).toBe(200);
    expect(pubsub.requests).toBe(3);
    expect(pubsub.messages).toHaveLength(1);
  });
});
