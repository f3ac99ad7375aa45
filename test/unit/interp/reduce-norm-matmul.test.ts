// Reductions, softmax/layernorm/rmsnorm and matmul in the float64 interpreter (hand-computed).
import { describe, expect, it } from 'vitest';
import { runOp, t } from '../../helpers/graph-builder.js';
import { toNested, type Tensor64 } from '../../../src/base/tensor.js';
import type { Attrs } from '../../../src/graph/ir.js';

const vals = (x: Tensor64): number[] => [...x.data];
const red = (axes: number[], keepdims = false): Attrs => ({ axes: { kind: 'ints', value: axes }, keepdims: { kind: 'bool', value: keepdims } });
const x23 = t('f32', [2, 3], [1, 2, 3, 4, 5, 6]);
const iota = (shape: number[]): Tensor64 => t('f32', shape, Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => i));

describe('reductions', () => {
  it('sum over each axis and both', () => {
    expect(vals(runOp('sum', [x23], red([1])))).toEqual([6, 15]);
    expect(vals(runOp('sum', [x23], red([0])))).toEqual([5, 7, 9]);
    const all = runOp('sum', [x23], red([0, 1]));
    expect(all.shape).toEqual([]);
    expect(vals(all)).toEqual([21]);
  });
  it('keepdims keeps the reduced axis as size 1', () => {
    const y = runOp('sum', [x23], red([1], true));
    expect(y.shape).toEqual([2, 1]);
    expect(toNested(y)).toEqual([[6], [15]]);
  });
  it('sum over non-adjacent axes of [2,3,4] (value 12i+4j+k): 32j + 60', () => {
    // sum over i in 0..2, k in 0..4 of 12i + 4j + k = 4*12*(0+1) + 8*4j + 2*(0+1+2+3)
    expect(vals(runOp('sum', [iota([2, 3, 4])], red([0, 2])))).toEqual([60, 92, 124]);
  });
  it('max_reduce and mean', () => {
    expect(vals(runOp('max_reduce', [x23], red([0])))).toEqual([4, 5, 6]);
    expect(vals(runOp('mean', [x23], red([1])))).toEqual([2, 5]);
    expect(vals(runOp('max_reduce', [t('f32', [3], [1, NaN, 2])], red([0])))).toEqual([NaN]);
  });
  it('i32 sum stays i32', () => {
    const y = runOp('sum', [t('i32', [3], [1, 2, 3])], red([0]));
    expect(y.dtype).toBe('i32');
    expect(vals(y)).toEqual([6]);
  });
  it('empty reductions: sum 0, max -inf, mean NaN; zero rows give an empty result', () => {
    const empty = t('f32', [2, 0], []);
    expect(vals(runOp('sum', [empty], red([1])))).toEqual([0, 0]);
    expect(vals(runOp('max_reduce', [empty], red([1])))).toEqual([-Infinity, -Infinity]);
    expect(vals(runOp('mean', [empty], red([1])))).toEqual([NaN, NaN]);
    expect(runOp('sum', [empty], red([0])).shape).toEqual([0]);
  });
});

describe('logsumexp', () => {
  it('over a row: log(e^1 + e^2 + e^3) = 3 + log(1 + e^-1 + e^-2); over axis 0 of [2,3]', () => {
    const y = vals(runOp('logsumexp', [x23], red([1])));
    expect(Math.abs((y[0] ?? NaN) - (3 + Math.log(1 + Math.exp(-1) + Math.exp(-2))))).toBeLessThan(1e-15);
    expect(Math.abs((y[1] ?? NaN) - (6 + Math.log(1 + Math.exp(-1) + Math.exp(-2))))).toBeLessThan(1e-15);
    // columns (1, 4), (2, 5), (3, 6): each b + log(1 + e^-3)
    const c = vals(runOp('logsumexp', [x23], red([0])));
    c.forEach((x, j) => expect(Math.abs(x - (j + 4 + Math.log(1 + Math.exp(-3))))).toBeLessThan(1e-15));
  });
  it('a row of only -inf gives -inf (not NaN); -inf entries add nothing; logits of 1e4 do not overflow', () => {
    const y = vals(runOp('logsumexp', [t('f32', [3, 2], [-Infinity, -Infinity, 0, -Infinity, 1e4, 1e4])], red([1])));
    expect(y[0]).toBe(-Infinity);
    expect(y[1]).toBe(0);
    expect(Math.abs((y[2] ?? NaN) - (1e4 + Math.LN2))).toBeLessThan(1e-11);
    expect(vals(runOp('logsumexp', [t('f32', [2, 0], [])], red([1])))).toEqual([-Infinity, -Infinity]);
  });
  it('keepdims and a float-only dtype rule', () => {
    expect(runOp('logsumexp', [x23], red([1], true)).shape).toEqual([2, 1]);
    expect(() => runOp('logsumexp', [t('i32', [2], [1, 2])], red([0]))).toThrow(/floating-point/);
  });
});

describe('softmax', () => {
  const axis = (a: number): Attrs => ({ axis: { kind: 'int', value: a } });
  it('over the last axis: [1, 2] -> [1/(1+e), e/(1+e)]', () => {
    const y = vals(runOp('softmax', [t('f32', [1, 2], [1, 2])], axis(1)));
    expect(Math.abs((y[0] ?? NaN) - 0.2689414213699951)).toBeLessThan(1e-16);
    expect(Math.abs((y[1] ?? NaN) - 0.7310585786300049)).toBeLessThan(1e-16);
  });
  it('a fully masked row (all -inf) gives zeros, a half-masked row puts all mass on the rest', () => {
    const y = runOp('softmax', [t('f32', [2, 2], [-Infinity, -Infinity, 0, -Infinity])], axis(1));
    expect(toNested(y)).toEqual([
      [0, 0],
      [1, 0],
    ]);
  });
  it('over axis 0: columns [0,0] and [0, ln 3]', () => {
    const y = vals(runOp('softmax', [t('f32', [2, 2], [0, 0, 0, Math.log(3)])], axis(0)));
    expect(y[0]).toBe(0.5);
    expect(y[2]).toBe(0.5);
    expect(y[1]).toBeCloseTo(0.25, 15);
    expect(y[3]).toBeCloseTo(0.75, 15);
  });
  it('logits of +-1e4 do not overflow', () => {
    expect(vals(runOp('softmax', [t('f32', [3], [1e4, 0, -1e4])], axis(0)))).toEqual([1, 0, 0]);
  });
  it('awkward row length 33: uniform rows give 1/33', () => {
    const y = runOp('softmax', [t('f32', [7, 33], new Array<number>(7 * 33).fill(3))], axis(1));
    for (const v of y.data) expect(Math.abs(v - 1 / 33)).toBeLessThan(1e-16);
  });
});

describe('layernorm and rmsnorm', () => {
  const eps = (e: number): Attrs => ({ eps: { kind: 'float', value: e } });
  it('layernorm [1,3]: mean 2, biased var 1 -> [-1, 1], then gamma and beta', () => {
    const y = runOp('layernorm', [t('f32', [1, 2], [1, 3]), t('f32', [2], [2, 3]), t('f32', [2], [0.5, -0.5])], eps(0));
    expect(vals(y)).toEqual([-1.5, 2.5]);
  });
  it('layernorm eps enters under the root: var 1 + eps 3 -> divide by 2', () => {
    const y = runOp('layernorm', [t('f32', [2, 2], [1, 3, 5, 5]), t('f32', [2], [1, 1]), t('f32', [2], [0, 0])], eps(3));
    // second row is constant: (5 - 5) / sqrt(0 + 3) = 0
    expect(vals(y)).toEqual([-0.5, 0.5, 0, 0]);
  });
  it('rmsnorm [1,7]: mean square 25 -> x/5 * gamma', () => {
    const y = runOp('rmsnorm', [t('f32', [1, 2], [1, 7]), t('f32', [2], [1, 2])], eps(0));
    expect(vals(y)[0]).toBeCloseTo(0.2, 15);
    expect(vals(y)[1]).toBeCloseTo(2.8, 15);
    const z = runOp('rmsnorm', [t('f32', [2], [1, 1]), t('f32', [2], [1, 1])], eps(3));
    expect(vals(z)).toEqual([0.5, 0.5]);
  });
});

describe('matmul', () => {
  it('[2,3] @ [3,2]', () => {
    const y = runOp('matmul', [x23, t('f32', [3, 2], [7, 8, 9, 10, 11, 12])]);
    expect(toNested(y)).toEqual([
      [58, 64],
      [139, 154],
    ]);
  });
  it('a batched left operand with a plain matrix on the right', () => {
    const y = runOp('matmul', [t('f32', [2, 1, 2], [1, 2, 3, 4]), t('f32', [2, 1], [5, 6])]);
    expect(y.shape).toEqual([2, 1, 1]);
    expect(vals(y)).toEqual([17, 39]);
  });
  it('broadcasts batch dims [2,1] with [3] to [2,3]', () => {
    // a0 = [1,0], a1 = [0,1] pick the first / second entry of b_j = [2j+1, 2j+2]
    const a = t('f32', [2, 1, 1, 2], [1, 0, 0, 1]);
    const b = t('f32', [3, 2, 1], [1, 2, 3, 4, 5, 6]);
    const y = runOp('matmul', [a, b]);
    expect(y.shape).toEqual([2, 3, 1, 1]);
    expect(vals(y)).toEqual([1, 3, 5, 2, 4, 6]);
  });
  it('awkward sizes: ones [1,7] @ ones [7,33] is all 7', () => {
    const y = runOp('matmul', [t('f32', [1, 7], new Array<number>(7).fill(1)), t('f32', [7, 33], new Array<number>(7 * 33).fill(1))]);
    expect(y.shape).toEqual([1, 33]);
    expect(vals(y)).toEqual(new Array<number>(33).fill(7));
  });
  it('K = 0 gives zeros; M = 0 gives an empty result', () => {
    expect(vals(runOp('matmul', [t('f32', [2, 0], []), t('f32', [0, 3], [])]))).toEqual([0, 0, 0, 0, 0, 0]);
    expect(runOp('matmul', [t('f32', [0, 2], []), t('f32', [2, 3], [1, 2, 3, 4, 5, 6])]).shape).toEqual([0, 3]);
  });
});
