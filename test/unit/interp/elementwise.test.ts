// Elementwise ops in the float64 interpreter, on small hand-computed cases.
import { describe, expect, it } from 'vitest';
import { runOp, t } from '../../helpers/graph-builder.js';
import { toNested, type Tensor64 } from '../../../src/base/tensor.js';
import { erf } from '../../../src/ops/elementwise.js';
import { InterpError } from '../../../src/ops/errors.js';

const vals = (x: Tensor64): number[] => [...x.data];
const str = (value: string) => ({ kind: 'str', value }) as const;

describe('unary ops', () => {
  it('neg, abs, relu', () => {
    expect(vals(runOp('neg', [t('f32', [3], [1, -2.5, 3])]))).toEqual([-1, 2.5, -3]);
    expect(vals(runOp('abs', [t('f32', [2], [-3, 2])]))).toEqual([3, 2]);
    expect(vals(runOp('relu', [t('f32', [4], [-1, 0, 2, NaN])]))).toEqual([0, 0, 2, NaN]);
    expect(vals(runOp('neg', [t('i32', [1], [-2147483648])]))).toEqual([-2147483648]); // i32 wraps
  });
  it('exp, log, sqrt, rsqrt', () => {
    expect(vals(runOp('exp', [t('f32', [2], [0, 1])]))).toEqual([1, Math.E]);
    expect(vals(runOp('log', [t('f32', [3], [1, Math.E, 0])]))).toEqual([0, 1, -Infinity]);
    expect(vals(runOp('sqrt', [t('f32', [2], [4, 2.25])]))).toEqual([2, 1.5]);
    expect(vals(runOp('rsqrt', [t('f32', [2], [4, 0.25])]))).toEqual([0.5, 2]);
  });
  it('tanh, sin, cos, sigmoid, silu', () => {
    // tanh(ln 2) = (4 - 1) / (4 + 1); sigmoid(ln 3) = 1 / (1 + 1/3).
    const [th] = vals(runOp('tanh', [t('f32', [1], [Math.LN2])]));
    expect(th).toBeCloseTo(0.6, 15);
    const [s, c] = [vals(runOp('sin', [t('f32', [1], [Math.PI / 6])]))[0], vals(runOp('cos', [t('f32', [1], [Math.PI / 3])]))[0]];
    expect(s).toBeCloseTo(0.5, 15);
    expect(c).toBeCloseTo(0.5, 15);
    const sg = vals(runOp('sigmoid', [t('f32', [3], [0, Math.log(3), -1000])]));
    expect(sg[0]).toBe(0.5);
    expect(sg[1]).toBeCloseTo(0.75, 15);
    expect(sg[2]).toBe(0);
    const si = vals(runOp('silu', [t('f32', [2], [Math.log(3), -1000])]));
    expect(si[0]).toBeCloseTo(0.75 * Math.log(3), 15);
    expect(Math.abs(si[1] ?? NaN)).toBe(0);
  });
  it('round: halves to even, as torch.round and WGSL round (Math.round would give 1, 3, -2, 1)', () => {
    expect(vals(runOp('round', [t('f32', [9], [0.5, 2.5, -2.5, 0.4999, 1.5, -0.6, 126.5, 127.5, -Infinity])]))).toEqual([0, 2, -2, 0, 2, -1, 126, 128, -Infinity]);
    expect(vals(runOp('round', [t('f32', [1], [NaN])]))).toEqual([NaN]);
  });
  it('not on bool', () => {
    expect(vals(runOp('not', [t('bool', [2], [1, 0])]))).toEqual([0, 1]);
  });
});

describe('erf and gelu', () => {
  // Reference values of erf (Abramowitz & Stegun table 7.1; also Python's math.erf).
  const known: [number, number][] = [
    [1e-3, 0.0011283787909692365],
    [0.1, 0.1124629160182849],
    [0.5, 0.5204998778130465],
    [1, 0.8427007929497149],
    [1.5, 0.9661051464753108],
    [2, 0.9953222650189527],
    [2.5, 0.999593047982555],
    [3, 0.9999779095030014],
    [4.5, 0.9999999998033839],
  ];
  it.each(known)('erf(%f) within 1e-14 relative', (x, want) => {
    expect(Math.abs(erf(x) - want) / want).toBeLessThan(1e-14);
    expect(Math.abs(erf(-x) + want) / want).toBeLessThan(1e-14);
  });
  it('erf limits', () => {
    expect(erf(0)).toBe(0);
    expect(erf(Infinity)).toBe(1);
    expect(erf(-Infinity)).toBe(-1);
    expect(erf(NaN)).toBeNaN();
  });
  it('gelu erf: 0.5x(1+erf(x/sqrt2)); erf(1/sqrt2) = 0.6826894921370859 (the one-sigma mass)', () => {
    const y = vals(runOp('gelu', [t('f32', [3], [1, -1, 0])], { approx: str('erf') }));
    expect(Math.abs((y[0] ?? NaN) - 0.8413447460685429)).toBeLessThan(1e-15);
    expect(Math.abs((y[1] ?? NaN) + 0.15865525393145707)).toBeLessThan(1e-15);
    expect(y[2]).toBe(0);
  });
  it('gelu tanh: 0.5x(1+tanh(sqrt(2/pi)(x+0.044715x^3)))', () => {
    // x = 1: tanh(0.7978845608 * 1.044715); x = -2: -(1 + tanh(0.7978845608 * -2.35772))
    const y = vals(runOp('gelu', [t('f32', [2], [1, -2])], { approx: str('tanh') }));
    expect(Math.abs((y[0] ?? NaN) - 0.8411919906082768)).toBeLessThan(1e-15);
    expect(Math.abs((y[1] ?? NaN) + 0.04540230591222494)).toBeLessThan(1e-15);
  });
});

describe('binary ops with broadcasting', () => {
  it('adds a row vector to each row', () => {
    const y = runOp('add', [t('f32', [2, 3], [1, 2, 3, 4, 5, 6]), t('f32', [3], [10, 20, 30])]);
    expect(toNested(y)).toEqual([
      [11, 22, 33],
      [14, 25, 36],
    ]);
  });
  it('broadcasts a column against a row (both sides grow)', () => {
    const y = runOp('sub', [t('f32', [2, 1], [1, 2]), t('f32', [1, 3], [10, 20, 30])]);
    expect(y.shape).toEqual([2, 3]);
    expect(toNested(y)).toEqual([
      [-9, -19, -29],
      [-8, -18, -28],
    ]);
  });
  it('multiplies by a scalar tensor', () => {
    expect(vals(runOp('mul', [t('f32', [], [2]), t('f32', [3], [1, 2, 3])]))).toEqual([2, 4, 6]);
  });
  it('awkward sizes: [7,33] + [33] gives i + j', () => {
    const a = t('f32', [7, 33], Array.from({ length: 7 * 33 }, (_, f) => Math.floor(f / 33)));
    const b = t('f32', [33], Array.from({ length: 33 }, (_, j) => j));
    const y = runOp('add', [a, b]);
    for (let i = 0; i < 7; i++) for (let j = 0; j < 33; j++) expect(y.data[i * 33 + j]).toBe(i + j);
  });
  it('div: floats divide, i32 truncates toward zero, i32 by zero is TFC309', () => {
    expect(vals(runOp('div', [t('f32', [2], [7, -7]), t('f32', [2], [2, 2])]))).toEqual([3.5, -3.5]);
    expect(vals(runOp('div', [t('i32', [2], [7, -7]), t('i32', [2], [2, 2])]))).toEqual([3, -3]);
    expect(() => runOp('div', [t('i32', [1], [1]), t('i32', [1], [0])])).toThrow(InterpError);
    try {
      runOp('div', [t('i32', [1], [1]), t('i32', [1], [0])]);
    } catch (e) {
      expect((e as InterpError).code).toBe('TFC309');
    }
  });
  it('mod is floor modulo (Python): the sign follows the divisor', () => {
    expect(vals(runOp('mod', [t('i32', [4], [7, -7, 7, -7]), t('i32', [4], [3, 3, -3, -3])]))).toEqual([1, 2, -2, -1]);
    expect(vals(runOp('mod', [t('f32', [2], [5.5, -5.5]), t('f32', [2], [2, 2])]))).toEqual([1.5, 0.5]);
  });
  it('i32 add and mul wrap at 32 bits', () => {
    expect(vals(runOp('add', [t('i32', [1], [2147483647]), t('i32', [1], [1])]))).toEqual([-2147483648]);
    expect(vals(runOp('mul', [t('i32', [1], [65536]), t('i32', [1], [65536])]))).toEqual([0]);
  });
  it('pow, max, min', () => {
    expect(vals(runOp('pow', [t('f32', [2], [2, 9]), t('f32', [2], [3, 0.5])]))).toEqual([8, 3]);
    expect(vals(runOp('max', [t('f32', [3], [1, 5, NaN]), t('f32', [3], [3, 2, 0])]))).toEqual([3, 5, NaN]);
    expect(vals(runOp('min', [t('f32', [2], [1, 5]), t('f32', [2], [3, 2])]))).toEqual([1, 2]);
  });
  it('comparisons give bool', () => {
    const a = t('f32', [3], [1, 2, 3]);
    const b = t('f32', [1], [2]);
    const cmp = (op: string): number[] => {
      const y = runOp(op, [a, b]);
      expect(y.dtype).toBe('bool');
      return vals(y);
    };
    expect(cmp('eq')).toEqual([0, 1, 0]);
    expect(cmp('ne')).toEqual([1, 0, 1]);
    expect(cmp('lt')).toEqual([1, 0, 0]);
    expect(cmp('le')).toEqual([1, 1, 0]);
    expect(cmp('gt')).toEqual([0, 0, 1]);
    expect(cmp('ge')).toEqual([0, 1, 1]);
  });
  it('and, or on bools', () => {
    const a = t('bool', [4], [1, 1, 0, 0]);
    const b = t('bool', [4], [1, 0, 1, 0]);
    expect(vals(runOp('and', [a, b]))).toEqual([1, 0, 0, 0]);
    expect(vals(runOp('or', [a, b]))).toEqual([1, 1, 1, 0]);
  });
  it('where broadcasts cond [2,1], a [3] and a scalar -inf', () => {
    const y = runOp('where', [t('bool', [2, 1], [1, 0]), t('f32', [3], [1, 2, 3]), t('f32', [], [-Infinity])]);
    expect(toNested(y)).toEqual([
      [1, 2, 3],
      [-Infinity, -Infinity, -Infinity],
    ]);
  });
});

describe('cast', () => {
  const to = (value: 'i32' | 'i8' | 'bool' | 'f32' | 'f16') => ({ to: { kind: 'dtype', value } as const });
  it('float -> i32 truncates toward zero', () => {
    const y = runOp('cast', [t('f32', [4], [1.7, -1.7, 2.5, -0.5])], to('i32'));
    expect(y.dtype).toBe('i32');
    expect(vals(y)).toEqual([1, -1, 2, 0]);
  });
  it('float -> i8 truncates toward zero, then saturates to -128..127 (NaN -> 0)', () => {
    const y = runOp('cast', [t('f32', [8], [1.7, -1.7, 126.9, 127.9, 300, -128.5, -1e9, NaN])], to('i8'));
    expect(y.dtype).toBe('i8');
    expect(vals(y)).toEqual([1, -1, 126, 127, 127, -128, -128, 0]);
    expect(vals(runOp('cast', [t('i32', [3], [5, 1000, -1000])], to('i8')))).toEqual([5, 127, -128]);
    expect(vals(runOp('cast', [t('i8', [2], [-128, 127])], to('f32')))).toEqual([-128, 127]);
  });
  it('float -> bool is x != 0', () => {
    expect(vals(runOp('cast', [t('f32', [3], [0, 0.5, -2])], to('bool')))).toEqual([0, 1, 1]);
  });
  it('i32 -> f32 and f32 -> f16 keep the value exactly (no half rounding in the reference)', () => {
    expect(vals(runOp('cast', [t('i32', [2], [3, -4])], to('f32')))).toEqual([3, -4]);
    expect(vals(runOp('cast', [t('f32', [1], [0.1])], to('f16')))).toEqual([0.1]);
  });
});
