// interpret(): binding symbolic dims from fed shapes, its error codes, and zero-size tensors.
import { describe, expect, it } from 'vitest';
import { TestGraphBuilder, dim, t } from '../../helpers/graph-builder.js';
import { type Feeds, interpret } from '../../../src/interp/interpret.js';
import { InterpError } from '../../../src/ops/errors.js';
import { allclose, maxRelError, toNested, type Tensor64 } from '../../../src/base/tensor.js';
import type { Graph } from '../../../src/graph/ir.js';

function feeds(inputs: Record<string, Tensor64>, weights: Record<string, Tensor64> = {}): Feeds {
  return { inputs: new Map(Object.entries(inputs)), weights: new Map(Object.entries(weights)) };
}

function errorOf(f: () => unknown): InterpError {
  try {
    f();
  } catch (e) {
    if (e instanceof InterpError) return e;
    throw e;
  }
  throw new Error('expected an InterpError');
}

const zeros = (dtype: 'f32' | 'i32', shape: number[]): Tensor64 => t(dtype, shape, new Array<number>(shape.reduce((a, b) => a * b, 1)).fill(0));

/** tokens: i32[B,T] -> embeddings wte[tokens] : f32[B,T,4]. */
function embedGraph(): Graph {
  const b = new TestGraphBuilder('g', ['B', 'T']);
  const tok = b.input('tokens', 'i32', ['B', 'T']);
  const wte = b.weight('wte.weight', 'f32', [5, 4]);
  b.output('emb', b.op('gather', [wte, tok]));
  return b.build();
}

describe('dim binding', () => {
  it('binds B and T from the input shape and returns them', () => {
    const wte = t('f32', [5, 4], Array.from({ length: 20 }, (_, i) => i));
    const r = interpret(embedGraph(), feeds({ tokens: t('i32', [2, 1], [4, 1]) }, { 'wte.weight': wte }));
    expect(r.dims).toEqual(new Map([['B', 2], ['T', 1]]));
    const emb = r.outputs.get('emb');
    expect(emb?.shape).toEqual([2, 1, 4]);
    expect(emb && toNested(emb)).toEqual([[[16, 17, 18, 19]], [[4, 5, 6, 7]]]);
  });
  it('a missing input or weight is TFC302 naming it', () => {
    const e = errorOf(() => interpret(embedGraph(), feeds({ tokens: t('i32', [1, 1], [0]) })));
    expect(e.code).toBe('TFC302');
    expect(e.message).toBe('weight "wte.weight" is missing (the model declares f32[5,4])');
    expect(e.loc?.line).toBe(2);
  });
  it('a wrong dtype, rank or constant dim is TFC303 showing both shapes', () => {
    const w = { 'wte.weight': zeros('f32', [5, 4]) };
    const dt = errorOf(() => interpret(embedGraph(), feeds({ tokens: zeros('f32', [1, 1]) }, w)));
    expect(dt.code).toBe('TFC303');
    expect(dt.message).toBe('input "tokens" is f32[1,1] but the model declares i32[B,T]');
    const rank = errorOf(() => interpret(embedGraph(), feeds({ tokens: zeros('i32', [3]) }, w)));
    expect(rank.code).toBe('TFC303');
    const cst = errorOf(() => interpret(embedGraph(), feeds({ tokens: zeros('i32', [1, 1]) }, { 'wte.weight': zeros('f32', [5, 3]) })));
    expect(cst.code).toBe('TFC303');
    expect(cst.message).toBe('weight "wte.weight" is f32[5,3] but the model declares f32[5,4]');
  });
  it('two inputs disagreeing about T is TFC307', () => {
    const b = new TestGraphBuilder('g', ['T']);
    const x = b.input('x', 'f32', ['T']);
    const y = b.input('y', 'f32', ['T']);
    b.output('s', b.op('add', [x, y]));
    const e = errorOf(() => interpret(b.build(), feeds({ x: zeros('f32', [3]), y: zeros('f32', [4]) })));
    expect(e.code).toBe('TFC307');
    expect(e.message).toBe('dim T is 4 from input "y" axis 0 but 3 from input "x" axis 0');
  });
  it('solves a composite dim for its one unknown: P + T = 5 with T = 2 gives P = 3', () => {
    const b = new TestGraphBuilder('g', ['P', 'T']);
    b.input('kv', 'f32', ['P + T']);
    const tok = b.input('tok', 'i32', ['T']);
    b.output('tok', tok);
    const r = interpret(b.build(), feeds({ kv: zeros('f32', [5]), tok: zeros('i32', [2]) }));
    expect(r.dims.get('P')).toBe(3);
  });
  it('a composite dim that disagrees after binding is TFC307', () => {
    const b = new TestGraphBuilder('g', ['P', 'T']);
    b.input('past', 'f32', ['P']);
    b.input('tok', 'i32', ['T']);
    const kv = b.input('kv', 'f32', ['P + T']);
    b.output('kv', kv);
    const e = errorOf(() => interpret(b.build(), feeds({ past: zeros('f32', [3]), tok: zeros('i32', [5]), kv: zeros('f32', [9]) })));
    expect(e.code).toBe('TFC307');
    expect(e.message).toBe('input "kv" axis 0 is 9 but P + T = 8 (P=3, T=5)');
  });
  it('a dim no input binds alone is TFC306', () => {
    const b = new TestGraphBuilder('g', ['P', 'T']);
    b.output('x', b.input('x', 'f32', ['P*T']));
    const e = errorOf(() => interpret(b.build(), feeds({ x: zeros('f32', [6]) })));
    expect(e.code).toBe('TFC306');
    expect(e.message).toContain('dim P, T has no value');
  });
  it('a dim used only after the inputs (arange(S)) is TFC306 unless given up front', () => {
    const b = new TestGraphBuilder('g', ['S']);
    b.output('pos', b.op('arange', [], { start: { kind: 'dim', value: dim(0) }, end: { kind: 'dim', value: dim('S') } }));
    const e = errorOf(() => interpret(b.build(), feeds({})));
    expect(e.code).toBe('TFC306');
    expect(e.message).toContain('dim S has no value at run time');
    const r = interpret(b.build(), feeds({}), { dims: new Map([['S', 2]]) });
    expect([...(r.outputs.get('pos')?.data ?? [])]).toEqual([0, 1]);
  });
  it('a data error inside an op carries the node location', () => {
    const e = errorOf(() => interpret(embedGraph(), feeds({ tokens: t('i32', [1, 1], [5]) }, { 'wte.weight': zeros('f32', [5, 4]) })));
    expect(e.code).toBe('TFC309');
    expect(e.loc?.line).toBe(3);
  });
});

describe('zero-size tensors', () => {
  /** Decode step with a KV cache: present = concat(past, new) on axis 1; scores = q @ present^T. */
  function decodeGraph(): Graph {
    const b = new TestGraphBuilder('g', ['P', 'T']);
    const past = b.input('past', 'f32', ['P', 2]);
    const k = b.input('k', 'f32', ['T', 2]);
    const present = b.op('concat', [past, k], { axis: { kind: 'int', value: 0 } });
    const pt = b.op('permute', [present], { perm: { kind: 'ints', value: [1, 0] } });
    const scores = b.op('matmul', [k, pt]);
    b.output('present', present);
    b.output('probs', b.op('softmax', [scores], { axis: { kind: 'int', value: 1 } }));
    return b.build();
  }
  it('runs a prefill with an empty KV cache (P = 0)', () => {
    const r = interpret(decodeGraph(), feeds({ past: t('f32', [0, 2], []), k: t('f32', [2, 2], [1, 0, 0, 1]) }));
    expect(r.dims.get('P')).toBe(0);
    expect(r.outputs.get('present')?.shape).toEqual([2, 2]);
    // scores = I @ I = I; softmax rows [1,0] -> [e/(1+e), 1/(1+e)]
    const probs = r.outputs.get('probs');
    const want = t('f32', [2, 2], [0.7310585786300049, 0.2689414213699951, 0.2689414213699951, 0.7310585786300049]);
    expect(probs && maxRelError(probs, want)).toBeLessThan(1e-15);
  });
  it('runs with T = 0 (nothing new): empty outputs of the right shape', () => {
    const r = interpret(decodeGraph(), feeds({ past: t('f32', [3, 2], [1, 2, 3, 4, 5, 6]), k: t('f32', [0, 2], []) }));
    expect(r.outputs.get('present')?.shape).toEqual([3, 2]);
    expect(r.outputs.get('probs')?.shape).toEqual([0, 3]);
  });
});

describe('tensor helpers', () => {
  it('allclose and maxRelError', () => {
    const a = t('f32', [2], [1, 2]);
    expect(allclose(a, t('f32', [2], [1, 2 + 1e-9]))).toBe(true);
    expect(allclose(a, t('f32', [2], [1, 2.1]))).toBe(false);
    expect(allclose(a, t('f32', [1, 2], [1, 2]))).toBe(false);
    expect(maxRelError(a, t('f32', [2], [1, 2.5]))).toBeCloseTo(0.2, 15);
    expect(maxRelError(a, t('f32', [2], [1, NaN]))).toBe(Infinity);
  });
});
