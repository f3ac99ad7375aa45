// Language traps a new user hit (issue 14, item 8): one rule for `/` (real division everywhere,
// `//` floor division), messages that say what to write instead (TFC206 naming the config
// constant, `if`, undeclared generic dims), fmt keeping the parentheses a reader needs.
import { describe, expect, it } from 'vitest';
import { parseTfx } from '../../../grammar/parse.js';
import { formatModule } from '../../../grammar/fmt.js';
import { checkSource } from '../../../src/check/check-source.js';
import { DiagnosticSink } from '../../../src/diag/diagnostic.js';
import { interpret } from '../../../src/interp/interpret.js';
import { makeTensor } from '../../../src/base/tensor.js';

function run(src: string, inputs: Record<string, { dtype: 'f32' | 'i32'; shape: number[]; data: number[] }> = {}): { outputs: Map<string, number[]>; messages: string[] } {
  const r = checkSource(src, 'm.tfx');
  const messages = r.diagnostics.map((d) => `${d.severity} ${d.code} ${d.loc.line}:${d.loc.col} ${d.message}`);
  if (r.graph === undefined) return { outputs: new Map(), messages };
  const feed = new Map(Object.entries(inputs).map(([k, v]) => [k, makeTensor(v.dtype, v.shape, v.data)]));
  const out = interpret(r.graph, { inputs: feed, weights: new Map() }).outputs;
  return { outputs: new Map([...out].map(([k, t]) => [k, Array.from(t.data)])), messages };
}

describe("'/' divides as real numbers everywhere, '//' is floor division", () => {
  it('gives RoPE its frequencies in a grid body (integer / integer used to truncate to 0 there)', () => {
    const { outputs, messages } = run(`config {
  dh = 8
}
output f: f32[4]
model m {
  f = grid[4](i) => pow(10000.0, -2 * i / dh)
}
`);
    // By hand: 10000^(-2i/8) for i = 0..3.
    const want = [0, 1, 2, 3].map((i) => 10000 ** ((-2 * i) / 8));
    outputs.get('f')?.forEach((v, i) => expect(v).toBeCloseTo(want[i] ?? NaN, 12));
    expect(outputs.get('f')).toHaveLength(4);
    // The division of grid indices is pointed out once, with the '//' spelling.
    expect(messages).toEqual([expect.stringMatching(/^warning TFC220 6:34 '-2 \* i \/ dh' divides integers as real numbers .* write '-2 \* i \/\/ dh' for integer division/)]);
  });

  it('says nothing when an operand is a float, or when only constants divide', () => {
    const { messages } = run(`config {
  dh = 8
}
output f: f32[4]
model m {
  f = grid[4](i) => pow(10000.0, -2.0 * i / dh) + 3 / 2
}
`);
    expect(messages).toEqual([]);
  });

  it('floors with // on grid indices and on integer tensors, also for negative values', () => {
    const { outputs, messages } = run(
      `dims T
input ids: i32[T]
output q: i32[T]
output g: i32[6]
output h: f32[T]
model m {
  q = ids // 2
  g = grid[6](i) => (i - 3) // 2
  h = ids / 2
}
`,
      { ids: { dtype: 'i32', shape: [5], data: [-7, -1, 0, 5, 7] } },
    );
    expect(messages).toEqual([]);
    // Python: -7 // 2 = -4, -1 // 2 = -1, 5 // 2 = 2 (floor, not truncation toward zero).
    expect(outputs.get('q')).toEqual([-4, -1, 0, 2, 3]);
    expect(outputs.get('g')).toEqual([-2, -1, -1, 0, 0, 1]);
    expect(outputs.get('h')).toEqual([-3.5, -0.5, 0, 2.5, 3.5]);
  });

  it('folds // on compile-time ints as floor division and rejects it on floats', () => {
    expect(run(`output y: f32[3]\nmodel m {\n  y = grid[(-7) // 2 + 7](i) => 1.0\n}\n`).messages).toEqual([]);
    const { messages } = run(`dims T\ninput x: f32[T]\noutput y: f32[T]\nmodel m {\n  y = x // 2.0\n}\n`);
    expect(messages).toEqual([expect.stringMatching(/^error TFC208 5:7 '\/\/' divides integers \(floor division\), got f32\[T\] \/\/ f32\[\]/)]);
  });
});

describe('messages that say what to write', () => {
  it('TFC206 names the config constant that --set made fractional', () => {
    const src = `config {\n  d = 16\n  heads = 2\n  dh = d / heads\n}\ndims T\ninput x: f32[T, d]\noutput y: f32[T, heads, dh]\nmodel m {\n  y = reshape(x, [T, heads, dh])\n}\n`;
    const r = checkSource(src, 'm.tfx', new Map([['heads', 5]]));
    const d = r.diagnostics.find((x) => x.code === 'TFC206');
    expect(d?.message).toBe("config constant 'dh' is 3.2 with --set heads=5, but a dimension must be a non-negative integer");
    expect(d?.notes[0]?.loc?.line).toBe(4);
  });

  it("an 'if' statement gets one message showing where() and predicate grids", () => {
    const sink = new DiagnosticSink();
    parseTfx(`dims T\ninput x: f32[T]\noutput y: f32[T]\nmodel m {\n  if x > 0 {\n    y = x\n  }\n}\n`, 'm.tfx', sink);
    expect(sink.items.map((d) => `${d.code} ${d.loc.line}:${d.loc.col}`)).toEqual(['TFC003 5:3']);
    expect(sink.items[0]?.message).toMatch(/no 'if' statement: .*where\(cond, a, b\).*grid\[T, T\]\(q, k\) => k <= q/);
  });

  it("a name 'if' that is assigned is still a name", () => {
    expect(checkSource(`output y: f32[2]\nmodel m {\n  if = 2.0\n  y = grid[2](i) => if\n}\n`, 'm.tfx').diagnostics).toEqual([]);
  });

  it('an undeclared dim in a function signature suggests declaring it as a generic', () => {
    const r = checkSource(`dims B\ninput x: f32[B, 4]\noutput y: f32[B, 4]\nfn f(a: f32[B, H]) -> f32[B, H] {\n  return a\n}\nmodel m {\n  y = f(x)\n}\n`, 'm.tfx');
    const msgs = r.diagnostics.map((d) => d.message);
    expect(msgs[0]).toBe("unknown dim 'H' in a type: declare it as a generic dim of 'f', fn f[H](...), bound at each call, or in 'dims' for a run-time dim");
    expect(msgs.some((m) => m.includes("did you mean 'B'"))).toBe(false);
  });

  it('an undeclared dim in a declaration points at dims, and a long misspelling still gets its match', () => {
    const r = checkSource(`dims Tokens\ninput x: f32[Tokns, 4]\noutput y: f32[Tokens, 4]\nmodel m {\n  y = x\n}\n`, 'm.tfx');
    expect(r.diagnostics[0]?.message).toBe("unknown dim 'Tokns' in a type: declare it in 'dims Tokns' (bound at run time from input shapes) or in config; or did you mean 'Tokens'?");
  });
});

describe('tfc fmt keeps the parentheses a reader needs', () => {
  const fmtBody = (body: string): string => {
    const sink = new DiagnosticSink();
    const text = formatModule(parseTfx(`dims T\ninput a: f32[T, 4]\ninput b: f32[T, 4]\nweight c: f32[4, 4] = "c"\nmodel m {\n${body}\n}\n`, 'm.tfx', sink));
    expect(sink.items).toEqual([]);
    return text.split('\n').filter((l) => l.startsWith('  '))[0]?.trim() ?? '';
  };

  it.each([
    ['y = (silu(a) * b) @ c', 'y = (silu(a) * b) @ c'],
    ['y = silu(a) * b @ c', 'y = (silu(a) * b) @ c'],
    ['y = a @ c / 2.0', 'y = a @ c / 2.0'],
    ['y = a / (b @ c)', 'y = a / (b @ c)'],
    ['y = a > b || (a < b && b > a)', 'y = a > b || (a < b && b > a)'],
    ['y = (a > b || a < b) && b > a', 'y = (a > b || a < b) && b > a'],
    ['y = (a + b) * 2 // 3', 'y = (a + b) * 2 // 3'],
  ])('%s', (src, want) => {
    expect(fmtBody(src)).toBe(want);
    // The printed text parses back to the same tree (fmt is a round trip).
    expect(fmtBody(want)).toBe(want);
  });
});
