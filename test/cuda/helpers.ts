// Shared by the CUDA tests: tiny .tfx models to graphs, seeded feeds, the interpreter as the
// reference, and the relative error measure (same rule as the WebGPU per-op test).
import { expect } from 'vitest';
import { checkSource } from '../../src/check/check-source.js';
import { type Graph, strAttr } from '../../src/graph/ir.js';
import type { DType } from '../../src/graph/types.js';
import { bindDims, interpret } from '../../src/interp/interpret.js';
import { makeTensor, type Tensor64 } from '../../src/interp/tensor.js';

export function graphOf(src: string, file = 'case.tfx', overrides: ReadonlyMap<string, number> = new Map()): Graph {
  const r = checkSource(src, file, overrides);
  expect(r.diagnostics.map((d) => d.message)).toEqual([]);
  if (r.graph === undefined) throw new Error('no graph');
  return r.graph;
}

/** Deterministic values in [-1, 1) (an LCG; f32-representable). */
export function seeded(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

/** Seeded tensor: ints in [0, intMax) for i32, 0/1 for bool, [-scale, scale) for floats. */
export function tensorFor(dtype: DType, shape: readonly number[], seed: number, intMax = 11, scale = 1): Tensor64 {
  const n = shape.reduce((a, b) => a * b, 1);
  const v = seeded(n, seed);
  if (dtype === 'i32') return makeTensor('i32', shape, Array.from(v, (x) => Math.floor(((x + 1) / 2) * intMax)));
  if (dtype === 'bool') return makeTensor('bool', shape, Array.from(v, (x) => (x > 0 ? 1 : 0)));
  return makeTensor(dtype, shape, Array.from(v, (x) => x * scale));
}

/** Feeds for every input and weight of `g` from their declared shapes (dims from `dims`). */
export function feedsFor(g: Graph, dims: ReadonlyMap<string, number>, seed: number, scale = 1): { inputs: Map<string, Tensor64>; weights: Map<string, Tensor64> } {
  const inputs = new Map<string, Tensor64>();
  const weights = new Map<string, Tensor64>();
  let s = seed;
  for (const n of g.nodes) {
    if (n.op !== 'input' && n.op !== 'weight') continue;
    const name = strAttr(n, 'name');
    const shape = n.type.shape.map((d) => {
      let v = 0;
      for (const t of d.terms) v += t.coef * t.vars.reduce((p, x) => p * (dims.get(x) ?? NaN), 1);
      return v;
    });
    (n.op === 'input' ? inputs : weights).set(name, tensorFor(n.type.dtype, shape, s++, 11, scale));
  }
  return { inputs, weights };
}

export { bindDims, interpret };

/** Largest |got - want| / max(|want|, floor), floor = 1e-2 * max|want| (values near zero after cancellation are judged at the tensor's scale). */
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
