// Malformed safetensors files (issue 9): every truncation of a valid file, random byte flips and
// random JSON headers either load or fail with SafetensorsError (TFC301) naming the file; no other
// exception escapes, and nothing half-loaded is returned. Fixed seeds; counts printed.
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { SafetensorsError, readSafetensors, writeSafetensors } from '../../src/io/safetensors.js';
import type { Tensor64 } from '../../src/base/tensor.js';

const file = 'fuzz.safetensors';
const t = (dtype: Tensor64['dtype'], shape: number[], n: number): Tensor64 => ({ dtype, shape, data: Float64Array.from({ length: n }, (_, i) => (dtype === 'bool' ? i % 2 : i - 3)) });
const valid = writeSafetensors(
  new Map([
    ['a', t('f32', [2, 3], 6)],
    ['b.weight', t('f16', [4], 4)],
    ['c', t('i32', [3], 3)],
    ['m', t('bool', [2], 2)],
    ['z', t('bf16', [2, 2], 4)],
  ]),
);
let tried = 0;
afterAll(() => console.log(`safetensors fuzz: ${tried} malformed or mutated files`));

/** Loads or fails cleanly; returns whether it loaded. */
function loadOrTfc301(bytes: Uint8Array): boolean {
  tried++;
  try {
    const f = readSafetensors(bytes, file);
    for (const [, x] of f.tensors) expect(x.data.length).toBe(x.shape.reduce((p, d) => p * d, 1));
    return true;
  } catch (e) {
    if (!(e instanceof SafetensorsError)) throw e;
    expect(e.diagnostic.code).toBe('TFC301');
    expect(e.diagnostic.message).toContain(file);
    return false;
  }
}

function withHeader(header: unknown, data = new Uint8Array(0)): Uint8Array {
  const text = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + text.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(text.length), true);
  out.set(text, 8);
  out.set(data, 8 + text.length);
  return out;
}

describe('malformed safetensors never escape as anything but TFC301', () => {
  it('loads the valid file', () => expect(loadOrTfc301(valid)).toBe(true));

  it('every truncation of a valid file is TFC301', () => {
    for (let n = 0; n < valid.length; n++) expect(loadOrTfc301(valid.subarray(0, n)), `cut at ${n}`).toBe(false);
  });

  it('random byte flips, inserts and header-length edits (1500 cases)', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.constantFrom('set', 'insert', 'delete')), { minLength: 1, maxLength: 4 }), fc.option(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })), (edits, headerLen) => {
        let bytes = Array.from(valid);
        for (const [at, v, kind] of edits) {
          const i = at % (bytes.length + 1);
          if (kind === 'set' && i < bytes.length) bytes[i] = v;
          else if (kind === 'insert') bytes.splice(i, 0, v);
          else if (kind === 'delete') bytes.splice(i, 1);
        }
        const out = Uint8Array.from(bytes);
        if (headerLen !== null && out.length >= 8) new DataView(out.buffer).setBigUint64(0, headerLen, true);
        loadOrTfc301(out);
      }),
      { seed: 9101, numRuns: 1500 },
    );
  });

  it('random headers: any JSON, and entries with odd dtypes, shapes and offsets (1500 cases)', () => {
    const num = fc.oneof(fc.integer({ min: -2, max: 64 }), fc.constantFrom(1e400, -0, 0.5, 2 ** 53, Number.MAX_SAFE_INTEGER + 2, NaN));
    const entry = fc.record({
      dtype: fc.oneof(fc.constantFrom('F32', 'F16', 'BF16', 'I32', 'I8', 'I64', 'F64', 'BOOL', 'U8', 'f32', ''), fc.string()),
      shape: fc.oneof(fc.array(num, { maxLength: 4 }), fc.jsonValue()),
      data_offsets: fc.oneof(fc.tuple(num, num), fc.array(num, { maxLength: 3 }), fc.jsonValue()),
    });
    fc.assert(
      fc.property(fc.oneof(fc.jsonValue(), fc.dictionary(fc.string({ maxLength: 6 }), entry, { maxKeys: 4 })), fc.integer({ min: 0, max: 64 }), (header, dataLen) => {
        loadOrTfc301(withHeader(header, new Uint8Array(dataLen)));
      }),
      { seed: 9102, numRuns: 1500 },
    );
  });
});
