// i8 buffers on the host side (src/runtime/convert.ts): one byte per element, padded to whole u32
// words, and the layout the WGSL helpers assume: element i is bits 8 * (i % 4) .. of word i / 4
// (little-endian), read sign-extended as extractBits(bitcast<i32>(word), (i & 3) * 8, 8) does.
import { describe, expect, it } from 'vitest';
import { checkValues, decodeValues, encodeValues, paddedBytes, storageBytes } from '../../../src/runtime/convert.js';

/** What WGSL's extractBits(bitcast<i32>(w), off, 8) gives: the byte at `off`, sign-extended. */
const extractSigned = (w: number, off: number): number => ((w >>> off) << 24) >> 24;

describe('i8 host conversions', () => {
  const values = [-128, 127, -1, 5, 0, -7, 100];
  it('stores one byte per element, padded to words (and the 16-byte minimum binding)', () => {
    expect(storageBytes('i8')).toBe(1);
    expect(paddedBytes('i8', 7)).toBe(16);
    expect(paddedBytes('i8', 21)).toBe(24);
    expect(encodeValues('i8', values).byteLength).toBe(16);
  });
  it('lays element i out where the WGSL reader looks for it, and decodes back', () => {
    const bytes = encodeValues('i8', values);
    const words = new Uint32Array(bytes);
    values.forEach((v, i) => expect(extractSigned(words[i >> 2] ?? NaN, (i & 3) * 8), `element ${i}`).toBe(v));
    expect([...decodeValues('i8', bytes, 7)]).toEqual(values);
  });
  it('refuses values that are not int8', () => {
    expect(checkValues('i8', values)).toBeUndefined();
    expect(checkValues('i8', [1, 128])).toBe('element 1 is 128, not an int8 (-128..127)');
    expect(checkValues('i8', [0.5])).toBe('element 0 is 0.5, not an int8 (-128..127)');
  });
});
