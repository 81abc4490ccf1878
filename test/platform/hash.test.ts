import { describe, expect, it } from 'vitest';
import { sha256Hex } from '../../shared/platform/hash.js';

describe('sha256Hex', () => {
  it('gives the standard digest (FIPS 180-2 test vector)', () => {
    expect(sha256Hex('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });

  it('hashes the text as UTF-8', () => {
    // "é" is c3 a9 in UTF-8; its Latin-1 byte e9 would give de2e331d….
    expect(sha256Hex('é')).toBe('4a99557e4033c3539de2eb65472017cad5f9557f7a0625a09f1c3f6e2ba69c4c');
  });
});
