// IEEE binary16 and bfloat16 from and to float64 numbers, rounding to nearest, ties to even.
// Shared by the loaders (io/check-tensors.ts rounds a narrowed checkpoint for the interpreter)
// and the runtime (runtime/convert.ts encodes GPU buffers); pure functions, no I/O.

function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * The bits of `v` rounded (nearest, ties to even) into a binary float with `expBits` exponent and
 * `mantBits` fraction bits; rounds directly from float64, so there is no double rounding through f32.
 */
function floatBits(v: number, expBits: number, mantBits: number): number {
  const expMask = (1 << expBits) - 1;
  const signBit = 1 << (expBits + mantBits);
  const infBits = expMask << mantBits;
  if (Number.isNaN(v)) return infBits | (1 << (mantBits - 1));
  const sign = v < 0 || Object.is(v, -0) ? signBit : 0;
  const a = Math.abs(v);
  if (a === Infinity) return sign | infBits;
  const bias = (1 << (expBits - 1)) - 1;
  const eMin = 1 - bias;
  if (a < 2 ** eMin) {
    // Subnormal: a multiple of 2^(eMin - mantBits); a carry into 2^mantBits is the smallest normal.
    return sign | roundHalfEven(a * 2 ** (mantBits - eMin));
  }
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  else if (2 ** (e + 1) <= a) e++;
  let frac = roundHalfEven((a / 2 ** e - 1) * 2 ** mantBits);
  if (frac === 2 ** mantBits) {
    frac = 0;
    e++;
  }
  if (e > bias) return sign | infBits;
  return sign | ((e + bias) << mantBits) | frac;
}

function fromFloatBits(bits: number, expBits: number, mantBits: number): number {
  const sign = bits & (1 << (expBits + mantBits)) ? -1 : 1;
  const expMask = (1 << expBits) - 1;
  const e = (bits >> mantBits) & expMask;
  const frac = bits & ((1 << mantBits) - 1);
  const bias = (1 << (expBits - 1)) - 1;
  if (e === expMask) return frac === 0 ? sign * Infinity : NaN;
  if (e === 0) return sign * frac * 2 ** (1 - bias - mantBits);
  return sign * (1 + frac / 2 ** mantBits) * 2 ** (e - bias);
}

/** IEEE binary16 bits of `v` (round to nearest even). */
export function f16Bits(v: number): number {
  return Math.fround(v) === v ? f16BitsOfF32(v) : floatBits(v, 5, 10);
}
export function f16FromBits(bits: number): number {
  return fromFloatBits(bits, 5, 10);
}
/** bfloat16 bits of `v` (round to nearest even). */
export function bf16Bits(v: number): number {
  return Math.fround(v) === v ? bf16BitsOfF32(v) : floatBits(v, 8, 7);
}
export function bf16FromBits(bits: number): number {
  return fromFloatBits(bits, 8, 7);
}

// Fast paths for values that are exact f32s (every value of an F32/F16/BF16 checkpoint): integer
// rounding on the f32 bits, ~30x faster than floatBits (GPT-2 small's 124M weights took ~80 s to
// narrow to f16 through floatBits). Rounding an exact f32 once is the same as rounding from float64.
const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

function f16BitsOfF32(v: number): number {
  f32Scratch[0] = v;
  const x = u32Scratch[0] ?? 0;
  const sign = (x >>> 16) & 0x8000;
  const e = ((x >>> 23) & 0xff) - 127 + 15; // the f16 biased exponent
  let m = x & 0x7fffff;
  if (e >= 31) return sign | 0x7c00; // finite f32 past f16's range (inf/NaN take the slow path: NaN !== NaN)
  if (e <= 0) {
    // Subnormal f16: the significand (with its hidden bit) shifted right by 14 - e, to nearest even.
    if (e < -10) return sign;
    m |= 0x800000;
    const shift = 14 - e;
    const rest = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    let r = m >>> shift;
    if (rest > half || (rest === half && (r & 1) === 1)) r++;
    return sign | r;
  }
  // A carry out of the fraction increments the exponent, and 0x7bff + 1 is infinity, as it should be.
  let r = (e << 10) | (m >>> 13);
  const rest = m & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (r & 1) === 1)) r++;
  return sign | r;
}

function bf16BitsOfF32(v: number): number {
  f32Scratch[0] = v;
  const x = u32Scratch[0] ?? 0;
  // Round the low 16 bits away, to nearest even (an f32 infinity stays one; NaN never comes here).
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}
