// Every catalog op's vjp against finite differences (float64 interpreter, Richardson-extrapolated
// central differences, test/unit/autodiff/fd.ts): a graph of the one op on small random operands,
// each float operand a weight. The catalog is enumerated: an op with operands needs a vjp (and a
// case here) or a `noGrad` reason listed below, so a new op without a rule fails this file.
// Measured worst error over all cases: printed by the last test (about 1e-11).
import { describe, expect, it } from 'vitest';
import type { Attr, Attrs, ScalarExpr } from '../../../src/graph/ir.js';
import type { DType } from '../../../src/graph/types.js';
import { makeTensor, type Tensor64 } from '../../../src/base/tensor.js';
import { catalog } from '../../../src/ops/catalog.js';
import { TestGraphBuilder, dim } from '../../helpers/graph-builder.js';
import { checkGradients, rng } from './fd.js';

/** The bar: max |fd - grad| / max |grad| per operand. */
const TOLERANCE = 1e-9;

type Gen = (r: () => number, i: number) => number;
const uniform =
  (lo: number, hi: number): Gen =>
  (r) =>
    lo + (hi - lo) * r();
const away0: Gen = (r) => (r() < 0.5 ? -1 : 1) * (0.2 + r());
const pos: Gen = uniform(0.5, 1.5);
const ints =
  (n: number): Gen =>
  (r) =>
    Math.floor(r() * n);
const bools: Gen = (r) => (r() < 0.5 ? 1 : 0);

interface Operand {
  readonly shape: readonly number[];
  readonly dtype?: DType;
  readonly gen?: Gen;
}
interface Case {
  readonly op: string;
  readonly what: string;
  readonly operands: readonly Operand[];
  readonly attrs?: Attrs;
}

const f = (shape: readonly number[], gen: Gen = uniform(-1.5, 1.5)): Operand => ({ shape, gen });
const ax = (axes: number[], keepdims: boolean): Attrs => ({ axes: { kind: 'ints', value: axes }, keepdims: { kind: 'bool', value: keepdims } });
const ix = (axis: number): ScalarExpr => ({ kind: 'index', axis });
const rd = (operand: number, ...indices: ScalarExpr[]): ScalarExpr => ({ kind: 'read', operand, indices, dtype: 'f32' });
const ap = (op: string, ...args: ScalarExpr[]): ScalarExpr => ({ kind: 'apply', op, args, dtype: 'f32' });
const i32 = (value: number): ScalarExpr => ({ kind: 'const', value, dtype: 'i32' });
const lam = (params: string[], body: ScalarExpr): Attr => ({ kind: 'lambda', params, body });
const dims = (...ds: number[]): Attr => ({ kind: 'dims', value: ds.map(dim) });

const unary = (op: string, gen?: Gen, attrs?: Attrs): Case => ({ op, what: `${op} [3,4]`, operands: [f([3, 4], gen)], ...(attrs !== undefined ? { attrs } : {}) });

const cases: readonly Case[] = [
  ...['neg', 'exp', 'tanh', 'erf', 'sin', 'cos', 'silu', 'sigmoid'].map((op) => unary(op)),
  ...['log', 'sqrt', 'rsqrt'].map((op) => unary(op, pos)),
  unary('abs', away0),
  // round is flat between half-integers (derivative 0, as PyTorch): points away from the jumps.
  unary('round', (r) => Math.floor(r() * 6 - 3) + (r() < 0.5 ? 0.1 + 0.3 * r() : 0.6 + 0.3 * r())),
  unary('relu', away0),
  { op: 'gelu', what: 'gelu erf', operands: [f([3, 4])], attrs: { approx: { kind: 'str', value: 'erf' } } },
  { op: 'gelu', what: 'gelu tanh', operands: [f([3, 4])], attrs: { approx: { kind: 'str', value: 'tanh' } } },
  { op: 'cast', what: 'cast f32 -> f16', operands: [f([3, 4])], attrs: { to: { kind: 'dtype', value: 'f16' } } },
  { op: 'add', what: 'add [2,3,4] + [3,1] (both broadcast)', operands: [f([2, 3, 4]), f([3, 1])] },
  { op: 'sub', what: 'sub [2,3] - [3]', operands: [f([2, 3]), f([3])] },
  { op: 'mul', what: 'mul [2,1,4] * [3,1]', operands: [f([2, 1, 4]), f([3, 1])] },
  { op: 'div', what: 'div [2,3] / [2,3]', operands: [f([2, 3]), f([2, 3], (r) => 2 * away0(r, 0))] },
  // a / b stays inside (k + 0.3, k + 0.7): no jump of floor(a / b) within a step.
  { op: 'mod', what: 'mod [2,3] % [3]', operands: [f([2, 3], (r) => (Math.floor(r() * 4) - 2 + 0.3 + 0.4 * r()) * 1.5), f([3], () => 1.5)] },
  { op: 'pow', what: 'pow [2,3] ^ [3]', operands: [f([2, 3], pos), f([3])] },
  { op: 'max', what: 'max [2,3], [3]', operands: [f([2, 3]), f([3])] },
  { op: 'min', what: 'min [2,3], [3]', operands: [f([2, 3]), f([3])] },
  { op: 'where', what: 'where bool[2,3] ? [2,3] : [3]', operands: [{ shape: [2, 3], dtype: 'bool', gen: bools }, f([2, 3]), f([3])] },
  { op: 'sum', what: 'sum axes [1]', operands: [f([2, 3, 4])], attrs: ax([1], false) },
  { op: 'sum', what: 'sum axes [0,2] keepdims', operands: [f([2, 3, 4])], attrs: ax([0, 2], true) },
  { op: 'mean', what: 'mean axes [2]', operands: [f([2, 3, 4])], attrs: ax([2], false) },
  { op: 'mean', what: 'mean axes [0,1] keepdims', operands: [f([2, 3, 4])], attrs: ax([0, 1], true) },
  { op: 'max_reduce', what: 'max_reduce axes [2]', operands: [f([2, 3, 4])], attrs: ax([2], false) },
  { op: 'max_reduce', what: 'max_reduce axes [0] keepdims', operands: [f([2, 3, 4])], attrs: ax([0], true) },
  { op: 'logsumexp', what: 'logsumexp axes [1,2]', operands: [f([2, 3, 4], uniform(-4, 4))], attrs: ax([1, 2], false) },
  { op: 'logsumexp', what: 'logsumexp axes [2] keepdims', operands: [f([2, 3, 4], uniform(-4, 4))], attrs: ax([2], true) },
  { op: 'softmax', what: 'softmax axis 1', operands: [f([2, 3, 4], uniform(-3, 3))], attrs: { axis: { kind: 'int', value: 1 } } },
  { op: 'softmax', what: 'softmax axis 2', operands: [f([2, 3, 4], uniform(-3, 3))], attrs: { axis: { kind: 'int', value: 2 } } },
  { op: 'layernorm', what: 'layernorm [2,3,5]', operands: [f([2, 3, 5], uniform(-2, 2)), f([5], uniform(0.5, 1.5)), f([5])], attrs: { eps: { kind: 'float', value: 1e-5 } } },
  { op: 'rmsnorm', what: 'rmsnorm [2,3,5]', operands: [f([2, 3, 5], uniform(-2, 2)), f([5], uniform(0.5, 1.5))], attrs: { eps: { kind: 'float', value: 1e-6 } } },
  { op: 'matmul', what: 'matmul [3,4] @ [4,2]', operands: [f([3, 4]), f([4, 2])] },
  { op: 'matmul', what: 'matmul [2,3,4] @ [4,5] (weight under a batch)', operands: [f([2, 3, 4]), f([4, 5])] },
  { op: 'matmul', what: 'matmul [2,1,3,4] @ [3,4,2] (batch broadcast both ways)', operands: [f([2, 1, 3, 4]), f([3, 4, 2])] },
  { op: 'matmul', what: 'matmul [2,3,4] @ [2,4,5]', operands: [f([2, 3, 4]), f([2, 4, 5])] },
  { op: 'reshape', what: 'reshape [2,3,4] -> [6,4]', operands: [f([2, 3, 4])], attrs: { shape: dims(6, 4) } },
  { op: 'permute', what: 'permute [2,0,1]', operands: [f([2, 3, 4])], attrs: { perm: { kind: 'ints', value: [2, 0, 1] } } },
  { op: 'slice', what: 'slice 1:4 of axis 1', operands: [f([3, 5])], attrs: { axis: { kind: 'int', value: 1 }, start: { kind: 'dim', value: dim(1) }, end: { kind: 'dim', value: dim(4) } } },
  { op: 'slice', what: 'slice 0:2 of axis 0', operands: [f([3, 5])], attrs: { axis: { kind: 'int', value: 0 }, start: { kind: 'dim', value: dim(0) }, end: { kind: 'dim', value: dim(2) } } },
  { op: 'concat', what: 'concat of three along axis 1', operands: [f([2, 2]), f([2, 3]), f([2, 1])], attrs: { axis: { kind: 'int', value: 1 } } },
  { op: 'gather', what: 'gather [5,3] at i32[2,4] (repeats)', operands: [f([5, 3]), { shape: [2, 4], dtype: 'i32', gen: ints(5) }] },
  // Distinct offsets (7i mod 12 over 4 values): a cache write.
  { op: 'scatter', what: 'scatter 4 values into [3,4] at distinct flat offsets', operands: [f([3, 4]), { shape: [2, 2], dtype: 'i32', gen: (_r, i) => (7 * i) % 12 }, f([2, 2])] },
  { op: 'scatter_add', what: 'scatter_add [2,4,3] at i32[2,4] into 5 rows', operands: [f([2, 4, 3]), { shape: [2, 4], dtype: 'i32', gen: ints(5) }], attrs: { rows: { kind: 'dim', value: dim(5) } } },
  {
    op: 'grid',
    what: 'grid: direct, transposed-broadcast and modular reads',
    operands: [f([3, 4]), f([4]), f([2]), f([1, 4])],
    attrs: {
      shape: dims(3, 4),
      body: lam(['i', 'j'], ap('add', ap('mul', rd(0, ix(0), ix(1)), ap('exp', rd(1, ix(1)))), ap('mul', rd(2, { kind: 'apply', op: 'mod', args: [ix(1), i32(2)], dtype: 'i32' }), ap('sin', ap('add', rd(0, ix(0), ix(1)), rd(3, i32(0), ix(1))))))),
    },
  },
  { op: 'grid', what: 'grid: a transposed read', operands: [f([3, 4])], attrs: { shape: dims(4, 3), body: lam(['a', 'b'], ap('tanh', rd(0, ix(1), ix(0)))) } },
  { op: 'fused_map', what: 'fused_map silu(x) * y', operands: [f([2, 3]), f([3])], attrs: { shape: dims(2, 3), body: lam(['i', 'j'], ap('mul', ap('silu', rd(0, ix(0), ix(1))), rd(1, ix(1)))) } },
  { op: 'view', what: 'view: a transpose as an index map', operands: [f([3, 4])], attrs: { shape: dims(4, 3), map: lam(['a', 'b'], rd(0, ix(1), ix(0))) } },
  {
    op: 'fused_matmul',
    what: 'fused_matmul gelu(acc + bias)',
    operands: [f([2, 3]), f([3, 4]), f([4])],
    attrs: { epilogue: lam(['i', 'j'], { kind: 'apply', op: 'gelu', args: [ap('add', { kind: 'apply', op: 'acc', args: [], dtype: 'f32' }, rd(2, ix(1)))], dtype: 'f32', attrs: { approx: { kind: 'str', value: 'tanh' } } }) },
  },
  {
    op: 'fused_matmul',
    what: 'fused_matmul with a layernorm prologue',
    operands: [f([2, 3], uniform(-2, 2)), f([3, 4]), f([3], uniform(0.5, 1.5)), f([3])],
    attrs: { epilogue: lam(['i', 'j'], { kind: 'apply', op: 'acc', args: [], dtype: 'f32' }), norm: { kind: 'str', value: 'layernorm' }, eps: { kind: 'float', value: 1e-5 } },
  },
  {
    op: 'fused_attention',
    what: 'fused_attention causal, GQA 2/1 (every form: attention-grad.test.ts)',
    operands: [f([1, 2, 3, 2]), f([1, 1, 3, 2]), f([1, 1, 3, 2])],
    attrs: { scale: { kind: 'float', value: 0.8 }, mask: lam(['b', 'h', 'q', 'k'], { kind: 'apply', op: 'le', args: [ix(3), ix(2)], dtype: 'bool' }) },
  },
  {
    op: 'fused_cross_entropy',
    what: 'fused_cross_entropy tied [V, d] weight + bias (models: fused-loss.test.ts)',
    operands: [f([2, 3, 4]), f([5, 4]), { shape: [2, 3], dtype: 'i32', gen: ints(5) }, f([5])],
    attrs: { transpose_w: { kind: 'bool', value: true } },
  },
  { op: 'fused_cross_entropy', what: 'fused_cross_entropy h @ W [d, V]', operands: [f([3, 4]), f([4, 6]), { shape: [3], dtype: 'i32', gen: ints(6) }], attrs: { transpose_w: { kind: 'bool', value: false } } },
];

/** Ops without a vjp, each for the reason its catalog entry gives (checked to be there). */
const notDifferentiable = new Set([
  // made by fuse-reduce, after grad ran on the unfused graph
  'fused_reduce',
  // made by pack-weights, which training leaves out (weights are updated by name)
  'packed_weight',
  // bool results: no cotangent flows through them
  'not', 'eq', 'ne', 'lt', 'le', 'gt', 'ge', 'and', 'or',
  // a second result: its cotangent goes to its fused_attention's vjp (attention-grad.test.ts)
  'fused_attention_lse',
  // K / V as the attention loads them: made by fuse-cache-write, after any differentiation
  'fused_attention_k', 'fused_attention_v',
  // the fused attention backward (no second derivatives)
  'fused_attention_grad', 'fused_attention_grad_k', 'fused_attention_grad_v', 'fused_attention_grad_t',
  // the fused cross-entropy's gradient results (no second derivatives)
  'fused_cross_entropy_dh', 'fused_cross_entropy_dw', 'fused_cross_entropy_db',
  // names inside fused lambdas, never graph nodes
  'acc', 'acc_pair', 'score',
]);

function run(c: Case, seed: number): number {
  const r = rng(seed);
  const b = new TestGraphBuilder();
  const weights = new Map<string, Tensor64>();
  const inputs = new Map<string, Tensor64>();
  const ids = c.operands.map((o, i) => {
    const dtype = o.dtype ?? 'f32';
    const gen = o.gen ?? uniform(-1.5, 1.5);
    const n = o.shape.reduce((a, x) => a * x, 1);
    const t = makeTensor(dtype, o.shape, Array.from({ length: n }, (_, k) => gen(r, k)));
    const name = `x${i}`;
    if (dtype === 'f32') {
      weights.set(name, t);
      return b.weight(name, dtype, o.shape);
    }
    inputs.set(name, t);
    return b.input(name, dtype, o.shape);
  });
  b.output('y', b.op(c.op, ids, c.attrs ?? {}));
  const report = checkGradients(b.build(), 'y', { weights, inputs }, r);
  expect([...report.errors.keys()].sort()).toEqual([...weights.keys()].sort());
  return report.worst;
}

describe('vjp of every catalog op vs finite differences (float64)', () => {
  const worst: [string, number][] = [];
  for (const c of cases) {
    it(`${c.what}`, () => {
      const err = run(c, 17 + cases.indexOf(c));
      worst.push([c.what, err]);
      expect(err).toBeLessThanOrEqual(TOLERANCE);
    });
  }

  it('every op with operands has a vjp and a case here, or a noGrad reason and a place in the list above', () => {
    const tested = new Set(cases.map((c) => c.op));
    for (const op of catalog.values()) {
      if (op.arity === 0 && op.noGrad === undefined) continue; // sources: nothing to differentiate
      if (notDifferentiable.has(op.name)) {
        expect(op.vjp, op.name).toBeUndefined();
        expect(op.noGrad, op.name).toMatch(/\w/);
      } else {
        expect(op.vjp, `${op.name} has no vjp (add one to its catalog entry, or a noGrad reason and list it here)`).toBeDefined();
        expect(tested.has(op.name), `${op.name} has no finite-difference case`).toBe(true);
      }
    }
  });

  it('reports the worst error', () => {
    worst.sort((a, b) => b[1] - a[1]);
    console.log(`worst vjp errors vs finite differences: ${worst.slice(0, 5).map(([w, e]) => `${w} ${e.toExponential(1)}`).join('; ')}`);
    expect(worst.length).toBe(cases.length);
  });
});
