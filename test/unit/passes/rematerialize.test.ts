// rematerialize (src/passes/rematerialize.ts): a cheap value read again long after its first use
// is recomputed right before the late use, only when its operands are alive there anyway; the
// outputs never change. Hand-written graphs with the gap made of a chain of elementwise ops.
import { describe, expect, it } from 'vitest';
import type { Graph } from '../../../src/graph/ir.js';
import { verifyGraph } from '../../../src/graph/verify.js';
import { interpret } from '../../../src/interp/interpret.js';
import { chooseRematerializations, defaultRematerializePolicy, rematerialize } from '../../../src/passes/rematerialize.js';
import { tensorFor, tfxGraph } from '../../helpers/tensors.js';

/** `h` read at once and again after `chain` more elementwise ops; `pre` puts a computed value under the norm. */
function model(chain: number, pre: boolean): Graph {
  const steps = Array.from({ length: chain }, (_, i) => `  a${i + 1} = a${i} * 0.5 + 0.25`).join('\n');
  return tfxGraph(`dims N
input x: f32[N, 8]
weight g: f32[8]
weight b: f32[8]
output y: f32[N, 8]
model m {
  ${pre ? 'x2 = x * 1.5\n  h = layernorm(x2, g, b)' : 'h = layernorm(x, g, b)'}
  a0 = h * 3.0
${steps}
  y = a${chain} + h
}
`);
}

const feeds = {
  inputs: new Map([['x', tensorFor('f32', [3, 8], 1)]]),
  weights: new Map([
    ['g', tensorFor('f32', [8], 2)],
    ['b', tensorFor('f32', [8], 3)],
  ]),
};

const policy = defaultRematerializePolicy();

describe('rematerialize', () => {
  it('recomputes a norm read again across a long gap, right before the late use; same outputs', () => {
    const g = model(20, false);
    const choices = chooseRematerializations(g, policy);
    expect(choices.map((c) => c.node.op)).toEqual(['layernorm']);
    const after = rematerialize(g, choices);
    expect(verifyGraph(after)).toEqual([]);
    const norms = after.nodes.filter((n) => n.op === 'layernorm');
    expect(norms.length).toBe(2);
    // The clone sits right before the final add, which reads it; the first norm's only use is a0.
    const y = after.nodes[after.outputs[0]?.value ?? -1];
    expect(y?.operands).toContain(norms[1]?.id);
    expect(norms[1]?.id).toBe((y?.id ?? 0) - 1);
    expect(after.nodes.filter((n) => n.operands.includes(norms[0]?.id ?? -1)).length).toBe(1);
    expect(interpret(after, feeds).outputs.get('y')?.data).toEqual(interpret(g, feeds).outputs.get('y')?.data);
  });

  it('leaves a short gap alone (below minGap nodes)', () => {
    const g = model(3, false);
    expect(chooseRematerializations(g, policy)).toEqual([]);
    expect(chooseRematerializations(g, { ...policy, minGap: 2 }).map((c) => c.node.op)).toEqual(['layernorm']);
  });

  it('never extends another value: a computed operand dead before the late use blocks the recompute', () => {
    const g = model(20, true);
    expect(chooseRematerializations(g, policy)).toEqual([]);
  });

  it('only the policy ops: without layernorm in it nothing is recomputed', () => {
    const g = model(20, false);
    expect(chooseRematerializations(g, { ...policy, ops: new Set(['gelu']) })).toEqual([]);
  });
});
