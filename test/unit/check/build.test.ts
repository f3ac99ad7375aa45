// Graph building from small .tfx programs: node ops, result types (symbolic shapes), inlining of
// generic functions, loop unrolling, families, split tuples, grid lowering, folding, weak typing.
import { describe, expect, it } from 'vitest';
import { checkSource } from '../../../src/check/check-source.js';
import type { Graph, Node } from '../../../src/graph/ir.js';
import { printType } from '../../../src/graph/types.js';
import { printDim } from '../../../src/base/dim.js';
import { verifyGraph } from '../../../src/graph/verify.js';

const header = `config {
  d = 8
  heads = 2
  dh = d / heads
  layers = 3
}
dims B, T, P
`;

function build(src: string, overrides: ReadonlyMap<string, number> = new Map()): Graph {
  const r = checkSource(header + src, 't.tfx', overrides);
  expect(r.diagnostics.map((d) => `${d.code} ${d.loc.line}:${d.loc.col} ${d.message}`)).toEqual([]);
  if (r.graph === undefined) throw new Error('no graph');
  expect(verifyGraph(r.graph)).toEqual([]);
  return r.graph;
}

function codes(src: string, overrides: ReadonlyMap<string, number> = new Map()): string[] {
  return checkSource(header + src, 't.tfx', overrides).diagnostics.map((d) => `${d.code} ${d.loc.line - 7}:${d.loc.col}`);
}

const ops = (g: Graph): string[] => g.nodes.map((n) => n.op);
const outNode = (g: Graph, name: string): Node => {
  const o = g.outputs.find((x) => x.name === name);
  const n = o === undefined ? undefined : g.nodes[o.value];
  if (n === undefined) throw new Error(`no output ${name}`);
  return n;
};
const typeOf = (n: Node): string => printType(n.type);

describe('buildGraph', () => {
  it('builds inputs, weights, matmul and add with inferred types', () => {
    const g = build(`input x: f32[B, T, d]
weight w: f32[d, 3 * d] = "attn.w"
output y: f32[B, T, 3 * d]
model m {
  y = x @ w + 1.0
}`);
    expect(ops(g)).toEqual(['input', 'weight', 'matmul', 'const', 'add']);
    expect(g.nodes.map(typeOf)).toEqual(['f32[B,T,8]', 'f32[8,24]', 'f32[B,T,24]', 'f32[]', 'f32[B,T,24]']);
    expect(g.nodes[1]?.attrs['name']).toEqual({ kind: 'str', value: 'attn.w' });
    expect(g.dims).toEqual(['B', 'T', 'P']);
    expect(g.name).toBe('m');
    expect(g.outputs.map((o) => o.name)).toEqual(['y']);
    // every node has the location of its expression: the matmul is at `x @ w` (line 5 of the body)
    expect(g.nodes[2]?.loc).toMatchObject({ line: 12, col: 7 });
  });

  it('keeps symbolic shapes canonical: concat of P and T rows is P+T', () => {
    const g = build(`input past: f32[B, P, d]
input x: f32[B, T, d]
output y: f32[B, T + P, d]
model m {
  y = concat(past, x, axis=1)
}`);
    const y = outNode(g, 'y');
    expect(y.op).toBe('concat');
    expect(y.attrs['axis']).toEqual({ kind: 'int', value: 1 });
    expect(typeOf(y)).toBe('f32[B,P+T,8]');
  });

  it('inlines generic functions, binding N and M per call', () => {
    const g = build(`input q: f32[B, heads, T, dh]
input k: f32[B, heads, P + T, dh]
output s: f32[B, heads, T, P + T]
output s2: f32[B, heads, T, T]
fn attend[N, M](a: f32[B, heads, N, dh], b: f32[B, heads, M, dh]) -> f32[B, heads, N, M] {
  return a @ transpose(b) / sqrt(dh)
}
model m {
  s = attend(q, k)
  s2 = attend(q, q)
}`);
    expect(typeOf(outNode(g, 's'))).toBe('f32[B,2,T,P+T]');
    expect(typeOf(outNode(g, 's2'))).toBe('f32[B,2,T,T]');
    // transpose -> permute swapping the last two axes; sqrt(dh) folds to the constant 2
    const perms = g.nodes.filter((n) => n.op === 'permute').map((n) => n.attrs['perm']);
    expect(perms).toEqual([
      { kind: 'ints', value: [0, 1, 3, 2] },
      { kind: 'ints', value: [0, 1, 3, 2] },
    ]);
    const consts = g.nodes.filter((n) => n.op === 'const').map((n) => n.attrs['value']);
    expect(consts).toEqual([
      { kind: 'float', value: 2 },
      { kind: 'float', value: 2 },
    ]);
    expect(ops(g).filter((o) => o === 'sqrt')).toEqual([]);
  });

  it('solves a generic dim from a linear shape (N + 1)', () => {
    const g = build(`input x: f32[B, T + 1, d]
output y: f32[B, T, d]
fn drop_first[N](a: f32[B, N + 1, d]) -> f32[B, N, d] {
  return slice(a, 1, N + 1, axis=1)
}
model m {
  y = drop_first(x)
}`);
    const y = outNode(g, 'y');
    expect(y.op).toBe('slice');
    expect(printDim((y.attrs['end'] as unknown as { value: never }).value)).toBe('T + 1');
  });

  it('unrolls loops, threading a reassigned value, with family weights one node per key', () => {
    const g = build(`input x: f32[B, T, d]
weight w[l in 0..layers]: f32[d] = "h.{l}.w"
output y: f32[B, T, d]
model m {
  h = x
  for l in 0..layers {
    h = h * w[l] + w[l]
  }
  y = h
}`);
    expect(ops(g)).toEqual(['input', 'weight', 'mul', 'add', 'weight', 'mul', 'add', 'weight', 'mul', 'add']);
    expect(g.nodes.filter((n) => n.op === 'weight').map((n) => n.attrs['name'])).toEqual([
      { kind: 'str', value: 'h.0.w' },
      { kind: 'str', value: 'h.1.w' },
      { kind: 'str', value: 'h.2.w' },
    ]);
    // the chain: each mul reads the previous add
    expect(g.nodes[5]?.operands).toEqual([3, 4]);
    expect(outNode(g, 'y').id).toBe(9);
  });

  it('expands input and output families per member, with index parameters', () => {
    const g = build(`input past[l in 0..layers]: f32[B, P, d] = "past.{l}"
input x: f32[B, T, d]
output present[l in 0..layers]: f32[B, P + T, d] = "present.{l}"
fn step(x: f32[B, T, d], l: index) -> f32[B, P + T, d] {
  return concat(past[l], x, axis=1)
}
model m {
  for l in 0..layers {
    present[l] = step(x, l)
  }
}`);
    expect(g.nodes.filter((n) => n.op === 'input').map((n) => n.attrs['name'])).toEqual([
      { kind: 'str', value: 'past.0' },
      { kind: 'str', value: 'past.1' },
      { kind: 'str', value: 'past.2' },
      { kind: 'str', value: 'x' },
    ]);
    expect(g.outputs.map((o) => o.name)).toEqual(['present.0', 'present.1', 'present.2']);
    expect(g.outputs.map((o) => g.nodes[o.value]?.operands)).toEqual([
      [0, 3],
      [1, 3],
      [2, 3],
    ]);
  });

  it('lowers split to slice nodes returning a tuple', () => {
    const g = build(`input x: f32[B, T, 3 * d]
output q: f32[B, T, d]
output v: f32[B, T, d]
model m {
  a, b, c = split(x, 3)
  q = a
  v = c
}`);
    const slices = g.nodes.filter((n) => n.op === 'slice');
    expect(slices.map((n) => [n.attrs['axis'], printDim((n.attrs['start'] as unknown as { value: never }).value), printDim((n.attrs['end'] as unknown as { value: never }).value)])).toEqual([
      [{ kind: 'int', value: 2 }, '0', '8'],
      [{ kind: 'int', value: 2 }, '8', '16'],
      [{ kind: 'int', value: 2 }, '16', '24'],
    ]);
    expect(slices.map(typeOf)).toEqual(['f32[B,T,8]', 'f32[B,T,8]', 'f32[B,T,8]']);
    expect(outNode(g, 'v').id).toBe(slices[2]?.id);
  });

  it('splits by sizes and pipes each part of a tuple', () => {
    const g = build(`input x: f32[B, T, 3 * d]
output q: f32[B, d, T]
output r: f32[B, 2 * d, T]
model m {
  q, r = split(x, [d, 2 * d], axis=-1) |> transpose()
}`);
    expect(typeOf(outNode(g, 'q'))).toBe('f32[B,8,T]');
    expect(typeOf(outNode(g, 'r'))).toBe('f32[B,16,T]');
  });

  it('lowers a grid to a lambda over its indices, reading tensors as operands', () => {
    const g = build(`input x: f32[B, heads, T, T]
weight slope: f32[heads]
output y: f32[B, heads, T, T]
model m {
  causal = grid[T, T](q, k) => k <= q
  bias = grid[heads, T, T](h, q, k) => slope[h] * (k - q)
  y = where(causal, x + bias, -inf)
}`);
    const grids = g.nodes.filter((n) => n.op === 'grid');
    expect(grids.map(typeOf)).toEqual(['bool[T,T]', 'f32[2,T,T]']);
    expect(grids[0]?.attrs['body']).toEqual({
      kind: 'lambda',
      params: ['q', 'k'],
      body: { kind: 'apply', op: 'le', dtype: 'bool', args: [{ kind: 'index', axis: 1 }, { kind: 'index', axis: 0 }] },
    });
    const slope = g.nodes.find((n) => n.op === 'weight');
    expect(grids[1]?.operands).toEqual([slope?.id]);
    expect(grids[1]?.attrs['body']).toEqual({
      kind: 'lambda',
      params: ['h', 'q', 'k'],
      body: {
        kind: 'apply',
        op: 'mul',
        dtype: 'f32',
        args: [
          { kind: 'read', operand: 0, indices: [{ kind: 'index', axis: 0 }], dtype: 'f32' },
          {
            kind: 'apply',
            op: 'cast',
            dtype: 'f32',
            args: [{ kind: 'apply', op: 'sub', dtype: 'i32', args: [{ kind: 'index', axis: 2 }, { kind: 'index', axis: 1 }] }],
          },
        ],
      },
    });
    // -inf folds to one const of x's dtype
    const c = g.nodes.find((n) => n.op === 'const');
    expect(c?.attrs['value']).toEqual({ kind: 'float', value: -Infinity });
    expect(typeOf(outNode(g, 'y'))).toBe('f32[B,2,T,T]');
  });

  it('uses dims and config constants inside a grid body', () => {
    const g = build(`output y: bool[T, P + T]
model m {
  y = grid[T, P + T](q, k) => k <= q + P && k > q + P - dh
}`);
    const body = (outNode(g, 'y').attrs['body'] as { body: unknown }).body;
    expect(JSON.stringify(body)).toContain('"kind":"dim"');
    expect(JSON.stringify(body)).toContain('{"kind":"const","value":4,"dtype":"i32"}');
  });

  it('folds compile-time arithmetic and gives mixed scalars the tensor dtype', () => {
    const g = build(`input ids: i32[B, T]
input x: f32[B, T, d]
output a: i32[B, T]
output b: f32[B, T, d]
model m {
  a = ids + (layers * 2 - 1)
  b = x * (1 / sqrt(dh)) + pi
}`);
    const consts = g.nodes.filter((n) => n.op === 'const');
    expect(consts.map((n) => [n.attrs['value'], typeOf(n)])).toEqual([
      [{ kind: 'float', value: 5 }, 'i32[]'],
      [{ kind: 'float', value: 0.5 }, 'f32[]'],
      [{ kind: 'float', value: Math.PI }, 'f32[]'],
    ]);
    expect(ops(g).filter((o) => o === 'sqrt' || o === 'div')).toEqual([]);
  });

  it('rejects a fractional scalar with an integer tensor (TFC202)', () => {
    expect(codes(`input ids: i32[B, T]
output a: i32[B, T]
model m {
  a = ids * 0.5
}`)).toEqual(['TFC202 4:13']);
  });

  it('normalizes reduction axes, infers reshape -1 and tells max from max_reduce', () => {
    const g = build(`input x: f32[B, T, d]
output s: f32[T]
output r: f32[B, T, heads, dh]
output mx: f32[B, T, 1]
output me: f32[B, T, d]
model m {
  s = sum(x, axis=[-1, 0])
  r = reshape(x, [B, T, heads, -1])
  mx = max(x, axis=-1, keepdims=true)
  me = max(x, 0.0)
}`);
    const sum = g.nodes.find((n) => n.op === 'sum');
    expect(sum?.attrs['axes']).toEqual({ kind: 'ints', value: [0, 2] });
    expect(sum?.attrs['keepdims']).toEqual({ kind: 'bool', value: false });
    expect(typeOf(outNode(g, 'r'))).toBe('f32[B,T,2,4]');
    expect(outNode(g, 'mx').op).toBe('max_reduce');
    expect(outNode(g, 'me').op).toBe('max');
  });

  it('lowers comparisons, logic and arange', () => {
    const g = build(`input x: f32[B, T, d]
output y: bool[T, T]
model m {
  pos = arange(T)
  y = !(reshape(pos, [T, 1]) < reshape(arange(1, T + 1), [1, T])) || false
}`);
    expect(ops(g)).toEqual(['input', 'arange', 'reshape', 'arange', 'reshape', 'lt', 'not', 'const', 'or']);
    expect(typeOf(g.nodes[3] as Node)).toBe('i32[T]');
  });

  it('binds dims and overrides config constants from --set', () => {
    const g = build(`input x: f32[B, T, d]
output y: f32[B, T, d]
model m {
  y = x
}`, new Map([['T', 16], ['d', 12]]));
    expect(g.dims).toEqual(['B', 'P']);
    expect(typeOf(g.nodes[0] as Node)).toBe('f32[B,16,12]');
    expect(codes(`output y: f32[B]
model m {
  y = sum(sum(cast(arange(B), f32) |> reshape([B, 1, 1]), axis=-1), axis=-1)
}`, new Map([['layer', 2]]))).toEqual(['TFC305 -6:1']);
  });

  it('reports several independent errors in one run without cascades', () => {
    const errs = codes(`input x: f32[B, T, d]
output y: f32[B, T, d]
output z: f32[B, T, d]
fn f(a: f32[B, T, d]) -> f32[B, T, d] {
  return a + undefined_name
}
model m {
  y = f(x) + f(x) * 2.0
  z = x @ x
}`);
    // the body error is reported once although f is inlined twice; y and z are not "unassigned"
    expect(errs).toEqual(['TFC101 5:14', 'TFC204 9:7']);
  });

  it('reports a return count mismatch and a missing output member', () => {
    expect(codes(`input x: f32[B, T, d]
output o[l in 0..2]: f32[B, T, d] = "o.{l}"
fn f(a: f32[B, T, d]) -> (f32[B, T, d], f32[B, T, d]) {
  return a
}
model m {
  o[0] = x
  a, b = f(x)
}`)).toEqual(['TFC109 4:3', 'TFC107 2:8']);
  });
});
