// Host-side dtype conversions of the runtime (src/runtime/convert.ts) and its temp placement
// (src/runtime/memory.ts); no GPU needed. Expected bit patterns are IEEE 754 binary16 / bfloat16
// values worked out by hand.
import { describe, expect, it } from 'vitest';
import { numberToBf16Bits, numberToF16Bits } from '../../src/io/safetensors.js';
import { bf16Bits, checkValues, decodeValues, encodeValues, f16Bits, f16FromBits, overflowOf, paddedBytes } from '../../src/runtime/convert.js';
import { assignTemps } from '../../src/runtime/memory.js';


describe('f16 and bf16 rounding', () => {
  it('rounds to nearest, ties to even, from float64', () => {
    expect(f16Bits(1)).toBe(0x3c00);
    expect(f16Bits(-2)).toBe(0xc000);
    expect(f16Bits(1 / 3)).toBe(0x3555);
    expect(f16Bits(65504)).toBe(0x7bff); // largest finite
    expect(f16Bits(65519.99)).toBe(0x7bff); // below the midpoint to 65536
    expect(f16Bits(65520)).toBe(0x7c00); // the midpoint ties to even: infinity
    expect(f16Bits(1 + 2 ** -11)).toBe(0x3c00); // tie between 1 and 1+2^-10: even (1)
    expect(f16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie between 1+2^-10 and 1+2^-9: even
    expect(f16Bits(1 + 2 ** -11 + 2 ** -30)).toBe(0x3c01); // just above the tie: no double rounding via f32
    expect(f16Bits(2 ** -24)).toBe(0x0001); // smallest subnormal
    expect(f16Bits(2 ** -25)).toBe(0x0000); // tie with 0: even
    expect(f16Bits(2 ** -14 - 2 ** -25)).toBe(0x0400); // rounds up into the smallest normal
    expect(f16Bits(-0)).toBe(0x8000);
    expect(f16Bits(Infinity)).toBe(0x7c00);
    expect(f16FromBits(f16Bits(NaN))).toBeNaN();
    expect(bf16Bits(1)).toBe(0x3f80);
    expect(bf16Bits(1 + 2 ** -8)).toBe(0x3f80); // tie: even
    expect(bf16Bits(3.4e38)).toBe(0x7f80); // past bf16's largest finite (about 3.39e38): infinity
  });

  it('rounds every kind of f32 (normal, subnormal in f16, underflow, overflow, ties) as the safetensors writer does', () => {
    // The runtime's fast path works on f32 bits; io/safetensors.ts encodes from float64 by its own
    // code, so agreeing on 200,000 f32 bit patterns (all exponents, plus the rounding ties of
    // both formats) checks one against the other.
    const words = new Uint32Array(200_000);
    let state = 77;
    for (let i = 0; i < words.length; i++) words[i] = state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    const f = new Float32Array(words.buffer);
    const ties = [1 + 2 ** -11, 1 + 3 * 2 ** -11, 2 ** -25, 3 * 2 ** -25, 2 ** -14 - 2 ** -25, 65520, 65519, 1 + 2 ** -8, 1 + 3 * 2 ** -8, 2049];
    const values = [...f, ...ties, ...ties.map((t) => -t)].filter((v) => !Number.isNaN(v));
    for (const v of values) {
      if (f16Bits(v) !== numberToF16Bits(v)) expect([v, f16Bits(v)]).toEqual([v, numberToF16Bits(v)]);
      if (bf16Bits(v) !== numberToBf16Bits(v)) expect([v, bf16Bits(v)]).toEqual([v, numberToBf16Bits(v)]);
    }
    expect(values.length).toBeGreaterThan(199_000);
  });

  it('names the first value f16 cannot hold (65520 rounds to inf), and passes infinities given as such', () => {
    expect(overflowOf('f16', [1, -65519, 65520])).toBe("element 2 is 65520, beyond f16's range (largest finite 65504): it would be stored as infinity");
    expect(overflowOf('f16', [Infinity, NaN, -65504])).toBeUndefined();
    expect(overflowOf('bf16', [1e38])).toBeUndefined();
  });

  it('encodes and decodes each dtype with buffers padded to 4 bytes, at least 16', () => {
    expect(paddedBytes('f16', 9)).toBe(20);
    expect(paddedBytes('f16', 3)).toBe(16); // at least 16: a vec4<f32> binding needs 16 B
    expect(paddedBytes('f32', 0)).toBe(16); // WebGPU has no size-0 bindings
    expect(paddedBytes('bool', 5)).toBe(20); // bool is a u32 per element
    const h = encodeValues('f16', [0.5, -1.5, 2048]);
    expect(h.byteLength).toBe(16); // the buffer's padded size
    expect(Array.from(decodeValues('f16', h, 3))).toEqual([0.5, -1.5, 2048]);
    expect(Array.from(decodeValues('bool', encodeValues('bool', [0, 1, 1]), 3))).toEqual([0, 1, 1]);
    expect(Array.from(decodeValues('i32', encodeValues('i32', [-7, 2147483647]), 2))).toEqual([-7, 2147483647]);
    // bf16 is held as an f32 rounded to bf16 precision: 1 + 2^-9 rounds to 1.
    expect(Array.from(decodeValues('bf16', encodeValues('bf16', [1 + 2 ** -9, -0.5]), 2))).toEqual([1, -0.5]);
    expect(checkValues('i32', [1, 2 ** 31])).toMatch(/element 1/);
    expect(checkValues('bool', [0, 2])).toMatch(/element 1 is 2/);
    expect(checkValues('f32', [NaN])).toBeUndefined();
  });
});

describe('liveness-based temp placement', () => {
  it('shares a slot only between temps whose live ranges do not overlap', () => {
    // a: steps 0-1, b: 1-2, c: 2-3, d: 3-4 (800 bytes). In order of first use c would take a's
    // slot and d a new one: 400 + 400 + 800 = 1600. Largest first: d gets a slot, a (no overlap
    // with d) shares it, b overlaps a and c overlaps both d and b: 800 + 400 + 100 = 1300, chosen.
    const r = assignTemps([
      { id: 0, bytes: 400, firstUse: 0, lastUse: 1 },
      { id: 1, bytes: 400, firstUse: 1, lastUse: 2 },
      { id: 2, bytes: 100, firstUse: 2, lastUse: 3 },
      { id: 3, bytes: 800, firstUse: 3, lastUse: 4 },
    ]);
    expect(r.slotOf.get(0)).toBe(r.slotOf.get(3));
    expect(new Set([r.slotOf.get(0), r.slotOf.get(1), r.slotOf.get(2)]).size).toBe(3);
    expect(r.slotBytes).toEqual([800, 400, 100]);
  });

  it('keeps the order of first use when that needs fewer bytes', () => {
    // a (0-1, 300) then b (2-3, 500) then c (2-3, 300): first use gives a's slot to c, b a new one
    // (800 bytes); largest first puts b first, then a shares b's slot, and c (overlapping b) needs
    // a new one: 500 + 300 = 800 as well, so the first order is kept on the tie.
    const r = assignTemps([
      { id: 0, bytes: 300, firstUse: 0, lastUse: 1 },
      { id: 1, bytes: 500, firstUse: 2, lastUse: 3 },
      { id: 2, bytes: 300, firstUse: 2, lastUse: 3 },
    ]);
    expect(r.slotBytes).toEqual([300, 500]);
    expect(r.slotOf.get(2)).toBe(r.slotOf.get(0));
  });

  it('random temps: no two live at once share a slot, every slot holds its temps, never below the live peak', () => {
    let seed = 7;
    const rand = (n: number): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    for (let trial = 0; trial < 50; trial++) {
      const reqs = Array.from({ length: 30 }, (_, id) => {
        const firstUse = rand(40);
        return { id, bytes: 16 * (1 + rand(64)), firstUse, lastUse: firstUse + rand(10) };
      });
      const r = assignTemps(reqs);
      for (const x of reqs) {
        expect(r.slotBytes[r.slotOf.get(x.id) ?? -1]).toBeGreaterThanOrEqual(x.bytes);
        for (const y of reqs) if (x.id < y.id && r.slotOf.get(x.id) === r.slotOf.get(y.id)) expect(x.lastUse < y.firstUse || y.lastUse < x.firstUse).toBe(true);
      }
      let peak = 0;
      for (let s = 0; s < 50; s++) peak = Math.max(peak, reqs.filter((x) => x.firstUse <= s && s <= x.lastUse).reduce((a, x) => a + x.bytes, 0));
      expect(r.slotBytes.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(peak);
    }
  });

  it('reuses buffers kept from an earlier run, best fit first', () => {
    const r = assignTemps([{ id: 5, bytes: 300, firstUse: 0, lastUse: 1 }], [1000, 320, 200]);
    expect(r.slotOf.get(5)).toBe(1);
    expect([...r.usedSlots]).toEqual([1]);
    expect(r.slotBytes).toEqual([1000, 320, 200]);
  });
});
