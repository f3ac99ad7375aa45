// pack-weights: matmuls reading the same A with [N, K] weights become one matmul over a packed
// weight (IR text, CHECK lines), the refusals (shared weight, other A, binding limit), the
// interpreter's equality of the packed graph with the source, and the whole pipeline on Llama
// (q/k/v and gate/up each one matmul; GPT-2 unchanged, its c_attn already one).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { interpret } from '../../../src/interp/interpret.js';
import { maxRelError } from '../../../src/base/tensor.js';
import { randomInputs, randomWeights } from '../../../src/cli/random.js';
import { checkSource } from '../../../src/check/check-source.js';
import { neededTensors } from '../../../src/io/check-tensors.js';
import type { Graph } from '../../../src/graph/ir.js';
import { printType } from '../../../src/graph/types.js';
import { runPipeline } from '../../../src/passes/driver.js';
import { createPassContext, type Remark } from '../../../src/passes/pass.js';
import { packWeights } from '../../../src/passes/pack-weights.js';
import { fuseEpilogue } from '../../../src/passes/fuse-epilogue.js';
import { graphPasses, pipelines, trainingPipeline, unfusedPipeline } from '../../../src/passes/pipeline.js';
import { checkLines } from '../../helpers/check-lines.js';
import { compilePlan } from '../../../src/compile/plan.js';
import { manifestOf } from '../../../src/kernel/plan/manifest.js';
import { lavapipeLimits } from '../../../src/kernel/schedule/schedule.js';
import { expectPrintParsesBack, ir, runPass } from './helpers.js';

const qkv = `graph m(T) {
  %0 = input {name="x"} : f32[T,4]
  %1 = weight {name="wq"} : f32[8,4]
  %2 = permute %1 {perm=[1,0]} : f32[4,8]
  %3 = matmul %0, %2 : f32[T,8]
  %4 = weight {name="wk"} : f32[2,4]
  %5 = permute %4 {perm=[1,0]} : f32[4,2]
  %6 = matmul %0, %5 : f32[T,2]
  %7 = exp %3 : f32[T,8]
  %8 = weight {name="wv"} : f32[2,4]
  %9 = permute %8 {perm=[1,0]} : f32[4,2]
  %10 = matmul %0, %9 : f32[T,2]
  output "q" = %7
  output "k" = %6
  output "v" = %10
}`;

function graphOf(file: string, config: Record<string, number>): Graph {
  const r = checkSource(readFileSync(file, 'utf8'), file, new Map(Object.entries(config)));
  expect(r.diagnostics.map((d) => d.message)).toEqual([]);
  if (r.graph === undefined) throw new Error(`${file} did not check`);
  return r.graph;
}

function feeds(g: Graph, dims: ReadonlyMap<string, number>, seed: number) {
  const needed = neededTensors(g);
  return { inputs: randomInputs(g, needed, seed, dims, []), weights: randomWeights(needed, seed + 1, dims, []) };
}

describe('pack-weights from IR text', () => {
  it('packs q, k, v into one matmul whose slices replace the three results', () => {
    const ctx = createPassContext({ verify: true });
    const out = runPass(packWeights, qkv, ctx);
    checkLines(
      out,
      `CHECK: %1 = weight {name="wq"} : f32[8,4]
       CHECK-NEXT: %2 = weight {name="wk"} : f32[2,4]
       CHECK-NEXT: %3 = weight {name="wv"} : f32[2,4]
       CHECK-NEXT: %4 = packed_weight %1, %2, %3 : f32[12,4]
       CHECK-NEXT: %5 = permute %4 {perm=[1,0]} : f32[4,12]
       CHECK-NEXT: %6 = matmul %0, %5 : f32[T,12]
       CHECK-NEXT: %7 = slice %6 {axis=1, end=dim(8), start=dim(0)} : f32[T,8]
       CHECK-NEXT: %8 = slice %6 {axis=1, end=dim(10), start=dim(8)} : f32[T,2]
       CHECK-NEXT: %9 = slice %6 {axis=1, end=dim(12), start=dim(10)} : f32[T,2]
       CHECK-NEXT: %10 = exp %7 : f32[T,8]
       CHECK: output "k" = %8
       CHECK-NEXT: output "v" = %9`,
    );
    checkLines(out, 'CHECK-NOT: matmul %0, %{{[0-9]+}} : f32[T,2]');
    expect(ctx.stats.ruleHits.get('pack-weights/packed')).toBe(1);
  });

  it('computes what the source computes (float64 interpreter)', () => {
    const g = ir(qkv);
    const packed = runPipeline(g, [packWeights], createPassContext({ verify: true }));
    expect(packed.nodes.filter((n) => n.op === 'matmul')).toHaveLength(1);
    const { inputs, weights } = feeds(g, new Map([['T', 3]]), 1);
    const want = interpret(g, { inputs, weights }).outputs;
    const got = interpret(packed, { inputs, weights }).outputs;
    for (const [name, t] of want) expect(maxRelError(got.get(name) ?? t, t), name).toBe(0);
  });

  it('leaves out a weight read elsewhere, and refuses a pack over the binding limit (remark)', () => {
    // wq is also an output's operand (a tied weight): only k and v are packed.
    const shared = runPass(packWeights, qkv.replace('%7 = exp %3 : f32[T,8]', '%7 = exp %1 : f32[8,4]').replace('output "q" = %7', 'output "q" = %7\n  output "q2" = %3'));
    checkLines(
      shared,
      `CHECK: matmul %0, %{{[0-9]+}} : f32[T,8]
       CHECK: packed_weight %{{[0-9]+}}, %{{[0-9]+}} : f32[4,4]`,
    );
    const remarks: Remark[] = [];
    const limited = createPassContext({ verify: true, maxBindingBytes: 160, remark: (r) => remarks.push(r) });
    const over = runPass(packWeights, qkv, limited);
    checkLines(over, 'CHECK-NOT: packed_weight');
    expect(remarks.map((r) => r.message).join('\n')).toMatch(/wq, wk, wv not packed: the packed weight \(192 bytes\) is over the storage binding limit of 160 bytes/);
  });

  it('packs only matmuls of the same A', () => {
    const out = runPass(
      packWeights,
      `graph m(T) {
  %0 = input {name="x"} : f32[T,4]
  %1 = input {name="y"} : f32[T,4]
  %2 = weight {name="wq"} : f32[8,4]
  %3 = permute %2 {perm=[1,0]} : f32[4,8]
  %4 = matmul %0, %3 : f32[T,8]
  %5 = weight {name="wk"} : f32[2,4]
  %6 = permute %5 {perm=[1,0]} : f32[4,2]
  %7 = matmul %1, %6 : f32[T,2]
  %8 = weight {name="wv"} : f32[2,4]
  %9 = permute %8 {perm=[1,0]} : f32[4,2]
  %10 = matmul %0, %9 : f32[T,2]
  output "q" = %4
  output "k" = %7
  output "v" = %10
}`,
    );
    checkLines(
      out,
      `CHECK: packed_weight %{{[0-9]+}}, %{{[0-9]+}} : f32[10,4]
       CHECK: matmul %1, %{{[0-9]+}} : f32[T,2]`,
    );
  });
});

describe('fuse-epilogue: the paired epilogue over a packed product', () => {
  const swiglu = (shift: number) => `graph m(T) {
  %0 = input {name="x"} : f32[T,4]
  %1 = input {name="w"} : f32[4,6]
  %2 = matmul %0, %1 : f32[T,6]
  %3 = fused_map %2 {body=(i0, i1) => mul(silu(read(0, i0, i1)), read(0, i0, add(i1, dim(${shift})))), shape=dims[T,3]} : f32[T,3]
  output "h" = %3
}`;

  it('reads at j and N + j: one fused_matmul with pair, acc() and acc_pair(); the interpreter agrees', () => {
    const ctx = createPassContext({ verify: true });
    const out = runPass(fuseEpilogue, swiglu(3), ctx);
    checkLines(out, 'CHECK: %{{[0-9]+}} = fused_matmul %0, %1 {epilogue=(i0, i1) => mul(silu(acc()), acc_pair()), pair=true} : f32[T,3]');
    checkLines(out, 'CHECK-NOT: fused_map');
    expect(ctx.stats.ruleHits.get('fuse-epilogue/paired')).toBe(1);
    const g = ir(swiglu(3));
    const { inputs } = feeds(g, new Map([['T', 2]]), 3);
    const want = interpret(g, { inputs, weights: new Map() }).outputs.get('h');
    const got = interpret(ir(out), { inputs, weights: new Map() }).outputs.get('h');
    if (want === undefined || got === undefined) throw new Error('no h');
    expect(maxRelError(got, want)).toBe(0);
  });

  it('reads at another offset: not fused, with a remark', () => {
    const remarks: Remark[] = [];
    const out = runPass(fuseEpilogue, swiglu(2), createPassContext({ verify: true, remark: (r) => remarks.push(r) }));
    checkLines(out, 'CHECK: fused_map');
    expect(remarks.map((r) => r.message)).toContain('matmul epilogue not fused: its consumer reads the product at another index than j and N + j (a paired epilogue)');
  });
});

describe('pack-weights in the pipelines', () => {
  const llama = { vocab: 64, d: 32, heads: 4, kv_heads: 2, ffn: 48, ctx: 64, layers: 2 };

  it('Llama: per layer one matmul for q/k/v and one for gate/up; the interpreter agrees with the source', () => {
    const g = graphOf('examples/llama.tfx', llama);
    const remarks: Remark[] = [];
    const ctx = createPassContext({ target: 'webgpu', verify: true, remark: (r) => remarks.push(r) });
    const packed = runPipeline(g, [...graphPasses, packWeights], ctx);
    const packs = packed.nodes.filter((n) => n.op === 'packed_weight');
    // q (4 x 8 rows) + k, v (2 x 8 each) = 64 rows; gate + up = 96 rows; per layer.
    expect(packs.map((n) => printType(n.type))).toEqual(['f32[64,32]', 'f32[96,32]', 'f32[64,32]', 'f32[96,32]']);
    expect(ctx.stats.ruleHits.get('pack-weights/packed')).toBe(4);
    expect(remarks.filter((r) => r.pass === 'pack-weights').map((r) => r.message)[0]).toMatch(/^3 matmuls over model\.layers\.0\.self_attn\.q_proj\.weight, .*k_proj.*, .*v_proj.* packed into one/);
    // Every weight name is still in the graph (the model's interface; loading takes them).
    const names = (x: Graph) => x.nodes.filter((n) => n.op === 'weight').map((n) => JSON.stringify(n.attrs['name']));
    expect(names(packed).sort()).toEqual(names(g).sort());
    const dims = new Map([['B', 1], ['T', 3], ['P', 2]]);
    const { inputs, weights } = feeds(g, dims, 5);
    const want = interpret(g, { inputs, weights }).outputs;
    const got = interpret(packed, { inputs, weights }).outputs;
    for (const [name, t] of want) expect(maxRelError(got.get(name) ?? t, t), name).toBeLessThan(1e-12);
  });

  it('Llama fused: gate/up becomes one paired fused_matmul (silu(acc()) * acc_pair()); the interpreter runs the fused graph', () => {
    const g = graphOf('examples/llama.tfx', llama);
    const ctx = createPassContext({ target: 'webgpu', verify: true });
    const fused = runPipeline(g, pipelines.webgpu, ctx);
    const text = expectPrintParsesBack(fused);
    checkLines(
      text,
      `CHECK: packed_weight %{{[0-9]+}}, %{{[0-9]+}}, %{{[0-9]+}} : f32[64,32]
       CHECK: fused_matmul {{.*}}norm="rmsnorm"{{.*}} : f32[B,T,64]
       CHECK: packed_weight %{{[0-9]+}}, %{{[0-9]+}} : f32[96,32]
       CHECK: fused_matmul {{.*}}epilogue=(i0, i1, i2) => mul(silu(acc()), acc_pair()){{.*}}pair=true{{.*}} : f32[B,T,48]`,
    );
    expect(ctx.stats.ruleHits.get('fuse-epilogue/paired')).toBe(2);
    // No fused_map is left between gate/up and down: the SwiGLU product is the epilogue.
    expect(fused.nodes.filter((n) => n.op === 'fused_map' && n.type.shape.map(String).length === 3 && JSON.stringify(n.attrs).includes('silu'))).toHaveLength(0);
    const dims = new Map([['B', 2], ['T', 3], ['P', 2]]);
    const { inputs, weights } = feeds(g, dims, 9);
    const want = interpret(g, { inputs, weights }).outputs;
    const got = interpret(fused, { inputs, weights }).outputs;
    for (const [name, t] of want) expect(maxRelError(got.get(name) ?? t, t), name).toBeLessThan(1e-12);
  });

  it('the plan: one buffer per pack with its parts, none for the parts alone; manifest.json lists the parts', () => {
    const g = graphOf('examples/llama.tfx', { ...llama, layers: 1 });
    const plan = compilePlan(runPipeline(g, pipelines.webgpu, createPassContext({ target: 'webgpu', verify: true })), { target: lavapipeLimits });
    const weights = plan.buffers.filter((b) => b.kind === 'weight');
    expect(weights.filter((b) => b.parts !== undefined).map((b) => b.name)).toEqual([
      'model.layers.0.self_attn.q_proj.weight+model.layers.0.self_attn.k_proj.weight+model.layers.0.self_attn.v_proj.weight',
      'model.layers.0.mlp.gate_proj.weight+model.layers.0.mlp.up_proj.weight',
    ]);
    expect(weights.some((b) => b.name === 'model.layers.0.mlp.up_proj.weight')).toBe(false);
    const listed = manifestOf(plan, 'lavapipe').weights;
    expect(listed.find((w) => w.name === 'model.layers.0.self_attn.k_proj.weight')?.shape).toEqual(['16', '32']);
    expect(listed.find((w) => w.name === 'model.layers.0.mlp.up_proj.weight')?.shape).toEqual(['48', '32']);
    expect(listed.some((w) => w.name.includes('+'))).toBe(false);
    // Every tensor the checked graph needs is listed once.
    expect(listed.map((w) => w.name).sort()).toEqual(neededTensors(g).filter((n) => n.kind === 'weight').map((n) => n.name).sort());
  });

  it('is a fusion pass (--no-fuse and training leave it out); GPT-2 has nothing to pack', () => {
    expect(unfusedPipeline('webgpu').map((p) => p.name)).not.toContain('pack-weights');
    expect(trainingPipeline('webgpu', { fuse: true, recompute: true }).map((p) => p.name)).not.toContain('pack-weights');
    expect(pipelines.cuda.map((p) => p.name)).toContain('pack-weights');
    const g = graphOf('examples/gpt2.tfx', { vocab: 64, ctx: 16, d: 32, heads: 2, layers: 1 });
    const ctx = createPassContext({ target: 'webgpu', verify: true });
    runPipeline(g, pipelines.webgpu, ctx);
    expect(ctx.stats.ruleHits.get('pack-weights/packed')).toBeUndefined();
  });
});
