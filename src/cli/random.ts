// Seeded weights and inputs for `tfc init-weights` / `tfc random-inputs`, so a model runs without
// downloading a checkpoint. Deterministic: the same seed, model and sizes give the same bytes.
import { dimConstValue, dimEval, dimVars, printDim } from '../base/dim.js';
import { diag, type Diagnostic } from '../diag/diagnostic.js';
import type { Graph } from '../graph/ir.js';
import type { Tensor64 } from '../base/tensor.js';
import type { NeededTensor } from '../io/check-tensors.js';

/** splitmix32: a small, well-mixed PRNG, so runs do not depend on Math.random. */
export function makeRng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    z = (z ^ (z >>> 16)) >>> 0;
    return z / 4294967296;
  };
}

function normal(rng: () => number): number {
  const u = Math.max(rng(), 1e-12);
  const v = rng();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/** Name-stable seeding: each tensor gets its own stream, so adding a weight changes no other. */
function seedFor(seed: number, name: string): number {
  let h = (seed ^ 0x811c9dc5) >>> 0;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

function concrete(n: NeededTensor, dims: ReadonlyMap<string, number>, ds: Diagnostic[]): number[] | undefined {
  const shape = n.type.shape.map((d) => dimConstValue(d) ?? dimEval(d, dims));
  const missing = n.type.shape.filter((_, i) => shape[i] === undefined);
  if (missing.length > 0) {
    // Suggest each unbound dim name once ([B, T, T] or [B, P + T] name T once).
    const unbound = [...new Set(missing.flatMap((d) => dimVars(d)).filter((v) => !dims.has(v)))];
    const sizes = missing.map((d) => printDim(d)).join(', ');
    ds.push(diag('TFC306', n.loc, `${n.kind} "${n.name}" has symbolic size ${sizes}: bind it with --set (e.g. --set ${unbound.map((v) => `${v}=1`).join(',')})`));
    return undefined;
  }
  return shape as number[];
}

/** Diagnoses (TFC306) every needed tensor whose size `dims` leave symbolic; creates no data. */
export function unboundShapes(needed: readonly NeededTensor[], dims: ReadonlyMap<string, number>, ds: Diagnostic[]): void {
  for (const n of needed) concrete(n, dims, ds);
}

/**
 * Weights: matrices N(0, 0.02) (GPT-2's init); vectors named like a bias N(0, 0.02), other
 * vectors (norm gains) 1 + N(0, 0.02); i32 weights 0; i8 weights as randomI8.
 */
export function randomWeights(needed: readonly NeededTensor[], seed: number, dims: ReadonlyMap<string, number>, ds: Diagnostic[]): Map<string, Tensor64> {
  const out = new Map<string, Tensor64>();
  for (const n of needed) {
    if (n.kind !== 'weight') continue;
    const shape = concrete(n, dims, ds);
    if (shape === undefined) continue;
    const rng = makeRng(seedFor(seed, n.name));
    const size = shape.reduce((a, b) => a * b, 1);
    const data = new Float64Array(size);
    const isGain = shape.length === 1 && !/bias|(^|[._])b$/i.test(n.name);
    if (n.type.dtype === 'bool') for (let i = 0; i < size; i++) data[i] = rng() < 0.5 ? 1 : 0;
    else if (n.type.dtype === 'i8') for (let i = 0; i < size; i++) data[i] = randomI8(rng);
    else if (n.type.dtype !== 'i32') for (let i = 0; i < size; i++) data[i] = (isGain ? 1 : 0) + 0.02 * normal(rng);
    out.set(n.name, { dtype: n.type.dtype, shape, data });
  }
  return out;
}

/** The exclusive bound for an integer input: rows of the table it indexes (gather), else 2. */
function intBound(g: Graph, name: string, dims: ReadonlyMap<string, number>): number {
  const ids = new Set(g.nodes.filter((n) => n.op === 'input' && n.attrs['name']?.kind === 'str' && n.attrs['name'].value === name).map((n) => n.id));
  let bound: number | undefined;
  for (const n of g.nodes) {
    if (n.op !== 'gather') continue;
    const [table, index] = n.operands;
    if (index === undefined || !ids.has(index) || table === undefined) continue;
    const rows = g.nodes[table]?.type.shape[0];
    const v = rows === undefined ? undefined : (dimConstValue(rows) ?? dimEval(rows, dims));
    if (v !== undefined) bound = Math.min(bound ?? v, v);
  }
  return Math.max(1, bound ?? 2);
}

/**
 * An i8 value: N(0, 8) rounded, within -127..127. Small on purpose: i8 tensors are quantized
 * values that meet f32 scales (drawn N(0, 1) like any float input), and full-range values times
 * such scales made a dequantized cache ~70x a float input, scores in the hundreds, and f32's
 * rounding of them visible in the logits (2.9e-4 on WebGPU for gpt2-kv-int8; 1.8e-5 with these).
 */
function randomI8(rng: () => number): number {
  return Math.max(-127, Math.min(127, Math.round(8 * normal(rng))));
}

/** Inputs: integer ids uniform below the table they index, i8 as randomI8, floats N(0, 1), bools fair coins. */
export function randomInputs(g: Graph, needed: readonly NeededTensor[], seed: number, dims: ReadonlyMap<string, number>, ds: Diagnostic[]): Map<string, Tensor64> {
  const out = new Map<string, Tensor64>();
  for (const n of needed) {
    if (n.kind !== 'input') continue;
    const shape = concrete(n, dims, ds);
    if (shape === undefined) continue;
    const rng = makeRng(seedFor(seed, n.name));
    const size = shape.reduce((a, b) => a * b, 1);
    const data = new Float64Array(size);
    if (n.type.dtype === 'i32') {
      const bound = intBound(g, n.name, dims);
      for (let i = 0; i < size; i++) data[i] = Math.floor(rng() * bound);
    } else if (n.type.dtype === 'bool') for (let i = 0; i < size; i++) data[i] = rng() < 0.5 ? 1 : 0;
    else if (n.type.dtype === 'i8') for (let i = 0; i < size; i++) data[i] = randomI8(rng);
    else for (let i = 0; i < size; i++) data[i] = normal(rng);
    out.set(n.name, { dtype: n.type.dtype, shape, data });
  }
  return out;
}
