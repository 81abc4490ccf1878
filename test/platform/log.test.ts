import { describe, expect, it } from 'vitest';
import {
  createLogger,
  operationFirst,
  operationLast,
  REPORTED_ERROR_EVENT,
  runLogger,
  traceFields,
} from '../../shared/platform/log.js';
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

  it("drops bodies, headers and credentials one level down too, and in a run's bindings, leaving the rest", () => {
    const sink = logSink();
    const log = createLogger('info', sink.stream);
    const fields = {
      task: { name: 't', body: 'secret-body', headers: { 'X-Key': 'secret-header' } },
      request: { url: 'https://example.test', authorization: 'Bearer secret-token' },
      counts: { redriven: 1 },
      names: ['a', 'b'],
    };
    const context = { headers: { 'X-Key': 'secret-binding' }, source: 'deploy' };
    runLogger(log, 'r1', { context }).info(fields, 'x');
    const [line] = sink.lines();
    expect(line).toMatchObject({
      task: { name: 't' },
      request: { url: 'https://example.test' },
      counts: { redriven: 1 },
      names: ['a', 'b'],
      context: { source: 'deploy' },
    });
    expect(JSON.stringify(line)).not.toMatch(/secret/);
    // The caller's object is left as it was.
    expect(fields.task.body).toBe('secret-body');
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

describe('run logs in Cloud Logging', () => {
  const OPERATION = 'logging.googleapis.com/operation';

  it('puts the run operation on every line of a run and only that run, first and last marked', () => {
    const sink = logSink();
    const root = createLogger('info', sink.stream);
    const run = runLogger(root, 'run-1', { reason: 'deploy 42' });
    const other = runLogger(root, 'run-2');
    run.info({ ...operationFirst(), kind: 'sweep' }, 'rerun started');
    other.info({ ...operationFirst() }, 'rerun started');
    run.child({ queue: 'q' }).info({ task: 't' }, 'task dispatched');
    root.info('instance started');
    run.info({ ...operationLast(), counts: {} }, 'rerun finished');
    const lines = sink.lines();
    const ofRun = lines.filter((line) => line['runId'] === 'run-1');
    expect(ofRun.map((line) => line['message'])).toEqual([
      'rerun started',
      'task dispatched',
      'rerun finished',
    ]);
    expect(ofRun.map((line) => line[OPERATION])).toEqual([
      { id: 'run-1', producer: 'cloud-tasks-rerun', first: true },
      { id: 'run-1', producer: 'cloud-tasks-rerun' },
      { id: 'run-1', producer: 'cloud-tasks-rerun', last: true },
    ]);
    expect(ofRun[0]).toMatchObject({ reason: 'deploy 42', kind: 'sweep' });
    expect(lines.find((line) => line['runId'] === 'run-2')![OPERATION]).toEqual({
      id: 'run-2',
      producer: 'cloud-tasks-rerun',
      first: true,
    });
    const plain = lines.find((line) => line['message'] === 'instance started')!;
    expect(plain).not.toHaveProperty(OPERATION);
    // One key per line: the operation is not written twice.
    expect(
      sink
        .text()
        .split('\n')
        .filter((l) => l.includes('"rerun finished"'))[0]!
        .split(OPERATION),
    ).toHaveLength(2);
  });

  it('drops an operation mark on a line outside a run', () => {
    const sink = logSink();
    createLogger('info', sink.stream).info({ ...operationFirst() }, 'no run');
    expect(sink.lines()[0]).not.toHaveProperty(OPERATION);
  });

  it("gives ERROR lines Error Reporting's @type, and a stack_trace when there is an error with a stack", () => {
    const sink = logSink();
    const run = runLogger(createLogger('info', sink.stream), 'run-3');
    run.error(
      { err: new Error('Cloud Tasks unreachable') },
      'Cloud Tasks unreachable; nothing was dispatched',
    );
    run.error({ refused: ['q'] }, 'request names queues outside the allowlist; nothing called');
    run.warn({ err: new Error('not an error line') }, 'task failed');
    const [withStack, withoutStack, warning] = sink.lines();
    expect(withStack).toMatchObject({
      severity: 'ERROR',
      '@type': REPORTED_ERROR_EVENT,
      message: 'Cloud Tasks unreachable; nothing was dispatched',
      [OPERATION]: { id: 'run-3', producer: 'cloud-tasks-rerun' },
    });
    expect(withStack!['stack_trace']).toMatch(/^Error: Cloud Tasks unreachable\n\s+at /);
    expect(withoutStack).toMatchObject({ severity: 'ERROR', '@type': REPORTED_ERROR_EVENT });
    expect(withoutStack).not.toHaveProperty('stack_trace');
    expect(warning).not.toHaveProperty('@type');
    expect(warning).not.toHaveProperty('stack_trace');
    expect(REPORTED_ERROR_EVENT).toBe(
      'type.googleapis.com/google.devtools.clouderrorreporting.v1beta1.ReportedErrorEvent',
    );
  });
});
