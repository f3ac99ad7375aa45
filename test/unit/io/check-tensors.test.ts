import { describe, expect, it } from 'vitest';
import { dimAdd, dimConst, dimMul, dimVar } from '../../../src/base/dim.js';
import type { Span } from '../../../src/diag/span.js';
import { checkTensors, declaredTensors, type NeededTensor } from '../../../src/io/check-tensors.js';
import type { Tensor64 } from '../../../src/base/tensor.js';
import type { DType } from '../../../src/graph/types.js';

const loc: Span = { file: 'm.tfx', line: 3, col: 1, endLine: 3, endCol: 5 };
const B = dimVar('B');
const T = dimVar('T');
const P = dimVar('P');

function zeros(dtype: DType, shape: number[], fill = 0): Tensor64 {
  return { dtype, shape, data: new Float64Array(shape.reduce((a, b) => a * b, 1)).fill(fill) };
}

const needed: NeededTensor[] = [
  { kind: 'input', name: 'tokens', type: { dtype: 'i32', shape: [B, T] }, loc },
  { kind: 'input', name: 'past', type: { dtype: 'f32', shape: [B, P, dimConst(4)] }, loc },
  { kind: 'weight', name: 'w', type: { dtype: 'f32', shape: [dimConst(4), dimMul(dimConst(2), dimConst(4))] }, loc },
  { kind: 'weight', name: 'pos', type: { dtype: 'f32', shape: [dimAdd(P, T), dimConst(4)] }, loc },
];

function run(inputs: [string, Tensor64][], weights: [string, Tensor64][]) {
  return checkTensors(needed, { file: 'in.safetensors', tensors: new Map(inputs) }, { file: 'w.safetensors', tensors: new Map(weights) });
}

const goodInputs: [string, Tensor64][] = [
  ['tokens', zeros('i32', [2, 3])],
  ['past', zeros('f32', [2, 5, 4])],
];
const goodWeights: [string, Tensor64][] = [
  ['w', zeros('f32', [4, 8])],
  ['pos', zeros('f32', [8, 4])],
];

describe('checkTensors', () => {
  it('binds dims from inputs and accepts matching files', () => {
    const r = run(goodInputs, goodWeights);
    expect(r.diagnostics).toEqual([]);
    expect([...r.dims].sort()).toEqual([['B', 2], ['P', 5], ['T', 3]]);
  });

  it('reports every missing tensor (TFC302), naming it and the file', () => {
    const r = run([goodInputs[0] as [string, Tensor64]], []);
    const missing = r.diagnostics.filter((d) => d.code === 'TFC302').map((d) => d.message);
    expect(missing).toHaveLength(3);
    expect(missing[0]).toContain('"past"');
    expect(missing[0]).toContain('in.safetensors');
    expect(missing.join()).toContain('"w"');
  });

  it('reports a wrong dtype and a wrong shape as TFC303', () => {
    const r = run(goodInputs, [['w', zeros('i32', [4, 8])], ['pos', zeros('f32', [8, 5])]]);
    expect(r.diagnostics.map((d) => d.code)).toEqual(['TFC303', 'TFC303']);
    expect(r.diagnostics[0]?.message).toContain('dtype i32');
    expect(r.diagnostics[1]?.message).toContain('"pos"');
  });

  it('accepts a float tensor of another float dtype for a float declaration (it converts at load)', () => {
    const r = run([['tokens', zeros('i32', [2, 3])], ['past', zeros('bf16', [2, 5, 4])]], [['w', zeros('f16', [4, 8])], ['pos', zeros('bf16', [8, 4])]]);
    expect(r.diagnostics).toEqual([]);
  });

  it('takes an I8 file for an i8 declaration and refuses a float one (TFC303): i8 does not convert', () => {
    const q: NeededTensor[] = [{ kind: 'input', name: 'q', type: { dtype: 'i8', shape: [B] }, loc }];
    const check = (t: Tensor64) => checkTensors(q, { file: 'in.safetensors', tensors: new Map([['q', t]]) }, { file: 'w.safetensors', tensors: new Map() });
    expect(check(zeros('i8', [3])).diagnostics).toEqual([]);
    const r = check(zeros('f32', [3]));
    expect(r.diagnostics.map((d) => d.code)).toEqual(['TFC303']);
    expect(r.diagnostics[0]?.message).toContain('has dtype f32, the model declares i8[B]');
  });

  it('reports inputs that disagree about a dim as TFC307', () => {
    const r = run([['tokens', zeros('i32', [2, 3])], ['past', zeros('f32', [1, 5, 4])]], goodWeights);
    expect(r.diagnostics.map((d) => d.code)).toEqual(['TFC307']);
    expect(r.diagnostics[0]?.message).toContain('B=2');
  });

  it('solves a composite dim from a weight once the others are known', () => {
    const r = checkTensors(
      [needed[0] as NeededTensor, needed[3] as NeededTensor],
      { file: 'in.safetensors', tensors: new Map([goodInputs[0] as [string, Tensor64]]) },
      { file: 'w.safetensors', tensors: new Map([['pos', zeros('f32', [7, 4])]]) },
    );
    expect(r.diagnostics).toEqual([]);
    expect(r.dims.get('P')).toBe(4);
  });

  it('warns about extra tensors (TFC304) and non-finite weights (TFC308)', () => {
    const r = run([...goodInputs, ['junk', zeros('f32', [1])]], [['w', zeros('f32', [4, 8], NaN)], goodWeights[1] as [string, Tensor64]]);
    expect(r.diagnostics.map((d) => [d.code, d.severity])).toEqual([
      ['TFC308', 'warning'],
      ['TFC304', 'warning'],
    ]);
    expect(r.diagnostics[0]?.message).toContain('32 NaN or infinite values');
  });

  it('reports each unbound dim as TFC306', () => {
    const r = checkTensors([needed[3] as NeededTensor], { file: 'i', tensors: new Map() }, { file: 'w', tensors: new Map([['pos', zeros('f32', [7, 4])]]) });
    expect(r.diagnostics.map((d) => d.code)).toEqual(['TFC306', 'TFC306']);
    expect(r.diagnostics[0]?.message).toMatch(/^dimension P has no value/);
    expect(r.diagnostics[1]?.message).toMatch(/^dimension T has no value/);
  });
});

describe('narrowing float tensors at load (--dtype f16)', () => {
  const half: NeededTensor[] = [
    { kind: 'input', name: 'x', type: { dtype: 'f16', shape: [dimConst(3)] }, loc },
    { kind: 'weight', name: 'w', type: { dtype: 'f16', shape: [dimConst(4)] }, loc },
    { kind: 'weight', name: 'b', type: { dtype: 'bf16', shape: [dimConst(2)] }, loc },
  ];
  const f32 = (data: number[]): Tensor64 => ({ dtype: 'f32', shape: [data.length], data: Float64Array.from(data) });

  it('refuses a value f16 cannot hold (TFC315), naming the tensor, the index and the value', () => {
    // 65519 rounds down to 65504 (the largest f16); 65520 is half an ulp past it and rounds to inf.
    const r = checkTensors(half, { file: 'in.st', tensors: new Map([['x', f32([1, 2, 65519])]]) }, { file: 'w.st', tensors: new Map([['w', f32([0, -65520, 1, 2])], ['b', f32([1e30, 2])]]) });
    expect(r.diagnostics.map((d) => d.code)).toEqual(['TFC315']);
    expect(r.diagnostics[0]?.message).toBe('weight "w" in w.st is f32, and its value -65520 at flat index 1 is beyond f16\'s range (the model declares f16[4]): it would load as infinity');
  });

  it('leaves a tensor already in the declared dtype unchecked (its infinities are TFC308 warnings)', () => {
    const r = checkTensors(half, { file: 'in.st', tensors: new Map([['x', f32([1, 2, 3])]]) }, { file: 'w.st', tensors: new Map([['w', { dtype: 'f16', shape: [4], data: Float64Array.from([0, Infinity, 1, 2]) }], ['b', f32([1, 2])]]) });
    expect(r.diagnostics.map((d) => `${d.severity} ${d.code}`)).toEqual(['warning TFC308']);
  });

  it('rounds each value to the declared dtype, to nearest even', () => {
    // f16: 1/3 = 0x3555 = 0.333251953125; 2049 is a tie between 2048 and 2050 and goes to even 2048;
    // bf16 (8 significant bits): 1/3 = 0x3EAB = 0.333984375. i32 tensors and same-dtype tensors pass through.
    const w = declaredTensors(half, 'weight', new Map([['w', f32([1 / 3, 2049, 0.1, -2])], ['b', f32([1 / 3, 1])]]));
    expect(w.get('w')?.dtype).toBe('f16');
    expect([...(w.get('w')?.data ?? [])]).toEqual([0.333251953125, 2048, 0.0999755859375, -2]);
    expect(w.get('b')?.dtype).toBe('bf16');
    expect([...(w.get('b')?.data ?? [])]).toEqual([0.333984375, 1]);
    const same: Tensor64 = { dtype: 'f16', shape: [3], data: Float64Array.from([1, 2, 3]) };
    expect(declaredTensors(half, 'input', new Map([['x', same]])).get('x')).toBe(same);
  });
});
