// Host-side conversions between float64 values and the bytes a GPU buffer holds, per plan dtype.
// Storage layout (the same as src/kernel/lower.ts storageType/storageBytes; a test checks they
// agree): f32 and i32 4 bytes, bool 4 bytes as u32 0/1 (WGSL bool is not host-shareable), f16 2
// bytes IEEE half, bf16 4 bytes as an f32 holding a bf16-rounded value (converted at load: WGSL
// has no bf16). Narrowing rounds to nearest, ties to even.
import type { DType } from '../graph/types.js';

/** Bytes one element occupies in a GPU buffer. */
export function storageBytes(dtype: DType): number {
  switch (dtype) {
    case 'f32':
    case 'i32':
    case 'bool':
    case 'bf16':
      return 4;
    case 'f16':
      return 2;
  }
}

/**
 * Buffer size for `elements` of `dtype`: rounded up to 4 bytes (copies and bindings need it), at
 * least 16 (a kernel slot read as `array<vec4<f32>>` needs a 16-byte binding, even when empty).
 */
export function paddedBytes(dtype: DType, elements: number): number {
  return Math.max(16, Math.ceil((elements * storageBytes(dtype)) / 4) * 4);
}

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
  return floatBits(v, 5, 10);
}
export function f16FromBits(bits: number): number {
  return fromFloatBits(bits, 5, 10);
}
/** bfloat16 bits of `v` (round to nearest even). */
export function bf16Bits(v: number): number {
  return floatBits(v, 8, 7);
}
export function bf16FromBits(bits: number): number {
  return fromFloatBits(bits, 8, 7);
}

/**
 * Encodes values for a buffer of `dtype` into a fresh ArrayBuffer of `paddedBytes` bytes. Integer
 * and bool values must already be validated (see `checkValues`); i32 truncates, bool is `v != 0`.
 */
export function encodeValues(dtype: DType, values: ArrayLike<number>): ArrayBuffer {
  const n = values.length;
  const bytes = new ArrayBuffer(paddedBytes(dtype, n));
  switch (dtype) {
    case 'f32': {
      if (values instanceof Float32Array) new Float32Array(bytes).set(values);
      else {
        const out = new Float32Array(bytes);
        for (let i = 0; i < n; i++) out[i] = values[i] ?? 0;
      }
      break;
    }
    case 'i32': {
      const out = new Int32Array(bytes);
      for (let i = 0; i < n; i++) out[i] = Math.trunc(values[i] ?? 0);
      break;
    }
    case 'bool': {
      const out = new Uint32Array(bytes);
      for (let i = 0; i < n; i++) out[i] = (values[i] ?? 0) !== 0 ? 1 : 0;
      break;
    }
    case 'f16': {
      const out = new Uint16Array(bytes);
      for (let i = 0; i < n; i++) out[i] = f16Bits(values[i] ?? 0);
      break;
    }
    case 'bf16': {
      const out = new Float32Array(bytes);
      for (let i = 0; i < n; i++) out[i] = bf16FromBits(bf16Bits(values[i] ?? 0));
      break;
    }
  }
  return bytes;
}

/** Decodes `n` elements read back from a buffer: floats as Float32Array, i32 and bool as Int32Array. */
export function decodeValues(dtype: DType, bytes: ArrayBuffer, n: number): Float32Array | Int32Array {
  switch (dtype) {
    case 'f32':
    case 'bf16':
      return new Float32Array(bytes.slice(0, n * 4));
    case 'i32':
    case 'bool':
      return new Int32Array(bytes.slice(0, n * 4));
    case 'f16': {
      const src = new Uint16Array(bytes, 0, n);
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = f16FromBits(src[i] ?? 0);
      return out;
    }
  }
}

/**
 * Why the values cannot be stored as `dtype`, or undefined when they can: i32 needs integers in
 * the int32 range, bool needs 0 or 1. Floats take any value (f16 overflow becomes infinity).
 */
export function checkValues(dtype: DType, values: ArrayLike<number>): string | undefined {
  if (dtype === 'i32') {
    for (let i = 0; i < values.length; i++) {
      const v = values[i] ?? 0;
      if (!Number.isInteger(v) || v < -2147483648 || v > 2147483647) {
        return `element ${i} is ${v}, not an int32`;
      }
    }
  } else if (dtype === 'bool') {
    for (let i = 0; i < values.length; i++) {
      const v = values[i] ?? 0;
      if (v !== 0 && v !== 1) return `element ${i} is ${v}, not a bool (0 or 1)`;
    }
  }
  return undefined;
}
