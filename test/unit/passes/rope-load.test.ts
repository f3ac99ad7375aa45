// RoPE and the KV-cache concats inside the kernels that produce Q and present_k (issue 5):
// fuse-elementwise folds concat (a lazy `where` over the operands) and permute/slice chains read
// at several offsets, so rope(x) is one fused_map reading the projection through views. Pass
// tests from IR text, the lazy `where` under the interpreter, and Llama kernel counts per layer.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { checkSource } from '../../../src/check/check-source.js';
import { dimEval } from '../../../src/base/dim.js';
import { DiagnosticSink } from '../../../src/diag/diagnostic.js';
import type { Graph } from '../../../src/graph/ir.js';
import { parseGraph } from '../../../src/graph/parse.js';
import { printGraph } from '../../../src/graph/print.js';
import { verifyGraph } from '../../../src/graph/verify.js';
import { interpret } from '../../../src/interp/interpret.js';
import { makeTensor, maxRelError } from '../../../src/base/tensor.js';
import { lowerToKernels } from '../../../src/kernel/lower/lower.js';
import { evalCondition, evalSize } from '../../../src/kernel/plan/plan.js';
import { chooseSchedule, lavapipeLimits } from '../../../src/kernel/schedule/schedule.js';
import { runPipeline } from '../../../src/passes/driver.js';
import { getOp as opDef } from '../../../src/ops/catalog.js';
import { fuseAttentionLoads } from '../../../src/passes/fuse-attention-loads.js';
import { fuseElementwise } from '../../../src/passes/fuse-elementwise.js';
import { createPassContext, type Remark } from '../../../src/passes/pass.js';
import { pipelines } from '../../../src/passes/pipeline.js';
import { checkLines } from '../../helpers/check-lines.js';
import { expectPrintParsesBack, ir, runPass, sinFill } from './helpers.js';

describe('fuse-elementwise: concat and shared remaps', () => {
  it('turns concat(-x2, x1) of two slices of one permute into one fused_map (rotate-half)', () => {
    const out = runPass(
      fuseElementwise,
      `graph m(T) {
  %0 = input {name="x"} : f32[T,2,8]
  %1 = permute %0 {perm=[1,0,2]} : f32[2,T,8]
  %2 = slice %1 {axis=2, end=dim(4), start=dim(0)} : f32[2,T,4]
  %3 = slice %1 {axis=2, end=dim(8), start=dim(4)} : f32[2,T,4]
  %4 = neg %3 : f32[2,T,4]
  %5 = concat %4, %2 {axis=2} : f32[2,T,8]
  %6 = mul %1, %5 : f32[2,T,8]
  output "y" = %6
}`,
    );
    // x is read at (t, h, d) for %1, at d + 4 for -x2 (d < 4) and at d - 4 for x1 (d >= 4).
    checkLines(
      out,
      `CHECK: %1 = fused_map %0 {body=(i0, i1, i2) => mul(read(0, i1, i0, i2), where(lt(i2, 4), neg(read(0, i1, i0, add(i2, dim(4)))), read(0, i1, i0, sub(i2, 4)))), shape=dims[2,T,8]} : f32[2,T,8]
       CHECK-NEXT: output "y" = %1`,
    );
    checkLines(out, 'CHECK-NOT: permute\nCHECK-NOT: concat');
  });

  it('writes a KV-cache concat along a symbolic axis as where(i < P, past, new at i - P)', () => {
    const out = runPass(
      fuseElementwise,
      `graph m(P, T) {
  %0 = input {name="past"} : f32[2,P,4]
  %1 = input {name="new"} : f32[2,T,4]
  %2 = exp %1 : f32[2,T,4]
  %3 = concat %0, %2 {axis=1} : f32[2,P+T,4]
  output "present" = %3
}`,
    );
    checkLines(out, `CHECK: %2 = fused_map %0, %1 {body=(i0, i1, i2) => where(lt(i1, dim(P)), read(0, i0, i1, i2), exp(read(1, i0, sub(i1, dim(P)), i2))), shape=dims[2,P+T,4]} : f32[2,P+T,4]`);
  });

  it('keeps a shared permute of a computed value in memory (only remaps of buffers are re-read)', () => {
    const out = runPass(
      fuseElementwise,
      `graph m(T) {
  %0 = input {name="x"} : f32[T,4]
  %1 = exp %0 : f32[T,4]
  %2 = permute %1 {perm=[1,0]} : f32[4,T]
  %3 = neg %2 : f32[4,T]
  %4 = tanh %2 : f32[4,T]
  output "a" = %3
  output "b" = %4
}`,
    );
    // Folding the permute into both users would recompute exp per use: exp and the permute are
    // one kernel whose buffer both lone users read.
    checkLines(out, `CHECK: %1 = fused_map %0 {body=(i0, i1) => exp(read(0, i1, i0)), shape=dims[4,T]}\nCHECK-NEXT: %2 = neg %1\nCHECK-NEXT: %3 = tanh %1`);
  });
});

describe('the interpreter runs only the chosen branch of where', () => {
  it('evaluates the fused concat at P = 0 (the past branch would read an empty tensor)', () => {
    const g = runPipeline(
      ir(`graph m(P, T) {
  %0 = input {name="past"} : f32[P,2]
  %1 = input {name="new"} : f32[T,2]
  %2 = neg %1 : f32[T,2]
  %3 = concat %0, %2 {axis=0} : f32[P+T,2]
  output "present" = %3
}`),
      [fuseElementwise],
      createPassContext({ verify: true }),
    );
    expect(g.nodes.some((n) => n.op === 'concat')).toBe(false);
    const inputs = new Map([
      ['past', makeTensor('f32', [0, 2], [])],
      ['new', makeTensor('f32', [3, 2], [1, 2, 3, 4, 5, 6])],
    ]);
    const y = interpret(g, { inputs, weights: new Map() }).outputs.get('present');
    expect(y?.shape).toEqual([3, 2]);
    expect([...(y?.data ?? [])]).toEqual([-1, -2, -3, -4, -5, -6]);
  });
});

const llama = (layers: number): Graph => {
  const file = 'examples/llama.tfx';
  const overrides = new Map([['layers', layers], ['d', 32], ['heads', 4], ['kv_heads', 2], ['vocab', 64], ['ffn', 48]]);
  const r = checkSource(readFileSync(file, 'utf8'), file, overrides);
  if (r.graph === undefined) throw new Error(r.diagnostics.map((d) => d.message).join('; '));
  return runPipeline(r.graph, pipelines.webgpu, createPassContext({ target: 'webgpu', verify: true }));
};

/** Kernel ops a run with these dims launches (a step whose `when` is false is not dispatched). */
function launchedOps(g: Graph, dims: ReadonlyMap<string, number>): string[] {
  // The norm folded inline (the fusion passes' structure; lavapipe's default runs it as its own kernel).
  const base = chooseSchedule(lavapipeLimits);
  const decode = base.decodeMatmul === undefined ? {} : { decodeMatmul: { ...base.decodeMatmul, schedule: { ...base.decodeMatmul.schedule, normFold: 'inline' as const } } };
  return lowerToKernels(g, lavapipeLimits, { ...base, matmul: { ...base.matmul, normFold: 'inline' }, ...decode })
    .kernels.filter((k) => k.when === undefined || evalCondition(k.when, dims))
    .map((k) => k.op);
}

function perLayer(dims: ReadonlyMap<string, number>): Map<string, number> {
  const count = (ops: readonly string[]): Map<string, number> => {
    const m = new Map<string, number>();
    for (const o of ops) m.set(o, (m.get(o) ?? 0) + 1);
    return m;
  };
  const one = count(launchedOps(llama(1), dims));
  const two = count(launchedOps(llama(2), dims));
  const out = new Map<string, number>();
  for (const [op, n] of two) if (n - (one.get(op) ?? 0) !== 0) out.set(op, n - (one.get(op) ?? 0));
  return out;
}

describe('Llama layer kernels (2-layer minus 1-layer plan)', () => {
  // Hand count of one layer (this file's plans: the lavapipe schedule): q/k/v (one matmul over
  // the packed weight, pack-weights; rmsnorm in the prologue), o projection + residual, gate/up
  // (one matmul), down + residual = 4 fused_matmul; present_k = concat(past_k, rope(k)) and
  // present_v = concat(past_v, v) = 2 fused_map at prefill (at decode the split kernel writes
  // present_k, fuse-cache-write); silu(gate) * up: in the decode GEMV (a paired epilogue, pairFold
  // 'inline'), a fused_map of its own after the prefill lane kernel ('separate'); attention with
  // rope(q) in its Q load = 1 kernel for prefill, the split-K pair for decode. Before: 21 (RoPE as
  // permute, slice, fused_map, concat, fused_map for q and for k, plus the two concats); 10 before
  // pack-weights (q, k, v, gate, up apart).
  it('prefill (T = 8, P = 0): 8 kernels, no slice/concat/permute left', () => {
    const ops = perLayer(new Map([['B', 1], ['T', 8], ['P', 0]]));
    expect(Object.fromEntries(ops)).toEqual({ fused_matmul: 4, fused_map: 3, fused_attention: 1 });
  });

  it('decode (T = 1, P = 9): 7 kernels, attention as the split-K pair writing the K cache', () => {
    const ops = perLayer(new Map([['B', 1], ['T', 1], ['P', 9]]));
    // present_v keeps its kernel: folded too, the split kernel would bind more than 8 storage buffers.
    expect(Object.fromEntries(ops)).toEqual({ fused_matmul: 4, fused_map: 1, fused_attention_split: 1, fused_attention_combine: 1 });
  });

  it('computes rope(q) in the attention: its qload reads the q projection, cos and sin', () => {
    const g = llama(1);
    const a = g.nodes.find((n) => n.op === 'fused_attention');
    const q = a?.attrs['qload'];
    expect(q?.kind).toBe('lambda');
    const readOps = (a?.operands ?? []).map((id) => g.nodes[id]?.op);
    // operand 0: the q projection in head layout (a view of the fused_matmul's buffer)
    expect(readOps[0]).toBe('view');
    expect(readOps.filter((o) => o === 'cos' || o === 'sin').length).toBe(2);
  });

  it('writes present_k in one kernel that applies RoPE (reads cos and sin) and reads each past_k element once', () => {
    const g = llama(1);
    const present = g.outputs.find((o) => o.name === 'present.0.key');
    const n = g.nodes[present?.value ?? -1];
    expect(n?.op).toBe('fused_attention_k');
    const kernels = lowerToKernels(g, lavapipeLimits).kernels;
    // The prefill path's cache write (a map kernel of the attention's kload); the decode path's
    // split kernel writes it too.
    const kernel = kernels.find((k) => k.op === 'fused_map' && k.bindings[k.bindings.length - 1] === n?.id);
    expect(kernel).toBeDefined();
    expect(kernels.find((k) => k.op === 'fused_attention_split')?.bindings).toContain(n?.id);
    // Operands of the kernel: past_k, the k projection (through a view), cos and sin tables.
    const ops = (kernel?.bindings ?? []).map((id) => g.nodes[id]?.op);
    expect(ops.filter((o) => o === 'cos' || o === 'sin').length).toBe(2);
    // Bytes read, by hand (kv_heads 2, dh 8): past_k 4 B per element of [B,2,P,8] = 64*B*P;
    // per new element (B*2*T*8 of them) k at d, cos, sin (12 B) plus k at d +- 4 (4 B) = 256*B*T.
    const at = (B: number, T: number, P: number): number => evalSize(kernel?.traffic.bytesRead ?? { kind: 'const', value: -1 }, new Map([['B', B], ['T', T], ['P', P]]));
    expect(at(2, 5, 3)).toBe(64 * 2 * 3 + 256 * 2 * 5);
    expect(at(1, 1, 100)).toBe(64 * 100 + 256);
  });
});

// ---- K at load (kload): a model without a KV cache, where rope(k) feeds the attention directly ----

// rope on q (2 heads) and on k (1 KV head, GQA) over a head width of 4 (halves of 2), causal.
const ropeQK = (kExtraUse: boolean): string => `graph m(T) {
  %0 = input {name="x"} : f32[1,2,T,4]
  %1 = input {name="kx"} : f32[1,1,T,4]
  %2 = input {name="v"} : f32[1,1,T,4]
  %3 = input {name="c"} : f32[T,4]
  %4 = input {name="s"} : f32[T,4]
  %5 = fused_map %0, %3, %4 {body=(i0, i1, i2, i3) => add(mul(read(0, i0, i1, i2, i3), read(1, i2, i3)), mul(where(lt(i3, 2), neg(read(0, i0, i1, i2, add(i3, 2))), read(0, i0, i1, i2, sub(i3, 2))), read(2, i2, i3))), shape=dims[1,2,T,4]} : f32[1,2,T,4]
  %6 = fused_map %1, %3, %4 {body=(i0, i1, i2, i3) => add(mul(read(0, i0, i1, i2, i3), read(1, i2, i3)), mul(where(lt(i3, 2), neg(read(0, i0, i1, i2, add(i3, 2))), read(0, i0, i1, i2, sub(i3, 2))), read(2, i2, i3))), shape=dims[1,1,T,4]} : f32[1,1,T,4]
  %7 = fused_attention %5, %6, %2 {mask=(b, h, q, k) => le(k, q), scale=0.5} : f32[1,2,T,4]
  output "o" = %7${kExtraUse ? '\n  output "k" = %6' : ''}
}`;

describe('fuse-attention-loads: rope(k) in the K load (kload)', () => {
  it("moves rope(k) into kload: its operand 0 becomes operand 1, and the cos/sin tables qload already reads are shared (one binding each)", () => {
    const out = runPass(fuseAttentionLoads, ropeQK(false));
    // operands: x, kx, v, then q's c, s (3, 4), then k's c, s (5, 6)
    checkLines(
      out,
      `CHECK-NOT: fused_map
       CHECK: %5 = fused_attention %0, %1, %2, %3, %4 {kload=(b, h, s, d) => add(mul(read(1, b, h, s, d), read(3, s, d)), mul(where(lt(d, 2), neg(read(1, b, h, s, add(d, 2))), read(1, b, h, s, sub(d, 2))), read(4, s, d))), kshape=dims[1,1,T,4], mask=(b, h, q, k) => le(k, q), qload=(b, h, t, d) => add(mul(read(0, b, h, t, d), read(3, t, d)), mul(where(lt(d, 2), neg(read(0, b, h, t, add(d, 2))), read(0, b, h, t, sub(d, 2))), read(4, t, d))), qshape=dims[1,2,T,4], scale=0.5} : f32[1,2,T,4]`,
    );
  });

  it('leaves rope(k) that is also a graph output, with a remark (q still folds)', () => {
    const remarks: Remark[] = [];
    const out = runPass(fuseAttentionLoads, ropeQK(true), createPassContext({ verify: true, remark: (r) => remarks.push(r) }));
    checkLines(out, `CHECK: %5 = fused_map %1, %3, %4\nCHECK: %6 = fused_attention %0, %5, %2, %3, %4 {mask`);
    expect(out).not.toContain('kload');
    expect(remarks.map((r) => r.message)).toEqual(["fused_map feeding attention's k not computed at load: it is a graph output"]);
  });

  it('prints kload/kshape so that they parse back to the same graph', () => {
    const g = runPipeline(ir(ropeQK(false)), [fuseAttentionLoads], createPassContext({ verify: true }));
    expect(expectPrintParsesBack(g)).toContain('kload=(b, h, s, d)');
  });

  it('gives the interpreter the unfused values (K computed by the catalog rule, then attention)', () => {
    const before: Graph = ir(ropeQK(false));
    const after = runPipeline(before, [fuseAttentionLoads], createPassContext({ verify: true }));
    const T = 6;
    const inputs = new Map([
      ['x', makeTensor('f32', [1, 2, T, 4], sinFill([1, 2, T, 4], 1))],
      ['kx', makeTensor('f32', [1, 1, T, 4], sinFill([1, 1, T, 4], 2))],
      ['v', makeTensor('f32', [1, 1, T, 4], sinFill([1, 1, T, 4], 3))],
      ['c', makeTensor('f32', [T, 4], sinFill([T, 4], 4))],
      ['s', makeTensor('f32', [T, 4], sinFill([T, 4], 5))],
    ]);
    const want = interpret(before, { inputs, weights: new Map() }).outputs.get('o');
    const got = interpret(after, { inputs, weights: new Map() }).outputs.get('o');
    // And a kload with the wrong rotate-half sign must give something else (the test can fail).
    const wrong = parseGraph(printGraph(after).replace('neg(read(1, b, h, s, add(d, 2)))', 'read(1, b, h, s, add(d, 2))'), 'w.ir', new DiagnosticSink());
    if (want === undefined || got === undefined || wrong === undefined) throw new Error('no output');
    expect(maxRelError(got, want)).toBe(0); // the same float64 operations in the same order
    expect(printGraph(wrong)).not.toBe(printGraph(after));
    const bad = interpret(wrong, { inputs, weights: new Map() }).outputs.get('o');
    if (bad === undefined) throw new Error('no output');
    expect(maxRelError(bad, want)).toBeGreaterThan(1e-3);
  });

  it('rejects a kload without kshape (verifier)', () => {
    const g = parseGraph(
      `graph m(T) {
  %0 = input {name="x"} : f32[1,2,T,4]
  %1 = input {name="k"} : f32[1,1,T,4]
  %2 = fused_attention %0, %1, %1 {kload=(b, h, s, d) => read(1, b, h, s, d), scale=0.5} : f32[1,2,T,4]
  output "o" = %2
}`,
      't.ir',
      new DiagnosticSink(),
    );
    if (g === undefined) throw new Error('the text itself is well formed');
    expect(verifyGraph(g).join('\n')).toContain("fused_attention's 'kload' is a lambda and comes with 'kshape' dims");
  });

  it('counts kload applies once per K element in the FLOPs (the recompute per query tile is the kernel traffic)', () => {
    const plain = runPipeline(ir(ropeQK(false)), [], createPassContext({ verify: true }));
    const fused = runPipeline(ir(ropeQK(false)), [fuseAttentionLoads], createPassContext({ verify: true }));
    const a = fused.nodes.find((n) => n.op === 'fused_attention');
    const a0 = plain.nodes.find((n) => n.op === 'fused_attention');
    const flops = (g: Graph, n: typeof a): number => {
      const def = opDef(n?.op ?? '');
      const ops = (n?.operands ?? []).map((id) => g.nodes[id]?.type).filter((t) => t !== undefined);
      if (def === undefined || n === undefined) throw new Error('no op');
      return dimEval(def.flops(ops, n.type, n.attrs), new Map([['T', 6]])) ?? NaN;
    };
    // By hand: the rope body applies add, mul, mul, where, lt, neg and, in the read indices,
    // add(d, 2) and sub(d, 2): 8 per element; Q [1,2,6,4] has 48 elements, K [1,1,6,4] 24.
    expect(flops(fused, a) - flops(plain, a0)).toBe(8 * 48 + 8 * 24);
  });
});

// Llama without a KV cache (examples/variants/llama-nocache.tfx): rope(q) in the Q load, rope(k)
// in the K load, so a layer is the 7 matmuls and the attention kernel.
const nocache = (layers: number, passes = pipelines.webgpu): Graph => {
  const file = 'examples/variants/llama-nocache.tfx';
  const overrides = new Map([['layers', layers], ['d', 32], ['heads', 4], ['kv_heads', 2], ['vocab', 64], ['ffn', 48]]);
  const r = checkSource(readFileSync(file, 'utf8'), file, overrides);
  if (r.graph === undefined) throw new Error(r.diagnostics.map((d) => d.message).join('; '));
  return runPipeline(r.graph, passes, createPassContext({ target: 'webgpu', verify: true }));
};

describe('Llama without a KV cache: kernels (2-layer minus 1-layer plan)', () => {
  const count = (g: Graph, dims: ReadonlyMap<string, number>): Map<string, number> => {
    const m = new Map<string, number>();
    for (const o of launchedOps(g, dims)) m.set(o, (m.get(o) ?? 0) + 1);
    return m;
  };
  const layer = (one: Map<string, number>, two: Map<string, number>): Record<string, number> => {
    const out: Record<string, number> = {};
    for (const [op, n] of two) if (n - (one.get(op) ?? 0) !== 0) out[op] = n - (one.get(op) ?? 0);
    return out;
  };
  const dims = new Map([['B', 1], ['T', 17]]);

  it('prefill T = 17: 6 kernels a layer (4 fused_matmul, silu(gate) * up, 1 attention), no rope/slice/concat/permute kernel', () => {
    const g1 = nocache(1);
    const ops = count(g1, dims);
    expect(layer(ops, count(nocache(2), dims))).toEqual({ fused_matmul: 4, fused_map: 1, fused_attention: 1 });
    for (const op of ['slice', 'concat', 'permute', 'neg']) expect(ops.has(op)).toBe(false);
    // The fused_maps are the angle table (rope_angles; cos and sin are its two tables) and silu(gate) * up.
    expect(ops.get('fused_map')).toBe(2);
    const a = g1.nodes.find((n) => n.op === 'fused_attention');
    expect(a?.attrs['kload']?.kind).toBe('lambda');
    expect(a?.attrs['qload']?.kind).toBe('lambda');
    // operand 1: the k projection in head layout (a view of the fused_matmul's buffer)
    expect(g1.nodes[a?.operands[1] ?? -1]?.op).toBe('view');
  });

  it('without kload (fuse-attention-loads left out) rope(q) and rope(k) are a fused_map each', () => {
    const passes = pipelines.webgpu.filter((p) => p.name !== 'fuse-attention-loads');
    expect(layer(count(nocache(1, passes), dims), count(nocache(2, passes), dims))).toEqual({ fused_matmul: 4, fused_map: 3, fused_attention: 1 });
  });
});
