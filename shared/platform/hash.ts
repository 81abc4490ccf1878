/**
 * The one hash the project derives names and ids with: a hex SHA-256 of a text. `crypto.hash` is one
 * call, with no Hash object per name: a redrive names a copy per task.
 */
import { hash } from 'node:crypto';

/** The hex SHA-256 of `text` (UTF-8): 64 lowercase hex digits. */
export function sha256Hex(text: string): string {
  return hash('sha256', text, 'hex');
}
