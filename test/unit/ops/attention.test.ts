// fused_attention in the catalog: shape rule and its errors (GQA/MQA grouping, cross-attention
// T != S), the float64 rule on hand-computed values (masks, a fully masked row, score mods,
// GQA head mapping), and the IR text round trip of a node with both lambdas.
import { describe, expect, it } from 'vitest';
import { DiagnosticSink } from '../../../src/diag/diagnostic.js';
import type { Attrs, ScalarExpr } from '../../../src/graph/ir.js';
import { parseGraph } from '../../../src/graph/parse.js';
import { printGraph } from '../../../src/graph/print.js';
import { printType } from '../../../src/graph/types.js';
import { verifyGraph } from '../../../src/graph/verify.js';
import { interpret } from '../../../src/interp/interpret.js';
import type { Tensor64 } from '../../../src/base/tensor.js';
import { inferType, t, ty } from '../../helpers/graph-builder.js';

const P = ['b', 'h', 'q', 'k'];
const lam = (body: ScalarExpr): Attrs[string] => ({ kind: 'lambda', params: P, body });
const idx = (axis: number): ScalarExpr => ({ kind: 'index', axis });
const ap = (op: string, args: ScalarExpr[], dtype: 'f32' | 'bool' | 'i32'): ScalarExpr => ({ kind: 'apply', op, args, dtype });
const score: ScalarExpr = { kind: 'apply', op: 'score', args: [], dtype: 'f32' };
const scale = (v: number): Attrs => ({ scale: { kind: 'float', value: v } });
const causal = lam(ap('le', [idx(3), idx(2)], 'bool'));

function infer(shapes: (string | number)[][], attrs: Attrs = scale(1)): string {
  const r = inferType('fused_attention', shapes.map((s) => ty('f32', s)), attrs);
  return 'code' in r ? `${r.code}: ${r.message}` : printType(r);
}

describe('fused_attention shape rule', () => {
  it('gives [B, Hq, T, dv] for self, cross (T != S), GQA and MQA', () => {
    expect(infer([['B', 8, 'T', 64], ['B', 8, 'T', 64], ['B', 8, 'T', 32]])).toBe('f32[B,8,T,32]');
    expect(infer([['B', 8, 'T', 64], ['B', 8, 'S', 64], ['B', 8, 'S', 64]])).toBe('f32[B,8,T,64]');
    expect(infer([['B', 8, 'T', 64], ['B', 2, 'P+T', 64], ['B', 2, 'P+T', 64]], { ...scale(0.125), mask: causal })).toBe('f32[B,8,T,64]');
    expect(infer([['B', 8, 'T', 64], ['B', 1, 'S', 64], ['B', 1, 'S', 64]])).toBe('f32[B,8,T,64]');
  });
  it('rejects mismatches with clear errors', () => {
    expect(infer([['B', 6, 'T', 64], ['B', 4, 'S', 64], ['B', 4, 'S', 64]])).toMatch(/TFC201: .*6 query heads are not a multiple of 4 KV heads/);
    expect(infer([['B', 8, 'T', 64], ['B', 8, 'S', 32], ['B', 8, 'S', 64]])).toMatch(/TFC204: .*head widths 64 and 32 differ/);
    expect(infer([['B', 8, 'T', 64], ['B', 8, 'S', 64], ['B', 8, 'T', 64]])).toMatch(/TFC201: .*k has S keys but v has T/);
    expect(infer([['B', 8, 'T', 64], ['B', 8, 'S', 64], ['B', 4, 'S', 64]])).toMatch(/TFC201: .*k has 8 heads but v has 4/);
    expect(infer([['B', 'T', 64], ['B', 'S', 64], ['B', 'S', 64]])).toMatch(/TFC203: .*rank 4/);
    expect(infer([['B', 8, 'T', 64], ['B', 8, 'S', 64], ['B', 8, 'S', 64]], {})).toMatch(/TFC216: .*'scale'/);
  });
  it('checks the lambdas: bool mask, f32 score, no score() in the mask, reads of extras only', () => {
    const qkv = [['B', 2, 'T', 4], ['B', 2, 'S', 4], ['B', 2, 'S', 4]];
    expect(infer(qkv, { ...scale(1), mask: lam(score) })).toMatch(/'mask' uses score\(\)/);
    expect(infer(qkv, { ...scale(1), mask: lam(ap('add', [idx(3), idx(2)], 'i32')) })).toMatch(/'mask' gives i32, not bool/);
    expect(infer(qkv, { ...scale(1), score: lam(ap('le', [idx(3), idx(2)], 'bool')) })).toMatch(/'score' gives bool, not f32/);
    expect(infer(qkv, { ...scale(1), score: lam({ kind: 'read', operand: 0, indices: [idx(0), idx(1), idx(2), idx(3)], dtype: 'f32' }) })).toMatch(/reads operand 0; lambdas read only the extra operands/);
    expect(infer([...qkv, [2]], { ...scale(1), score: lam(ap('add', [score, { kind: 'read', operand: 3, indices: [idx(1)], dtype: 'f32' }], 'f32')) })).toBe('f32[B,2,T,4]');
    expect(infer(qkv, { ...scale(1), mask: { kind: 'lambda', params: ['q', 'k'], body: ap('le', [idx(1), idx(0)], 'bool') } })).toMatch(/takes \(b, h, q, k\), got 2/);
  });
  it('score() is not a grid body op', () => {
    const r = inferType('grid', [], { shape: { kind: 'dims', value: ty('f32', [2]).shape }, body: { kind: 'lambda', params: ['i'], body: score } });
    expect('code' in r ? r.message : 'accepted').toMatch(/'score' with 0 argument\(s\) is not an elementwise op/);
  });
});

/** Runs one fused_attention node through the interpreter. */
function run(q: Tensor64, k: Tensor64, v: Tensor64, attrs: Attrs, extras: Tensor64[] = []): number[] {
  const names = ['q', 'k', 'v', ...extras.map((_, i) => `x${i}`)];
  const tensors = [q, k, v, ...extras];
  const lines = tensors.map((x, i) => `  %${i} = input {name="${names[i] ?? ''}"} : f32[${x.shape.join(',')}]`);
  const attrText = printGraph({
    name: 'm', dims: [], outputs: [],
    nodes: [...tensors.map((x, i) => ({ id: i, op: 'input', operands: [], attrs: { name: { kind: 'str' as const, value: names[i] ?? '' } }, type: { dtype: 'f32' as const, shape: ty('f32', x.shape).shape }, loc: { file: 't', line: 1, col: 1, endLine: 1, endCol: 1 } })),
      { id: tensors.length, op: 'fused_attention', operands: tensors.map((_, i) => i), attrs, type: { dtype: 'f32' as const, shape: ty('f32', [q.shape[0] ?? 0, q.shape[1] ?? 0, q.shape[2] ?? 0, v.shape[3] ?? 0]).shape }, loc: { file: 't', line: 1, col: 1, endLine: 1, endCol: 1 } }],
  }, { locs: false });
  const fusedLine = attrText.split('\n').find((l) => l.includes('fused_attention')) ?? '';
  const text = `graph m() {\n${lines.join('\n')}\n${fusedLine}\n  output "o" = %${tensors.length}\n}\n`;
  const sink = new DiagnosticSink();
  const g = parseGraph(text, 't.ir', sink);
  expect(sink.items.map((d) => d.message)).toEqual([]);
  if (g === undefined) throw new Error('no graph');
  expect(verifyGraph(g)).toEqual([]);
  const out = interpret(g, { inputs: new Map(tensors.map((x, i) => [names[i] ?? '', x])), weights: new Map() }).outputs.get('o');
  if (out === undefined) throw new Error('no output');
  return [...out.data];
}

describe('fused_attention float64 rule (hand-computed)', () => {
  // One batch, Hq = 2 query heads sharing Hkv = 1 KV head (MQA), T = 2, S = 3, dk = dv = 1.
  // Keys 1, 0, -1 and values 1, 2, 3: a query x sees scores x*k = (x, 0, -x) * scale.
  const q = t('f32', [1, 2, 2, 1], [1, 2, 0, -1]);
  const k = t('f32', [1, 1, 3, 1], [1, 0, -1]);
  const v = t('f32', [1, 1, 3, 1], [1, 2, 3]);
  /** softmax-weighted mean of values 1, 2, 3 for scores s. */
  const avg = (s: number[]): number => {
    const e = s.map(Math.exp);
    const z = e.reduce((a, x) => a + x, 0);
    return e.reduce((a, x, j) => a + (x * (j + 1)) / z, 0);
  };
  it('dense: softmax(q k * scale) @ v per query head, both heads on the one KV head', () => {
    const got = run(q, k, v, scale(0.5));
    const want = [avg([0.5, 0, -0.5]), avg([1, 0, -1]), avg([0, 0, 0]), avg([-0.5, 0, 0.5])];
    got.forEach((x, i) => expect(x).toBeCloseTo(want[i] ?? NaN, 12));
    expect(want[2]).toBe(2); // uniform over 1, 2, 3
  });
  it('causal mask (k <= q) and a fully masked row (k < q at q = 0) giving 0', () => {
    const got = run(q, k, v, { ...scale(1), mask: causal });
    // row q=0 sees key 0 only -> value 1; row q=1 sees keys 0, 1
    expect(got[0]).toBeCloseTo(1, 12);
    expect(got[1]).toBeCloseTo((Math.exp(2) * 1 + 1 * 2) / (Math.exp(2) + 1), 12);
    const strict = run(q, k, v, { ...scale(1), mask: lam(ap('lt', [idx(3), idx(2)], 'bool')) });
    expect(strict[0]).toBe(0);
    expect(strict[2]).toBe(0);
    expect(strict[1]).toBeCloseTo(1, 12);
  });
  it('score lambda: per-head bias read from operand 3 is added after scaling', () => {
    const slope = t('f32', [2], [10, 0]);
    const got = run(q, k, v, { ...scale(1), score: lam(ap('add', [score, ap('mul', [{ kind: 'read', operand: 3, indices: [idx(1)], dtype: 'f32' }, ap('cast', [idx(3)], 'f32')], 'f32')], 'f32')) }, [slope]);
    // head 0: scores (1, 0, -1) + 10 * (0, 1, 2) -> key 2 dominates
    expect(got[0]).toBeCloseTo(avg([1, 10, 19]), 12);
    expect(got[2]).toBeCloseTo(avg([0, 0, 0]), 12);
  });
  it('GQA: Hq = 4 on Hkv = 2, query head h reads KV head floor(h / 2)', () => {
    const q4 = t('f32', [1, 4, 1, 1], [1, 1, 1, 1]);
    const k2 = t('f32', [1, 2, 2, 1], [0, 0, 0, 0]);
    const v2 = t('f32', [1, 2, 2, 1], [1, 3, 10, 20]); // uniform weights: mean of each head's values
    expect(run(q4, k2, v2, scale(1))).toEqual([2, 2, 15, 15]);
  });
});

describe('fused_attention IR text', () => {
  it('prints and parses back with mask, score, extras and from(...), and verifies', () => {
    const text = `graph m(B, T, S) {
  %0 = input {name="q"} : f32[B,4,T,8]  loc(m.tfx:1:1)
  %1 = input {name="k"} : f32[B,2,S,8]  loc(m.tfx:2:1)
  %2 = input {name="v"} : f32[B,2,S,8]  loc(m.tfx:3:1)
  %3 = weight {name="slope"} : f32[4]  loc(m.tfx:4:1)
  %4 = fused_attention %0, %1, %2, %3 {mask=(b, h, q, k) => le(k, add(q, sub(dim(S), dim(T)))), scale=0.125, score=(b, h, q, k) => add(score(), mul(read(3, h), cast:f32(sub(k, q))))} : f32[B,4,T,8]  loc(m.tfx:9:7 to :40) from(m.tfx:7:3, m.tfx:8:3 to :9)
  output "o" = %4  loc(m.tfx:10:1)
}
`;
    const sink = new DiagnosticSink();
    const g = parseGraph(text, 'm.ir', sink);
    expect(sink.items.map((d) => d.message)).toEqual([]);
    if (g === undefined) throw new Error('no graph');
    expect(printGraph(g)).toBe(text);
    expect(verifyGraph(g)).toEqual([]);
  });
  it('the verifier reports a mistyped optional lambda and unknown attributes', () => {
    const bad = (attrs: string): string[] => {
      const g = parseGraph(`graph m(B, T) {
  %0 = input {name="q"} : f32[B,2,T,8]
  %1 = fused_attention %0, %0, %0 {${attrs}} : f32[B,2,T,8]
  output "o" = %1
}`, 'm.ir', new DiagnosticSink());
      return g === undefined ? ['parse error'] : verifyGraph(g);
    };
    expect(bad('mask=1.0, scale=1.0')).toEqual(['parse error']);
    expect(bad('scale=1.0, window=3')).toEqual(['parse error']);
    expect(bad('mask=(b, h, q, k) => score(), scale=1.0').join('\n')).toMatch(/'mask' uses score\(\)/);
    expect(bad('scale=1.0')).toEqual([]);
  });
});

describe('fused_attention_lse (the LSE result of a fused_attention)', () => {
  // The same tiny MQA problem as above: scores (x, 0, -x) * scale for query value x.
  const ir = (attrs: string): string => `graph m() {
  %0 = input {name="q"} : f32[1,2,2,1]  loc(m.tfx:1:1)
  %1 = input {name="k"} : f32[1,1,3,1]  loc(m.tfx:2:1)
  %2 = input {name="v"} : f32[1,1,3,1]  loc(m.tfx:3:1)
  %3 = fused_attention %0, %1, %2 {${attrs}} : f32[1,2,2,1]  loc(m.tfx:4:1)
  %4 = fused_attention_lse %3 : f32[1,2,2]  loc(m.tfx:5:1)
  output "o" = %3  loc(m.tfx:6:1)
  output "lse" = %4  loc(m.tfx:7:1)
}
`;
  const lseOf = (attrs: string): number[] => {
    const sink = new DiagnosticSink();
    const g = parseGraph(ir(attrs), 'm.ir', sink);
    expect(sink.items.map((d) => d.message)).toEqual([]);
    if (g === undefined) throw new Error('no graph');
    expect(verifyGraph(g)).toEqual([]);
    const inputs = new Map([
      ['q', t('f32', [1, 2, 2, 1], [1, 2, 0, -1])],
      ['k', t('f32', [1, 1, 3, 1], [1, 0, -1])],
      ['v', t('f32', [1, 1, 3, 1], [1, 2, 3])],
    ]);
    const out = interpret(g, { inputs, weights: new Map() }).outputs.get('lse');
    if (out === undefined) throw new Error('no lse');
    expect(out.shape).toEqual([1, 2, 2]);
    return [...out.data];
  };
  const lse = (s: number[]): number => Math.log(s.reduce((a, x) => a + Math.exp(x), 0));
  it('is log(sum exp(score)) of the scaled scores, per query head and row', () => {
    const got = lseOf('scale=0.5');
    const want = [lse([0.5, 0, -0.5]), lse([1, 0, -1]), lse([0, 0, 0]), lse([-0.5, 0, 0.5])];
    got.forEach((x, i) => expect(Math.abs(x - (want[i] ?? NaN))).toBeLessThan(1e-15));
    expect(want[2]).toBeCloseTo(Math.log(3), 15);
  });
  it('sees the mask and the score lambda; a fully masked row gives -inf', () => {
    // k < q: row q = 0 sees no key (-inf), row q = 1 sees key 0 only (its score x * 1).
    const got = lseOf('mask=(b, h, q, k) => lt(k, q), scale=1.0, score=(b, h, q, k) => mul(score(), 2.0)');
    expect(got).toEqual([-Infinity, 4, -Infinity, -2]);
  });
  it('prints and parses back; the verifier wants a fused_attention operand', () => {
    const text = ir('scale=0.5');
    const g = parseGraph(text, 'm.ir', new DiagnosticSink());
    if (g === undefined) throw new Error('no graph');
    expect(printGraph(g)).toBe(text);
    const bad = parseGraph(text.replace('fused_attention_lse %3', 'fused_attention_lse %0'), 'm.ir', new DiagnosticSink());
    if (bad === undefined) throw new Error('no graph');
    expect(verifyGraph(bad).join('\n')).toMatch(/%4 \(fused_attention_lse\): operand 0 is %0 \(input\), but 'fused_attention_lse' is a result of a fused_attention/);
  });
});

describe('fused_attention_k / _v (K and V as the attention loads them: a KV cache written by the attention)', () => {
  // One query, past keys (1, 2) and one new key 3 (operand 3), values 10 times them: kload and
  // vload are concat(past, new) along s, as fuse-cache-write makes them.
  const cat = (past: number, extra: number): string => `where(lt(s, 2), read(${past}, b, h, s, d), read(${extra}, b, sub(s, 2), h, d))`;
  const text = `graph m() {
  %0 = input {name="q"} : f32[1,1,1,1]  loc(m.tfx:1:1)
  %1 = input {name="past_k"} : f32[1,1,2,1]  loc(m.tfx:2:1)
  %2 = input {name="past_v"} : f32[1,1,2,1]  loc(m.tfx:3:1)
  %3 = input {name="new_k"} : f32[1,1,1,1]  loc(m.tfx:4:1)
  %4 = input {name="new_v"} : f32[1,1,1,1]  loc(m.tfx:5:1)
  %5 = fused_attention %0, %1, %2, %3, %4 {kload=(b, h, s, d) => ${cat(1, 3)}, kshape=dims[1,1,3,1], scale=1.0, vload=(b, h, s, d) => ${cat(2, 4)}, vshape=dims[1,1,3,1]} : f32[1,1,1,1]  loc(m.tfx:6:1)
  %6 = fused_attention_k %5 : f32[1,1,3,1]  loc(m.tfx:7:1)
  %7 = fused_attention_v %5 : f32[1,1,3,1]  loc(m.tfx:8:1)
  output "o" = %5  loc(m.tfx:9:1)
  output "present_k" = %6  loc(m.tfx:10:1)
  output "present_v" = %7  loc(m.tfx:11:1)
}
`;
  it('is the load lambda over its shape (the cache with the new row), and the attention reads the same K and V', () => {
    const sink = new DiagnosticSink();
    const g = parseGraph(text, 'm.ir', sink);
    expect(sink.items.map((d) => d.message)).toEqual([]);
    if (g === undefined) throw new Error('no graph');
    expect(verifyGraph(g)).toEqual([]);
    expect(printGraph(g)).toBe(text);
    const inputs = new Map([
      ['q', t('f32', [1, 1, 1, 1], [1])],
      ['past_k', t('f32', [1, 1, 2, 1], [1, 2])],
      ['past_v', t('f32', [1, 1, 2, 1], [10, 20])],
      ['new_k', t('f32', [1, 1, 1, 1], [3])],
      ['new_v', t('f32', [1, 1, 1, 1], [30])],
    ]);
    const out = interpret(g, { inputs, weights: new Map() }).outputs;
    expect([...(out.get('present_k')?.data ?? [])]).toEqual([1, 2, 3]);
    expect([...(out.get('present_v')?.data ?? [])]).toEqual([10, 20, 30]);
    // softmax(1, 2, 3) @ (10, 20, 30)
    const e = [1, 2, 3].map((x) => Math.exp(x));
    const z = e.reduce((a, x) => a + x, 0);
    expect(out.get('o')?.data[0]).toBeCloseTo((10 * (e[0] ?? 0) + 20 * (e[1] ?? 0) + 30 * (e[2] ?? 0)) / z, 12);
  });
  it('needs a fused_attention operand and a declared type', () => {
    const bad = parseGraph(text.replace('fused_attention_k %5', 'fused_attention_k %1'), 'm.ir', new DiagnosticSink());
    if (bad === undefined) throw new Error('no graph');
    expect(verifyGraph(bad).join('\n')).toMatch(/'fused_attention_k' is a result of a fused_attention/);
    const badV = parseGraph(text.replace('fused_attention_v %5', 'fused_attention_v %2'), 'm.ir', new DiagnosticSink());
    if (badV === undefined) throw new Error('no graph');
    expect(verifyGraph(badV).join('\n')).toMatch(/'fused_attention_v' is a result of a fused_attention/);
  });
});

describe('fused_attention_grad (the backward; dK, dV as fused_attention_grad_k / fused_attention_grad_v), hand-computed', () => {
  // One query q = 1, keys k = (1, 0), values v = (2, 5), scale 1: scores (1, 0), P = (p1, p2) =
  // softmax, o = 2 p1 + 5 p2, dO = 1, so dP = (2, 5), D = o and dS = P (dP - D) = (-3 p1 p2, 3 p1 p2).
  const ir = (attrs: string, dlse: boolean): string => `graph m() {
  %0 = input {name="q"} : f32[1,1,1,1]
  %1 = input {name="k"} : f32[1,1,2,1]
  %2 = input {name="v"} : f32[1,1,2,1]
  %3 = fused_attention %0, %1, %2 {${attrs}} : f32[1,1,1,1]
  %4 = fused_attention_lse %3 : f32[1,1,1]
  %5 = input {name="do"} : f32[1,1,1,1]
  %6 = input {name="dlse"} : f32[1,1,1]
  %7 = fused_attention_grad %0, %1, %2, %3, %4, %5${dlse ? ', %6' : ''} {${attrs}${dlse ? ', lse_cotangent=true' : ''}} : f32[1,1,1,1]
  %8 = fused_attention_grad_k %7 : f32[1,1,2,1]
  %9 = fused_attention_grad_v %7 : f32[1,1,2,1]
  output "dq" = %7
  output "dk" = %8
  output "dv" = %9
}
`;
  const run = (attrs: string, dlse?: number): Record<string, number[]> => {
    const sink = new DiagnosticSink();
    const g = parseGraph(ir(attrs, dlse !== undefined), 'm.ir', sink);
    expect(sink.items.map((d) => d.message)).toEqual([]);
    if (g === undefined) throw new Error('no graph');
    expect(verifyGraph(g)).toEqual([]);
    const gradOps = ['fused_attention_grad', 'fused_attention_grad_k', 'fused_attention_grad_v'];
    expect(g.nodes.filter((n) => gradOps.includes(n.op)).map((n) => n.op)).toEqual(gradOps);
    const inputs = new Map([
      ['q', t('f32', [1, 1, 1, 1], [1])],
      ['k', t('f32', [1, 1, 2, 1], [1, 0])],
      ['v', t('f32', [1, 1, 2, 1], [2, 5])],
      ['do', t('f32', [1, 1, 1, 1], [1])],
      ['dlse', t('f32', [1, 1, 1], [dlse ?? 0])],
    ]);
    const out = interpret(g, { inputs, weights: new Map() }).outputs;
    return Object.fromEntries(['dq', 'dk', 'dv'].map((n) => [n, [...(out.get(n)?.data ?? [])]]));
  };
  const p1 = Math.E / (Math.E + 1);
  const p2 = 1 / (Math.E + 1);
  const close = (got: number[] | undefined, want: number[]): void => {
    expect(got?.length).toBe(want.length);
    want.forEach((w, i) => expect(Math.abs((got?.[i] ?? NaN) - w)).toBeLessThan(1e-15));
  };
  it('dQ = scale sum dS k, dK = scale dS q, dV = P dO', () => {
    const r = run('scale=1.0');
    close(r['dq'], [-3 * p1 * p2]);
    close(r['dk'], [-3 * p1 * p2, 3 * p1 * p2]);
    close(r['dv'], [p1, p2]);
  });
  it('with the LSE output cotangent c: D = dO.o - c, so dS = P (dP - o + c)', () => {
    const r = run('scale=1.0', 0.25);
    close(r['dq'], [-3 * p1 * p2 + 0.25 * p1]);
    close(r['dk'], [-3 * p1 * p2 + 0.25 * p1, 3 * p1 * p2 + 0.25 * p2]);
  });
  it('a masked key gets nothing; the one key left has P = 1 and dS = 0', () => {
    const r = run('mask=(b, h, q, k) => lt(k, 1), scale=1.0');
    close(r['dq'], [0]);
    close(r['dk'], [0, 0]);
    close(r['dv'], [1, 0]);
  });
  it('a learned table the score mod reads: fused_attention_grad_t = sum of dZ times d score / d read over the elements reading each entry', () => {
    // score = s * w[0] + w[1 + k] with w = (1, 0, 0): the scores are those above, so dZ = dS of
    // the plain case; d/dw[1 + k] = 1 -> dZ_k; d/dw[0] = s -> sum_k dZ_k s_k = -3 p1 p2 * 1 + 0.
    const text = `graph m() {
  %0 = input {name="q"} : f32[1,1,1,1]
  %1 = input {name="k"} : f32[1,1,2,1]
  %2 = input {name="v"} : f32[1,1,2,1]
  %3 = input {name="w"} : f32[3]
  %4 = fused_attention %0, %1, %2, %3 {scale=1.0, score=(b, h, q, k) => add(mul(score(), read(3, 0)), read(3, add(k, 1)))} : f32[1,1,1,1]
  %5 = fused_attention_lse %4 : f32[1,1,1]
  %6 = input {name="do"} : f32[1,1,1,1]
  %7 = fused_attention_grad %0, %1, %2, %4, %5, %6, %3 {dscore=(b, h, q, k) => read(6, 0), scale=1.0, score=(b, h, q, k) => add(mul(score(), read(6, 0)), read(6, add(k, 1))), table_grads=[6]} : f32[1,1,1,1]
  %8 = fused_attention_grad_t %7 {operand=6} : f32[3]
  output "dq" = %7
  output "dw" = %8
}
`;
    const sink = new DiagnosticSink();
    const g = parseGraph(text, 'm.ir', sink);
    expect(sink.items.map((d) => d.message)).toEqual([]);
    if (g === undefined) throw new Error('no graph');
    expect(verifyGraph(g)).toEqual([]);
    expect(g.nodes.map((n) => n.op)).toContain('fused_attention_grad_t');
    const inputs = new Map([
      ['q', t('f32', [1, 1, 1, 1], [1])],
      ['k', t('f32', [1, 1, 2, 1], [1, 0])],
      ['v', t('f32', [1, 1, 2, 1], [2, 5])],
      ['w', t('f32', [3], [1, 0, 0])],
      ['do', t('f32', [1, 1, 1, 1], [1])],
    ]);
    const out = interpret(g, { inputs, weights: new Map() }).outputs;
    close([...(out.get('dq')?.data ?? [])], [-3 * p1 * p2]);
    close([...(out.get('dw')?.data ?? [])], [-3 * p1 * p2, -3 * p1 * p2, 3 * p1 * p2]);
  });
});
