/**
 * A failed create's message, with none of the task's content (docs/reports-and-logs.md "What is never
 * written"): a server that refuses a task may quote what it was sent, and the message goes into the
 * task's row, its log line and the notification. Its header values, and any word of the message found in
 * its body, are replaced by `[redacted]`.
 */
import { BodyBytes } from './body-bytes.js';
import type { NewTask } from './client.js';

const REDACTED = '[redacted]';
/** Shorter header values are too common to look for in a message (`1`, `on`). */
const MIN_VALUE_LENGTH = 4;
/** A word of the message this long found in the body is taken as quoted from it. */
const MIN_WORD_LENGTH = 8;
/** What a message's words are split by: spaces, quotes, brackets, punctuation and ellipses around a value. */
const WORD_BREAKS = /[\s"'`,;()[\]{}<>…]+|\.{3}/;

/** `message` with the task's header values, and the words of it found in the task's body, redacted. */
export function messageWithoutContent(task: NewTask, message: string): string {
  const content = contentOf(task);
  for (const value of content) {
    if (value.length >= MIN_VALUE_LENGTH) message = message.replaceAll(value, REDACTED);
  }
  for (const word of new Set(message.split(WORD_BREAKS))) {
    if (word.length >= MIN_WORD_LENGTH && word !== REDACTED && content.some((c) => c.includes(word))) {
      message = message.replaceAll(word, REDACTED);
    }
  }
  return message;
}

/** The task's header values, and its body as sent (base64) and as text. */
function contentOf(task: NewTask): string[] {
  const content: string[] = [];
  for (const request of [task.httpRequest, task.appEngineHttpRequest]) {
    if (!request) continue;
    content.push(...Object.values(request.headers ?? {}));
    const base64 = bodyText(request.body);
    if (base64) content.push(base64, Buffer.from(base64, 'base64').toString('utf8'));
  }
  return content;
}

/** A body's base64 text, or undefined when there is none (or its memory was already freed). */
function bodyText(body: string | BodyBytes | undefined): string | undefined {
  return body instanceof BodyBytes ? body.textIfHeld() : body || undefined;
}
