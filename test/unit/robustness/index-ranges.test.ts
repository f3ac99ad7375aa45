// checkIndexRanges on index expressions other than a bare input or arange (issue 9): offsets
// (`arange(T) + 2`), positions from a grid over dims (`i + P`), shifted token ids, clamps (no false
// alarm) and negative positions, each bound found by hand from the declared table sizes.
import { describe, expect, it } from 'vitest';
import { checkSource } from '../../../src/check/check-source.js';
import type { Graph } from '../../../src/graph/ir.js';
import { checkIndexRanges, checkTensors, neededTensors } from '../../../src/io/check-tensors.js';
import { makeTensor, type Tensor64 } from '../../../src/base/tensor.js';

// wte: 8 rows (vocab), wpe: 8 rows (context); past binds P.
const model = (expr: string): string => `config {
  d = 2
  vocab = 8
  ctx = 8
}
dims B, T, P
input tokens: i32[B, T]
input past: f32[B, P, d]
output y: f32[B, T, d]
weight wte: f32[vocab, d] = "wte.weight"
weight wpe: f32[ctx, d] = "wpe.weight"
model m {
  y = wte[tokens] + ${expr}
}
`;

function graph(expr: string): Graph {
  const r = checkSource(model(expr), 'm.tfx', new Map());
  expect(r.diagnostics.map((d) => d.message)).toEqual([]);
  if (r.graph === undefined) throw new Error('no graph');
  return r.graph;
}

/** TFC309 messages for tokens (B = 1) and a past of P positions. */
function check(expr: string, tokens: number[], P: number): string[] {
  const g = graph(expr);
  const inputs = new Map<string, Tensor64>([
    ['tokens', makeTensor('i32', [1, tokens.length], tokens)],
    ['past', makeTensor('f32', [1, P, 2])],
  ]);
  const weights = new Map<string, Tensor64>([
    ['wte.weight', makeTensor('f32', [8, 2])],
    ['wpe.weight', makeTensor('f32', [8, 2])],
  ]);
  const src = { file: 'in.safetensors', tensors: inputs };
  const c = checkTensors(neededTensors(g), src, { file: 'w.safetensors', tensors: weights });
  expect(c.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
  return checkIndexRanges(g, src, c.dims).map((d) => `${d.code} ${d.message}`);
}

const ids = (n: number): number[] => Array.from({ length: n }, (_, i) => i % 8);

describe('checkIndexRanges on computed positions and ids', () => {
  it('arange(T) + 2: T = 6 reaches row 7 (fits), T = 7 reaches row 8 (past the context)', () => {
    expect(check('wpe[arange(T) + 2]', ids(6), 0)).toEqual([]);
    const m = check('wpe[arange(T) + 2]', ids(7), 0);
    expect(m).toHaveLength(1);
    expect(m[0]).toContain('TFC309 positions range over [2, 8] with B=1, T=7, P=0, outside [0, 8)');
    expect(m[0]).toContain('longer than the context of 8 positions');
  });

  it('a grid over dims, i + P (KV-cache positions): P = 5, T = 3 fits; P = 6 does not', () => {
    expect(check('wpe[grid[T](i) => i + P]', ids(3), 5)).toEqual([]);
    const m = check('wpe[grid[T](i) => i + P]', ids(3), 6);
    expect(m).toHaveLength(1);
    expect(m[0]).toContain('positions range over [6, 8]');
  });

  it('arange(P, P + T) + 1 composes an offset with a start', () => {
    expect(check('wpe[arange(P, P + T) + 1]', ids(2), 5)).toEqual([]);
    expect(check('wpe[arange(P, P + T) + 1]', ids(2), 6)[0]).toContain('range over [7, 8]');
  });

  it('shifted token ids: tokens + 1 with a 7 in the input names the input and the range', () => {
    expect(check('wte[tokens + 1]', [0, 6, 3], 0)).toEqual([]);
    const m = check('wte[tokens + 1]', [0, 7, 3], 0);
    expect(m).toHaveLength(1);
    expect(m[0]).toContain('indices computed from input "tokens" in in.safetensors range over [1, 8]');
    expect(m[0]).toContain('wte.weight');
  });

  it('negative positions (arange(T) - 1) are refused', () => {
    expect(check('wpe[arange(T) - 1]', ids(3), 0)[0]).toContain('range over [-1, 1]');
  });

  it('a clamp keeps a long sequence inside the table: no false alarm', () => {
    expect(check('wpe[min(arange(T), 7)]', ids(20), 0)).toEqual([]);
    expect(check('wpe[max(arange(T) - 3, 0)]', ids(11), 0)).toEqual([]);
    expect(check('wpe[max(arange(T) - 3, 0)]', ids(12), 0)[0]).toContain('range over [0, 8]');
  });

  it('a bare arange still gives the context message', () => {
    expect(check('wpe[arange(T)]', ids(9), 0)[0]).toContain('positions arange(0, T) = [0, 9) with T=9');
  });
});
