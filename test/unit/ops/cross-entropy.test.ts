// fused_cross_entropy's float64 rule against hand-computed values: one row h = [1, 0], an
// identity head (z = [1, 0]) plus a bias [0.5, 0], target 0; then a target outside [0, V).
import { describe, expect, it } from 'vitest';
import { dimConst } from '../../../src/base/dim.js';
import { makeTensor, type Tensor64 } from '../../../src/base/tensor.js';
import type { Node } from '../../../src/graph/ir.js';
import { getOp } from '../../../src/ops/catalog.js';

const loc = { file: 't', line: 1, col: 1, endLine: 1, endCol: 1 };
const ce: Node = { id: 4, op: 'fused_cross_entropy', operands: [0, 1, 2, 3], attrs: { transpose_w: { kind: 'bool', value: false } }, type: { dtype: 'f32', shape: [] }, loc };

function run(op: string, operands: Tensor64[], shape: number[]): number[] {
  const def = getOp(op);
  if (def === undefined) throw new Error(op);
  const node: Node = op === 'fused_cross_entropy' ? ce : { id: 5, op, operands: [4], attrs: {}, type: { dtype: 'f32', shape: shape.map(dimConst) }, loc };
  return [...def.interp(operands, { node, dims: new Map(), shape, ...(op === 'fused_cross_entropy' ? {} : { producer: ce }) }).data];
}

describe("'fused_cross_entropy' float64 rule", () => {
  const h = makeTensor('f32', [1, 2], [1, 0]);
  const w = makeTensor('f32', [2, 2], [1, 0, 0, 1]);
  const bias = makeTensor('f32', [2], [0.5, 0]);
  it('gives lse - z[target] and (softmax - onehot) / N', () => {
    const ops = [h, w, makeTensor('i32', [1], [0]), bias];
    // z = [1.5, 0]: loss = log(1 + e^-1.5) = 0.20141327798275246; softmax = [0.8175744761936437, 0.18242552380635635]
    expect(run('fused_cross_entropy', ops, [])[0]).toBeCloseTo(0.20141327798275246, 14);
    const g = [0.8175744761936437 - 1, 0.18242552380635635];
    run('fused_cross_entropy_db', ops, [2]).forEach((x, i) => expect(x).toBeCloseTo(g[i] ?? NaN, 14));
    run('fused_cross_entropy_dh', ops, [1, 2]).forEach((x, i) => expect(x).toBeCloseTo(g[i] ?? NaN, 14)); // g @ I
    const dw = [g[0], g[1], 0, 0]; // h^T g with h = [1, 0]
    run('fused_cross_entropy_dw', ops, [2, 2]).forEach((x, i) => expect(x).toBeCloseTo(dw[i] ?? NaN, 14));
  });
  it('picks no logit for a target outside the vocabulary', () => {
    const ops = [h, w, makeTensor('i32', [1], [7]), bias];
    // loss = lse = 1.5 + log(1 + e^-1.5) = 1.7014132779827524
    expect(run('fused_cross_entropy', ops, [])[0]).toBeCloseTo(1.7014132779827524, 14);
    run('fused_cross_entropy_db', ops, [2]).forEach((x, i) => expect(x).toBeCloseTo([0.8175744761936437, 0.18242552380635635][i] ?? NaN, 14));
  });
});
