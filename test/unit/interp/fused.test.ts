// Float64 rules of the fused ops on hand-computed values: 'fused_map' (a lambda with a broadcast
// read), 'fused_matmul' (product, then the epilogue), 'fused_reduce' (body, reduction, epilogue)
// and 'acc' (only inside an epilogue).
import { describe, expect, it } from 'vitest';
import type { Node } from '../../../src/graph/ir.js';
import { getOp } from '../../../src/ops/catalog.js';
import { makeTensor } from '../../../src/base/tensor.js';

const span = { file: 't.ir', line: 1, col: 1, endLine: 1, endCol: 1 };
const ix = (axis: number) => ({ kind: 'index' as const, axis });

describe('fused ops (float64)', () => {
  it("'view' reads x[j, i] (a transpose, no arithmetic)", () => {
    const c = (n: number) => ({ terms: [{ coef: n, vars: [] }] });
    const node: Node = {
      id: 1, op: 'view', operands: [0], loc: span, type: { dtype: 'f32', shape: [c(3), c(2)] },
      attrs: {
        shape: { kind: 'dims', value: [c(3), c(2)] },
        map: { kind: 'lambda', params: ['i', 'j'], body: { kind: 'read', operand: 0, indices: [ix(1), ix(0)], dtype: 'f32' } },
      },
    };
    const x = makeTensor('f32', [2, 3], [0, 1, 2, 3, 4, 5]);
    const out = getOp('view')?.interp([x], { node, dims: new Map(), shape: [3, 2] });
    expect(Array.from(out?.data ?? [])).toEqual([0, 3, 1, 4, 2, 5]);
  });


  it("'fused_map' evaluates exp(x[i,j] * b[j]) with b broadcast over rows", () => {
    const node: Node = {
      id: 2, op: 'fused_map', operands: [0, 1], loc: span, type: { dtype: 'f32', shape: [{ terms: [{ coef: 2, vars: [] }] }, { terms: [{ coef: 2, vars: [] }] }] },
      attrs: {
        shape: { kind: 'dims', value: [] },
        body: { kind: 'lambda', params: ['i', 'j'], body: { kind: 'apply', op: 'exp', dtype: 'f32', args: [{ kind: 'apply', op: 'mul', dtype: 'f32', args: [{ kind: 'read', operand: 0, indices: [ix(0), ix(1)], dtype: 'f32' }, { kind: 'read', operand: 1, indices: [ix(1)], dtype: 'f32' }] }] } },
      },
    };
    const x = makeTensor('f32', [2, 2], [0, 1, 2, 3]);
    const b = makeTensor('f32', [2], [1, -1]);
    const out = getOp('fused_map')?.interp([x, b], { node, dims: new Map(), shape: [2, 2] });
    expect(Array.from(out?.data ?? [])).toEqual([Math.exp(0), Math.exp(-1), Math.exp(2), Math.exp(-3)]);
  });

  it("'fused_matmul' applies relu(acc() + bias[j]) to [1,2]@[[1,0],[0,1]] and 'acc' alone is an error", () => {
    const two = { terms: [{ coef: 2, vars: [] }] };
    const one = { terms: [{ coef: 1, vars: [] }] };
    const node: Node = {
      id: 3, op: 'fused_matmul', operands: [0, 1, 2], loc: span, type: { dtype: 'f32', shape: [one, two] },
      attrs: {
        epilogue: { kind: 'lambda', params: ['i', 'j'], body: { kind: 'apply', op: 'relu', dtype: 'f32', args: [{ kind: 'apply', op: 'add', dtype: 'f32', args: [{ kind: 'apply', op: 'acc', args: [], dtype: 'f32' }, { kind: 'read', operand: 2, indices: [ix(1)], dtype: 'f32' }] }] } },
      },
    };
    const a = makeTensor('f32', [1, 2], [1, 2]);
    const w = makeTensor('f32', [2, 2], [1, 0, 0, 1]);
    const bias = makeTensor('f32', [2], [-3, 0.5]);
    const out = getOp('fused_matmul')?.interp([a, w, bias], { node, dims: new Map(), shape: [1, 2] });
    // [1, 2] + [-3, 0.5] = [-2, 2.5] -> relu -> [0, 2.5]
    expect(Array.from(out?.data ?? [])).toEqual([0, 2.5]);
    expect(() => getOp('acc')?.interp([], { node, dims: new Map(), shape: [] })).toThrow(/epilogue/);
  });

  it("'fused_matmul' with pair: acc() * acc_pair() over the halves of [1,2]@[[1,0,2,0],[0,1,0,3]] (columns j and 2 + j); 'acc_pair' alone is an error", () => {
    const c = (n: number) => ({ terms: [{ coef: n, vars: [] }] });
    const node: Node = {
      id: 3, op: 'fused_matmul', operands: [0, 1], loc: span, type: { dtype: 'f32', shape: [c(1), c(2)] },
      attrs: {
        epilogue: { kind: 'lambda', params: ['i', 'j'], body: { kind: 'apply', op: 'mul', dtype: 'f32', args: [{ kind: 'apply', op: 'acc', args: [], dtype: 'f32' }, { kind: 'apply', op: 'acc_pair', args: [], dtype: 'f32' }] } },
        pair: { kind: 'bool', value: true },
      },
    };
    const a = makeTensor('f32', [1, 2], [1, 2]);
    const w = makeTensor('f32', [2, 4], [1, 0, 2, 0, 0, 1, 0, 3]);
    const out = getOp('fused_matmul')?.interp([a, w], { node, dims: new Map(), shape: [1, 2] });
    // product [1, 2, 2, 6]: [1 * 2, 2 * 6]
    expect(Array.from(out?.data ?? [])).toEqual([2, 12]);
    expect(() => getOp('acc_pair')?.interp([], { node, dims: new Map(), shape: [] })).toThrow(/epilogue/);
  });

  it("'fused_reduce' takes max |x| over each row of x (through a transposing read), then max(acc() / 4, s[i])", () => {
    const c = (n: number) => ({ terms: [{ coef: n, vars: [] }] });
    const rd = (operand: number, indices: ReturnType<typeof ix>[]) => ({ kind: 'read' as const, operand, indices, dtype: 'f32' as const });
    const node: Node = {
      id: 4, op: 'fused_reduce', operands: [0, 1], loc: span, type: { dtype: 'f32', shape: [c(2), c(1)] },
      attrs: {
        // x is [3, 2]; the body reads it transposed, so the rows reduced are x's columns.
        shape: { kind: 'dims', value: [c(2), c(3)] },
        body: { kind: 'lambda', params: ['i', 'j'], body: { kind: 'apply', op: 'abs', dtype: 'f32', args: [rd(0, [ix(1), ix(0)])] } },
        reduce: { kind: 'str', value: 'max' },
        axes: { kind: 'ints', value: [1] },
        keepdims: { kind: 'bool', value: true },
        epilogue: { kind: 'lambda', params: ['i', 'j'], body: { kind: 'apply', op: 'max', dtype: 'f32', args: [{ kind: 'apply', op: 'div', dtype: 'f32', args: [{ kind: 'apply', op: 'acc', args: [], dtype: 'f32' }, { kind: 'const', value: 4, dtype: 'f32' }] }, rd(1, [ix(0)])] } },
      },
    };
    const x = makeTensor('f32', [3, 2], [1, -8, -6, 2, 3, 0.5]);
    const s = makeTensor('f32', [2], [1, 1]);
    const out = getOp('fused_reduce')?.interp([x, s], { node, dims: new Map(), shape: [2, 1] });
    // columns [1, -6, 3] and [-8, 2, 0.5]: max |.| = 6 and 8 -> / 4 = 1.5 and 2 -> max with 1.
    expect(Array.from(out?.data ?? [])).toEqual([1.5, 2]);
    const sum = { ...node, attrs: { ...node.attrs, reduce: { kind: 'str' as const, value: 'sum' } } };
    // sums of |.|: 10 and 10.5 -> / 4 = 2.5 and 2.625.
    expect(Array.from(getOp('fused_reduce')?.interp([x, s], { node: sum, dims: new Map(), shape: [2, 1] })?.data ?? [])).toEqual([2.5, 2.625]);
  });
});
