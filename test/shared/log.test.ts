import { describe, expect, it } from 'vitest';
import { createLogger, traceFields } from '../../shared/log.js';
import { logSink } from '../helpers/log-sink.js';

describe('createLogger', () => {
  it('writes Cloud Logging JSON: severity, message, time; never bodies or headers', () => {
    const sink = logSink();
    const log = createLogger('info', sink.stream);
    log
      .child({ runId: 'r1' })
      .warn({ task: 't', headers: { Authorization: 'Bearer x' }, body: 'secret' }, 'task failed');
    const [line] = sink.lines();
    expect(line).toMatchObject({ severity: 'WARNING', message: 'task failed', runId: 'r1', task: 't' });
    expect(line).not.toHaveProperty('headers');
    expect(line).not.toHaveProperty('body');
    expect(Date.parse(line!.time as string)).not.toBeNaN();
  });
});

describe('traceFields', () => {
  const lookup = (headers: Record<string, string>) => (name: string) => headers[name];
  it('reads traceparent', () => {
    const fields = traceFields(
      lookup({ traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' }),
      'p-1',
    );
    expect(fields).toEqual({
      'logging.googleapis.com/trace': 'projects/p-1/traces/0af7651916cd43dd8448eb211c80319c',
      'logging.googleapis.com/spanId': 'b7ad6b7169203331',
      'logging.googleapis.com/trace_sampled': true,
    });
  });
  it('reads X-Cloud-Trace-Context', () => {
    const fields = traceFields(
      lookup({ 'x-cloud-trace-context': '105445aa7843bc8bf206b12000100000/1;o=1' }),
      'p-1',
    );
    expect(fields).toEqual({
      'logging.googleapis.com/trace': 'projects/p-1/traces/105445aa7843bc8bf206b12000100000',
      'logging.googleapis.com/spanId': '0000000000000001',
      'logging.googleapis.com/trace_sampled': true,
    });
  });
  it('is empty without a header', () => {
    expect(traceFields(lookup({}), 'p-1')).toEqual({});
  });
});
