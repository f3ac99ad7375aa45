// Movement ops (reshape, permute, slice, concat, gather, scatter_add, scatter) and source ops (const, arange, grid).
import { describe, expect, it } from 'vitest';
import { TestGraphBuilder, dim, runOp, t } from '../../helpers/graph-builder.js';
import { toNested, type Tensor64 } from '../../../src/base/tensor.js';
import { interpret } from '../../../src/interp/interpret.js';
import { InterpError } from '../../../src/ops/errors.js';
import type { Attr, ScalarExpr } from '../../../src/graph/ir.js';

const vals = (x: Tensor64): number[] => [...x.data];
const iota = (shape: number[]): Tensor64 => t('f32', shape, Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => i));
const int = (value: number): Attr => ({ kind: 'int', value });
const dimA = (d: string | number): Attr => ({ kind: 'dim', value: dim(d) });

function run(b: TestGraphBuilder, inputs: Record<string, Tensor64> = {}): Map<string, Tensor64> {
  return interpret(b.build(), { inputs: new Map(Object.entries(inputs)), weights: new Map() }).outputs;
}

describe('movement', () => {
  it('reshape keeps row-major order', () => {
    const y = runOp('reshape', [iota([2, 3])], { shape: { kind: 'dims', value: [dim(3), dim(2)] } });
    expect(toNested(y)).toEqual([
      [0, 1],
      [2, 3],
      [4, 5],
    ]);
  });
  it('permute [1,0] transposes', () => {
    expect(toNested(runOp('permute', [iota([2, 3])], { perm: { kind: 'ints', value: [1, 0] } }))).toEqual([
      [0, 3],
      [1, 4],
      [2, 5],
    ]);
  });
  it('permute [2,0,1] of [2,3,4] (value 12i+4j+k): out[k][i][j]', () => {
    const y = runOp('permute', [iota([2, 3, 4])], { perm: { kind: 'ints', value: [2, 0, 1] } });
    expect(y.shape).toEqual([4, 2, 3]);
    const at = (k: number, i: number, j: number): number => y.data[k * 6 + i * 3 + j] ?? NaN;
    expect(at(3, 1, 2)).toBe(23);
    expect(at(1, 0, 2)).toBe(9);
    expect(at(0, 1, 0)).toBe(12);
  });
  it('slice columns 1..4 of [2,5]', () => {
    const y = runOp('slice', [iota([2, 5])], { axis: int(1), start: dimA(1), end: dimA(4) });
    expect(toNested(y)).toEqual([
      [1, 2, 3],
      [6, 7, 8],
    ]);
  });
  it('slice with symbolic bounds: the last T rows of [P+T] rows', () => {
    const b = new TestGraphBuilder('g', ['P', 'T']);
    const x = b.input('x', 'f32', ['P + T', 2]);
    b.input('tok', 'i32', ['T']);
    b.output('y', b.op('slice', [x], { axis: int(0), start: dimA('P'), end: dimA('P + T') }));
    // T = 1 from tok, so P = 2 from x's 3 rows
    const y = run(b, { x: iota([3, 2]), tok: t('i32', [1], [0]) }).get('y');
    expect(y && toNested(y)).toEqual([[4, 5]]);
  });
  it('concat along axis 1 and along axis 0', () => {
    const a = t('f32', [2, 1], [1, 2]);
    const c = t('f32', [2, 2], [3, 4, 5, 6]);
    expect(toNested(runOp('concat', [a, c], { axis: int(1) }))).toEqual([
      [1, 3, 4],
      [2, 5, 6],
    ]);
    expect(vals(runOp('concat', [t('f32', [1], [9]), t('f32', [2], [7, 8]), t('f32', [0], [])], { axis: int(0) }))).toEqual([9, 7, 8]);
  });
  it('packed_weight stacks its operands\' rows (pack-weights: q, k, v into one [N, K] weight)', () => {
    const q = t('f32', [2, 2], [1, 2, 3, 4]);
    const k = t('f32', [1, 2], [5, 6]);
    expect(toNested(runOp('packed_weight', [q, k]))).toEqual([
      [1, 2],
      [3, 4],
      [5, 6],
    ]);
  });
  it('gather rows of a table by i32 ids, keeping the ids shape', () => {
    const y = runOp('gather', [iota([3, 2]), t('i32', [1, 2], [2, 0])]);
    expect(y.shape).toEqual([1, 2, 2]);
    expect(toNested(y)).toEqual([
      [
        [4, 5],
        [0, 1],
      ],
    ]);
  });
  it.each([3, -1])('gather id %i out of [0, 3) is TFC309 naming the value and range', (id) => {
    let err: unknown;
    try {
      runOp('gather', [iota([3, 2]), t('i32', [1], [id])]);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InterpError);
    expect((err as InterpError).code).toBe('TFC309');
    expect((err as InterpError).message).toContain(`gather index ${id} is out of range [0, 3)`);
  });
  it('scatter_add adds rows into a zero table at their ids, repeats summing', () => {
    // rows [1,2], [3,4], [5,6] go to rows 2, 0, 2 of a 3-row table
    const y = runOp('scatter_add', [t('f32', [1, 3, 2], [1, 2, 3, 4, 5, 6]), t('i32', [1, 3], [2, 0, 2])], { rows: { kind: 'dim', value: dim(3) } });
    expect(toNested(y)).toEqual([
      [3, 4],
      [0, 0],
      [6, 8],
    ]);
  });
  it('scatter_add id out of [0, rows) is TFC309', () => {
    expect(() => runOp('scatter_add', [t('f32', [1, 1], [1]), t('i32', [1], [3])], { rows: { kind: 'dim', value: dim(3) } })).toThrow(/scatter_add index 3 is out of range \[0, 3\)/);
  });
  it('scatter replaces dest elements at flat offsets, whatever the shapes (the last of equal offsets wins)', () => {
    const y = runOp('scatter', [iota([2, 3]), t('i32', [2, 2], [5, 0, 2, 5]), t('f32', [2, 2], [10, 20, 30, 40])]);
    expect(y.shape).toEqual([2, 3]);
    expect(toNested(y)).toEqual([
      [20, 1, 30],
      [3, 4, 40],
    ]);
  });
  it.each([6, -1])('scatter offset %i out of [0, 6) is TFC309 naming the value and range', (at) => {
    expect(() => runOp('scatter', [iota([2, 3]), t('i32', [1], [at]), t('f32', [1], [1])])).toThrow(`scatter index ${at} is out of range [0, 6)`);
  });
});

describe('source ops', () => {
  it('const holds -inf and takes the declared dtype', () => {
    const b = new TestGraphBuilder();
    b.output('y', b.const(-Infinity));
    b.output('z', b.const(3, 'i32'));
    const out = run(b);
    expect(out.get('y')?.shape).toEqual([]);
    expect([...(out.get('y')?.data ?? [])]).toEqual([-Infinity]);
    expect(out.get('z')?.dtype).toBe('i32');
  });
  it('arange from start to end dims, including arange(P, P + T)', () => {
    const b = new TestGraphBuilder('g', ['P', 'T']);
    b.input('past', 'f32', ['P']);
    b.input('tok', 'i32', ['T']);
    b.output('a', b.op('arange', [], { start: dimA(2), end: dimA(5) }));
    b.output('pos', b.op('arange', [], { start: dimA('P'), end: dimA('P + T') }));
    const out = run(b, { past: t('f32', [4], [0, 0, 0, 0]), tok: t('i32', [3], [0, 0, 0]) });
    expect([...(out.get('a')?.data ?? [])]).toEqual([2, 3, 4]);
    expect(out.get('pos')?.dtype).toBe('i32');
    expect([...(out.get('pos')?.data ?? [])]).toEqual([4, 5, 6]);
  });

  const idx = (axis: number): ScalarExpr => ({ kind: 'index', axis });
  const apply = (op: string, dtype: 'f32' | 'i32' | 'bool', ...args: ScalarExpr[]): ScalarExpr => ({ kind: 'apply', op, args, dtype });
  const lambda = (params: string[], body: ScalarExpr): Attr => ({ kind: 'lambda', params, body });
  const dims = (...ds: (string | number)[]): Attr => ({ kind: 'dims', value: ds.map(dim) });

  it('grid causal mask k <= q', () => {
    const b = new TestGraphBuilder('g', ['T']);
    b.input('tok', 'i32', ['T']);
    b.output('m', b.op('grid', [], { shape: dims('T', 'T'), body: lambda(['q', 'k'], apply('le', 'bool', idx(1), idx(0))) }));
    const m = run(b, { tok: t('i32', [3], [0, 0, 0]) }).get('m');
    expect(m?.dtype).toBe('bool');
    expect(m && toNested(m)).toEqual([
      [1, 0, 0],
      [1, 1, 0],
      [1, 1, 1],
    ]);
  });
  it('grid ALiBi bias slope[h] * (k - q) reads a tensor and casts i32 to f32', () => {
    const b = new TestGraphBuilder();
    const slope = b.input('slope', 'f32', [2]);
    const read: ScalarExpr = { kind: 'read', operand: 0, indices: [idx(0)], dtype: 'f32' };
    const body = apply('mul', 'f32', read, apply('cast', 'f32', apply('sub', 'i32', idx(2), idx(1))));
    b.output('bias', b.op('grid', [slope], { shape: dims(2, 2, 2), body: lambda(['h', 'q', 'k'], body) }));
    const bias = run(b, { slope: t('f32', [2], [0.5, 0.25]) }).get('bias');
    expect(bias && toNested(bias)).toEqual([
      [
        [0, 0.5],
        [-0.5, 0],
      ],
      [
        [0, 0.25],
        [-0.25, 0],
      ],
    ]);
  });
  it('grid body may use a dim value (sliding window: q - k < W with W = 2)', () => {
    const b = new TestGraphBuilder('g', ['T']);
    b.input('tok', 'i32', ['T']);
    const body = apply('and', 'bool', apply('le', 'bool', idx(1), idx(0)), apply('lt', 'bool', apply('sub', 'i32', idx(0), idx(1)), { kind: 'const', value: 2, dtype: 'i32' }));
    b.output('m', b.op('grid', [], { shape: dims('T', 'T'), body: lambda(['q', 'k'], body) }));
    const revBody = apply('sub', 'i32', { kind: 'dim', dim: dim('T') }, idx(0));
    b.output('rev', b.op('grid', [], { shape: dims('T'), body: lambda(['i'], revBody) }));
    const out = run(b, { tok: t('i32', [3], [0, 0, 0]) });
    const m = out.get('m');
    expect(m && toNested(m)).toEqual([
      [1, 0, 0],
      [1, 1, 0],
      [0, 1, 1],
    ]);
    expect([...(out.get('rev')?.data ?? [])]).toEqual([3, 2, 1]);
  });
  it('grid reading outside its operand is TFC309', () => {
    const b = new TestGraphBuilder();
    const v = b.input('v', 'f32', [2]);
    const body: ScalarExpr = { kind: 'read', operand: 0, indices: [apply('add', 'i32', idx(0), { kind: 'const', value: 1, dtype: 'i32' })], dtype: 'f32' };
    b.output('y', b.op('grid', [v], { shape: dims(2), body: lambda(['i'], body) }));
    expect(() => run(b, { v: t('f32', [2], [1, 2]) })).toThrow(/outside a tensor of shape \[2\]/);
  });
});
