// fuse-attention: one fused_attention per attention in every example (counted from the model
// text), the float64 interpreter agrees on the fused and unfused graphs, and each spelling of
// attention (IR text in, checkLines out) fuses; the negative cases leave a remark instead.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { checkSource } from '../../../src/check/check-source.js';
import { DiagnosticSink } from '../../../src/diag/diagnostic.js';
import type { Diagnostic } from '../../../src/diag/diagnostic.js';
import type { Graph } from '../../../src/graph/ir.js';
import { parseGraph } from '../../../src/graph/parse.js';
import { printGraph } from '../../../src/graph/print.js';
import { verifyGraph } from '../../../src/graph/verify.js';
import { randomInputs, randomWeights } from '../../../src/cli/random.js';
import { interpret } from '../../../src/interp/interpret.js';
import { maxRelError, type Tensor64 } from '../../../src/base/tensor.js';
import { neededTensors } from '../../../src/io/check-tensors.js';
import { runPipeline } from '../../../src/passes/driver.js';
import { fuseAttention } from '../../../src/passes/fuse-attention.js';
import { type Remark, createPassContext } from '../../../src/passes/pass.js';
import { graphPasses, pipelines } from '../../../src/passes/pipeline.js';
import { checkLines } from '../../helpers/check-lines.js';
import { ir } from './helpers.js';
import { exampleFiles, validPageTables } from '../../helpers/examples.js';

/** Small sizes, and how many attentions the model text has at them (2 layers each). */
function setup(file: string): { overrides: Record<string, number>; attentions: number } {
  // llama: one GQA attention per layer; transformer: encoder self + decoder self + cross per layer.
  if (file.endsWith('llama-nocache.tfx')) return { overrides: { vocab: 64, d: 32, heads: 4, kv_heads: 2, layers: 2, ffn: 48 }, attentions: 2 };
  if (file.endsWith('llama.tfx')) return { overrides: { vocab: 64, d: 32, heads: 4, kv_heads: 2, layers: 2, ffn: 48 }, attentions: 2 };
  if (file.endsWith('transformer.tfx')) return { overrides: { vocab: 64, d: 32, heads: 4, layers: 2, ffn: 48 }, attentions: 2 + 2 * 2 };
  if (file.endsWith('attention-lse.tfx')) return { overrides: { heads: 2 }, attentions: 1 };
  return { overrides: { vocab: 64, ctx: 16, d: 32, heads: 2, layers: 2 }, attentions: 2 };
}

const count = (g: Graph, op: string): number => g.nodes.filter((n) => n.op === op).length;

/** Seeded feeds; matrices scaled up (std 0.4) so the scores, and hence masks, matter. */
function feeds(g: Graph, dims: ReadonlyMap<string, number>): { inputs: Map<string, Tensor64>; weights: Map<string, Tensor64> } {
  const ds: Diagnostic[] = [];
  const needed = neededTensors(g);
  const weights = randomWeights(needed, 7, dims, ds);
  for (const [name, t] of weights) if (t.shape.length >= 2 && t.dtype === 'f32') weights.set(name, { ...t, data: t.data.map((x) => x * 20) });
  const inputs = validPageTables(randomInputs(g, needed, 11, dims, ds), dims);
  expect(ds).toEqual([]);
  return { inputs, weights };
}

function expectSameOutputs(unfused: Graph, fused: Graph, dims: ReadonlyMap<string, number>): void {
  const f = feeds(unfused, dims);
  const want = interpret(unfused, f, { dims }).outputs;
  const got = interpret(fused, f, { dims }).outputs;
  expect([...got.keys()]).toEqual([...want.keys()]);
  for (const [name, w] of want) {
    const g = got.get(name);
    if (g === undefined) throw new Error(`no output ${name}`);
    // Both graphs run in float64: only the order of a few roundings differs (scale folded).
    expect(maxRelError(g, w, 1e-6), name).toBeLessThanOrEqual(1e-9);
  }
}

function roundTrips(g: Graph): void {
  expect(verifyGraph(g)).toEqual([]);
  const text = printGraph(g);
  const sink = new DiagnosticSink();
  const back = parseGraph(text, 'fused.ir', sink);
  expect(sink.items.map((d) => d.message)).toEqual([]);
  if (back === undefined) throw new Error('did not parse');
  expect(printGraph(back)).toBe(text);
  expect(verifyGraph(back)).toEqual([]);
}

describe('fuse-attention on every example', () => {
  const examples = exampleFiles;
  it('finds the examples', () => {
    expect(examples.length).toBeGreaterThanOrEqual(12);
  });
  for (const file of examples) {
    const { overrides, attentions } = setup(file);
    it(`${file}: ${attentions} fused_attention after the webgpu pipeline, no softmax left, same interpreter outputs`, () => {
      const r = checkSource(readFileSync(file, 'utf8'), file, new Map(Object.entries(overrides)));
      expect(r.diagnostics.map((d) => d.message)).toEqual([]);
      if (r.graph === undefined) throw new Error('no graph');
      expect(count(r.graph, 'softmax')).toBe(attentions);
      const remarks: Remark[] = [];
      const web = runPipeline(r.graph, pipelines.webgpu, createPassContext({ verify: true, target: 'webgpu', remark: (x) => remarks.push(x) }));
      expect(remarks.filter((x) => x.pass === 'fuse-attention')).toEqual([]);
      expect(count(web, 'fused_attention')).toBe(attentions);
      expect(count(web, 'softmax')).toBe(0);
      // Sinks (gpt-oss): the logsumexp the gate reads becomes the kernel's LSE output; the gate
      // itself is one elementwise kernel per layer, not a second pass over the scores.
      if (file.endsWith('sinks.tfx')) {
        expect(count(web, 'fused_attention_lse')).toBe(attentions);
        expect(count(web, 'logsumexp')).toBe(0);
      }
      // The interp pipeline keeps the unfused reference.
      const ref = runPipeline(r.graph, pipelines.interp, createPassContext({ verify: true }));
      expect(count(ref, 'fused_attention')).toBe(0);
      // The attention pass alone, against the unfused graph, on the float64 interpreter.
      const fused = runPipeline(r.graph, [...graphPasses, fuseAttention], createPassContext({ verify: true }));
      expect(count(fused, 'fused_attention')).toBe(attentions);
      for (const n of fused.nodes) {
        if (n.op !== 'fused_attention') continue;
        expect(n.from?.length ?? 0).toBeGreaterThanOrEqual(3); // at least q @ kT, softmax, @ v
      }
      // Kernel names follow the source scope of the attention (the graph builder sets it).
      const scopes = (g: Graph, op: string): string[] => g.nodes.filter((x) => x.op === op).map((x) => x.scope ?? '').sort();
      expect(scopes(fused, 'fused_attention')).toEqual(scopes(r.graph, 'softmax'));
      expect(scopes(fused, 'fused_attention')).not.toContain('');
      roundTrips(fused);
      expectSameOutputs(r.graph, fused, new Map([['B', 2], ['T', 5], ['P', 3], ['S', 4], ['NP', 5], ['MP', 2]].filter(([d]) => r.graph?.dims.includes(d as string)) as [string, number][]));
    });
  }
});

// ---------------------------------------------------------------------------------------------
// Spellings, from IR text.

const head = (dims: string, inputs: string): string => `graph m(${dims}) {\n${inputs}`;
const qkv = `  %0 = input {name="q"} : f32[B,2,T,4]
  %1 = input {name="k"} : f32[B,2,T,4]
  %2 = input {name="v"} : f32[B,2,T,3]
`;

/** Runs the pass with remarks collected; checks verification, round trip and interpreter agreement. */
function fuse(text: string, dims: Record<string, number> = { B: 2, T: 5 }): { out: string; remarks: string[] } {
  const g = ir(text);
  const remarks: string[] = [];
  const fused = runPipeline(g, [fuseAttention], createPassContext({ verify: true, target: 'webgpu', remark: (r) => remarks.push(r.message) }));
  roundTrips(fused);
  expectSameOutputs(g, fused, new Map(Object.entries(dims)));
  return { out: printGraph(fused, { locs: false }), remarks };
}

describe('fuse-attention spellings', () => {
  it('q @ permute(k) * const: scale from mul', () => {
    const { out, remarks } = fuse(`${head('B, T', qkv)}  %3 = permute %1 {perm=[0,1,3,2]} : f32[B,2,4,T]
  %4 = matmul %0, %3 : f32[B,2,T,T]
  %5 = const {value=0.5} : f32[]
  %6 = mul %5, %4 : f32[B,2,T,T]
  %7 = softmax %6 {axis=3} : f32[B,2,T,T]
  %8 = matmul %7, %2 : f32[B,2,T,3]
  output "o" = %8
}`);
    expect(remarks).toEqual([]);
    checkLines(out, `CHECK-NOT: softmax
CHECK: %3 = fused_attention %0, %1, %2 {scale=0.5} : f32[B,2,T,3]
CHECK-NEXT: output "o" = %3`);
  });

  it('divide by a const, and a scale on q, multiply into scale', () => {
    const { out } = fuse(`${head('B, T', qkv)}  %3 = const {value=3.0} : f32[]
  %4 = mul %0, %3 : f32[B,2,T,4]
  %5 = permute %1 {perm=[0,1,3,2]} : f32[B,2,4,T]
  %6 = matmul %4, %5 : f32[B,2,T,T]
  %7 = const {value=2.0} : f32[]
  %8 = div %6, %7 : f32[B,2,T,T]
  %9 = softmax %8 {axis=3} : f32[B,2,T,T]
  %10 = matmul %9, %2 : f32[B,2,T,3]
  output "o" = %10
}`);
    checkLines(out, 'CHECK: fused_attention %0, %1, %2 {scale=1.5}');
    checkLines(out, 'CHECK-NOT: matmul');
  });

  it('pre-transposed k: a permute is emitted to give k its [B,H,S,dk] layout', () => {
    const { out } = fuse(`graph m(B, T) {
  %0 = input {name="q"} : f32[B,2,T,4]
  %1 = input {name="kt"} : f32[B,2,4,T]
  %2 = input {name="v"} : f32[B,2,T,3]
  %3 = matmul %0, %1 : f32[B,2,T,T]
  %4 = softmax %3 {axis=3} : f32[B,2,T,T]
  %5 = matmul %4, %2 : f32[B,2,T,3]
  output "o" = %5
}`);
    checkLines(out, 'CHECK: %3 = permute %1 {perm=[0,1,3,2]} : f32[B,2,T,4]\nCHECK-NEXT: %4 = fused_attention %0, %3, %2 {scale=1.0}');
  });

  it('keys first: transpose(k @ transpose(q))', () => {
    const { out } = fuse(`${head('B, T', qkv)}  %3 = permute %0 {perm=[0,1,3,2]} : f32[B,2,4,T]
  %4 = matmul %1, %3 : f32[B,2,T,T]
  %5 = permute %4 {perm=[0,1,3,2]} : f32[B,2,T,T]
  %6 = softmax %5 {axis=3} : f32[B,2,T,T]
  %7 = matmul %6, %2 : f32[B,2,T,3]
  output "o" = %7
}`);
    checkLines(out, 'CHECK: %3 = fused_attention %0, %1, %2 {scale=1.0}');
  });

  it('additive mask tensor [B,1,T,T] becomes a score mod reading operand 3', () => {
    const { out } = fuse(`${head('B, T', qkv)}  %3 = input {name="mask"} : f32[B,1,T,T]
  %4 = permute %1 {perm=[0,1,3,2]} : f32[B,2,4,T]
  %5 = matmul %0, %4 : f32[B,2,T,T]
  %6 = add %5, %3 : f32[B,2,T,T]
  %7 = softmax %6 {axis=3} : f32[B,2,T,T]
  %8 = matmul %7, %2 : f32[B,2,T,3]
  output "o" = %8
}`);
    checkLines(out, 'CHECK: fused_attention %0, %1, %2, %3 {scale=1.0, score=(b, h, q, k) => add(score(), read(3, b, 0, q, k))}');
  });

  it('soft-capping cap * tanh(s / cap): the division folds into scale', () => {
    const { out } = fuse(`${head('B, T', qkv)}  %3 = permute %1 {perm=[0,1,3,2]} : f32[B,2,4,T]
  %4 = matmul %0, %3 : f32[B,2,T,T]
  %5 = const {value=0.5} : f32[]
  %6 = mul %4, %5 : f32[B,2,T,T]
  %7 = const {value=2.0} : f32[]
  %8 = div %6, %7 : f32[B,2,T,T]
  %9 = tanh %8 : f32[B,2,T,T]
  %10 = mul %7, %9 : f32[B,2,T,T]
  %11 = softmax %10 {axis=3} : f32[B,2,T,T]
  %12 = matmul %11, %2 : f32[B,2,T,3]
  output "o" = %12
}`);
    checkLines(out, 'CHECK: fused_attention %0, %1, %2 {scale=0.25, score=(b, h, q, k) => mul(2.0, tanh(score()))}');
  });

  // Score mods that read the score more than once (FlexAttention's score_mod of any shape).
  const scaled = `${head('B, T', qkv)}  %3 = permute %1 {perm=[0,1,3,2]} : f32[B,2,4,T]
  %4 = matmul %0, %3 : f32[B,2,T,T]
  %5 = const {value=0.5} : f32[]
  %6 = mul %4, %5 : f32[B,2,T,T]
`;
  it('s * s and s * sigmoid(s): the scaled scores read twice become score() twice in one lambda', () => {
    const square = fuse(`${scaled}  %7 = mul %6, %6 : f32[B,2,T,T]
  %8 = softmax %7 {axis=3} : f32[B,2,T,T]
  %9 = matmul %8, %2 : f32[B,2,T,3]
  output "o" = %9
}`);
    expect(square.remarks).toEqual([]);
    checkLines(square.out, 'CHECK: fused_attention %0, %1, %2 {scale=0.5, score=(b, h, q, k) => mul(score(), score())}\nCHECK-NOT: softmax');
    const gate = fuse(`${scaled}  %7 = sigmoid %6 : f32[B,2,T,T]
  %8 = mul %6, %7 : f32[B,2,T,T]
  %9 = softmax %8 {axis=3} : f32[B,2,T,T]
  %10 = matmul %9, %2 : f32[B,2,T,3]
  output "o" = %10
}`);
    checkLines(gate.out, 'CHECK: fused_attention %0, %1, %2 {scale=0.5, score=(b, h, q, k) => mul(score(), sigmoid(score()))}\nCHECK-NOT: softmax');
  });

  it('where(s > c, c + (s - c) / 8, s) under a causal mask: a shared intermediate (m * sigmoid(m)) too', () => {
    const { out, remarks } = fuse(`${scaled}  %7 = const {value=1.0} : f32[]
  %8 = gt %6, %7 : bool[B,2,T,T]
  %9 = sub %6, %7 : f32[B,2,T,T]
  %10 = const {value=8.0} : f32[]
  %11 = div %9, %10 : f32[B,2,T,T]
  %12 = add %7, %11 : f32[B,2,T,T]
  %13 = where %8, %12, %6 : f32[B,2,T,T]
  %14 = sigmoid %13 : f32[B,2,T,T]
  %15 = mul %13, %14 : f32[B,2,T,T]
  %16 = grid {body=(qi, ki) => le(ki, qi), shape=dims[T,T]} : bool[T,T]
  %17 = const {value=-inf} : f32[]
  %18 = where %16, %15, %17 : f32[B,2,T,T]
  %19 = softmax %18 {axis=3} : f32[B,2,T,T]
  %20 = matmul %19, %2 : f32[B,2,T,3]
  output "o" = %20
}`);
    expect(remarks).toEqual([]);
    const m = 'where(gt(score(), 1.0), add(1.0, div(sub(score(), 1.0), 8.0)), score())';
    checkLines(out, `CHECK: fused_attention %0, %1, %2 {mask=(b, h, q, k) => le(k, q), scale=0.5, score=(b, h, q, k) => mul(${m}, sigmoid(${m}))}\nCHECK-NOT: softmax`);
  });

  it('a score read twice that something outside the attention also reads: not fused, the remark names the outside user', () => {
    const { out, remarks } = fuse(`${scaled}  %7 = mul %6, %6 : f32[B,2,T,T]
  %8 = softmax %7 {axis=3} : f32[B,2,T,T]
  %9 = matmul %8, %2 : f32[B,2,T,3]
  %10 = exp %6 : f32[B,2,T,T]  loc(a.tfx:9:1)
  output "o" = %9
  output "e" = %10
}`);
    expect(remarks).toHaveLength(1);
    expect(remarks[0]).toMatch(/not fused: scaled scores at .* used 3 times, by %7 \(mul at .*\), %10 \(exp at a\.tfx:9:1\)$/);
    checkLines(out, 'CHECK-NOT: fused_attention\nCHECK: softmax');
  });

  it('ALiBi grid [H,T,T] over (h, q, k): the body is inlined, its operand becomes operand 3', () => {
    const { out } = fuse(`${head('B, T', qkv)}  %3 = weight {name="slope"} : f32[2]
  %4 = grid %3 {body=(h, qi, ki) => mul(read(0, h), cast:f32(sub(ki, qi))), shape=dims[2,T,T]} : f32[2,T,T]
  %5 = permute %1 {perm=[0,1,3,2]} : f32[B,2,4,T]
  %6 = matmul %0, %5 : f32[B,2,T,T]
  %7 = add %6, %4 : f32[B,2,T,T]
  %8 = softmax %7 {axis=3} : f32[B,2,T,T]
  %9 = matmul %8, %2 : f32[B,2,T,3]
  output "o" = %9
}`);
    checkLines(out, 'CHECK-NOT: grid\nCHECK: fused_attention %0, %1, %2, %3 {scale=1.0, score=(b, h, q, k) => add(score(), mul(read(3, h), cast:f32(sub(k, q))))}');
  });

  it('where(grid, s, -inf) is the mask; where(pred, -inf, s) is not(pred); both conjoin', () => {
    const { out } = fuse(`${head('B, T', qkv)}  %3 = permute %1 {perm=[0,1,3,2]} : f32[B,2,4,T]
  %4 = matmul %0, %3 : f32[B,2,T,T]
  %5 = grid {body=(qi, ki) => le(ki, qi), shape=dims[T,T]} : bool[T,T]
  %6 = const {value=-inf} : f32[]
  %7 = where %5, %4, %6 : f32[B,2,T,T]
  %8 = grid {body=(qi, ki) => lt(sub(qi, ki), 2), shape=dims[T,T]} : bool[T,T]
  %9 = not %8 : bool[T,T]
  %10 = where %9, %6, %7 : f32[B,2,T,T]
  %11 = softmax %10 {axis=3} : f32[B,2,T,T]
  %12 = matmul %11, %2 : f32[B,2,T,3]
  output "o" = %12
}`);
    // `not` of a grid is inlined too (the mask stays an index predicate, no tensor read), and
    // where(not(p), -inf, s) masks with not(not(p)) = p.
    checkLines(out, 'CHECK-NOT: grid\nCHECK: fused_attention %0, %1, %2 {mask=(b, h, q, k) => and(lt(sub(q, k), 2), le(k, q)), scale=1.0}');
  });

  it('where(pred, s, -1e9) is a score mod, not a mask (only exact -inf masks)', () => {
    const { out } = fuse(`${head('B, T', qkv)}  %3 = permute %1 {perm=[0,1,3,2]} : f32[B,2,4,T]
  %4 = matmul %0, %3 : f32[B,2,T,T]
  %5 = grid {body=(qi, ki) => le(ki, qi), shape=dims[T,T]} : bool[T,T]
  %6 = const {value=-1e9} : f32[]
  %7 = where %5, %4, %6 : f32[B,2,T,T]
  %8 = softmax %7 {axis=3} : f32[B,2,T,T]
  %9 = matmul %8, %2 : f32[B,2,T,3]
  output "o" = %9
}`);
    checkLines(out, 'CHECK-NOT: mask=\nCHECK: fused_attention %0, %1, %2 {scale=1.0, score=(b, h, q, k) => where(le(k, q), score(), -1000000000.0)}');
  });

  it('GQA as Llama spells it (q viewed [B,Hkv,G,T,dk], k [B,Hkv,1,S,dk]) reads the KV heads directly', () => {
    const { out } = fuse(`graph m(B, T, S) {
  %0 = input {name="q"} : f32[B,4,T,4]
  %1 = input {name="k"} : f32[B,2,S,4]
  %2 = input {name="v"} : f32[B,2,S,3]
  %3 = reshape %0 {shape=dims[B,2,2,T,4]} : f32[B,2,2,T,4]
  %4 = reshape %1 {shape=dims[B,2,1,S,4]} : f32[B,2,1,S,4]
  %5 = reshape %2 {shape=dims[B,2,1,S,3]} : f32[B,2,1,S,3]
  %6 = permute %4 {perm=[0,1,2,4,3]} : f32[B,2,1,4,S]
  %7 = matmul %3, %6 : f32[B,2,2,T,S]
  %8 = input {name="bias"} : f32[2,2,T,S]
  %9 = add %7, %8 : f32[B,2,2,T,S]
  %10 = softmax %9 {axis=4} : f32[B,2,2,T,S]
  %11 = matmul %10, %5 : f32[B,2,2,T,3]
  %12 = reshape %11 {shape=dims[B,4,T,3]} : f32[B,4,T,3]
  output "o" = %12
}`, { B: 2, T: 3, S: 5 });
    // The head axes (kv, g) of the bias are h / 2 and h % 2.
    checkLines(out, 'CHECK: fused_attention %0, %1, %2, %3 {scale=1.0, score=(b, h, q, k) => add(score(), read(3, div(h, 2), h, q, k))}'.replace('h, q, k))}', 'mod(h, 2), q, k))}'));
    checkLines(out, 'CHECK-NOT: matmul');
  });

  it('MQA: one KV head [B,1,S,dk] broadcast by matmul', () => {
    const { out } = fuse(`graph m(B, T) {
  %0 = input {name="q"} : f32[B,2,T,4]
  %1 = input {name="k"} : f32[B,1,T,4]
  %2 = input {name="v"} : f32[B,1,T,3]
  %3 = permute %1 {perm=[0,1,3,2]} : f32[B,1,4,T]
  %4 = matmul %0, %3 : f32[B,2,T,T]
  %5 = softmax %4 {axis=3} : f32[B,2,T,T]
  %6 = matmul %5, %2 : f32[B,2,T,3]
  output "o" = %6
}`);
    checkLines(out, 'CHECK: %3 = fused_attention %0, %1, %2 {scale=1.0} : f32[B,2,T,3]');
  });
});

describe('fuse-attention at f16', () => {
  const f16 = (mod: string, res: string): string => `graph m(B, T) {
  %0 = input {name="q"} : f16[B,2,T,4]
  %1 = input {name="k"} : f16[B,2,T,4]
  %2 = input {name="v"} : f16[B,2,T,3]
  %3 = permute %1 {perm=[0,1,3,2]} : f16[B,2,4,T]
  %4 = matmul %0, %3 : f16[B,2,T,T]
  %5 = grid {body=(qi, ki) => le(ki, qi), shape=dims[T,T]} : bool[T,T]
  %6 = const {value=-inf} : f16[]
${mod}  %8 = where %5, ${res}, %6 : f16[B,2,T,T]  loc(a.tfx:8:1)
  %9 = softmax %8 {axis=3} : f16[B,2,T,T]  loc(a.tfx:9:1)
  %10 = matmul %9, %2 : f16[B,2,T,3]
  output "o" = %10
}`;
  it('fuses scaled, masked attention (no score lambda needed)', () => {
    const { out } = fuse(f16('  %7 = const {value=0.5} : f16[]\n  %s = mul %4, %7 : f16[B,2,T,T]\n', '%s'));
    checkLines(out, 'CHECK: fused_attention %0, %1, %2 {mask=(b, h, q, k) => le(k, q), scale=0.5} : f16[B,2,T,3]');
  });
  it('fuses score mods at f16 with the lambda in f32: narrow constants and ops widen, narrow reads are cast', () => {
    // score() is f32 in every kernel; a soft-cap (3 tanh(s / 3): the division folds into the
    // scale) and an ALiBi-style bias read from an f16 tensor.
    const mods = `  %11 = input {name="slope"} : f16[2]
  %12 = grid %11 {body=(b, h, q, k) => mul(read(0, h), cast:f16(sub(k, q))), shape=dims[B,2,T,T]} : f16[B,2,T,T]
  %13 = const {value=3.0} : f16[]
  %14 = div %4, %13 : f16[B,2,T,T]
  %7 = tanh %14 : f16[B,2,T,T]
  %16 = mul %7, %13 : f16[B,2,T,T]
  %15 = add %16, %12 : f16[B,2,T,T]
`;
    const { out, remarks } = fuse(f16(mods, '%15'));
    expect(remarks).toEqual([]);
    checkLines(out, 'CHECK: fused_attention %0, %1, %2, %3 {mask=(b, h, q, k) => le(k, q), scale=0.3333333333333333, score=(b, h, q, k) => add(mul(tanh(score()), 3.0), mul(cast:f32(read(3, h)), cast:f32(sub(k, q))))} : f16[B,2,T,3]');
    checkLines(out, 'CHECK-NOT: tanh %');
  });
});

describe('fuse-attention leaves a remark when it does not fire', () => {
  const chain = (extra: string, out: string): string => `${head('B, T', qkv)}  %3 = permute %1 {perm=[0,1,3,2]} : f32[B,2,4,T]
  %4 = matmul %0, %3 : f32[B,2,T,T]  loc(a.tfx:4:9)
  %5 = softmax %4 {axis=3} : f32[B,2,T,T]  loc(a.tfx:5:7)
  %6 = matmul %5, %2 : f32[B,2,T,3]
${extra}  output "o" = %6
${out}}`;

  it('scores used twice', () => {
    const { out, remarks } = fuse(chain('', '  output "s" = %4\n'));
    expect(remarks).toEqual(['attention at a.tfx:5:7 not fused: scores at a.tfx:4:9 is also a graph output']);
    checkLines(out, 'CHECK-NOT: fused_attention\nCHECK: softmax');
    const two = fuse(chain('  %7 = exp %4 : f32[B,2,T,T]  loc(a.tfx:9:1)\n', '  output "e" = %7\n'));
    expect(two.remarks).toEqual(['attention at a.tfx:5:7 not fused: scores at a.tfx:4:9 used 2 times, by %5 (softmax at a.tfx:5:7), %7 (exp at a.tfx:9:1)']);
  });

  it('probabilities used twice', () => {
    const { remarks } = fuse(chain('', '  output "p" = %5\n'));
    expect(remarks).toEqual(["attention at a.tfx:5:7 not fused: probabilities are used by %6 (matmul at test.ir:8:3 to :35) and a graph output, not only by one '@ v'"]);
  });

  it('softmax over a different axis', () => {
    const { out, remarks } = fuse(`${head('B, T', qkv)}  %3 = permute %1 {perm=[0,1,3,2]} : f32[B,2,4,T]
  %4 = matmul %0, %3 : f32[B,2,T,T]
  %5 = softmax %4 {axis=2} : f32[B,2,T,T]  loc(a.tfx:5:7)
  %6 = matmul %5, %2 : f32[B,2,T,3]
  output "o" = %6
}`);
    expect(remarks).toEqual(['attention at a.tfx:5:7 not fused: softmax is over axis 2, not the key axis 3']);
    checkLines(out, 'CHECK-NOT: fused_attention');
  });

  it('says nothing about a softmax that is no attention (classifier head)', () => {
    const { remarks } = fuse(`graph m(B) {
  %0 = input {name="x"} : f32[B,10]
  %1 = softmax %0 {axis=1} : f32[B,10]
  output "p" = %1
}`, { B: 2 });
    expect(remarks).toEqual([]);
  });
});


describe('fuse-attention: logsumexp of the softmax\'s scores is the LSE output', () => {
  // s = where(causal, q @ kT * 0.5, -inf); o = softmax(s) @ v; lse = logsumexp(s, axis=-1)
  const masked = (lse: string, order: 'pv first' | 'lse first' = 'pv first'): string => {
    const pv = '  %10 = matmul %9, %2 : f32[B,2,T,3]\n';
    const l = `  %11 = ${lse}  loc(a.tfx:11:7)\n`;
    return `${head('B, T', qkv)}  %3 = permute %1 {perm=[0,1,3,2]} : f32[B,2,4,T]
  %4 = matmul %0, %3 : f32[B,2,T,T]  loc(a.tfx:4:9)
  %5 = const {value=0.5} : f32[]
  %6 = mul %4, %5 : f32[B,2,T,T]  loc(a.tfx:6:9)
  %7 = grid {body=(qi, ki) => le(ki, qi), shape=dims[T,T]} : bool[T,T]
  %8 = const {value=-inf} : f32[]
  %s = where %7, %6, %8 : f32[B,2,T,T]  loc(a.tfx:8:5)
  %9 = softmax %s {axis=3} : f32[B,2,T,T]  loc(a.tfx:9:7)
${order === 'pv first' ? pv + l : l + pv}  output "o" = %10
  output "lse" = %11
}`;
  };

  it('makes one fused_attention and a fused_attention_lse of it; no logsumexp, softmax or matmul left', () => {
    const { out, remarks } = fuse(masked('logsumexp %s {axes=[3], keepdims=false} : f32[B,2,T]'));
    expect(remarks).toEqual([]);
    checkLines(out, `CHECK-NOT: matmul
CHECK: %3 = fused_attention %0, %1, %2 {mask=(b, h, q, k) => le(k, q), scale=0.5} : f32[B,2,T,3]
CHECK-NEXT: %4 = fused_attention_lse %3 : f32[B,2,T]
CHECK-NEXT: output "o" = %3
CHECK-NEXT: output "lse" = %4`);
    checkLines(out, 'CHECK-NOT: logsumexp');
    checkLines(out, 'CHECK-NOT: softmax');
  });

  it('a logsumexp before the @ v in graph order, with v defined after it: the fused node comes first', () => {
    // v (%2 here) is defined after the logsumexp, so the fused node is emitted at the logsumexp
    // with v moved up before it.
    const text = `graph m(B, T) {
  %0 = input {name="q"} : f32[B,2,T,4]
  %1 = input {name="k"} : f32[B,2,T,4]
  %2 = permute %1 {perm=[0,1,3,2]} : f32[B,2,4,T]
  %3 = matmul %0, %2 : f32[B,2,T,T]
  %4 = softmax %3 {axis=3} : f32[B,2,T,T]
  %5 = logsumexp %3 {axes=[3], keepdims=true} : f32[B,2,T,1]
  %6 = input {name="v"} : f32[B,2,T,3]
  %7 = matmul %4, %6 : f32[B,2,T,3]
  output "o" = %7
  output "lse" = %5
}`;
    const { out, remarks } = fuse(text);
    expect(remarks).toEqual([]);
    // keepdims=true: the [B,2,T] LSE is reshaped to the logsumexp's [B,2,T,1].
    checkLines(out, `CHECK: %2 = input {name="v"} : f32[B,2,T,3]
CHECK-NEXT: %3 = fused_attention %0, %1, %2 {scale=1.0} : f32[B,2,T,3]
CHECK-NEXT: %4 = fused_attention_lse %3 : f32[B,2,T]
CHECK-NEXT: %5 = reshape %4 {shape=dims[B,2,T,1]} : f32[B,2,T,1]
CHECK-NEXT: output "o" = %3
CHECK-NEXT: output "lse" = %5`);
  });

  it('GQA as Llama spells it: the LSE [B,4,T] is reshaped back to the scores\' [B,2,2,T]', () => {
    const { out, remarks } = fuse(`graph m(B, T, S) {
  %0 = input {name="q"} : f32[B,4,T,4]
  %1 = input {name="k"} : f32[B,2,S,4]
  %2 = input {name="v"} : f32[B,2,S,3]
  %3 = reshape %0 {shape=dims[B,2,2,T,4]} : f32[B,2,2,T,4]
  %4 = reshape %1 {shape=dims[B,2,1,S,4]} : f32[B,2,1,S,4]
  %5 = reshape %2 {shape=dims[B,2,1,S,3]} : f32[B,2,1,S,3]
  %6 = permute %4 {perm=[0,1,2,4,3]} : f32[B,2,1,4,S]
  %7 = matmul %3, %6 : f32[B,2,2,T,S]
  %10 = softmax %7 {axis=4} : f32[B,2,2,T,S]
  %11 = matmul %10, %5 : f32[B,2,2,T,3]
  %12 = reshape %11 {shape=dims[B,4,T,3]} : f32[B,4,T,3]
  %13 = logsumexp %7 {axes=[4], keepdims=false} : f32[B,2,2,T]
  output "o" = %12
  output "lse" = %13
}`, { B: 2, T: 3, S: 5 });
    expect(remarks).toEqual([]);
    checkLines(out, `CHECK: %3 = fused_attention %0, %1, %2 {scale=1.0} : f32[B,4,T,3]
CHECK: fused_attention_lse %3 : f32[B,4,T]
CHECK-NEXT: reshape {{.*}} {shape=dims[B,2,2,T]} : f32[B,2,2,T]`.replace('reshape {{.*}}', 'reshape %5'));
  });

  // (The parser numbers values in order, so `%s` is %9 and the logsumexp %12 in the remarks.)
  it('a logsumexp of other scores (before the mask) is no LSE: not fused, and the remark says so', () => {
    const { out, remarks } = fuse(masked('logsumexp %6 {axes=[3], keepdims=false} : f32[B,2,T]'));
    expect(remarks).toEqual([
      'attention at a.tfx:9:7 not fused: scaled scores at a.tfx:6:9 used 2 times, by %9 (where at a.tfx:8:5), %12 (logsumexp at a.tfx:11:7); the logsumexp at a.tfx:11:7 reads these, not the softmax\'s input over the key axis, so it is no LSE output of the attention',
    ]);
    checkLines(out, 'CHECK-NOT: fused_attention\nCHECK: logsumexp');
  });

  it('a logsumexp of the softmax\'s input over another axis is no LSE either', () => {
    const { remarks } = fuse(masked('logsumexp %s {axes=[2], keepdims=false} : f32[B,2,T]'));
    expect(remarks).toEqual([
      'attention at a.tfx:9:7 not fused: masked scores at a.tfx:8:5 used 2 times, by %10 (softmax at a.tfx:9:7), %12 (logsumexp at a.tfx:11:7); the logsumexp at a.tfx:11:7 reads these, not the softmax\'s input over the key axis, so it is no LSE output of the attention',
    ]);
  });
});
