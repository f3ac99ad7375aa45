// Node.scope (kernel names `<fn>_l<layer>_<op>`): set by the graph builder from the innermost user
// function (or the model) and the enclosing index parameter / loop index, kept through the passes.
import { describe, expect, it } from 'vitest';
import { checkSource } from '../../../src/check/check-source.js';
import { compilePlan } from '../../../src/compile/plan.js';
import { runPipeline } from '../../../src/passes/driver.js';
import { createPassContext } from '../../../src/passes/pass.js';
import { graphPasses } from '../../../src/passes/pipeline.js';

const src = `dims T
input x: f32[T, 4]
weight w[l in 0..2]: f32[4, 4] = "w.{l}"
output y: f32[T, 4]
fn inner(h: f32[T, 4]) -> f32[T, 4] {
  return exp(h)
}
fn layer(h: f32[T, 4], l: index) -> f32[T, 4] {
  return inner(h @ w[l]) * (2 * 3)
}
model m {
  h = -x
  for l in 0..2 {
    h = layer(h, l)
  }
  y = h
}
`;

describe('Node.scope', () => {
  const r = checkSource(src, 's.tfx');
  const g = r.graph;
  it('names the innermost function and the layer', () => {
    expect(r.diagnostics).toEqual([]);
    const scopes = (g?.nodes ?? []).map((n) => `${n.op}:${n.scope ?? '-'}`);
    expect(scopes).toContain('neg:m');
    expect(scopes).toContain('matmul:layer_l0');
    expect(scopes).toContain('exp:inner_l1'); // inner has no index param: it inherits the layer
    expect(scopes).toContain('mul:layer_l1');
    expect(scopes.filter((s) => s.startsWith('input:') || s.startsWith('weight:')).every((s) => s.endsWith(':-'))).toBe(true);
  });

  it('survives the cleanup passes and names kernels; identical layers share the first one', () => {
    if (g === undefined) throw new Error('no graph');
    const after = runPipeline(g, graphPasses, createPassContext({ verify: true }));
    const plan = compilePlan(after);
    // Each matmul: its decode-step kernels (lavapipe: streaming partials, their reduction) and its
    // prefill kernel, shared between the layers.
    const mm = ['layer_l0_matmul', 'layer_l0_matmul_1', 'layer_l0_matmul_2'];
    expect(plan.steps.map((s) => s.kernel)).toEqual(['m_neg', ...mm, 'inner_l0_exp', 'layer_l0_mul', ...mm, 'inner_l0_exp', 'layer_l0_mul']);
  });
});
