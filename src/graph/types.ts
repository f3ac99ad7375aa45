// Tensor types shared by the checker, graph IR, interpreter and backends.
import { type Dim, dimEquals, printDim, dimConstValue, dimEval } from '../base/dim.js';

export type DType = 'f32' | 'f16' | 'bf16' | 'i32' | 'i8' | 'bool';
export const dtypes: readonly DType[] = ['f32', 'f16', 'bf16', 'i32', 'i8', 'bool'];

export function isFloat(t: DType): boolean {
  return t === 'f32' || t === 'f16' || t === 'bf16';
}

export function dtypeBytes(t: DType): number {
  switch (t) {
    case 'f32':
    case 'i32':
      return 4;
    case 'f16':
    case 'bf16':
      return 2;
    case 'i8':
    case 'bool':
      return 1;
  }
}

/**
 * Bytes per element in a device buffer: bool is held as a u32 0/1, bf16 as an f32 (converted at
 * load), i8 as one byte (packed four to a u32 word in WGSL, `signed char` in CUDA; a buffer is
 * rounded up to whole words). Kernels index and the runtime allocates by it; split-large-weights
 * sizes bindings by it.
 */
export function storageBytes(t: DType): number {
  return t === 'bool' || t === 'bf16' ? 4 : dtypeBytes(t);
}

export interface TensorType {
  readonly dtype: DType;
  readonly shape: readonly Dim[];
}

export function tensorType(dtype: DType, shape: readonly Dim[]): TensorType {
  return { dtype, shape };
}

export function typeEquals(a: TensorType, b: TensorType): boolean {
  return a.dtype === b.dtype && shapeEquals(a.shape, b.shape);
}

export function shapeEquals(a: readonly Dim[], b: readonly Dim[]): boolean {
  return a.length === b.length && a.every((d, i) => {
    const e = b[i];
    return e !== undefined && dimEquals(d, e);
  });
}

/** `f32[B,T,768]`, scalars as `f32[]`. */
export function printType(t: TensorType): string {
  return `${t.dtype}[${t.shape.map((d) => printDim(d, true)).join(',')}]`;
}

/** Concrete shape under bindings; undefined if a dim is unbound. */
export function concreteShape(shape: readonly Dim[], env: ReadonlyMap<string, number>): number[] | undefined {
  const out: number[] = [];
  for (const d of shape) {
    const v = dimConstValue(d) ?? dimEval(d, env);
    if (v === undefined) return undefined;
    out.push(v);
  }
  return out;
}
