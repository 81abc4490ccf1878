/**
 * Bytes freed at once rather than when the garbage collector finds them dead. A buffer outside the JS
 * heap is freed only when a collection finds its last view dead; read past the young generation, it waits
 * for a whole-heap collection, and over a long redrive the dead answers and bodies built up to tens of MB
 * (docs/performance.md "Memory"). Only a buffer that is the whole of its memory is freed: a view into
 * shared memory (Node's pool of small buffers, a decompressor's output) is left to the collector.
 */

/** ArrayBuffer.prototype.transfer (ES2024, Node 22): without it, all memory is left to the collector. */
const CAN_FREE = typeof ArrayBuffer.prototype.transfer === 'function';

/** Frees the memory of `bytes` now, if they own it whole: they read as empty from then on. */
export function freeNow(bytes: Uint8Array): void {
  // transfer(0) detaches the memory, which frees it, and returns an empty buffer.
  if (ownsMemory(bytes)) (bytes.buffer as ArrayBuffer).transfer(0);
}

/** Whether `bytes` were freed. */
export function isFreed(bytes: Uint8Array): boolean {
  return bytes.buffer instanceof ArrayBuffer && bytes.buffer.detached === true;
}

/** Whether `bytes` are the whole of their memory, which freeNow would free. */
export function ownsMemory(bytes: Uint8Array): boolean {
  const memory = bytes.buffer;
  return (
    CAN_FREE &&
    memory instanceof ArrayBuffer &&
    !isFreed(bytes) &&
    bytes.byteOffset === 0 &&
    bytes.byteLength === memory.byteLength
  );
}
