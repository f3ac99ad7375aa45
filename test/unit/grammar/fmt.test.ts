// formatModule: canonical output, comments kept, idempotence and parse(fmt(x)) == parse(x) on
// every parser golden and on a GPT-2-like program.
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { Module } from '../../../grammar/ast.js';
import { astEqual } from '../../../grammar/ast-equal.js';
import { formatModule } from '../../../grammar/fmt.js';
import { parseTfx } from '../../../grammar/parse.js';
import { DiagnosticSink } from '../../../src/diag/diagnostic.js';

function parseClean(text: string, file = 't.tfx'): Module {
  const sink = new DiagnosticSink();
  const m = parseTfx(text, file, sink);
  expect(sink.items.map((d) => `${d.code} ${d.loc.line}:${d.loc.col} ${d.message}`)).toEqual([]);
  return m;
}

function expectRoundTrip(text: string): string {
  const once = formatModule(parseClean(text));
  const reparsed = parseClean(once);
  expect(astEqual(reparsed, parseClean(text)), `parse(fmt(x)) differs from parse(x):\n${once}`).toBe(true);
  expect(formatModule(reparsed)).toBe(once);
  expect(reparsed.comments.map((c) => c.text)).toEqual(parseClean(text).comments.map((c) => c.text));
  return once;
}

const gpt2 = `# GPT-2 small with Hugging Face checkpoint names (Conv1D weights are [in, out]).
config {
  vocab = 50257
  ctx = 1024
  d = 768
  heads = 12
  layers = 12
  eps = 1e-5
  dh = d / heads               # exact: 64
}
dims B, T, P

input tokens: i32[B, T]
input past_k[l in 0..layers]: f32[B, heads, P, dh] = "past.{l}.key"
input past_v[l in 0..layers]: f32[B, heads, P, dh] = "past.{l}.value"
output logits: f32[B, T, vocab]
output present_k[l in 0..layers]: f32[B, heads, P + T, dh] = "present.{l}.key"
output present_v[l in 0..layers]: f32[B, heads, P + T, dh] = "present.{l}.value"

weight wte: f32[vocab, d] = "wte.weight"
weight wpe: f32[ctx, d] = "wpe.weight"
weight ln_1_g[l in 0..layers]: f32[d] = "h.{l}.ln_1.weight"
weight ln_1_b[l in 0..layers]: f32[d] = "h.{l}.ln_1.bias"
weight c_attn_w[l in 0..layers]: f32[d, 3 * d] = "h.{l}.attn.c_attn.weight"
weight c_attn_b[l in 0..layers]: f32[3 * d] = "h.{l}.attn.c_attn.bias"
weight c_proj_w[l in 0..layers]: f32[d, d] = "h.{l}.attn.c_proj.weight"
weight c_proj_b[l in 0..layers]: f32[d] = "h.{l}.attn.c_proj.bias"
weight ln_2_g[l in 0..layers]: f32[d] = "h.{l}.ln_2.weight"
weight ln_2_b[l in 0..layers]: f32[d] = "h.{l}.ln_2.bias"
weight fc_w[l in 0..layers]: f32[d, 4 * d] = "h.{l}.mlp.c_fc.weight"
weight fc_b[l in 0..layers]: f32[4 * d] = "h.{l}.mlp.c_fc.bias"
weight proj_w[l in 0..layers]: f32[4 * d, d] = "h.{l}.mlp.c_proj.weight"
weight proj_b[l in 0..layers]: f32[d] = "h.{l}.mlp.c_proj.bias"
weight ln_f_g: f32[d] = "ln_f.weight"
weight ln_f_b: f32[d] = "ln_f.bias"

fn split_heads[N](x: f32[B, N, d]) -> f32[B, heads, N, dh] {
  return permute(reshape(x, [B, N, heads, dh]), [0, 2, 1, 3])
}

fn merge_heads(x: f32[B, heads, T, dh]) -> f32[B, T, d] {
  return reshape(permute(x, [0, 2, 1, 3]), [B, T, d])
}

fn attn(x: f32[B, T, d], l: index) -> (f32[B, T, d], f32[B, heads, P + T, dh], f32[B, heads, P + T, dh]) {
  qkv = x @ c_attn_w[l] + c_attn_b[l]
  q, k, v = split(qkv, 3, axis=-1)
  k_all = concat(past_k[l], split_heads(k), axis=2)
  v_all = concat(past_v[l], split_heads(v), axis=2)
  # causal over the cache: query t sits at position P + t
  mask = grid[T, P + T](q, k) => k <= q + P
  s = split_heads(q) @ transpose(k_all) / sqrt(dh)
  p = softmax(where(mask, s, -inf), axis=-1)
  o = merge_heads(p @ v_all)
  return o @ c_proj_w[l] + c_proj_b[l], k_all, v_all
}

fn mlp(x: f32[B, T, d], l: index) -> f32[B, T, d] {
  h = gelu(x @ fc_w[l] + fc_b[l], approx="tanh")
  return h @ proj_w[l] + proj_b[l]
}

model gpt2 {
  x = wte[tokens] + wpe[arange(P, P + T)]
  for l in 0..layers {         # unrolled
    a, present_k[l], present_v[l] = attn(layernorm(x, ln_1_g[l], ln_1_b[l], eps=eps), l)
    x = x + a
    x = x + mlp(layernorm(x, ln_2_g[l], ln_2_b[l], eps=eps), l)
  }
  logits = layernorm(x, ln_f_g, ln_f_b, eps=eps) @ transpose(wte)
}
`;

describe('formatModule', () => {
  it('round-trips and is idempotent on a GPT-2-like program', () => {
    const out = expectRoundTrip(gpt2);
    expect(out).toContain('  dh = d / heads  # exact: 64\n');
    expect(out).toContain('  for l in 0..layers {  # unrolled\n');
    expect(out).toContain('  # causal over the cache: query t sits at position P + t\n  mask = grid[T, P + T](q, k) => k <= q + P\n');
  });

  const dir = fileURLToPath(new URL('../../golden/ast/', import.meta.url));
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.tfx')).sort()) {
    it(`round-trips and is idempotent on golden ${file}`, () => {
      expectRoundTrip(readFileSync(`${dir}/${file}`, 'utf8'));
    });
  }

  const examples = fileURLToPath(new URL('../../../examples/', import.meta.url));
  const exampleFiles = [
    ...readdirSync(examples).filter((f) => f.endsWith('.tfx')),
    ...readdirSync(`${examples}/variants`).filter((f) => f.endsWith('.tfx')).map((f) => `variants/${f}`),
  ].sort();
  for (const file of exampleFiles) {
    it(`round-trips and is idempotent on examples/${file}`, () => {
      expectRoundTrip(readFileSync(`${examples}/${file}`, 'utf8'));
    });
  }

  it('prints the canonical form: spacing, named args, minimal parentheses, no semicolons', () => {
    const src = 'model   m{x=f( a ,axis = - 1);y=(a+b)*c-(d-e)-(f@g)\n z = -(a[0]) + (-a)[0] ; w = (a < b) == (c < d)}';
    expect(expectRoundTrip(src)).toBe(
      ['model m {', '  x = f(a, axis=-1)', '  y = (a + b) * c - (d - e) - f @ g', '  z = -a[0] + (-a)[0]', '  w = (a < b) == (c < d)', '}', ''].join('\n'),
    );
  });

  it('parenthesizes a grid or pipe where its greedy extent would change the tree', () => {
    const src = 'model m {\n  a = (grid[T](i) => i) + 1\n  b = (x |> f()) * 2\n  c = f(grid[T](i) => i, (y |> g()))\n  d = -(grid[T](i) => i)[0]\n}';
    expect(expectRoundTrip(src)).toBe(
      ['model m {', '  a = (grid[T](i) => i) + 1', '  b = (x |> f()) * 2', '  c = f(grid[T](i) => i, y |> g())', '  d = -(grid[T](i) => i)[0]', '}', ''].join('\n'),
    );
  });

  it('separates top-level items by a blank line, except runs of one kind of declaration', () => {
    const src = 'dims B\ndims T\nweight a: f32\nweight b: f32[B] = "b"\ninput x: i32[B, T]\nconfig { n = 1 }\nmodel m { y = x }';
    expect(expectRoundTrip(src)).toBe(
      ['dims B', 'dims T', '', 'weight a: f32', 'weight b: f32[B] = "b"', '', 'input x: i32[B, T]', '', 'config {', '  n = 1', '}', '', 'model m {', '  y = x', '}', ''].join('\n'),
    );
  });

  it('keeps own-line comments before the next statement and trailing ones on their line', () => {
    const src = '# top\nmodel m {  # header\n  # before x\n  x = f(a,  # inside\n        b)  # after\n\n\n  y = x\n  # at the end\n}  # closing\n# last\n';
    expect(expectRoundTrip(src)).toBe(
      ['# top', 'model m {  # header', '  # before x', '  # inside', '  x = f(a, b)  # after', '', '  y = x', '  # at the end', '}  # closing', '# last', ''].join('\n'),
    );
  });

  it('gives a trailing comment to the last statement on its line', () => {
    const src = 'model m {\n  a = 1; b = 2  # about b\n  for l in 0..2 { c = l }  # loop\n}';
    expect(expectRoundTrip(src)).toBe(['model m {', '  a = 1', '  b = 2  # about b', '  for l in 0..2 {', '    c = l', '  }  # loop', '}', ''].join('\n'));
  });

  it('aligns the trailing comments of consecutive lines', () => {
    const src = 'config {\n  vocab = 50257 # a\n  d = 768   # b\n  n = 1\n  e = 2 # c\n}\n';
    expect(expectRoundTrip(src)).toBe(['config {', '  vocab = 50257  # a', '  d = 768        # b', '  n = 1', '  e = 2  # c', '}', ''].join('\n'));
  });

  it('re-escapes strings and keeps number spellings', () => {
    const src = 'weight w: f32 = "a\\u0041\\t{l}"\nmodel m { y = 1E-5 + 0.50 + gelu(x, approx="tanh") }';
    expect(expectRoundTrip(src)).toBe(['weight w: f32 = "aA\\t{l}"', '', 'model m {', '  y = 1E-5 + 0.50 + gelu(x, approx="tanh")', '}', ''].join('\n'));
  });
});
