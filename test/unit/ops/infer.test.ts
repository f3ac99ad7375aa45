// Shape and dtype rules of the catalog: symbolic broadcasting, matmul, and one error per code.
import { describe, expect, it } from 'vitest';
import { dim, inferType, ty } from '../../helpers/graph-builder.js';
import { printType, type TensorType } from '../../../src/graph/types.js';
import type { Attrs } from '../../../src/graph/ir.js';
import type { OpError } from '../../../src/ops/define.js';

function typeOf(op: string, operands: TensorType[], attrs: Attrs = {}): string {
  const r = inferType(op, operands, attrs);
  if ('code' in r) throw new Error(`${r.code}: ${r.message}`);
  return printType(r);
}

function errOf(op: string, operands: TensorType[], attrs: Attrs = {}): OpError {
  const r = inferType(op, operands, attrs);
  if (!('code' in r)) throw new Error(`expected an error, got ${printType(r)}`);
  return r;
}

const f32 = (...s: (string | number)[]): TensorType => ty('f32', s);
const i32 = (...s: (string | number)[]): TensorType => ty('i32', s);
const bool = (...s: (string | number)[]): TensorType => ty('bool', s);
const ints = (value: number[]): Attrs[string] => ({ kind: 'ints', value });
const int = (value: number): Attrs[string] => ({ kind: 'int', value });

describe('broadcasting over symbolic dims', () => {
  it.each([
    [f32('B', 'T', 64), f32(64), 'f32[B,T,64]'],
    [f32('B', 1, 'T'), f32('T'), 'f32[B,1,T]'],
    [f32('B', 'T'), f32(1, 'T'), 'f32[B,T]'],
    [f32(1, 'T'), f32('B', 1), 'f32[B,T]'],
    [f32('T + P'), f32('P + T'), 'f32[P+T]'],
    [f32(), f32('B', 3), 'f32[B,3]'],
  ])('%o + %o', (a, b, want) => {
    expect(typeOf('add', [a, b])).toBe(want);
  });
  it('TFC201: dims that are neither equal nor 1', () => {
    expect(errOf('add', [f32('B', 'T', 64), f32('T', 32)])).toEqual({ code: 'TFC201', message: 'cannot broadcast f32[B,T,64] with f32[T,32]' });
    expect(errOf('mul', [f32('T'), f32('S')]).code).toBe('TFC201');
  });
  it('where broadcasts all three and checks the condition', () => {
    expect(typeOf('where', [bool('T', 'T'), f32('B', 1, 'T', 'T'), f32()])).toBe('f32[B,1,T,T]');
    expect(errOf('where', [f32('T'), f32('T'), f32('T')])).toEqual({ code: 'TFC208', message: 'where needs a bool condition, got f32[T]' });
    expect(errOf('where', [bool('T'), f32('T'), i32('T')]).code).toBe('TFC202');
    expect(errOf('where', [bool(3), f32(4), f32(4)]).code).toBe('TFC201');
  });
});

describe('dtype rules', () => {
  it('TFC202: binary ops need equal dtypes', () => {
    expect(errOf('add', [f32('T'), i32('T')])).toEqual({ code: 'TFC202', message: 'cannot add f32[T] and i32[T]: dtypes f32 and i32 differ' });
  });
  it('TFC207: float-only ops reject i32 and bool; arithmetic rejects bool', () => {
    expect(errOf('exp', [i32('T')])).toEqual({ code: 'TFC207', message: 'exp needs a floating-point operand, got i32[T]' });
    for (const op of ['log', 'sqrt', 'rsqrt', 'tanh', 'erf', 'sin', 'cos', 'silu', 'sigmoid', 'gelu']) expect(errOf(op, [i32(2)]).code).toBe('TFC207');
    expect(errOf('pow', [i32(2), i32(2)]).code).toBe('TFC207');
    expect(errOf('add', [bool(2), bool(2)]).code).toBe('TFC207');
    expect(errOf('softmax', [i32(2)], { axis: int(0) }).code).toBe('TFC207');
    expect(errOf('mean', [i32(2)], { axes: ints([0]), keepdims: { kind: 'bool', value: false } }).code).toBe('TFC207');
    expect(errOf('matmul', [i32(2, 2), i32(2, 2)]).code).toBe('TFC207');
  });
  it('TFC208: and/or/not need bool, gather needs i32 ids', () => {
    expect(errOf('and', [f32(2), f32(2)])).toEqual({ code: 'TFC208', message: 'and needs a bool operand, got f32[2]' });
    expect(errOf('not', [i32(2)]).code).toBe('TFC208');
    expect(errOf('gather', [f32(5, 4), f32('T')]).code).toBe('TFC208');
  });
  it('i32 arithmetic and mod are allowed; comparisons give bool', () => {
    expect(typeOf('mod', [i32('T'), i32()])).toBe('i32[T]');
    expect(typeOf('div', [i32('T'), i32('T')])).toBe('i32[T]');
    expect(typeOf('le', [i32('T', 1), i32(1, 'T')])).toBe('bool[T,T]');
    expect(typeOf('eq', [bool(2), bool(2)])).toBe('bool[2]');
  });
  it('cast takes its dtype from `to`', () => {
    expect(typeOf('cast', [f32('T')], { to: { kind: 'dtype', value: 'f16' } })).toBe('f16[T]');
  });
  it('gelu approx must be tanh or erf', () => {
    expect(errOf('gelu', [f32(2)], { approx: { kind: 'str', value: 'fast' } }).code).toBe('TFC110');
  });
});

describe('matmul', () => {
  it('TFC204 shows both types and the inner dims', () => {
    expect(errOf('matmul', [f32('B', 'T', 768), f32(512, 768)])).toEqual({
      code: 'TFC204',
      message: 'cannot matmul f32[B,T,768] by f32[512,768]: inner dims 768 and 512 differ',
    });
    expect(errOf('matmul', [f32(768), f32(768, 2)]).code).toBe('TFC204');
  });
  it.each([
    [f32('B', 'T', 768), f32(768, 2304), 'f32[B,T,2304]'],
    [f32('B', 12, 'T', 64), f32('B', 12, 64, 'S'), 'f32[B,12,T,S]'],
    [f32('B', 1, 'T', 64), f32(12, 64, 'S'), 'f32[B,12,T,S]'],
    [f32(2, 1, 3, 4), f32(5, 4, 6), 'f32[2,5,3,6]'],
  ])('batched broadcasting %o @ %o', (a, b, want) => {
    expect(typeOf('matmul', [a, b])).toBe(want);
  });
  it('TFC201 when batch dims do not broadcast', () => {
    expect(errOf('matmul', [f32(2, 3, 4), f32(3, 4, 5)]).code).toBe('TFC201');
  });
});

describe('reductions, norms and movement', () => {
  const red = (axes: number[], keepdims = false): Attrs => ({ axes: ints(axes), keepdims: { kind: 'bool', value: keepdims } });
  it('reductions drop or keep the axes; TFC203 out of range or unsorted', () => {
    expect(typeOf('sum', [f32('B', 'T', 'D')], red([1, 2]))).toBe('f32[B]');
    expect(typeOf('max_reduce', [f32('B', 'T')], red([1], true))).toBe('f32[B,1]');
    expect(errOf('sum', [f32('B', 'T')], red([2]))).toEqual({ code: 'TFC203', message: 'sum axis 2 is out of range for f32[B,T] (rank 2)' });
    expect(errOf('sum', [f32('B', 'T')], red([1, 0])).code).toBe('TFC203');
    expect(errOf('softmax', [f32('T')], { axis: int(1) }).code).toBe('TFC203');
  });
  it('layernorm/rmsnorm parameters must match the last axis', () => {
    expect(typeOf('layernorm', [f32('B', 'T', 64), f32(64), f32(64)], { eps: { kind: 'float', value: 1e-5 } })).toBe('f32[B,T,64]');
    expect(errOf('rmsnorm', [f32('B', 'T', 64), f32(32)]).code).toBe('TFC201');
    expect(errOf('layernorm', [f32('T', 64), ty('f16', [64]), f32(64)]).code).toBe('TFC202');
  });
  it('reshape: TFC205 when the element count changes, TFC206 for a negative dim', () => {
    const shape = (...s: (string | number)[]): Attrs => ({ shape: { kind: 'dims', value: s.map(dim) } });
    expect(typeOf('reshape', [f32('B', 'T', 768)], shape('B', 'T', 12, 64))).toBe('f32[B,T,12,64]');
    expect(errOf('reshape', [f32('B', 'T', 768)], shape('B', 'T', 12, 32))).toEqual({
      code: 'TFC205',
      message: 'cannot reshape f32[B,T,768] to [B,T,12,32]: 768*B*T elements vs 384*B*T',
    });
    expect(errOf('reshape', [f32(4)], shape(-2, -2)).code).toBe('TFC206');
  });
  it('permute: TFC210 for a non-permutation', () => {
    expect(typeOf('permute', [f32('B', 'T', 12, 64)], { perm: ints([0, 2, 1, 3]) })).toBe('f32[B,12,T,64]');
    expect(errOf('permute', [f32('B', 'T')], { perm: ints([0, 0]) }).code).toBe('TFC210');
    expect(errOf('permute', [f32('B', 'T')], { perm: ints([1, 0, 2]) }).code).toBe('TFC210');
  });
  it('slice: result length end - start; TFC214 for bounds known to be wrong', () => {
    const sl = (axis: number, start: string | number, end: string | number): Attrs => ({
      axis: int(axis),
      start: { kind: 'dim', value: dim(start) },
      end: { kind: 'dim', value: dim(end) },
    });
    expect(typeOf('slice', [f32('B', 'P + T', 64)], sl(1, 'P', 'P + T'))).toBe('f32[B,T,64]');
    expect(typeOf('slice', [f32(2304)], sl(0, 768, 1536))).toBe('f32[768]');
    expect(errOf('slice', [f32(10)], sl(0, 4, 12)).code).toBe('TFC214');
    expect(errOf('slice', [f32('T')], sl(0, 'T', 'T - 1')).code).toBe('TFC214');
    expect(errOf('slice', [f32('T')], sl(1, 0, 1)).code).toBe('TFC203');
  });
  it('concat: adds the axis; TFC211 when other dims differ; TFC202 for dtypes', () => {
    expect(typeOf('concat', [f32('B', 'P', 64), f32('B', 'T', 64)], { axis: int(1) })).toBe('f32[B,P+T,64]');
    expect(errOf('concat', [f32('B', 'P', 64), f32('B', 'T', 32)], { axis: int(1) }).code).toBe('TFC211');
    expect(errOf('concat', [f32(2), i32(2)], { axis: int(0) }).code).toBe('TFC202');
  });
  it('gather appends the row shape to the index shape', () => {
    expect(typeOf('gather', [f32('vocab', 768), i32('B', 'T')])).toBe('f32[B,T,768]');
  });
  it('arange: i32[end - start]; TFC206 for a negative constant length', () => {
    const ar = (s: string | number, e: string | number): Attrs => ({ start: { kind: 'dim', value: dim(s) }, end: { kind: 'dim', value: dim(e) } });
    expect(typeOf('arange', [], ar('P', 'P + T'))).toBe('i32[T]');
    expect(errOf('arange', [], ar(5, 2)).code).toBe('TFC206');
  });
  it('grid: TFC216 for a lambda of the wrong arity or an unknown op', () => {
    const shape = { kind: 'dims', value: [dim('T'), dim('T')] } as const;
    const bad1: Attrs = { shape, body: { kind: 'lambda', params: ['q'], body: { kind: 'index', axis: 0 } } };
    expect(errOf('grid', [], bad1).code).toBe('TFC216');
    const bad2: Attrs = { shape, body: { kind: 'lambda', params: ['q', 'k'], body: { kind: 'apply', op: 'matmul', args: [], dtype: 'f32' } } };
    expect(errOf('grid', [], bad2).code).toBe('TFC216');
    const ok: Attrs = {
      shape,
      body: { kind: 'lambda', params: ['q', 'k'], body: { kind: 'apply', op: 'le', args: [{ kind: 'index', axis: 1 }, { kind: 'index', axis: 0 }], dtype: 'bool' } },
    };
    expect(typeOf('grid', [], ok)).toBe('bool[T,T]');
  });
  it('TFC104 for the wrong number of operands', () => {
    expect(errOf('add', [f32(2)]).code).toBe('TFC104');
    expect(errOf('layernorm', [f32(2), f32(2)]).code).toBe('TFC104');
  });
});
