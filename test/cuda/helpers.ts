// Shared by the CUDA tests: tiny .tfx models to graphs, seeded feeds, the interpreter as the
// reference, and the relative error measure (test/helpers/tensors.ts, shared with WebGPU).
import { readFileSync } from 'node:fs';
import { type Graph, strAttr } from '../../src/graph/ir.js';
import { bindDims, interpret } from '../../src/interp/interpret.js';
import type { Tensor64 } from '../../src/base/tensor.js';
import { declaredShape, relError, tensorFor, tfxGraph } from '../helpers/tensors.js';

export { relError, tensorFor, tfxGraph as graphOf };

/** Feeds for every input and weight of `g` from their declared shapes (dims from `dims`). */
export function feedsFor(g: Graph, dims: ReadonlyMap<string, number>, seed: number, scale = 1): { inputs: Map<string, Tensor64>; weights: Map<string, Tensor64> } {
  const inputs = new Map<string, Tensor64>();
  const weights = new Map<string, Tensor64>();
  let s = seed;
  for (const n of g.nodes) {
    if (n.op !== 'input' && n.op !== 'weight') continue;
    const name = strAttr(n, 'name');
    (n.op === 'input' ? inputs : weights).set(name, tensorFor(n.type.dtype, declaredShape(n, dims), s++, 11, scale));
  }
  return { inputs, weights };
}

export { bindDims, interpret };

/**
 * A model from test/fixtures/NAME.tfx.tmpl with its element type: DTYPE in the template becomes
 * `dtype`. The tensor-core tests and bench/codegen-snapshot.mjs read the same files.
 */
export function fixtureModel(name: string, dtype: string): string {
  return readFileSync(new URL(`../fixtures/${name}.tfx.tmpl`, import.meta.url), 'utf8').replaceAll('DTYPE', dtype);
}
