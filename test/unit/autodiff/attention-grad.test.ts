// fused_attention's vjp (src/ops/attention-vjp.ts) and the float64 rule of fused_attention_grad
// (src/ops/attention-grad.ts): dQ, dK, dV against Richardson central differences of the forward
// (test/unit/autodiff/fd.ts) for every form the kernel handles (masks, score mods and their
// symbolic derivative, GQA, a fully masked row, the LSE output's cotangent), and GPT-2 /
// Llama-style gradients with attention fused before grad equal to the unfused backward's.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { gradGraph } from '../../../src/autodiff/grad.js';
import { withCrossEntropyLoss } from '../../../src/autodiff/loss.js';
import { checkSource } from '../../../src/check/check-source.js';
import type { Diagnostic } from '../../../src/diag/diagnostic.js';
import type { Attrs, Graph, ScalarExpr } from '../../../src/graph/ir.js';
import { interpret } from '../../../src/interp/interpret.js';
import { makeTensor, type Tensor64 } from '../../../src/base/tensor.js';
import { scoreDerivative } from '../../../src/ops/attention-vjp.js';
import { runPipeline } from '../../../src/passes/driver.js';
import { createPassContext } from '../../../src/passes/pass.js';
import { graphPasses } from '../../../src/passes/pipeline.js';
import { fuseForwardAttention } from '../../../src/train/fuse-forward.js';
import { TestGraphBuilder } from '../../helpers/graph-builder.js';
import { checkGradients, rng } from './fd.js';

const ix = (axis: number): ScalarExpr => ({ kind: 'index', axis });
const ap = (op: string, dtype: 'f32' | 'bool' | 'i32', ...args: ScalarExpr[]): ScalarExpr => ({ kind: 'apply', op, args, dtype });
const f = (value: number): ScalarExpr => ({ kind: 'const', value, dtype: 'f32' });
const i = (value: number): ScalarExpr => ({ kind: 'const', value, dtype: 'i32' });
const score: ScalarExpr = { kind: 'apply', op: 'score', args: [], dtype: 'f32' };
const lam = (body: ScalarExpr): Attrs[string] => ({ kind: 'lambda', params: ['b', 'h', 'q', 'k'], body });
const causal = ap('le', 'bool', ix(3), ix(2));

interface Form {
  readonly what: string;
  readonly hq: number;
  readonly hkv: number;
  readonly mask?: ScalarExpr;
  readonly score?: ScalarExpr;
  /** Extra operands (inputs, not differentiated; a learned table with `weight`): shape, dtype, values. */
  readonly extras?: readonly { shape: number[]; dtype: 'f32' | 'i32'; values: number[]; weight?: boolean }[];
  /** The output is o * exp(lse) (both results carry a cotangent). */
  readonly withLse?: boolean;
}

const forms: readonly Form[] = [
  { what: 'no mask', hq: 2, hkv: 2 },
  { what: 'causal', hq: 2, hkv: 2, mask: causal },
  { what: 'sliding window 2 + GQA 4/2', hq: 4, hkv: 2, mask: ap('and', 'bool', causal, ap('lt', 'bool', ap('sub', 'i32', ix(2), ix(3)), i(2))) },
  { what: 'MQA 3/1, causal', hq: 3, hkv: 1, mask: causal },
  { what: 'softcap 2 tanh(s / 2) (scale folded), causal', hq: 2, hkv: 2, mask: causal, score: ap('mul', 'f32', f(2), ap('tanh', 'f32', score)) },
  { what: 'piecewise where(s > 0.3, 0.3 + (s - 0.3) / 8, s)', hq: 2, hkv: 2, score: ap('where', 'f32', ap('gt', 'bool', score, f(0.3)), ap('add', 'f32', f(0.3), ap('div', 'f32', ap('sub', 'f32', score, f(0.3)), f(8))), score) },
  { what: 's * sigmoid(s) (score() twice)', hq: 2, hkv: 2, mask: causal, score: ap('mul', 'f32', score, ap('sigmoid', 'f32', score)) },
  {
    what: 'ALiBi slope read(3, h) * (k - q), causal',
    hq: 2,
    hkv: 2,
    mask: causal,
    score: ap('add', 'f32', score, ap('mul', 'f32', { kind: 'read', operand: 3, indices: [ix(1)], dtype: 'f32' }, ap('cast', 'f32', ap('sub', 'i32', ix(3), ix(2))))),
    extras: [{ shape: [2], dtype: 'f32', values: [0.5, 0.25] }],
  },
  {
    what: 'per-batch length k < len[b] (batch 1 fully masked)',
    hq: 2,
    hkv: 2,
    mask: ap('lt', 'bool', ix(3), { kind: 'read', operand: 3, indices: [ix(0)], dtype: 'i32' }),
    extras: [{ shape: [2], dtype: 'i32', values: [3, 0] }],
  },
  { what: 'LSE output too (o * exp(lse)), causal', hq: 2, hkv: 2, mask: causal, withLse: true },
  {
    // examples/variants/relative-bias.tfx's form: rel[clamp(k - q, -2, 2) + 2, h], a learned table.
    what: 'learned relative bias table[clamp(k - q) + 2, h], causal',
    hq: 2,
    hkv: 2,
    mask: causal,
    score: ap('add', 'f32', score, { kind: 'read', operand: 3, indices: [ap('add', 'i32', ap('min', 'i32', ap('max', 'i32', ap('sub', 'i32', ix(3), ix(2)), i(-2)), i(2)), i(2)), ix(1)], dtype: 'f32' }),
    extras: [{ shape: [5, 2], dtype: 'f32', values: [0.3, -0.2, 0.1, 0.5, -0.4, 0.2, 0.7, -0.1, 0.05, -0.3], weight: true }],
  },
  {
    // Two tables, one read twice and under score(): the adjoint of a read holds the scaled score.
    what: 'learned per-head temperature and bias: s * temp[h] + bias[k] + bias[q], GQA 4/2, window 3',
    hq: 4,
    hkv: 2,
    mask: ap('and', 'bool', causal, ap('lt', 'bool', ap('sub', 'i32', ix(2), ix(3)), i(3))),
    score: ap(
      'add',
      'f32',
      ap('add', 'f32', ap('mul', 'f32', score, { kind: 'read', operand: 3, indices: [ix(1)], dtype: 'f32' }), { kind: 'read', operand: 4, indices: [ix(3)], dtype: 'f32' }),
      { kind: 'read', operand: 4, indices: [ix(2)], dtype: 'f32' },
    ),
    extras: [
      { shape: [4], dtype: 'f32', values: [1.1, 0.8, 1.3, 0.6], weight: true },
      { shape: [5], dtype: 'f32', values: [0.2, -0.3, 0.4, 0.1, -0.5], weight: true },
    ],
  },
];

function attentionGraph(form: Form, r: () => number): { g: Graph; weights: Map<string, Tensor64>; inputs: Map<string, Tensor64> } {
  const [B, T, S, dk, dv] = [2, 4, 5, 3, 2];
  const b = new TestGraphBuilder();
  const weights = new Map<string, Tensor64>();
  const inputs = new Map<string, Tensor64>();
  const w = (name: string, shape: number[]): number => {
    weights.set(name, makeTensor('f32', shape, Array.from({ length: shape.reduce((a, x) => a * x, 1) }, () => 2 * r() - 1)));
    return b.weight(name, 'f32', shape);
  };
  const q = w('q', [B, form.hq, T, dk]);
  const k = w('k', [B, form.hkv, S, dk]);
  const v = w('v', [B, form.hkv, S, dv]);
  const extras = (form.extras ?? []).map((e, j) => {
    const t = makeTensor(e.dtype, e.shape, e.values);
    if (e.weight === true) {
      weights.set(`table${j}`, t);
      return b.weight(`table${j}`, e.dtype, e.shape);
    }
    inputs.set(`x${j}`, t);
    return b.input(`x${j}`, e.dtype, e.shape);
  });
  const attrs: Record<string, Attrs[string]> = { scale: { kind: 'float', value: 0.7 } };
  if (form.mask !== undefined) attrs['mask'] = lam(form.mask);
  if (form.score !== undefined) attrs['score'] = lam(form.score);
  const o = b.op('fused_attention', [q, k, v, ...extras], attrs);
  let y = o;
  if (form.withLse === true) {
    const l = b.op('fused_attention_lse', [o]);
    const e = b.op('exp', [b.op('reshape', [l], { shape: { kind: 'dims', value: [B, form.hq, T, 1].map((n) => ({ terms: [{ coef: n, vars: [] }] })) } })]);
    y = b.op('mul', [o, e]);
  }
  b.output('y', y);
  return { g: b.build(), weights, inputs };
}

describe('fused_attention vjp vs finite differences (float64)', () => {
  for (const form of forms) {
    it(form.what, () => {
      const r = rng(11 + forms.indexOf(form));
      const { g, weights, inputs } = attentionGraph(form, r);
      const report = checkGradients(g, 'y', { weights, inputs }, r);
      const tables = (form.extras ?? []).flatMap((e, j) => (e.weight === true ? [`table${j}`] : []));
      expect([...report.errors.keys()].sort()).toEqual(['k', 'q', ...tables, 'v']);
      expect(report.worst).toBeLessThanOrEqual(1e-9);
      console.log(`fused_attention vjp, ${form.what}: worst ${report.worst.toExponential(1)} vs finite differences`);
    });
  }

  it('the backward is one fused_attention_grad with dK and dV as its second results', () => {
    const { g } = attentionGraph(forms[2] as Form, rng(3));
    const r = gradGraph(g, { output: 'y' }, () => undefined);
    const ops = r?.graph.nodes.slice(r.forwardNodes).map((n) => n.op) ?? [];
    expect(ops.filter((o) => o.startsWith('fused_attention'))).toEqual(['fused_attention_lse', 'fused_attention_grad', 'fused_attention_grad_k', 'fused_attention_grad_v']);
    expect(ops).not.toContain('softmax');
    expect(ops).not.toContain('matmul');
  });

  it('a learned score-mod table gets its gradient as a second result fused_attention_grad_t of the one fused_attention_grad', () => {
    const form = forms.find((f) => f.what.startsWith('learned per-head')) as Form;
    const { g } = attentionGraph(form, rng(3));
    const r = gradGraph(g, { output: 'y' }, () => undefined);
    const back = r?.graph.nodes.slice(r.forwardNodes) ?? [];
    expect(back.map((n) => n.op).filter((o) => o.startsWith('fused_attention'))).toEqual(['fused_attention_lse', 'fused_attention_grad', 'fused_attention_grad_k', 'fused_attention_grad_v', 'fused_attention_grad_t', 'fused_attention_grad_t']);
    const grad = back.find((n) => n.op === 'fused_attention_grad');
    // q, k, v, o, lse, dO, then the two tables at 6 and 7.
    expect(grad?.attrs['table_grads']).toEqual({ kind: 'ints', value: [6, 7] });
    expect(back.filter((n) => n.op === 'fused_attention_grad_t').map((n) => [n.attrs['operand'], n.type.shape.length])).toEqual([
      [{ kind: 'int', value: 6 }, 1],
      [{ kind: 'int', value: 7 }, 1],
    ]);
    expect(back.map((n) => n.op)).not.toContain('softmax');
  });

  it('derives score mods symbolically', () => {
    const text = (e: ScalarExpr): string => JSON.stringify(e);
    // d/ds (2 tanh(s)) = 2 (1 - tanh(s)^2); a constant mod has derivative 0; s + bias: 1.
    expect(text(scoreDerivative(ap('add', 'f32', score, f(1))))).toBe(text(f(1)));
    expect(text(scoreDerivative(ap('mul', 'f32', f(3), f(1))))).toBe(text(f(0)));
    const d = scoreDerivative(ap('mul', 'f32', f(2), ap('tanh', 'f32', score)));
    expect(JSON.stringify(d)).toContain('"op":"tanh"');
  });
});

/** The loss graph of `file` (or its `text`) at small dims: its checked graph after the cleanups (attention fused when `fused`), cross-entropy, grad. */
function lossGrad(file: string, config: Record<string, number>, dims: Record<string, number>, fused: boolean, text = readFileSync(file, 'utf8')): Graph {
  const r = checkSource(text, file, new Map(Object.entries({ ...config, ...dims })));
  const errors: Diagnostic[] = [...r.diagnostics];
  if (r.graph === undefined) throw new Error(errors.map((d) => d.message).join('\n'));
  const ctx = createPassContext({ target: 'webgpu', verify: true });
  const ir = runPipeline(r.graph, graphPasses, ctx);
  const logits = ir.outputs.filter((o) => o.name === 'logits');
  const fwd0 = { ...ir, outputs: logits };
  const fwd = fused ? fuseForwardAttention(fwd0, ctx) : fwd0;
  const withLoss = withCrossEntropyLoss(fwd, {}, (d) => errors.push(d));
  const g = withLoss === undefined ? undefined : gradGraph(withLoss, { output: 'loss' }, (d) => errors.push(d));
  expect(errors.map((d) => d.message)).toEqual([]);
  if (g === undefined) throw new Error('no backward');
  return g.graph;
}

describe('models: gradients with attention fused before grad equal the unfused backward (float64)', () => {
  const cases = [
    { file: 'examples/gpt2.tfx', config: { layers: 2, d: 16, heads: 2, vocab: 32, ctx: 16 }, dims: { B: 2, T: 6 } },
    { file: 'examples/variants/llama-nocache.tfx', config: { vocab: 32, d: 16, heads: 4, kv_heads: 2, layers: 1, ffn: 24 }, dims: { B: 2, T: 5 } },
  ];
  for (const c of cases) {
    it(c.file, () => {
      const fused = lossGrad(c.file, c.config, c.dims, true);
      const unfused = lossGrad(c.file, c.config, c.dims, false);
      expect(fused.nodes.filter((n) => n.op === 'fused_attention_grad')).toHaveLength(c.config.layers);
      expect(fused.nodes.some((n) => n.op === 'softmax')).toBe(false);
      const r = rng(5);
      const weights = new Map<string, Tensor64>();
      for (const n of unfused.nodes) {
        if (n.op !== 'weight') continue;
        const shape = n.type.shape.map((d) => d.terms[0]?.coef ?? 1);
        weights.set(String((n.attrs['name'] as { value: string }).value), makeTensor('f32', shape, Array.from({ length: shape.reduce((a, x) => a * x, 1) }, () => 0.5 * (2 * r() - 1))));
      }
      const [B, T] = [c.dims.B, c.dims.T];
      const ids = (seed: number): Tensor64 => makeTensor('i32', [B, T], Array.from({ length: B * T }, (_, j) => (seed * 7 + j * 5) % c.config.vocab));
      const inputs = new Map([['tokens', ids(1)], ['targets', ids(2)]]);
      const want = interpret(unfused, { inputs, weights }).outputs;
      const got = interpret(fused, { inputs, weights }).outputs;
      expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
      let worst = 0;
      for (const [name, ref] of want) {
        const x = got.get(name);
        const scale = Math.max(...ref.data.map(Math.abs), 1e-30);
        const err = Math.max(...ref.data.map((v, j) => Math.abs(v - (x?.data[j] ?? NaN)))) / scale;
        worst = Math.max(worst, err);
        expect(err, name).toBeLessThanOrEqual(1e-9);
      }
      console.log(`${c.file}: ${want.size} outputs, fused vs unfused backward worst ${worst.toExponential(2)}`);
    });
  }
});

describe('learned score-mod tables before grad (fuseForwardAttention)', () => {
  const file = 'examples/variants/relative-bias.tfx';
  const config = { layers: 1, d: 16, heads: 2, vocab: 32, ctx: 4096 };
  it('a constant-shape table (relative-bias) is fused: one fused_attention_grad with its table gradient, no softmax', () => {
    const g = lossGrad(file, config, {}, true);
    expect(g.nodes.filter((n) => n.op === 'fused_attention_grad_t').map((n) => n.type.shape.map((d) => d.terms[0]?.coef))).toEqual([[17, 2]]);
    expect(g.nodes.some((n) => n.op === 'softmax')).toBe(false);
  });
  // A per-token learned gate [B, T, heads] read like a table: symbolic, or bound past MAX_TABLE_ENTRIES.
  const gated = readFileSync(file, 'utf8')
    .replace(/^weight rel: .*$/m, 'weight wg: f32[d, heads] = "gate.weight"')
    .replace(/^ {2}bias = grid\[heads, T, T\].*$/m, '  gate = x @ wg\n  bias = grid[B, heads, T, T](b, h, qi, ki) => gate[b, ki, h]');
  for (const [what, dims] of [['B, T symbolic', {}], ['B = 2, T = 4096 bound: 16384 entries', { B: 2, T: 4096 }]] as const) {
    it(`a tensor carrying a gradient that is no small constant table (a learned per-token gate, ${what}) keeps the unfused backward`, () => {
      expect(gated).toContain('gate[b, ki, h]');
      const g = lossGrad('gate.tfx', config, dims, true, gated);
      expect(g.nodes.some((n) => n.op === 'fused_attention_grad')).toBe(false);
      expect(g.nodes.some((n) => n.op === 'softmax')).toBe(true);
    });
  }
  it('the same gate bound small (B = 1, T = 5: 10 entries) is a table: fused, its gradient fused_attention_grad_t', () => {
    const g = lossGrad('gate.tfx', config, { B: 1, T: 5 }, true, gated);
    expect(g.nodes.filter((n) => n.op === 'fused_attention_grad_t').map((n) => n.type.shape.map((d) => d.terms[0]?.coef))).toEqual([[1, 5, 2]]);
  });
});

describe('fused_attention_grad float64 rule', () => {
  it('reruns when q changes under the same dO tensor (its result cache checks every operand)', () => {
    const { g, weights } = attentionGraph(forms[2] as Form, rng(5));
    const r = gradGraph(g, { output: 'y' }, () => undefined);
    if (r?.seed === undefined) throw new Error('expected a seed input for the non-scalar output');
    const yShape = g.nodes[g.outputs[0]?.value ?? -1]?.type.shape.map((d) => d.terms[0]?.coef ?? 1) ?? [];
    const seed = makeTensor('f32', yShape, Array.from({ length: yShape.reduce((a, x) => a * x, 1) }, (_, i) => Math.sin(i + 1)));
    const q = weights.get('q');
    if (q === undefined) throw new Error('no q');
    const q2 = { ...q, data: q.data.map((x) => x * 1.5 + 0.1) };
    const run = (w: Map<string, Tensor64>, s: Tensor64): Float64Array | undefined => interpret(r.graph, { inputs: new Map([[r.seed ?? '', s]]), weights: w }).outputs.get('grad.k')?.data;
    run(weights, seed);
    const reused = run(new Map([...weights, ['q', q2]]), seed);
    const fresh = run(new Map([...weights, ['q', q2]]), { ...seed, data: Float64Array.from(seed.data) });
    expect(fresh).toBeDefined();
    expect(reused).toEqual(fresh);
  });
});
