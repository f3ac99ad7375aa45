// fuse-elementwise on long chains (issue 9): a fused body holds at most MAX_FUSED_OPS nodes, so a
// chain of thousands of elementwise statements splits into several fused_maps instead of
// overflowing the stack, and the whole pipeline (passes + compilePlan) runs on it.
import { describe, expect, it } from 'vitest';
import { checkSource } from '../../../src/check/check-source.js';
import type { Graph, ScalarExpr } from '../../../src/graph/ir.js';
import { lambdaAttr } from '../../../src/graph/ir.js';
import { interpret } from '../../../src/interp/interpret.js';
import { makeTensor } from '../../../src/base/tensor.js';
import { compilePlan } from '../../../src/compile/plan.js';
import { runPipeline } from '../../../src/passes/driver.js';
import { MAX_FUSED_OPS } from '../../../src/passes/fuse-elementwise.js';
import { createPassContext, type Remark } from '../../../src/passes/pass.js';
import { pipelines } from '../../../src/passes/pipeline.js';

const chain = (n: number): string => `dims T\ninput x: f32[T]\noutput y: f32[T]\nmodel m {\n  y = x\n${'  y = y + x\n'.repeat(n)}}\n`;

function checked(text: string): Graph {
  const r = checkSource(text, 'chain.tfx', new Map());
  expect(r.diagnostics.map((d) => d.message)).toEqual([]);
  if (r.graph === undefined) throw new Error('no graph');
  return r.graph;
}

const countApplies = (e: ScalarExpr, op: string): number => {
  switch (e.kind) {
    case 'apply':
      return (e.op === op ? 1 : 0) + e.args.reduce((s, a) => s + countApplies(a, op), 0);
    case 'read':
      return e.indices.reduce((s, a) => s + countApplies(a, op), 0);
    default:
      return 0;
  }
};

describe('fuse-elementwise on long chains', () => {
  it('keeps a short chain in one fused_map', () => {
    const g = runPipeline(checked(chain(20)), pipelines.webgpu, createPassContext({ target: 'webgpu', verify: true }));
    const maps = g.nodes.filter((n) => n.op === 'fused_map');
    expect(maps.length).toBe(1);
    expect(countApplies(lambdaAttr(maps[0]!, 'body').body, 'add')).toBe(20);
  });

  it('splits a 2000-statement chain into bounded fused_maps that compute (n + 1) * x', () => {
    const n = 2000;
    const remarks: Remark[] = [];
    const g = runPipeline(checked(chain(n)), pipelines.webgpu, createPassContext({ target: 'webgpu', verify: true, remark: (r) => remarks.push(r) }));
    const maps = g.nodes.filter((x) => x.op === 'fused_map');
    const adds = maps.map((m) => countApplies(lambdaAttr(m, 'body').body, 'add'));
    // Every add lands in exactly one body, none holds more than the cap plus its root.
    expect(adds.reduce((s, a) => s + a, 0)).toBe(n);
    expect(Math.max(...adds)).toBeLessThanOrEqual(MAX_FUSED_OPS + 1);
    expect(maps.length).toBe(Math.ceil(n / (MAX_FUSED_OPS + 1)));
    expect(remarks.filter((r) => r.message.includes('the chain is split here')).length).toBe(maps.length - 1);
    // Float64 interpreter on the split graph vs the hand value: small integers add exactly.
    const xs = [1, -2, 0.5, 3];
    const out = interpret(g, { inputs: new Map([['x', makeTensor('f32', [4], xs)]]), weights: new Map() }).outputs.get('y');
    expect(out === undefined ? undefined : Array.from(out.data)).toEqual(xs.map((v) => (n + 1) * v));
    const plan = compilePlan(g);
    expect(plan.kernels.length).toBeGreaterThan(0);
    for (const k of plan.kernels) expect(k.source.wgsl.length).toBeGreaterThan(0);
  });
});
