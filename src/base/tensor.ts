// Float64 tensors, shared by every stage that holds values (the catalog's interpreter rules, the
// interpreter, safetensors I/O, runtimes, tests): the type, construction, row-major index math,
// broadcasting and dtype coercion, plus the comparison helpers (allclose, maxRelError) tests use.
// A base module: it imports only the dtype list.
import type { DType } from '../graph/types.js';

/** A float64 tensor in row-major order; i32 and bool values are stored as exact integers. */
export interface Tensor64 {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly data: Float64Array;
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Row-major strides in elements; a size-1 or size-0 axis still gets its ordinary stride. */
export function stridesOf(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length).fill(1);
  for (let i = shape.length - 2; i >= 0; i--) s[i] = (s[i + 1] ?? 1) * (shape[i + 1] ?? 1);
  return s;
}

/**
 * Stores a value as the dtype holds it: i32 and i8 truncate toward zero and saturate (NaN -> 0), bool
 * is `x != 0` as 0/1. f16 and bf16 are NOT rounded: the interpreter is the exact reference, so
 * half-precision values are held in float64 at full precision.
 */
export function coerce(dtype: DType, v: number): number {
  switch (dtype) {
    case 'f32':
    case 'f16':
    case 'bf16':
      return v;
    case 'i32':
      if (Number.isNaN(v)) return 0;
      if (v >= 2147483647) return 2147483647;
      if (v <= -2147483648) return -2147483648;
      return Math.trunc(v) + 0; // + 0 turns -0 into 0
    case 'i8':
      if (Number.isNaN(v)) return 0;
      if (v >= 127) return 127;
      if (v <= -128) return -128;
      return Math.trunc(v) + 0;
    case 'bool':
      return v !== 0 ? 1 : 0;
  }
}

/** A tensor from row-major values, coerced to the dtype; checks the element count. */
export function makeTensor(dtype: DType, shape: readonly number[], values?: ArrayLike<number>): Tensor64 {
  const n = numel(shape);
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new RangeError(`bad tensor shape [${shape.join(',')}]`);
  }
  const data = new Float64Array(n);
  if (values !== undefined) {
    if (values.length !== n) {
      throw new RangeError(`tensor of shape [${shape.join(',')}] needs ${n} values, got ${values.length}`);
    }
    for (let i = 0; i < n; i++) data[i] = coerce(dtype, values[i] ?? 0);
  }
  return { dtype, shape: [...shape], data };
}

export function scalarTensor(dtype: DType, value: number): Tensor64 {
  return makeTensor(dtype, [], [value]);
}

/** Flat row-major offset -> multi-index. */
export function unravel(flat: number, shape: readonly number[]): number[] {
  const idx = new Array<number>(shape.length).fill(0);
  let r = flat;
  for (let i = shape.length - 1; i >= 0; i--) {
    const d = shape[i] ?? 1;
    idx[i] = d === 0 ? 0 : r % d;
    r = d === 0 ? 0 : Math.floor(r / d);
  }
  return idx;
}

/** Multi-index -> flat row-major offset. */
export function ravel(idx: readonly number[], shape: readonly number[]): number {
  let off = 0;
  for (let i = 0; i < shape.length; i++) off = off * (shape[i] ?? 1) + (idx[i] ?? 0);
  return off;
}

/** The element at a multi-index (no bounds check beyond the array's). */
export function getAt(t: Tensor64, idx: readonly number[]): number {
  return t.data[ravel(idx, t.shape)] ?? NaN;
}

/** numpy broadcasting of concrete shapes; undefined when they do not broadcast. */
export function broadcastShapes(...shapes: (readonly number[])[]): number[] | undefined {
  const rank = Math.max(0, ...shapes.map((s) => s.length));
  const out = new Array<number>(rank).fill(1);
  for (const s of shapes) {
    const off = rank - s.length;
    for (let i = 0; i < s.length; i++) {
      const d = s[i] ?? 1;
      const o = out[off + i] ?? 1;
      if (d === o || d === 1) continue;
      if (o === 1) out[off + i] = d;
      else return undefined;
    }
  }
  return out;
}

/**
 * For each flat position of `outShape`, the flat offset into a tensor of shape `inShape`
 * broadcast to it (size-1 axes and missing leading axes repeat).
 */
export function broadcastOffsets(inShape: readonly number[], outShape: readonly number[]): number[] {
  const inStrides = stridesOf(inShape);
  const lead = outShape.length - inShape.length;
  return walkOffsets(
    outShape,
    outShape.map((_, a) => (a < lead || (inShape[a - lead] ?? 1) === 1 ? 0 : (inStrides[a - lead] ?? 0))),
  );
}

/**
 * `base + sum(idx[a] * strides[a])` for every multi-index of `shape` in row-major order (flat
 * position f gets unravel(f, shape)): the offsets of a strided view, computed while the index
 * steps instead of unravelling every position (the float64 interpreter's movement ops).
 */
export function walkOffsets(shape: readonly number[], strides: readonly number[], base = 0): number[] {
  const n = numel(shape);
  const offsets = new Array<number>(n);
  const rank = shape.length;
  const idx = new Array<number>(rank).fill(0);
  let off = base;
  for (let f = 0; f < n; f++) {
    offsets[f] = off;
    for (let a = rank - 1; a >= 0; a--) {
      const at = idx[a] ?? 0;
      const stride = strides[a] ?? 0;
      if (at + 1 < (shape[a] ?? 1)) {
        idx[a] = at + 1;
        off += stride;
        break;
      }
      off -= at * stride;
      idx[a] = 0;
    }
  }
  return offsets;
}

/** Largest |a-b| / max(|b|, floor) over elements (b is the reference); Infinity on shape mismatch or NaN disagreement. */
export function maxRelError(a: Tensor64, b: Tensor64, floor = 1e-12): number {
  if (a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i])) return Infinity;
  let worst = 0;
  for (let i = 0; i < a.data.length; i++) {
    const x = a.data[i] ?? NaN;
    const y = b.data[i] ?? NaN;
    if (x === y) continue; // also equal infinities
    if (Number.isNaN(x) || Number.isNaN(y) || !Number.isFinite(x) || !Number.isFinite(y)) return Infinity;
    worst = Math.max(worst, Math.abs(x - y) / Math.max(Math.abs(y), floor));
  }
  return worst;
}

/** numpy.allclose: |a - b| <= atol + rtol * |b| everywhere, same shape; NaN equals NaN only if `equalNan`. */
export function allclose(
  a: Tensor64,
  b: Tensor64,
  opts: { readonly rtol?: number; readonly atol?: number; readonly equalNan?: boolean } = {},
): boolean {
  const rtol = opts.rtol ?? 1e-5;
  const atol = opts.atol ?? 1e-8;
  if (a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i])) return false;
  for (let i = 0; i < a.data.length; i++) {
    const x = a.data[i] ?? NaN;
    const y = b.data[i] ?? NaN;
    if (x === y) continue;
    if (Number.isNaN(x) || Number.isNaN(y)) {
      if (opts.equalNan === true && Number.isNaN(x) && Number.isNaN(y)) continue;
      return false;
    }
    if (!(Math.abs(x - y) <= atol + rtol * Math.abs(y))) return false;
  }
  return true;
}

/** Nested arrays for readable test assertions: toNested(t) of a [2,2] tensor is [[a,b],[c,d]]. */
export function toNested(t: Tensor64): unknown {
  const rec = (axis: number, off: number): unknown => {
    if (axis === t.shape.length) return t.data[off];
    const d = t.shape[axis] ?? 0;
    const stride = numel(t.shape.slice(axis + 1));
    return Array.from({ length: d }, (_, i) => rec(axis + 1, off + i * stride));
  };
  return rec(0, 0);
}
