// Host-side conversions between float64 values and the bytes a GPU buffer holds, per plan dtype.
// Storage layout (the same as src/kernel/lower/lower.ts storageType/storageBytes; a test checks they
// agree): f32 and i32 4 bytes, bool 4 bytes as u32 0/1 (WGSL bool is not host-shareable), f16 2
// bytes IEEE half, bf16 4 bytes as an f32 holding a bf16-rounded value (converted at load: WGSL
// has no bf16), i8 1 byte two's complement (WGSL reads it out of u32 words, little-endian: element
// i is bits 8*(i%4).. of word i/4, which is byte i of the buffer). Narrowing rounds to nearest,
// ties to even.
import { bf16Bits, bf16FromBits, f16Bits, f16FromBits } from '../base/half.js';
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
    case 'i8':
      return 1;
  }
}

/**
 * Buffer size for `elements` of `dtype`: rounded up to 4 bytes (copies and bindings need it), at
 * least 16 (a kernel slot read as `array<vec4<f32>>` needs a 16-byte binding, even when empty).
 */
export function paddedBytes(dtype: DType, elements: number): number {
  return Math.max(16, Math.ceil((elements * storageBytes(dtype)) / 4) * 4);
}

// The bit-level conversions live in src/base/half.ts (io/check-tensors.ts rounds with them too).
export { bf16Bits, bf16FromBits, f16Bits, f16FromBits } from '../base/half.js';

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
    case 'i8': {
      const out = new Int8Array(bytes);
      for (let i = 0; i < n; i++) out[i] = Math.trunc(values[i] ?? 0);
      break;
    }
  }
  return bytes;
}

/** Decodes `n` elements read back from a buffer: floats as Float32Array, i32, i8 and bool as Int32Array. */
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
    case 'i8':
      return Int32Array.from(new Int8Array(bytes, 0, n));
  }
}

/**
 * Why a float value cannot be stored as `dtype` without becoming infinite (an f32 checkpoint
 * narrowed to an f16 model: |x| >= 65520 rounds to inf), or undefined. Infinities and NaN given
 * as such pass: they are stored as they are.
 */
export function overflowOf(dtype: DType, values: ArrayLike<number>): string | undefined {
  if (dtype !== 'f16') return undefined; // bf16 keeps f32's exponent range; f32 data is already f32
  for (let i = 0; i < values.length; i++) {
    const v = values[i] ?? 0;
    if (Math.abs(v) >= 65520 && Number.isFinite(v)) return `element ${i} is ${v}, beyond f16's range (largest finite 65504): it would be stored as infinity`;
  }
  return undefined;
}

/**
 * Why the values cannot be stored as `dtype`, or undefined when they can: i32 (i8) needs integers in
 * the int32 (int8) range, bool needs 0 or 1. Floats take any value (see overflowOf for f16's range).
 */
export function checkValues(dtype: DType, values: ArrayLike<number>): string | undefined {
  if (dtype === 'i8') {
    for (let i = 0; i < values.length; i++) {
      const v = values[i] ?? 0;
      if (!Number.isInteger(v) || v < -128 || v > 127) return `element ${i} is ${v}, not an int8 (-128..127)`;
    }
  } else if (dtype === 'i32') {
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
