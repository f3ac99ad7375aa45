// RoPE and the KV-cache concats inside the kernels that produce Q and present_k (issue 5):
// fuse-elementwise folds concat (a lazy `where` over the operands) and permute/slice chains read
// at several offsets, so rope(x) is one fused_map reading the projection through views. Pass
// tests from IR text, the lazy `where` under the interpreter, and Llama kernel counts per layer.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { checkSource } from '../../../src/check/check-source.js';
import type { Graph } from '../../../src/graph/ir.js';
import { interpret } from '../../../src/interp/interpret.js';
import { makeTensor } from '../../../src/interp/tensor.js';
import { lowerToKernels } from '../../../src/kernel/lower.js';
import { evalCondition, evalSize } from '../../../src/kernel/plan.js';
import { lavapipeLimits } from '../../../src/kernel/schedule.js';
import { runPipeline } from '../../../src/passes/driver.js';
import { fuseElementwise } from '../../../src/passes/fuse-elementwise.js';
import { createPassContext } from '../../../src/passes/pass.js';
import { pipelines } from '../../../src/passes/pipeline.js';
import { checkLines } from '../../helpers/check-lines.js';
import { ir, runPass } from './helpers.js';

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
       CHECK-NOT: permute
       CHECK-NOT: concat
       CHECK: output "y" = %1`,
    );
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
  return lowerToKernels(g, lavapipeLimits)
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
  // Hand count of one layer: q, k, v projections (rmsnorm in the prologue), o projection +
  // residual, gate, up * silu(gate), down + residual = 7 fused_matmul; present_k =
  // concat(past_k, rope(k)) and present_v = concat(past_v, v) = 2 fused_map; attention with
  // rope(q) in its Q load = 1 kernel for prefill, the split-K pair for decode. Before: 21 (RoPE
  // as permute, slice, fused_map, concat, fused_map for q and for k, plus the two concats).
  it('prefill (T = 8, P = 0): 10 kernels, no slice/concat/permute left', () => {
    const ops = perLayer(new Map([['B', 1], ['T', 8], ['P', 0]]));
    expect(Object.fromEntries(ops)).toEqual({ fused_matmul: 7, fused_map: 2, fused_attention: 1 });
  });

  it('decode (T = 1, P = 9): 11 kernels, attention as the split-K pair', () => {
    const ops = perLayer(new Map([['B', 1], ['T', 1], ['P', 9]]));
    expect(Object.fromEntries(ops)).toEqual({ fused_matmul: 7, fused_map: 2, fused_attention_split: 1, fused_attention_combine: 1 });
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
    expect(n?.op).toBe('fused_map');
    const kernel = lowerToKernels(g, lavapipeLimits).kernels.find((k) => k.bindings.includes(n?.id ?? -1) && k.op === 'fused_map' && k.bindings[k.bindings.length - 1] === n?.id);
    expect(kernel).toBeDefined();
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
