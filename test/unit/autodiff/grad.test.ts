// The transform around the rules (src/autodiff/grad.ts) and the loss (loss.ts): accumulation over
// several uses, the saved-activation list, errors naming the op without a rule, zeros for an unused
// weight, inputs on request, and the cross-entropy against a hand computation and finite differences.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTensor, type Tensor64 } from '../../../src/base/tensor.js';
import { gradGraph } from '../../../src/autodiff/grad.js';
import { withCrossEntropyLoss } from '../../../src/autodiff/loss.js';
import type { Diagnostic } from '../../../src/diag/diagnostic.js';
import type { Attrs, Graph, ScalarExpr } from '../../../src/graph/ir.js';
import { interpret } from '../../../src/interp/interpret.js';
import { registerOp } from '../../../src/ops/catalog.js';
import type { ScalarBuilder, ScalarVjp } from '../../../src/ops/define.js';
import { defineElementwise } from '../../../src/ops/elementwise.js';
import { TestGraphBuilder, dim } from '../../helpers/graph-builder.js';
import { checkGradients, rng } from './fd.js';

const sum = (axes: number[]): Attrs => ({ axes: { kind: 'ints', value: axes }, keepdims: { kind: 'bool', value: false } });
const random = (shape: number[], seed: number, lo = -1, hi = 1): Tensor64 => {
  const r = rng(seed);
  return makeTensor('f32', shape, Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => lo + (hi - lo) * r()));
};

function grad(g: Graph, output: string, opts: { inputs?: string[] } = {}): { r: NonNullable<ReturnType<typeof gradGraph>> | undefined; diags: Diagnostic[] } {
  const diags: Diagnostic[] = [];
  const r = gradGraph(g, { output, ...opts }, (d) => diags.push(d));
  return { r, diags };
}

// Test-only ops: a softplus with a derivative rule and one without (removed after this file:
// unit files share processes).
const removers: (() => void)[] = [];
beforeAll(() => {
  const softplus = {
    arity: 1 as const,
    cls: 'float' as const,
    doc: 'log(1 + e^x)',
    f: (x: number) => Math.log1p(Math.exp(x)),
    lower: <E>(b: ScalarBuilder<E>, [x]: readonly E[]): E => {
      if (x === undefined) throw new Error('softplus takes one operand');
      return b.call('log', [b.binary('add', b.lit(x, 1), b.call('exp', [x]))]);
    },
  };
  // d/dx softplus = sigmoid(x): the whole derivative rule.
  const grad: ScalarVjp = (b, [x], _y, g) => (x === undefined ? [] : [b.op('mul', g, b.op('sigmoid', x))]);
  removers.push(registerOp(defineElementwise({ ...softplus, name: 'softplus_g', grad })));
  removers.push(registerOp(defineElementwise({ ...softplus, name: 'softplus_no' })));
});
afterAll(() => removers.forEach((r) => r()));

describe('grad: the transform', () => {
  it('adds the cotangents of a value read by several nodes (x used four times, w twice)', () => {
    const b = new TestGraphBuilder();
    const x = b.weight('x', 'f32', [2, 3]);
    const w = b.weight('w', 'f32', [3]);
    const h = b.op('mul', [b.op('mul', [x, x]), w]); // x^2 w
    const y = b.op('add', [b.op('add', [h, b.op('sin', [x])]), b.op('exp', [b.op('mul', [x, w])])]);
    b.output('y', b.op('sum', [y], sum([0, 1])));
    const report = checkGradients(b.build(), 'y', { weights: new Map([['x', random([2, 3], 1)], ['w', random([3], 2)]]), inputs: new Map() }, rng(3));
    expect(report.worst).toBeLessThanOrEqual(1e-9);
  });

  it('slices that split a value (q, k, v) give one concat of their cotangents, no zero padding', () => {
    const b = new TestGraphBuilder();
    const w = b.weight('w', 'f32', [2, 9]);
    const part = (start: number, end: number): number => b.op('slice', [w], { axis: { kind: 'int', value: 1 }, start: { kind: 'dim', value: dim(start) }, end: { kind: 'dim', value: dim(end) } });
    const [q, k, v] = [part(0, 3), part(3, 6), part(6, 9)] as [number, number, number];
    b.output('y', b.op('sum', [b.op('mul', [b.op('exp', [q]), b.op('add', [k, b.op('tanh', [v])])])], sum([0, 1])));
    const g = b.build();
    const { r } = grad(g, 'y');
    if (r === undefined) throw new Error('no result');
    const backward = r.graph.nodes.slice(r.forwardNodes);
    expect(backward.filter((n) => n.op === 'concat').map((n) => n.operands.length)).toEqual([3]);
    const zeros = backward.filter((n) => n.op === 'grid' && n.operands.length === 0);
    expect(zeros).toEqual([]);
    expect(checkGradients(g, 'y', { weights: new Map([['w', random([2, 9], 9)]]), inputs: new Map() }, rng(10)).worst).toBeLessThanOrEqual(1e-9);
  });

  it('lists the saved activations: the forward values the backward reads (tanh saves its output, not its input)', () => {
    const b = new TestGraphBuilder();
    const x = b.input('x', 'f32', [2, 3]);
    const w = b.weight('w', 'f32', [3, 4]);
    const h = b.op('matmul', [x, w]);
    const y = b.op('tanh', [h]);
    b.output('loss', b.op('mean', [y], sum([0, 1])));
    const { r } = grad(b.build(), 'loss');
    if (r === undefined) throw new Error('no result');
    expect(r.saved.map((id) => r.graph.nodes[id]?.op)).toEqual(['tanh']);
    // The forward nodes come first, unchanged; the outputs are the loss and grad.w.
    expect(r.graph.nodes.slice(0, r.forwardNodes).map((n) => n.op)).toEqual(['input', 'weight', 'matmul', 'tanh', 'mean']);
    expect(r.graph.outputs.map((o) => o.name)).toEqual(['loss', 'grad.w']);
    expect(r.gradients).toEqual([{ of: 'w', kind: 'weight', output: 'grad.w' }]);
  });

  it('gives zeros for a weight the output does not read, and differentiates an input on request', () => {
    const b = new TestGraphBuilder();
    const x = b.input('x', 'f32', [3]);
    const w = b.weight('w', 'f32', [3]);
    b.weight('unused', 'f32', [2, 2]);
    b.output('y', b.op('sum', [b.op('mul', [x, w])], sum([0])));
    const { r } = grad(b.build(), 'y', { inputs: ['x'] });
    if (r === undefined) throw new Error('no result');
    const xs = makeTensor('f32', [3], [1, 2, 3]);
    const ws = makeTensor('f32', [3], [4, 5, 6]);
    const out = interpret(r.graph, { inputs: new Map([['x', xs]]), weights: new Map([['w', ws], ['unused', makeTensor('f32', [2, 2])]]) }).outputs;
    expect([...(out.get('grad.w')?.data ?? [])]).toEqual([1, 2, 3]);
    expect([...(out.get('grad.x')?.data ?? [])]).toEqual([4, 5, 6]);
    expect(out.get('grad.unused')?.shape).toEqual([2, 2]);
    expect([...(out.get('grad.unused')?.data ?? [])]).toEqual([0, 0, 0, 0]);
  });

  it("a new elementwise op's `grad` is all it needs, as a node and inside a grid lambda", () => {
    const b = new TestGraphBuilder();
    const x = b.weight('x', 'f32', [2, 3]);
    const read: ScalarExpr = { kind: 'read', operand: 0, indices: [{ kind: 'index', axis: 1 }, { kind: 'index', axis: 0 }], dtype: 'f32' };
    const body: ScalarExpr = { kind: 'apply', op: 'softplus_g', args: [read], dtype: 'f32' };
    const gridded = b.op('grid', [x], { shape: { kind: 'dims', value: [dim(3), dim(2)] }, body: { kind: 'lambda', params: ['i', 'j'], body } });
    const y = b.op('add', [b.op('sum', [b.op('softplus_g', [x])], sum([0])), b.op('sum', [gridded], sum([1]))]);
    b.output('y', y);
    const report = checkGradients(b.build(), 'y', { weights: new Map([['x', random([2, 3], 4, -2, 2)]]), inputs: new Map() }, rng(5));
    expect(report.worst).toBeLessThanOrEqual(1e-9);
  });

  it('an op without a rule on the path is TFC316 naming the op, the weight and the reason; off the path it is fine', () => {
    const b = new TestGraphBuilder();
    const w = b.weight('w', 'f32', [3]);
    const x = b.input('x', 'f32', [3]);
    const off = b.op('softplus_no', [x]); // no weight reaches it
    b.output('y', b.op('sum', [b.op('mul', [b.op('softplus_no', [w]), off])], sum([0])));
    const { r, diags } = grad(b.build(), 'y');
    expect(r).toBeUndefined();
    expect(diags.map((d) => `${d.code} ${d.loc.line}: ${d.message}`)).toEqual([
      "TFC316 4: cannot differentiate softplus_no on the path from weight 'w' to 'y': softplus_no has no derivative rule",
    ]);
    // Inside a lambda: the apply is named.
    const c = new TestGraphBuilder();
    const v = c.weight('v', 'f32', [3]);
    const body: ScalarExpr = { kind: 'apply', op: 'softplus_no', args: [{ kind: 'read', operand: 0, indices: [{ kind: 'index', axis: 0 }], dtype: 'f32' }], dtype: 'f32' };
    c.output('y', c.op('sum', [c.op('grid', [v], { shape: { kind: 'dims', value: [dim(3)] }, body: { kind: 'lambda', params: ['i'], body } })], sum([0])));
    const second = grad(c.build(), 'y');
    expect(second.diags.map((d) => d.message)).toEqual(["cannot differentiate grid on the path from weight 'v' to 'y': 'softplus_no' inside a lambda has no derivative rule"]);
  });

  it('a non-scalar output takes its cotangent as an input, and a missing output is TFC317', () => {
    const b = new TestGraphBuilder();
    const w = b.weight('w', 'f32', [2]);
    b.output('y', b.op('exp', [w]));
    const { r } = grad(b.build(), 'y');
    expect(r?.seed).toBe('cotangent.y');
    const out = interpret(r?.graph as Graph, { inputs: new Map([['cotangent.y', makeTensor('f32', [2], [2, 3])]]), weights: new Map([['w', makeTensor('f32', [2], [0, 1])]]) }).outputs;
    expect([...(out.get('grad.w')?.data ?? [])]).toEqual([2, 3 * Math.E]);
    expect(grad(b.build(), 'nope').diags.map((d) => `${d.code}: ${d.message}`)).toEqual(["TFC317: no output 'nope' to differentiate (outputs: y)"]);
  });
});

describe('withCrossEntropyLoss', () => {
  function model(): Graph {
    const b = new TestGraphBuilder('lm', ['B']);
    const w = b.weight('w', 'f32', [2, 3, 5]);
    b.output('logits', b.op('mul', [w, b.const(2)]));
    return b.build();
  }

  it('is the mean over tokens of logsumexp(logits) - logits[target]', () => {
    const diags: Diagnostic[] = [];
    const g = withCrossEntropyLoss(model(), {}, (d) => diags.push(d));
    if (g === undefined) throw new Error(diags.map((d) => d.message).join('\n'));
    expect(g.outputs.map((o) => o.name)).toEqual(['logits', 'loss']);
    const w = random([2, 3, 5], 6, -2, 2);
    const targets = makeTensor('i32', [2, 3], [0, 4, 2, 2, 1, 3]);
    const out = interpret(g, { inputs: new Map([['targets', targets]]), weights: new Map([['w', w]]) }).outputs;
    let want = 0;
    for (let t = 0; t < 6; t++) {
      const row = Array.from({ length: 5 }, (_, v) => 2 * (w.data[t * 5 + v] ?? NaN));
      want += Math.log(row.reduce((a, x) => a + Math.exp(x), 0)) - (row[targets.data[t] ?? 0] ?? NaN);
    }
    expect(out.get('loss')?.shape).toEqual([]);
    expect(out.get('loss')?.data[0]).toBeCloseTo(want / 6, 13);
  });

  it('differentiates to within 1e-9 of finite differences', () => {
    const g = withCrossEntropyLoss(model(), {}, () => {});
    if (g === undefined) throw new Error('no loss');
    const inputs = new Map([['targets', makeTensor('i32', [2, 3], [1, 1, 0, 4, 3, 2])]]);
    const report = checkGradients(g, 'loss', { weights: new Map([['w', random([2, 3, 5], 7, -2, 2)]]), inputs }, rng(8));
    expect(report.worst).toBeLessThanOrEqual(1e-9);
  });

  it('without a logits output is TFC317', () => {
    const msgs: string[] = [];
    expect(withCrossEntropyLoss(model(), { logits: 'scores' }, (d) => msgs.push(`${d.code}: ${d.message}`))).toBeUndefined();
    expect(msgs).toEqual(["TFC317: no output 'scores' to put a cross-entropy loss on (outputs: logits)"]);
  });
});
