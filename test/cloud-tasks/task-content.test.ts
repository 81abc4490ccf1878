/**
 * A failed create's message without the task's content (docs/reports-and-logs.md "What is never written").
 */
import { describe, expect, it } from 'vitest';
import { BodyBytes } from '../../shared/cloud-tasks/body-bytes.js';
import type { NewTask } from '../../shared/cloud-tasks/client.js';
import { messageWithoutContent } from '../../shared/cloud-tasks/task-content.js';

const BODY = 'card=4111111111111111&cvv=123';
const BODY_BASE64 = Buffer.from(BODY).toString('base64');

function taskWith(body: string | BodyBytes | undefined, headers: Record<string, string> = {}): NewTask {
  return {
    name: 'projects/p/locations/l/queues/q/tasks/t',
    httpRequest: { url: 'https://a.example/', headers, ...(body && { body }) },
  };
}

describe('messageWithoutContent', () => {
  it('redacts every header value, and the words of the message found in the body, as sent or as text', () => {
    const task = taskWith(BODY_BASE64, { 'X-Api-Key': 'sk-live-abc123', Accept: 'json' });
    const message = `INVALID_ARGUMENT: header X-Api-Key="sk-live-abc123"; body "${BODY_BASE64.slice(0, 20)}…" reads ${BODY}`;
    expect(messageWithoutContent(task, message)).toBe(
      'INVALID_ARGUMENT: header X-Api-Key="[redacted]"; body "[redacted]…" reads [redacted]',
    );
  });

  it('leaves a message that quotes nothing of the task as it is, short values and field names included', () => {
    const task = taskWith(BODY_BASE64, { 'X-Flag': 'on', 'X-Api-Key': 'sk-live-abc123' });
    const message = 'INVALID_ARGUMENT: Task size too large for task.http_request.body (on)';
    expect(messageWithoutContent(task, message)).toBe(message);
    expect(messageWithoutContent(taskWith(undefined), message)).toBe(message);
  });

  it("reads a listed body's bytes while held; once freed, the header values are still redacted", () => {
    const json = Buffer.alloc(BODY_BASE64.length, BODY_BASE64);
    const held = new BodyBytes(json, { chunk: json, held: 1 });
    const message = `bad body ${BODY_BASE64} with key sk-live-abc123`;
    const task = taskWith(held, { 'X-Api-Key': 'sk-live-abc123' });
    expect(messageWithoutContent(task, message)).toBe('bad body [redacted] with key [redacted]');
    held.letGo();
    // Its memory is gone (rows are written before a body is let go): the rest is still redacted.
    expect(messageWithoutContent(task, message)).toMatch(/ with key \[redacted\]$/);
  });
});
