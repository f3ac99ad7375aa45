// Diagnostics of the graph builder beyond the one-per-code golden cases: the message shows what
// was expected and what was found, the location points at the offending expression.
import { describe, expect, it } from 'vitest';
import { checkSource } from '../../../src/check/check-source.js';

const header = `config {
  d = 8
  n = 2
}
dims B, T, S
input x: f32[B, T, d]
output y: f32[B, T, d]
`;
const offset = header.split('\n').length - 1;

function errors(body: string): string[] {
  return checkSource(header + body, 'e.tfx').diagnostics.map((d) => `${d.code} ${d.loc.line - offset}:${d.loc.col} ${d.message}`);
}

describe('builder diagnostics', () => {
  it('takes i8 as a storage type: casts, comparisons, where and movement, but no arithmetic or reduction (TFC207)', () => {
    expect(
      errors(`input q: i8[B, T, d]
output z: i8[B, d, T]
model m {
  y = cast(q, f32) * x + cast(where(q > cast(x, i8), q, cast(x * 2, i8)), f32)
  z = transpose(slice(concat(q, q, axis=0), B, 2 * B, axis=0))
}`),
    ).toEqual([]);
    expect(
      errors(`input q: i8[B, T, d]
model m {
  a = q + q
  b = sum(q, axis=-1)
  c = abs(q)
  y = x
}`),
    ).toEqual([
      'TFC207 3:7 add needs a float or i32 operand, got i8[B,T,8] (i8 is a storage type: cast it to f32 or i32 first)',
      'TFC207 4:7 sum needs a float or i32 operand, got i8[B,T,8]',
      'TFC207 5:7 abs needs a float or i32 operand, got i8[B,T,8] (i8 is a storage type: cast it to f32 or i32 first)',
    ]);
  });

  it('shows both types when generic dims disagree between arguments (TFC213)', () => {
    expect(
      errors(`input k: f32[B, S, d]
fn f[N](a: f32[B, N, d], b: f32[B, N, d]) -> f32[B, N, d] {
  return a + b
}
model m {
  y = f(x, k)
}`),
    ).toEqual(["TFC213 6:12 argument 'b' of 'f' is f32[B,S,8], the parameter is f32[B,T,8]"]);
  });

  it('rejects assigning a loop index, a weight and an input (TFC108)', () => {
    expect(
      errors(`weight w: f32[d]
model m {
  for l in 0..n {
    l = 3
  }
  w = x
  x = x
  y = x
}`),
    ).toEqual([
      "TFC108 4:5 cannot assign to the loop index 'l'",
      "TFC108 6:3 cannot assign to the weight 'w'",
      "TFC108 7:3 cannot assign to the input 'x'",
    ]);
  });

  it('rejects a second model block (TFC113)', () => {
    expect(errors(`model m {
  y = x
}
model m2 {
  y = x
}`)).toEqual(["TFC113 4:7 a file has exactly one model block; 'm' is already defined"]);
  });

  it('rejects values of the wrong kind (TFC110)', () => {
    expect(
      errors(`input ids: i32[B, T]
weight g[l in 0..n]: f32[d] = "g.{l}"
model m {
  a = split(x, 2)
  s = x + "text"
  t = x * g[ids]
  y = x
}`),
    ).toEqual([
      'TFC110 4:3 the right side gives 2 values; assign them to 2 names',
      `TFC110 5:11 '+': expected a tensor, got the string "text"`,
      "TFC110 6:13 family 'g' is indexed by a compile-time int (a loop index or index parameter), not a tensor i32[B,T]",
    ]);
  });

  it('rejects unsupported operations inside a grid body (TFC216)', () => {
    expect(
      errors(`weight slope: f32[d]
fn g(a: f32[B, T, d]) -> f32[B, T, d] {
  return a
}
model m {
  a = grid[T, T](q, k) => softmax(q)
  b = grid[T, T](q, k) => slope[q, k]
  c = grid[T, T](q, k) => x
  y = x
}`),
    ).toEqual([
      "TFC216 6:27 grid body: 'softmax' is not elementwise and cannot be used inside a grid body",
      'TFC216 7:27 grid body: f32[8] is read with 2 indices',
      "TFC216 8:27 grid body: the tensor 'x' (f32[B,T,8]) must be indexed to read one element, e.g. 'x'[i]",
    ]);
  });

  it('checks named arguments and calls of non-functions (TFC105, TFC103)', () => {
    expect(
      errors(`fn f(a: f32[B, T, d]) -> f32[B, T, d] {
  return a
}
model m {
  z = x(1)
  y = f(b=x)
}`),
    ).toEqual(["TFC103 5:7 'x' is not a function", "TFC105 6:9 'f' has no parameter 'b'; did you mean 'a'?"]);
  });

  it('checks builtin argument values (gelu approx, cast dtype)', () => {
    expect(
      errors(`model m {
  a = gelu(x, approx="fast")
  b = cast(x, f3)
  y = x
}`),
    ).toEqual([
      'TFC110 2:7 gelu approx must be "tanh" or "erf", got "fast"',
      "TFC101 3:15 unknown name 'f3'; did you mean 'f32'?",
    ]);
  });
});

describe('functions the model never calls', () => {
  it('are checked too, generic dims as symbols, without adding nodes', () => {
    const r = checkSource(
      `${header}weight w: f32[4, d]
fn unused[N](a: f32[B, N, d]) -> f32[B, N, d] {
  return a @ w
}
fn fine[N](a: f32[B, N, d]) -> f32[B, N, 4] {
  return a @ transpose(w)
}
model m {
  y = x
}`,
      'e.tfx',
    );
    expect(r.diagnostics.map((d) => `${d.code} ${d.loc.line - offset}:${d.loc.col} ${d.message}`)).toEqual([
      'TFC204 3:10 cannot matmul f32[B,N,8] by f32[4,8]: inner dims 8 and 4 differ',
    ]);
    const ok = checkSource(`${header}fn fine[N](a: f32[B, N, d]) -> f32[B, N, d] {
  return a * 2.0
}
model m {
  y = x
}`, 'e.tfx');
    expect(ok.graph?.nodes.map((n) => n.op)).toEqual(['input']);
  });
});
