import { describe, expect, it } from 'vitest';
import {
  SafetensorsError,
  bf16BitsToNumber,
  f16BitsToNumber,
  numberToBf16Bits,
  numberToF16Bits,
  readSafetensors,
  writeSafetensors,
} from '../../../src/io/safetensors.js';
import type { Tensor64 } from '../../../src/base/tensor.js';
import type { DType } from '../../../src/graph/types.js';

function t(dtype: DType, shape: number[], values: number[]): Tensor64 {
  return { dtype, shape, data: Float64Array.from(values) };
}

/** A file from a raw header object and data bytes (to build malformed files by hand). */
function rawFile(header: unknown, data: Uint8Array = new Uint8Array(0), headerText?: string): Uint8Array {
  const h = new TextEncoder().encode(headerText ?? JSON.stringify(header));
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

function expectTfc301(bytes: Uint8Array, ...fragments: string[]): void {
  let err: unknown;
  try {
    readSafetensors(bytes, 'w.safetensors');
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(SafetensorsError);
  const d = (err as SafetensorsError).diagnostic;
  expect(d.code).toBe('TFC301');
  expect(d.loc.file).toBe('w.safetensors');
  expect(d.message).toContain('w.safetensors');
  for (const f of fragments) expect(d.message).toContain(f);
}

describe('safetensors round trip', () => {
  it('keeps every dtype exactly', () => {
    const tensors = new Map<string, Tensor64>([
      ['a.f32', t('f32', [2, 3], [0, -1.5, 3.25, Math.fround(1e-30), -0, 65504])],
      ['b.f16', t('f16', [4], [0.5, -2, 65504, 2 ** -24])],
      ['c.bf16', t('bf16', [3], [1, -3.140625, 2 ** 100])],
      ['d.i32', t('i32', [2, 2], [0, -2147483648, 2147483647, 7])],
      ['e.bool', t('bool', [3], [1, 0, 1])],
      ['f.i8', t('i8', [5], [-128, 127, 0, -1, 3])],
      ['scalar', t('f32', [], [42])],
      ['empty', t('f32', [0, 4], [])],
    ]);
    const back = readSafetensors(writeSafetensors(tensors), 'x.safetensors');
    expect([...back.tensors.keys()].sort()).toEqual([...tensors.keys()].sort());
    for (const [name, want] of tensors) {
      const got = back.tensors.get(name);
      expect(got?.dtype, name).toBe(want.dtype);
      expect(got?.shape, name).toEqual(want.shape);
      expect(Array.from(got?.data ?? []), name).toEqual(Array.from(want.data));
    }
  });

  it('is deterministic, with an 8-aligned header and aligned tensors', () => {
    const a = new Map<string, Tensor64>([
      ['z', t('f16', [1], [1])],
      ['a', t('f32', [1], [2])],
      ['m', t('bool', [3], [1, 0, 1])],
    ]);
    const b = new Map([...a].reverse());
    const x = writeSafetensors(a);
    expect(x).toEqual(writeSafetensors(b));
    const n = Number(new DataView(x.buffer).getBigUint64(0, true));
    expect(n % 8).toBe(0);
    const header = JSON.parse(new TextDecoder().decode(x.subarray(8, 8 + n))) as Record<string, { data_offsets: [number, number] }>;
    expect(Object.keys(header)).toEqual(['a', 'm', 'z']);
    // f32 first (4-byte aligned), then f16, then bool
    expect(header['a']?.data_offsets).toEqual([0, 4]);
    expect(header['z']?.data_offsets).toEqual([4, 6]);
    expect(header['m']?.data_offsets).toEqual([6, 9]);
  });

  it('writes floating tensors under a dtype override and keeps ints', () => {
    const bytes = writeSafetensors(new Map([['x', t('f16', [1], [0.1])], ['i', t('i32', [1], [3])]]), 'f32');
    const back = readSafetensors(bytes, 'o.safetensors');
    expect(back.tensors.get('x')?.dtype).toBe('f32');
    expect(back.tensors.get('x')?.data[0]).toBe(Math.fround(0.1));
    expect(back.tensors.get('i')?.dtype).toBe('i32');
  });

  it('writes i8 as I8 (one byte each) and refuses a value that is no int8', () => {
    const bytes = writeSafetensors(new Map([['q', t('i8', [3], [-128, 5, 127])]]));
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect(JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)))).toEqual({ q: { dtype: 'I8', shape: [3], data_offsets: [0, 3] } });
    expect([...bytes.subarray(8 + n)]).toEqual([0x80, 5, 0x7f]);
    expect(readSafetensors(bytes, 'q.safetensors').fileDTypes.get('q')).toBe('I8');
    expect(() => writeSafetensors(new Map([['q', t('i8', [2], [1, 128])]]))).toThrow('tensor "q": value 128 at flat index 1 is not an i8');
  });

  it('keeps metadata', () => {
    const bytes = writeSafetensors(new Map([['x', t('f32', [1], [1])]]), undefined, { format: 'pt' });
    expect(readSafetensors(bytes, 'm.safetensors').metadata).toEqual({ format: 'pt' });
  });

  it('reads F64 as f32 and I64 as i32 with a range check', () => {
    const data = new Uint8Array(24);
    const v = new DataView(data.buffer);
    v.setFloat64(0, 0.1, true);
    v.setBigInt64(8, -5n, true);
    v.setBigInt64(16, 7n, true);
    const f = readSafetensors(
      rawFile({ a: { dtype: 'F64', shape: [1], data_offsets: [0, 8] }, b: { dtype: 'I64', shape: [2], data_offsets: [8, 24] } }, data),
      'w.safetensors',
    );
    expect(f.tensors.get('a')).toEqual(t('f32', [1], [0.1]));
    expect(f.fileDTypes.get('a')).toBe('F64');
    expect(f.tensors.get('b')).toEqual(t('i32', [2], [-5, 7]));
    v.setBigInt64(16, 2n ** 40n, true);
    expectTfc301(
      rawFile({ a: { dtype: 'F64', shape: [1], data_offsets: [0, 8] }, b: { dtype: 'I64', shape: [2], data_offsets: [8, 24] } }, data),
      'tensor "b"',
      'does not fit in i32',
    );
  });
});

describe('f16 and bf16 conversions', () => {
  it('decodes special values exactly', () => {
    expect(f16BitsToNumber(0x3c00)).toBe(1);
    expect(f16BitsToNumber(0x7bff)).toBe(65504);
    expect(f16BitsToNumber(0x0001)).toBe(2 ** -24);
    expect(f16BitsToNumber(0x0400)).toBe(2 ** -14);
    expect(f16BitsToNumber(0x7c00)).toBe(Infinity);
    expect(f16BitsToNumber(0xfc00)).toBe(-Infinity);
    expect(f16BitsToNumber(0x7e00)).toBeNaN();
    expect(Object.is(f16BitsToNumber(0x8000), -0)).toBe(true);
    expect(bf16BitsToNumber(0x3f80)).toBe(1);
    expect(bf16BitsToNumber(0x0001)).toBe(2 ** -133);
    expect(bf16BitsToNumber(0x7f80)).toBe(Infinity);
  });

  it('round-trips every f16 bit pattern', () => {
    for (let h = 0; h < 0x10000; h++) {
      const x = f16BitsToNumber(h);
      if (Number.isNaN(x)) continue;
      expect(numberToF16Bits(x)).toBe(h);
    }
  });

  it('round-trips every bf16 bit pattern', () => {
    for (let h = 0; h < 0x10000; h++) {
      const x = bf16BitsToNumber(h);
      if (Number.isNaN(x)) continue;
      expect(numberToBf16Bits(x)).toBe(h);
    }
  });

  it('rounds f16 to nearest, ties to even', () => {
    const ulp1 = 2 ** -10; // spacing of f16 just above 1
    expect(numberToF16Bits(1 + ulp1 / 2)).toBe(0x3c00); // tie -> even (1.0)
    expect(numberToF16Bits(1 + (3 * ulp1) / 2)).toBe(0x3c02); // tie -> even (1 + 2ulp)
    expect(numberToF16Bits(1 + ulp1 / 2 + 2 ** -30)).toBe(0x3c01); // just above the tie
    expect(numberToF16Bits(65504 + 15.99)).toBe(0x7bff); // below the overflow tie
    expect(numberToF16Bits(65520)).toBe(0x7c00); // the tie rounds to even = inf
    expect(numberToF16Bits(2 ** -25)).toBe(0x0000); // half of the smallest subnormal: tie -> 0
    expect(numberToF16Bits(3 * 2 ** -25)).toBe(0x0002); // 1.5 subnormal ulps -> 2
    expect(numberToF16Bits(2 ** -14 - 2 ** -26)).toBe(0x0400); // carries into the smallest normal
    expect(numberToF16Bits(-0)).toBe(0x8000);
    expect(numberToF16Bits(-1e9)).toBe(0xfc00);
    expect(numberToF16Bits(NaN)).toBe(0x7e00);
  });

  it('rounds bf16 from float64 in one step (no double rounding through f32)', () => {
    // 1 + 2^-8 is a bf16 tie (-> 1.0). 1 + 2^-8 + 2^-30 is above the tie, but rounds to the
    // tie in f32 (2^-30 is below f32's half-ulp at 1), so rounding via f32 would give 1.0.
    expect(numberToBf16Bits(1 + 2 ** -8)).toBe(0x3f80);
    expect(numberToBf16Bits(1 + 2 ** -8 + 2 ** -30)).toBe(0x3f81);
    expect(numberToBf16Bits(1 + 3 * 2 ** -8)).toBe(0x3f82); // tie -> even
    expect(numberToBf16Bits(3.5e38)).toBe(0x7f80); // past bf16 max (~3.39e38) -> inf
    expect(numberToBf16Bits(NaN)).toBe(0x7fc0);
  });

  it('writes f16 and bf16 with that rounding', () => {
    const bytes = writeSafetensors(new Map([['h', t('f16', [2], [1 + 2 ** -11, 0.1])], ['b', t('bf16', [1], [0.1])]]));
    const back = readSafetensors(bytes, 'r.safetensors');
    expect(Array.from(back.tensors.get('h')?.data ?? [])).toEqual([1, f16BitsToNumber(0x2e66)]);
    expect(back.tensors.get('b')?.data[0]).toBe(bf16BitsToNumber(0x3dcd));
  });
});

describe('malformed safetensors files are TFC301 naming the file and tensor', () => {
  const f32x2 = new Uint8Array(8);
  it('rejects a file shorter than 8 bytes', () => expectTfc301(new Uint8Array(5), 'shorter than the 8-byte'));
  it('rejects a header length past the end', () => {
    const b = rawFile({}, new Uint8Array(0));
    new DataView(b.buffer).setBigUint64(0, 1000n, true);
    expectTfc301(b, 'runs past the end');
  });
  it('rejects a huge header length', () => {
    const b = new Uint8Array(16);
    new DataView(b.buffer).setBigUint64(0, 2n ** 63n, true);
    expectTfc301(b, 'runs past the end');
  });
  it('rejects invalid JSON', () => expectTfc301(rawFile(null, new Uint8Array(0), '{"a": '), 'not valid JSON'));
  it('rejects invalid UTF-8', () => {
    const b = rawFile(null, new Uint8Array(0), 'xx');
    b[8] = 0xff;
    expectTfc301(b, 'UTF-8');
  });
  it('rejects a header that is not an object', () => expectTfc301(rawFile([1, 2]), 'must be a JSON object'));
  it('rejects a non-object entry', () => expectTfc301(rawFile({ w: 3 }), 'tensor "w"', 'must be an object'));
  it('rejects an unknown dtype', () => expectTfc301(rawFile({ w: { dtype: 'F8_E4M3', shape: [1], data_offsets: [0, 1] } }, new Uint8Array(1)), 'tensor "w"', 'unsupported dtype "F8_E4M3"'));
  it('rejects a bad shape', () => {
    expectTfc301(rawFile({ w: { dtype: 'F32', shape: [-1], data_offsets: [0, 0] } }), 'tensor "w"', 'shape');
    expectTfc301(rawFile({ w: { dtype: 'F32', shape: [1.5], data_offsets: [0, 0] } }), 'tensor "w"', 'shape');
    expectTfc301(rawFile({ w: { dtype: 'F32', shape: 'x', data_offsets: [0, 0] } }), 'tensor "w"', 'shape');
  });
  it('rejects malformed data_offsets', () => {
    expectTfc301(rawFile({ w: { dtype: 'F32', shape: [1], data_offsets: [0] } }, f32x2), 'tensor "w"', 'data_offsets');
    expectTfc301(rawFile({ w: { dtype: 'F32', shape: [1], data_offsets: [4, 0] } }, f32x2), 'tensor "w"', 'end before they begin');
  });
  it('rejects offsets past the data', () => expectTfc301(rawFile({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, f32x2), 'tensor "w"', 'past the end'));
  it('rejects a size that does not match shape and dtype', () => expectTfc301(rawFile({ w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, f32x2), 'tensor "w"', 'needs 12 bytes'));
  it('rejects overlapping tensors', () =>
    expectTfc301(
      rawFile({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, f32x2),
      'tensor "b"',
      'overlap tensor "a"',
    ));
  it('rejects a hole in the data', () => expectTfc301(rawFile({ a: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, f32x2), 'tensor "a"', 'hole'));
  it('rejects trailing garbage', () => expectTfc301(rawFile({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, f32x2), 'trailing'));
  it('rejects a bool byte other than 0 or 1', () => expectTfc301(rawFile({ m: { dtype: 'BOOL', shape: [1], data_offsets: [0, 1] } }, new Uint8Array([2])), 'tensor "m"', 'neither 0 nor 1'));
  it('rejects non-string metadata', () => expectTfc301(rawFile({ __metadata__: { a: 1 } }), '__metadata__'));
});
