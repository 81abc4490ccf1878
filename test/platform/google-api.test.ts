import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  createGoogleApi,
  googleApiErrorOf,
  sendWithRetries,
  type GoogleApiError,
} from '../../shared/platform/google-api.js';

const RETRY_INFO = 'type.googleapis.com/google.rpc.RetryInfo';

describe('googleApiErrorOf', () => {
  it('takes RetryInfo over Retry-After', () => {
    const error = googleApiErrorOf(
      {
        response: {
          status: 503,
          headers: new Headers({ 'retry-after': '30' }),
          data: { error: { status: 'UNAVAILABLE', details: [{ '@type': RETRY_INFO, retryDelay: '1.5s' }] } },
        },
      },
      'X',
    );
    expect(error.facts).toMatchObject({ status: 'UNAVAILABLE', httpStatus: 503, retryDelayMs: 1_500 });
  });

  it('reads Retry-After in seconds when no RetryInfo is given', () => {
    const error = googleApiErrorOf(
      { response: { status: 429, headers: new Headers({ 'retry-after': '2' }) } },
      'X',
    );
    expect(error.facts.retryDelayMs).toBe(2_000);
    expect(error.message).toBe('HTTP 429: no message');
  });

  it('marks a reset as no answer', () => {
    const error = googleApiErrorOf(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }), 'X');
    expect(error.facts).toMatchObject({ answerLost: true, timedOut: false });
    expect(error.message).toBe('no answer from X (ECONNRESET)');
  });
});

describe('sendWithRetries', () => {
  it('sends again after the wait the rule gives, and stops when it gives none', async () => {
    const waits: number[] = [];
    let sent = 0;
    await expect(
      sendWithRetries(
        () => {
          sent++;
          return Promise.reject(new Error('no'));
        },
        (_error, attempt) => (attempt < 2 ? 10 * (attempt + 1) : undefined),
        (ms) => Promise.resolve(void waits.push(ms)),
      ),
    ).rejects.toThrow('no');
    expect(sent).toBe(3);
    expect(waits).toEqual([10, 20]);
  });
});

describe('createGoogleApi against a local server', () => {
  let server: http.Server | undefined;
  afterEach(() => new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve())));

  async function serve(handler: http.RequestListener): Promise<string> {
    server = http.createServer(handler);
    const listening = server;
    await new Promise<void>((resolve) => listening.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(listening.address() as AddressInfo).port}/v1/`;
  }

  it('sends JSON and reads Google error JSON with Retry-After', async () => {
    const baseUrl = await serve((req, res) => {
      res.writeHead(req.url === '/v1/things/ok:do' ? 200 : 503, {
        'Content-Type': 'application/json',
        ...(req.url !== '/v1/things/ok:do' && { 'Retry-After': '3' }),
      });
      res.end(
        JSON.stringify(
          req.url === '/v1/things/ok:do'
            ? { fine: true }
            : { error: { status: 'UNAVAILABLE', message: 'busy' } },
        ),
      );
    });
    const api = createGoogleApi({ baseUrl, service: 'Test', scope: 'x', local: true, timeoutMs: 2_000 });
    await expect(api.call({ method: 'POST', path: 'things/ok:do', data: {} })).resolves.toEqual({
      fine: true,
    });
    const failure = (await api
      .call({ method: 'GET', path: 'busy' })
      .catch((e: unknown) => e)) as GoogleApiError;
    expect(failure.message).toBe('UNAVAILABLE: busy');
    expect(failure.facts).toMatchObject({ httpStatus: 503, retryDelayMs: 3_000, answerLost: false });
  });

  it('reads answers whether ASCII or not, and sends the data as JSON text', async () => {
    const baseUrl = await serve((req, res) => {
      let body = '';
      req.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      req.on('end', () => {
        if (req.url === '/v1/empty') return void res.writeHead(200).end();
        const status = req.url === '/v1/refused' ? 400 : 200;
        res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8' });
        const echo = {
          contentType: req.headers['content-type'],
          sent: JSON.parse(body || 'null') as unknown,
        };
        res.end(
          JSON.stringify(
            status === 200 ? echo : { error: { status: 'INVALID_ARGUMENT', message: 'nom déjà pris ✓' } },
          ),
        );
      });
    });
    const api = createGoogleApi({ baseUrl, service: 'Test', scope: 'x', local: true, timeoutMs: 2_000 });
    const data = { ascii: 'plain', other: 'café ✓ 日本' };
    await expect(api.call({ method: 'POST', path: 'echo', data })).resolves.toEqual({
      contentType: 'application/json',
      sent: data,
    });
    await expect(api.call({ method: 'POST', path: 'echo', data: { only: 'ascii' } })).resolves.toEqual({
      contentType: 'application/json',
      sent: { only: 'ascii' },
    });
    const failure = (await api
      .call({ method: 'POST', path: 'refused', data: {} })
      .catch((e: unknown) => e)) as GoogleApiError;
    expect(failure.message).toBe('INVALID_ARGUMENT: nom déjà pris ✓');
    // A 2xx answer with no JSON object in it is not the API's: an answer lost.
    await expect(api.call({ method: 'GET', path: 'empty' })).rejects.toMatchObject({
      facts: { answerLost: true },
    });
  });

  it('a call ended by its AbortSignal fails with no answer', async () => {
    const baseUrl = await serve(() => {
      /* never answers */
    });
    const api = createGoogleApi({ baseUrl, service: 'Test', scope: 'x', local: true, timeoutMs: 5_000 });
    const started = Date.now();
    const failure = (await api
      .call({ method: 'GET', path: 'slow', signal: AbortSignal.timeout(100) })
      .catch((e: unknown) => e)) as GoogleApiError;
    expect(failure.facts.answerLost).toBe(true);
    expect(Date.now() - started).toBeLessThan(2_000);
    server!.closeAllConnections();
  });
});
