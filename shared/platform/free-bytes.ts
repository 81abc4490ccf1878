/**
 * Bytes freed at once rather than when the garbage collector finds them dead. A buffer outside the JS
 * heap is freed only when a collection finds its last view dead; read past the young generation, it waits
 * for a whole-heap collection, and over a long redrive the dead answers and bodies built up to tens of MB
 * (docs/performance.md "Memory"). Only a buffer that is the whole of its memory is freed: a view into a
 * shared pool (small buffers, or a decompressor's output) is left to the collector.
 */
export function freeNow(bytes: Uint8Array): void {
  const memory = bytes.buffer;
  if (!(memory instanceof ArrayBuffer) || memory.detached) return;
  if (bytes.byteOffset !== 0 || bytes.byteLength !== memory.byteLength) return;
  memory.transfer(0);
}

/** Whether `bytes` were freed (they read as empty). */
export function isFreed(bytes: Uint8Array): boolean {
  return bytes.buffer instanceof ArrayBuffer && bytes.buffer.detached;
}

/** Whether `bytes` owns the whole of its memory (freeNow would free it). */
export function ownsMemory(bytes: Uint8Array): boolean {
  const memory = bytes.buffer;
  return (
    memory instanceof ArrayBuffer &&
    !memory.detached &&
    bytes.byteOffset === 0 &&
    bytes.byteLength === memory.byteLength
  );
}
