import { Writable } from 'node:stream';

/** A log destination for tests: collects JSON lines and parses them. */
export function logSink() {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  return {
    stream,
    /** Every line written so far, parsed. */
    lines: (): Record<string, unknown>[] =>
      chunks
        .join('')
        .split('\n')
        .filter((line) => line.trim() !== '')
        .map((line) => JSON.parse(line) as Record<string, unknown>),
    /** Everything written, as text (to assert what never appears). */
    text: () => chunks.join(''),
  };
}
