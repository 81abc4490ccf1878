/**
 * A local Pub/Sub publish endpoint, for `npm start`'s demo and the tests of the run's end notification:
 * `POST /v1/projects/P/topics/T:publish` only (https://cloud.google.com/pubsub/docs/reference/rest/v1/projects.topics/publish).
 * It checks the topic name and the request as Pub/Sub does (at least one and at most 1000 messages, each
 * with data or attributes, data in base64), records every message, answers `{"messageIds":[...]}`, and
 * can be told to answer 503 UNAVAILABLE or to reset the connection, in Google's error shape.
 *
 * What it does not emulate: topics as resources (any valid topic name is accepted; no NOT_FOUND),
 * subscriptions, pull and push delivery, ordering keys, schemas, message retention, authentication,
 * quotas and size limits beyond the 10 MB request body.
 */
import { readBody } from './read-body.js';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { isTopicName } from '../shared/notify/topic-name.js';
import { ApiError, invalidPayload } from './errors.js';

/** One published message as recorded: data decoded from base64. */
export interface PublishedMessage {
  readonly topic: string;
  readonly messageId: string;
  /** The message data, decoded (UTF-8). */
  readonly data: string;
  readonly attributes: Readonly<Record<string, string>>;
}

/** A fault for the next publish request: a 503 UNAVAILABLE answer, or a reset connection. */
export type PublishFault = 503 | 'reset';

/** A running publish endpoint. */
export interface PubsubServer {
  /** `http://127.0.0.1:PORT` */
  readonly url: string;
  /** `127.0.0.1:PORT`, the value for PUBSUB_EMULATOR_HOST. */
  readonly host: string;
  /** Every message accepted, in order. */
  readonly messages: readonly PublishedMessage[];
  /** How many publish requests arrived, faults included. */
  readonly requests: number;
  /** Queues faults: each one answers one later publish request, in order. */
  injectFaults(...faults: PublishFault[]): void;
  close(): Promise<void>;
}

/** Where the endpoint listens, and who hears of each message. */
export interface PubsubServerOptions {
  /** Default 0: any free port. */
  readonly port?: number;
  /** Called with each message accepted (the demo prints them). */
  readonly onMessage?: (message: PublishedMessage) => void;
}

const PUBLISH_PATH = /^\/v1\/(projects\/[^/]+\/topics\/[^/:]+):publish$/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const MAX_MESSAGES = 1000;
const MAX_BODY_BYTES = 10 * 1024 * 1024;

/** Starts the endpoint on 127.0.0.1. */
export async function startPubsubServer(options: PubsubServerOptions = {}): Promise<PubsubServer> {
  const messages: PublishedMessage[] = [];
  const faults: PublishFault[] = [];
  let requests = 0;
  let nextId = 1;

  const server = http.createServer((req, res) => {
    void readBody(req, MAX_BODY_BYTES)
      .catch(() => undefined)
      .then((raw) => {
        const match = PUBLISH_PATH.exec(new URL(req.url ?? '/', 'http://pubsub').pathname);
        if (req.method !== 'POST' || !match) {
          return send(res, new ApiError('NOT_FOUND', `No such method: ${req.method} ${req.url}`));
        }
        requests++;
        const fault = faults.shift();
        if (fault === 'reset') return req.socket.destroy();
        if (fault === 503)
          return send(res, new ApiError('UNAVAILABLE', 'The service is currently unavailable.'));
        const topic = match[1]!;
        try {
          if (!isTopicName(topic)) {
            throw invalidPayload(`Invalid resource name given (name=${topic}).`);
          }
          const accepted = parsePublish(raw).map((message) => ({
            topic,
            messageId: String(nextId++),
            ...message,
          }));
          messages.push(...accepted);
          for (const message of accepted) options.onMessage?.(message);
          send(res, { messageIds: accepted.map((message) => message.messageId) });
        } catch (error) {
          send(res, error instanceof ApiError ? error : new ApiError('INTERNAL', 'Internal error.'));
        }
      });
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    messages,
    get requests() {
      return requests;
    },
    injectFaults: (...added) => faults.push(...added),
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** The messages of a publish request body, as Pub/Sub validates them. Throws ApiError INVALID_ARGUMENT. */
function parsePublish(raw: Buffer | undefined): Omit<PublishedMessage, 'topic' | 'messageId'>[] {
  if (raw === undefined)
    throw invalidPayload(`Request payload size exceeds the limit: ${MAX_BODY_BYTES} bytes.`);
  let body: unknown;
  try {
    body = JSON.parse(raw.toString('utf8'));
  } catch {
    throw invalidPayload('Invalid JSON payload received.');
  }
  const list = (body as { messages?: unknown } | null)?.messages;
  if (!Array.isArray(list) || list.length === 0) throw invalidPayload('No messages given.', 'messages');
  if (list.length > MAX_MESSAGES) {
    throw invalidPayload(`At most ${MAX_MESSAGES} messages per publish request.`, 'messages');
  }
  return list.map((entry: unknown, index) => {
    const { data, attributes } = (entry ?? {}) as { data?: unknown; attributes?: unknown };
    if (data !== undefined && (typeof data !== 'string' || !BASE64.test(data))) {
      throw invalidPayload('Invalid value at data: not base64.', `messages[${index}].data`);
    }
    const attrs = (attributes ?? {}) as Record<string, unknown>;
    if (typeof attrs !== 'object' || Object.values(attrs).some((value) => typeof value !== 'string')) {
      throw invalidPayload('Attribute values must be strings.', `messages[${index}].attributes`);
    }
    if ((data === undefined || data === '') && Object.keys(attrs).length === 0) {
      throw invalidPayload('Some messages are empty: each needs data or attributes.', `messages[${index}]`);
    }
    return {
      data: Buffer.from(data ?? '', 'base64').toString('utf8'),
      attributes: attrs as Record<string, string>,
    };
  });
}

function send(res: http.ServerResponse, answer: ApiError | object): void {
  const status = answer instanceof ApiError ? answer.httpStatus : 200;
  const body = JSON.stringify(answer instanceof ApiError ? answer.toBody() : answer);
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=UTF-8',
    'Content-Length': Buffer.byteLength(body),
  });
  res.end(body);
}
