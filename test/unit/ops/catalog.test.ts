// Loops over the op catalog: every op has a doc line, a FLOP formula checked here, and an
// interpreter test (the coverage list below names the file, which must mention the op).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { dimEquals, parseDim, printDim, type Dim } from '../../../src/base/dim.js';
import { catalog, opsInFamily } from '../../../src/ops/catalog.js';
import type { Attrs } from '../../../src/graph/ir.js';
import type { TensorType } from '../../../src/graph/types.js';
import { dim, inferType, ty } from '../../helpers/graph-builder.js';

const interpFiles = {
  ew: 'test/unit/interp/elementwise.test.ts',
  rnm: 'test/unit/interp/reduce-norm-matmul.test.ts',
  ms: 'test/unit/interp/movement-source.test.ts',
  it: 'test/unit/interp/interpret.test.ts',
  fu: 'test/unit/interp/fused.test.ts',
  att: 'test/unit/ops/attention.test.ts',
  ce: 'test/unit/ops/cross-entropy.test.ts',
} as const;

/** Which file tests each op's interpreter rule on hand-computed values. */
const interpCoverage: Record<string, keyof typeof interpFiles> = {
  input: 'it', weight: 'it', const: 'ms', arange: 'ms', grid: 'ms',
  neg: 'ew', exp: 'ew', log: 'ew', sqrt: 'ew', rsqrt: 'ew', tanh: 'ew', erf: 'ew', sin: 'ew', cos: 'ew', round: 'ew', abs: 'ew',
  relu: 'ew', silu: 'ew', sigmoid: 'ew', not: 'ew', gelu: 'ew', cast: 'ew',
  add: 'ew', sub: 'ew', mul: 'ew', div: 'ew', mod: 'ew', pow: 'ew', max: 'ew', min: 'ew',
  eq: 'ew', ne: 'ew', lt: 'ew', le: 'ew', gt: 'ew', ge: 'ew', and: 'ew', or: 'ew', where: 'ew',
  sum: 'rnm', max_reduce: 'rnm', mean: 'rnm', logsumexp: 'rnm', softmax: 'rnm', layernorm: 'rnm', rmsnorm: 'rnm', matmul: 'rnm',
  gather: 'ms', scatter_add: 'ms', scatter: 'ms', reshape: 'ms', permute: 'ms', slice: 'ms', concat: 'ms', packed_weight: 'ms',
  fused_map: 'fu', fused_matmul: 'fu', fused_reduce: 'fu', acc: 'fu', acc_pair: 'fu', view: 'fu',
  fused_attention: 'att', fused_attention_lse: 'att', fused_attention_k: 'att', fused_attention_v: 'att', score: 'att',
  fused_attention_grad: 'att', fused_attention_grad_k: 'att', fused_attention_grad_v: 'att', fused_attention_grad_t: 'att',
  fused_cross_entropy: 'ce', fused_cross_entropy_dh: 'ce', fused_cross_entropy_dw: 'ce', fused_cross_entropy_db: 'ce',
};

const bt = (dtype: 'f32' | 'i32' | 'bool' = 'f32'): TensorType => ty(dtype, ['B', 'T']);
const d = (text: string): Dim => {
  const p = parseDim(text);
  if (p === undefined) throw new Error(text);
  return p;
};

/** A sample call per non-elementwise op and its FLOP count worked out by hand. */
const flopsCases: Record<string, { operands: TensorType[]; attrs: Attrs; declared?: TensorType; want: string }> = {
  input: { operands: [], attrs: { name: { kind: 'str', value: 'x' } }, declared: bt(), want: '0' },
  weight: { operands: [], attrs: { name: { kind: 'str', value: 'w' } }, declared: bt(), want: '0' },
  const: { operands: [], attrs: { value: { kind: 'float', value: 1 } }, declared: ty('f32', []), want: '0' },
  arange: { operands: [], attrs: { start: { kind: 'dim', value: dim(0) }, end: { kind: 'dim', value: dim('T') } }, want: '0' },
  // one `le` per element of [T, T]
  grid: {
    operands: [],
    attrs: {
      shape: { kind: 'dims', value: [dim('T'), dim('T')] },
      body: { kind: 'lambda', params: ['q', 'k'], body: { kind: 'apply', op: 'le', args: [{ kind: 'index', axis: 1 }, { kind: 'index', axis: 0 }], dtype: 'bool' } },
    },
    want: 'T*T',
  },
  // one add/compare per input element
  sum: { operands: [ty('f32', ['B', 'T', 64])], attrs: { axes: { kind: 'ints', value: [2] }, keepdims: { kind: 'bool', value: false } }, want: '64*B*T' },
  max_reduce: { operands: [ty('f32', ['B', 'T', 64])], attrs: { axes: { kind: 'ints', value: [2] }, keepdims: { kind: 'bool', value: false } }, want: '64*B*T' },
  mean: { operands: [ty('f32', ['B', 'T', 64])], attrs: { axes: { kind: 'ints', value: [2] }, keepdims: { kind: 'bool', value: false } }, want: '64*B*T' },
  // max, subtract, exp, add per input element
  logsumexp: { operands: [ty('f32', ['B', 'T', 64])], attrs: { axes: { kind: 'ints', value: [2] }, keepdims: { kind: 'bool', value: false } }, want: '256*B*T' },
  // max, subtract, exp, sum, divide
  softmax: { operands: [ty('f32', ['B', 12, 'T', 'T'])], attrs: { axis: { kind: 'int', value: 3 } }, want: '60*B*T*T' },
  layernorm: { operands: [ty('f32', ['B', 'T', 768]), ty('f32', [768]), ty('f32', [768])], attrs: { eps: { kind: 'float', value: 1e-5 } }, want: '6144*B*T' },
  rmsnorm: { operands: [ty('f32', ['B', 'T', 768]), ty('f32', [768])], attrs: { eps: { kind: 'float', value: 1e-6 } }, want: '3072*B*T' },
  // 2*M*N*K per matrix: 2 * 768 * 2304 * B*T
  matmul: { operands: [ty('f32', ['B', 'T', 768]), ty('f32', [768, 2304])], attrs: {}, want: '3538944*B*T' },
  gather: { operands: [ty('f32', [256, 64]), bt('i32')], attrs: {}, want: '0' },
  // one add per update element
  scatter_add: { operands: [ty('f32', ['B', 'T', 64]), bt('i32')], attrs: { rows: { kind: 'dim', value: dim(256) } }, want: '64*B*T' },
  scatter: { operands: [ty('f32', ['N', 64]), bt('i32'), bt()], attrs: {}, want: '0' },
  reshape: { operands: [ty('f32', ['B', 'T', 768])], attrs: { shape: { kind: 'dims', value: [dim('B'), dim('T'), dim(12), dim(64)] } }, want: '0' },
  permute: { operands: [bt()], attrs: { perm: { kind: 'ints', value: [1, 0] } }, want: '0' },
  slice: { operands: [bt()], attrs: { axis: { kind: 'int', value: 1 }, start: { kind: 'dim', value: dim(0) }, end: { kind: 'dim', value: dim('T') } }, want: '0' },
  concat: { operands: [bt(), bt()], attrs: { axis: { kind: 'int', value: 1 } }, want: '0' },
  packed_weight: { operands: [ty('f32', [8, 4]), ty('f32', [2, 4])], attrs: {}, want: '0' },
  // exp(mul(x, 2.0)): two applies per element of [B,T]
  fused_map: {
    operands: [bt()],
    attrs: {
      shape: { kind: 'dims', value: [dim('B'), dim('T')] },
      body: { kind: 'lambda', params: ['i', 'j'], body: { kind: 'apply', op: 'exp', dtype: 'f32', args: [{ kind: 'apply', op: 'mul', dtype: 'f32', args: [{ kind: 'read', operand: 0, indices: [{ kind: 'index', axis: 0 }, { kind: 'index', axis: 1 }], dtype: 'f32' }, { kind: 'const', value: 2, dtype: 'f32' }] }] } },
    },
    want: '2*B*T',
  },
  // [B,T,768] @ [768,64]: 2*768 per output element, plus add(acc(), bias) = 1 -> 1537*64*B*T
  fused_matmul: {
    operands: [ty('f32', ['B', 'T', 768]), ty('f32', [768, 64]), ty('f32', [64])],
    attrs: { epilogue: { kind: 'lambda', params: ['b', 't', 'n'], body: { kind: 'apply', op: 'add', dtype: 'f32', args: [{ kind: 'apply', op: 'acc', args: [], dtype: 'f32' }, { kind: 'read', operand: 2, indices: [{ kind: 'index', axis: 2 }], dtype: 'f32' }] } } },
    want: '98368*B*T',
  },
  // max over T of abs(x) (1 apply + 1 compare per element of [B,T]), then div(acc(), 127.0) per result
  fused_reduce: {
    operands: [bt()],
    attrs: {
      shape: { kind: 'dims', value: [dim('B'), dim('T')] },
      body: { kind: 'lambda', params: ['i', 'j'], body: { kind: 'apply', op: 'abs', dtype: 'f32', args: [{ kind: 'read', operand: 0, indices: [{ kind: 'index', axis: 0 }, { kind: 'index', axis: 1 }], dtype: 'f32' }] } },
      reduce: { kind: 'str', value: 'max' },
      axes: { kind: 'ints', value: [1] },
      keepdims: { kind: 'bool', value: true },
      epilogue: { kind: 'lambda', params: ['i', 'j'], body: { kind: 'apply', op: 'div', dtype: 'f32', args: [{ kind: 'apply', op: 'acc', args: [], dtype: 'f32' }, { kind: 'const', value: 127, dtype: 'f32' }] } },
    },
    want: '2*B*T + B',
  },
  acc: { operands: [], attrs: {}, want: '0' },
  acc_pair: { operands: [], attrs: {}, want: '0' },
  // movement only: no arithmetic
  view: {
    operands: [bt()],
    attrs: {
      shape: { kind: 'dims', value: [dim('T'), dim('B')] },
      map: { kind: 'lambda', params: ['i', 'j'], body: { kind: 'read', operand: 0, indices: [{ kind: 'index', axis: 1 }, { kind: 'index', axis: 0 }], dtype: 'f32' } },
    },
    want: '0',
  },
  // per score element of [B,8,T,S]: q·k 2*64, scale 1, mask `le` 1, softmax 5, @ v 2*32 -> 199
  fused_attention: {
    operands: [ty('f32', ['B', 8, 'T', 64]), ty('f32', ['B', 2, 'S', 64]), ty('f32', ['B', 2, 'S', 32])],
    attrs: {
      scale: { kind: 'float', value: 0.125 },
      mask: { kind: 'lambda', params: ['b', 'h', 'q', 'k'], body: { kind: 'apply', op: 'le', args: [{ kind: 'index', axis: 3 }, { kind: 'index', axis: 2 }], dtype: 'bool' } },
    },
    want: '1592*B*T*S',
  },
  // log and add per row of [B,8,T] (the max and sum are the attention's)
  fused_attention_lse: { operands: [ty('f32', ['B', 8, 'T', 32])], attrs: {}, want: '16*B*T' },
  score: { operands: [], attrs: {}, want: '0' },
  // per score element of [B,8,T,S]: s 2*64, dP 2*32, dV 2*32, dK and dQ 4*64, P and dS 5, mask `le` 1 -> 518
  fused_attention_grad: {
    operands: [ty('f32', ['B', 8, 'T', 64]), ty('f32', ['B', 2, 'S', 64]), ty('f32', ['B', 2, 'S', 32]), ty('f32', ['B', 8, 'T', 32]), ty('f32', ['B', 8, 'T']), ty('f32', ['B', 8, 'T', 32])],
    attrs: {
      scale: { kind: 'float', value: 0.125 },
      mask: { kind: 'lambda', params: ['b', 'h', 'q', 'k'], body: { kind: 'apply', op: 'le', args: [{ kind: 'index', axis: 3 }, { kind: 'index', axis: 2 }], dtype: 'bool' } },
    },
    want: '4144*B*T*S',
  },
  // counted by their producer
  fused_attention_grad_k: { operands: [ty('f32', ['B', 8, 'T', 64])], attrs: {}, declared: ty('f32', ['B', 2, 'S', 64]), want: '0' },
  fused_attention_k: { operands: [ty('f32', ['B', 8, 'T', 64])], attrs: {}, declared: ty('f32', ['B', 2, 'S', 64]), want: '0' },
  fused_attention_v: { operands: [ty('f32', ['B', 8, 'T', 64])], attrs: {}, declared: ty('f32', ['B', 2, 'S', 32]), want: '0' },
  fused_attention_grad_v: { operands: [ty('f32', ['B', 8, 'T', 64])], attrs: {}, declared: ty('f32', ['B', 2, 'S', 32]), want: '0' },
  fused_attention_grad_t: { operands: [ty('f32', ['B', 8, 'T', 64])], attrs: { operand: { kind: 'int', value: 6 } }, declared: ty('f32', [17, 8]), want: '0' },
  // per row of [B,T] and entry of V = 100: logit 2*64, lse/loss/gradient 6, dh and dw 4*64 -> 390 * 100
  fused_cross_entropy: { operands: [ty('f32', ['B', 'T', 64]), ty('f32', [100, 64]), ty('i32', ['B', 'T'])], attrs: { transpose_w: { kind: 'bool', value: true } }, want: '39000*B*T' },
  fused_cross_entropy_dh: { operands: [ty('f32', [])], attrs: {}, declared: ty('f32', ['B', 'T', 64]), want: '0' },
  fused_cross_entropy_dw: { operands: [ty('f32', [])], attrs: {}, declared: ty('f32', [100, 64]), want: '0' },
  fused_cross_entropy_db: { operands: [ty('f32', [])], attrs: {}, declared: ty('f32', [100]), want: '0' },
};

/** Elementwise ops: one FLOP per result element, checked on [B,T] operands of a dtype the op accepts. */
function elementwiseSample(op: string, arity: number): { operands: TensorType[]; attrs: Attrs } {
  if (op === 'where') return { operands: [bt('bool'), bt(), bt()], attrs: {} };
  const dtype = ['and', 'or', 'not'].includes(op) ? 'bool' : 'f32';
  const attrs: Attrs = op === 'cast' ? { to: { kind: 'dtype', value: 'i32' } } : op === 'gelu' ? { approx: { kind: 'str', value: 'tanh' } } : {};
  return { operands: Array.from({ length: arity }, () => bt(dtype)), attrs };
}

describe.each([...catalog.values()])('$name', (op) => {
  it('has a one-line doc', () => {
    expect(op.doc.length).toBeGreaterThan(5);
    expect(op.doc).not.toContain('\n');
  });
  it('has an interpreter test in the coverage list, and that file uses it', () => {
    const key = interpCoverage[op.name];
    expect(key, `add '${op.name}' to interpCoverage with a hand-computed interpreter test`).toBeDefined();
    if (key === undefined) return;
    const text = readFileSync(interpFiles[key], 'utf8');
    expect(text).toMatch(new RegExp(`'${op.name}'|\\.${op.name}\\(`));
  });
  it('has a FLOP formula matching the hand count', () => {
    const sample =
      op.family === 'elementwise'
        ? { ...elementwiseSample(op.name, typeof op.arity === 'number' ? op.arity : 2), want: 'B*T', declared: undefined }
        : flopsCases[op.name];
    expect(sample, `add '${op.name}' to flopsCases`).toBeDefined();
    if (sample === undefined) return;
    const result = inferType(op.name, sample.operands, sample.attrs, sample.declared);
    if ('code' in result) throw new Error(result.message);
    const got = op.flops(sample.operands, result, sample.attrs);
    expect(dimEquals(got, d(sample.want)), `flops ${printDim(got)}, want ${sample.want}`).toBe(true);
  });
  if (op.family === 'elementwise') {
    it('has scalar functions for grid lambdas', () => {
      expect(op.scalar).toBeDefined();
      expect(op.scalarTyped).toBeDefined();
    });
  }
});

describe('op groups', () => {
  it('derives the families from the catalog', () => {
    expect(opsInFamily('reduce').map((o) => o.name)).toEqual(['sum', 'max_reduce', 'mean', 'logsumexp']);
    expect(opsInFamily('norm').map((o) => o.name)).toEqual(['softmax', 'layernorm', 'rmsnorm']);
    expect(opsInFamily('elementwise')).toHaveLength(34);
  });
});
