// Shared by the tests that run compiled plans (WebGPU, CUDA emulator) against the float64
// interpreter: tiny .tfx models to graphs, seeded tensors, and the relative error measure.
import { expect } from 'vitest';
import { checkSource } from '../../src/check/check-source.js';
import type { Graph, Node } from '../../src/graph/ir.js';
import type { DType } from '../../src/graph/types.js';
import { makeTensor, type Tensor64 } from '../../src/base/tensor.js';
import { seeded } from './seeded.js';

/** Checks a .tfx source, expecting no diagnostics. */
export function tfxGraph(src: string, file = 'case.tfx', overrides: ReadonlyMap<string, number> = new Map()): Graph {
  const r = checkSource(src, file, overrides);
  expect(r.diagnostics.map((d) => d.message)).toEqual([]);
  if (r.graph === undefined) throw new Error('no graph');
  return r.graph;
}

/** The concrete shape of a node's declared type, with the dims bound in `dims` (NaN if unbound). */
export function declaredShape(n: Node, dims: ReadonlyMap<string, number>): number[] {
  return n.type.shape.map((d) => {
    let v = 0;
    for (const t of d.terms) v += t.coef * t.vars.reduce((p, x) => p * (dims.get(x) ?? NaN), 1);
    return v;
  });
}

/** Seeded tensor: ints in [0, intMax) for i32, -127..127 for i8, 0/1 for bool, [-scale, scale) for floats. */
export function tensorFor(dtype: DType, shape: readonly number[], seed: number, intMax = 11, scale = 1): Tensor64 {
  const n = shape.reduce((a, b) => a * b, 1);
  const v = seeded(n, seed);
  if (dtype === 'i32') return makeTensor('i32', shape, Array.from(v, (x) => Math.floor(((x + 1) / 2) * intMax)));
  if (dtype === 'i8') return makeTensor('i8', shape, Array.from(v, (x) => Math.round(x * 127)));
  if (dtype === 'bool') return makeTensor('bool', shape, Array.from(v, (x) => (x > 0 ? 1 : 0)));
  return makeTensor(dtype, shape, Array.from(v, (x) => x * scale));
}

/**
 * Largest |got - want| / max(|want|, floor) with floor = 1e-2 * max|want| over the tensor: an
 * f32 kernel's error is relative to the tensor's scale, so entries near zero (after cancellation
 * in a dot product, a sum or sin) are judged against 1% of the largest magnitude. A length
 * mismatch or a non-finite value where the reference differs gives Infinity.
 */
export function relError(got: ArrayLike<number>, want: Tensor64): number {
  if (got.length !== want.data.length) return Infinity;
  let scale = 0;
  for (const v of want.data) if (Number.isFinite(v)) scale = Math.max(scale, Math.abs(v));
  const floor = Math.max(1e-2 * scale, 1e-30);
  let worst = 0;
  for (let i = 0; i < want.data.length; i++) {
    const w = want.data[i] ?? NaN;
    const g = got[i] ?? NaN;
    if (g === w) continue;
    if (!Number.isFinite(w) || !Number.isFinite(g)) return Infinity;
    worst = Math.max(worst, Math.abs(g - w) / Math.max(Math.abs(w), floor));
  }
  return worst;
}

/**
 * Issue 15's measure for f16/bf16 models: max |got - want| / max |want| over the tensor (one scale
 * for the whole tensor, no per-element floor). Non-finite references must be matched exactly
 * (-inf LSE rows); a length mismatch or any other non-finite value gives Infinity.
 */
export function maxRelToScale(got: ArrayLike<number>, want: Tensor64): number {
  if (got.length !== want.data.length) return Infinity;
  let scale = 0;
  let diff = 0;
  for (let i = 0; i < want.data.length; i++) {
    const w = want.data[i] ?? NaN;
    const g = got[i] ?? NaN;
    if (!Number.isFinite(w)) {
      if (!Object.is(w, g)) return Infinity;
      continue;
    }
    if (!Number.isFinite(g)) return Infinity;
    scale = Math.max(scale, Math.abs(w));
    diff = Math.max(diff, Math.abs(g - w));
  }
  return scale === 0 ? diff : diff / scale;
}
