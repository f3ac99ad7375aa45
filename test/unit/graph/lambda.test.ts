// The lambda-body walkers and constructors of src/graph/lambda.ts, on bodies printed by the IR
// printer so the expectations read as the IR text a pass would show.
import { describe, expect, it } from 'vitest';
import { dimConst, dimVar } from '../../../src/base/dim.js';
import type { ScalarExpr } from '../../../src/graph/ir.js';
import { ap, dimValue, foldScalarExpr, hasRead, i32, idx, indexOp, isLazyWhere, mapScalarExpr, someScalarExpr, substituteIndex } from '../../../src/graph/lambda.js';
import { printScalarExpr } from '../../../src/graph/print.js';
import type { TensorType } from '../../../src/graph/types.js';

// Operands 0..5 are f32 tensors, so reads print without a dtype suffix.
const f32Operands: TensorType[] = Array.from({ length: 6 }, () => ({ dtype: 'f32', shape: [] }));
const p = (e: ScalarExpr): string => printScalarExpr(e, ['i', 'j'], f32Operands);
const read = (operand: number, ...indices: ScalarExpr[]): ScalarExpr => ({ kind: 'read', operand, indices, dtype: 'f32' });
// exp(read(0, i, add(j, 1))) * read(1, j)
const body = ap('mul', 'f32', ap('exp', 'f32', read(0, idx(0), ap('add', 'i32', idx(1), i32(1)))), read(1, idx(1)));

describe('mapScalarExpr', () => {
  it('rewrites every node the function answers and keeps the rest', () => {
    const swapped = mapScalarExpr(body, (x) => (x.kind === 'index' ? idx(1 - x.axis) : undefined));
    expect(p(swapped)).toBe('mul(exp(read(0, j, add(i, 1))), read(1, i))');
    expect(p(body)).toBe('mul(exp(read(0, i, add(j, 1))), read(1, j))'); // the input is not mutated
  });

  it('does not descend into a replacement; rec rewrites where the function chooses', () => {
    const seen: string[] = [];
    const out = mapScalarExpr(body, (x, rec) => {
      seen.push(x.kind);
      return x.kind === 'read' && x.operand === 0 ? { ...x, operand: 5, indices: x.indices.slice(0, 1).map(rec) } : undefined;
    });
    expect(p(out)).toBe('mul(exp(read(5, i)), read(1, j))');
    // mul, exp, read 0 (replaced: its second index is never visited), its first index i, read 1, j.
    expect(seen).toEqual(['apply', 'apply', 'read', 'index', 'read', 'index']);
  });
});

describe('foldScalarExpr and someScalarExpr', () => {
  it('folds bottom-up with the children in order', () => {
    const text = foldScalarExpr<string>(body, (x, cs) => (x.kind === 'apply' ? `${x.op}[${cs.join(' ')}]` : x.kind === 'read' ? `r${x.operand}[${cs.join(' ')}]` : x.kind));
    expect(text).toBe('mul[exp[r0[index add[index const]]] r1[index]]');
    expect(foldScalarExpr<number>(body, (_, cs) => 1 + cs.reduce((a, b) => a + b, 0))).toBe(9);
  });

  it('finds a node and stops at the first', () => {
    let visited = 0;
    expect(someScalarExpr(body, (x) => (visited++, x.kind === 'read'))).toBe(true);
    expect(visited).toBe(3); // mul, exp, read
    expect(someScalarExpr(body, (x) => x.kind === 'dim')).toBe(false);
    expect(hasRead(body)).toBe(true);
    expect(hasRead(ap('add', 'i32', idx(0), i32(2)))).toBe(false);
  });
});

describe('constructors', () => {
  it('substituteIndex composes index maps', () => {
    expect(p(substituteIndex(body, [i32(3), ap('sub', 'i32', idx(0), i32(2))]))).toBe('mul(exp(read(0, 3, add(sub(i, 2), 1))), read(1, sub(i, 2)))');
  });

  it('dimValue is a literal for a constant dim, a dim otherwise', () => {
    expect(dimValue(dimConst(8))).toEqual({ kind: 'const', value: 8, dtype: 'i32' });
    expect(dimValue(dimVar('T'))).toEqual({ kind: 'dim', dim: dimVar('T') });
  });

  it('indexOp folds the identities of index arithmetic and nothing else', () => {
    expect(indexOp('add', i32(0), idx(1))).toEqual(idx(1));
    expect(indexOp('sub', idx(1), i32(0))).toEqual(idx(1));
    expect(indexOp('mul', idx(0), i32(0))).toEqual(i32(0));
    expect(indexOp('mul', i32(1), idx(0))).toEqual(idx(0));
    expect(indexOp('div', idx(0), i32(1))).toEqual(idx(0));
    expect(indexOp('mod', idx(0), i32(1))).toEqual(i32(0));
    expect(p(indexOp('div', idx(0), i32(2)))).toBe('div(i, 2)');
    expect(p(indexOp('sub', i32(0), idx(0)))).toBe('sub(0, i)');
  });

  it('a where on index < bound with a read in a branch is lazy; on a read condition it is not', () => {
    expect(isLazyWhere(ap('where', 'f32', ap('lt', 'bool', idx(1), i32(4)), read(0, idx(1)), read(1, idx(1))))).toBe(true);
    expect(isLazyWhere(ap('where', 'f32', ap('lt', 'bool', idx(1), i32(4)), i32(0), i32(1)))).toBe(false);
    expect(isLazyWhere(ap('where', 'f32', ap('le', 'bool', idx(1), i32(4)), read(0, idx(1)), read(1, idx(1))))).toBe(false);
  });
});
