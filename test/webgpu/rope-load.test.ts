// Llama with RoPE in the kernels that consume Q and K (issue 5): the FUSED webgpu pipeline
// (rope(q) in the attention's Q load, present_k = concat(past_k, rope(k)) as one fused_map) on
// WebGPU against the float64 interpreter on the checked graph: prefill from an empty cache at a
// T that crosses query tiles, a decode step fed the GPU's own cache, and a prefill with a past.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { checkSource } from '../../src/check/check-source.js';
import { randomInputs, randomWeights } from '../../src/cli/random.js';
import type { Diagnostic } from '../../src/diag/diagnostic.js';
import type { Graph, ScalarExpr } from '../../src/graph/ir.js';
import { interpret } from '../../src/interp/interpret.js';
import { neededTensors } from '../../src/io/check-tensors.js';
import { compilePlan } from '../../src/compile/plan.js';
import { lowerToKernels } from '../../src/kernel/lower/lower.js';
import { type AttentionSchedule, attentionSharedBytes } from '../../src/kernel/attention/schedule.js';
import { type TargetLimits, chooseSchedule } from '../../src/kernel/schedule/schedule.js';
import type { Tensor64 } from '../../src/base/tensor.js';
import { runPipeline } from '../../src/passes/driver.js';
import { createPassContext } from '../../src/passes/pass.js';
import { pipelines } from '../../src/passes/pipeline.js';
import { createSession, type RunOutput } from '../../src/runtime/session.js';
import { targetLimitsOf } from '../../src/runtime/target.js';
import { relError } from '../helpers/tensors.js';
import { asTensors, cacheFrom, deviceAndSessions } from './helpers.js';

/** This file's device and the sessions its tests open (disposed after the file). */
const gpu = deviceAndSessions();

function checked(): Graph {
  const file = 'examples/llama.tfx';
  const r = checkSource(readFileSync(file, 'utf8'), file, new Map(Object.entries({ layers: 2, d: 32, heads: 4, kv_heads: 2, ffn: 48, vocab: 64 })));
  if (r.graph === undefined) throw new Error(r.diagnostics.map((d) => d.message).join('; '));
  return r.graph;
}

function seeded(g: Graph, dims: Record<string, number>, seed: number): { weights: Map<string, Tensor64>; inputs: Map<string, Tensor64> } {
  const ds: Diagnostic[] = [];
  const needed = neededTensors(g);
  const m = new Map(Object.entries(dims));
  const weights = randomWeights(needed, seed, m, ds);
  const inputs = randomInputs(g, needed, seed + 1, m, ds);
  expect(ds.map((d) => d.message)).toEqual([]);
  return { weights, inputs };
}

/** fp32 kernels vs float64: 1e-4 relative (relError's floor: 1% of max|ref|). */
function expectClose(got: ReadonlyMap<string, RunOutput>, want: ReadonlyMap<string, Tensor64>, what: string): void {
  expect(want.size).toBe(5); // logits, present.{0,1}.{key,value}
  for (const [name, w] of want) {
    const o = got.get(name);
    expect(o?.shape, `${what} ${name}`).toEqual(w.shape);
    const err = relError(o?.data ?? [], w);
    console.log(`${what} ${name}${JSON.stringify(w.shape)}: max rel error ${err.toExponential(2)}`);
    expect(err, `${what} ${name}`).toBeLessThanOrEqual(1e-4);
  }
}

describe('Llama, RoPE at load (fused pipeline) on WebGPU vs the float64 interpreter', () => {
  it('prefill T=33 from an empty cache, decode one step from the GPU cache, prefill T=7 after P=5', { timeout: 180_000 }, async () => {
    const g = checked();
    const fused = runPipeline(g, pipelines.webgpu, createPassContext({ target: 'webgpu', verify: true }));
    // The plan this test runs is the one the kernel counts are about: attention computes rope(q).
    expect(fused.nodes.filter((n) => n.op === 'fused_attention' && n.attrs['qload'] !== undefined).length).toBe(2);
    const plan = compilePlan(fused, { target: targetLimitsOf(gpu.dev) });
    const ops = lowerToKernels(fused, targetLimitsOf(gpu.dev)).kernels.map((k) => k.op);
    expect(ops.filter((op) => ['slice', 'concat', 'permute'].includes(op))).toEqual([]);
    const session = await createSession(gpu.dev, plan);
    gpu.sessions.push(session);
    const { weights, inputs } = seeded(g, { B: 2, T: 33, P: 0 }, 41);
    session.loadWeights(weights);

    const first = await session.run(inputs);
    const ref1 = interpret(g, { inputs, weights }).outputs;
    expectClose(first.outputs, ref1, 'prefill T=33 P=0');

    const tokens = seeded(g, { B: 2, T: 1, P: 33 }, 42).inputs.get('tokens');
    if (tokens === undefined) throw new Error('no tokens');
    const second = await session.run(new Map([['tokens', tokens], ...cacheFrom(asTensors(first.outputs))]));
    expect(Object.fromEntries(second.dims)).toMatchObject({ T: 1, P: 33 });
    expectClose(second.outputs, interpret(g, { inputs: new Map([['tokens', tokens], ...cacheFrom(ref1)]), weights }).outputs, 'decode T=1 P=33');

    const withPast = seeded(g, { B: 2, T: 7, P: 5 }, 43).inputs;
    const third = await session.run(withPast);
    expectClose(third.outputs, interpret(g, { inputs: withPast, weights }).outputs, 'prefill T=7 P=5');
  });
});

// ---- Llama WITHOUT a KV cache: rope(k) computed in the attention's K load (kload) ----

function checkedNoCache(): Graph {
  const file = 'examples/variants/llama-nocache.tfx';
  const r = checkSource(readFileSync(file, 'utf8'), file, new Map(Object.entries({ layers: 2, d: 32, heads: 4, kv_heads: 2, ffn: 48, vocab: 64 })));
  if (r.graph === undefined) throw new Error(r.diagnostics.map((d) => d.message).join('; '));
  return r.graph;
}

/** The kload with its rotate-half sign flipped (the first `neg` dropped): a mutation the test must catch. */
function dropFirstNeg(e: ScalarExpr): { e: ScalarExpr; done: boolean } {
  if (e.kind === 'apply' && e.op === 'neg' && e.args[0] !== undefined) return { e: e.args[0], done: true };
  if (e.kind !== 'apply') return { e, done: false };
  const args: ScalarExpr[] = [];
  let done = false;
  for (const a of e.args) {
    if (done) args.push(a);
    else {
      const r = dropFirstNeg(a);
      args.push(r.e);
      done = r.done;
    }
  }
  return { e: { ...e, args }, done };
}

function wrongSign(g: Graph): Graph {
  return {
    ...g,
    nodes: g.nodes.map((n) => {
      const kl = n.attrs['kload'];
      if (n.op !== 'fused_attention' || kl === undefined || kl.kind !== 'lambda') return n;
      const r = dropFirstNeg(kl.body);
      expect(r.done).toBe(true);
      return { ...n, attrs: { ...n.attrs, kload: { ...kl, body: r.e } } };
    }),
  };
}

// GQA 4 query heads on 2 KV heads, dh = 8. decodeMaxT 1: T = 17 and 33 run the prefill kernel
// over 3 and 5 query tiles of 8, T = 1 the split-K pair (one key without a cache: K cannot
// matter there). `splitK` (decodeMaxT 64) runs T = 17 and 33 through the split-K kernel, whose
// K reads go through kload too.
const staged: AttentionSchedule = { tileRows: 8, tileCols: 8, lanes: 8, useSubgroups: true, splits: 2, decodeMaxT: 1 };
const direct: AttentionSchedule = { ...staged, rowsPerThread: 2, isDirect: true, shuffleP: true };
const splitK: AttentionSchedule = { ...staged, splits: 3, decodeMaxT: 64 };
// The long-prompt schedule's kernel (Q in registers, K/V staged once per workgroup).
const qInRegisters: AttentionSchedule = { ...staged, rowsPerThread: 2, shuffleP: true, qInRegisters: true };
// The direct schedule stages the computed K when its tile fits beside the schedule's arrays;
// with workgroup memory cut to exactly the schedule's own (Q tile of 8 rows x 2 heads x dh 8,
// no P tile with shuffleP), K is computed at every inner-loop read instead.
const tight = (t: TargetLimits): TargetLimits => ({ ...t, maxWorkgroupStorageBytes: attentionSharedBytes(direct, 16, 8, 8) });

describe('Llama without a KV cache, RoPE in the Q and K loads, on WebGPU vs the float64 interpreter', () => {
  const g = checkedNoCache();
  const fused = runPipeline(g, pipelines.webgpu, createPassContext({ target: 'webgpu', verify: true }));

  async function errors(graph: Graph, attention: AttentionSchedule, Ts: readonly number[], perRead = false): Promise<number[]> {
    const target = perRead ? tight(targetLimitsOf(gpu.dev)) : targetLimitsOf(gpu.dev);
    // Which K path the prefill kernel takes: a k_tile in workgroup memory, or none (per read).
    const prefill = lowerToKernels(graph, target, { ...chooseSchedule(target), attention }).kernels.find((k) => k.op === 'fused_attention');
    if (attention.decodeMaxT === 1) expect(prefill?.shared.some((a) => a.name === 'k_tile')).toBe(!perRead);
    const plan = compilePlan(graph, { target, schedule: { ...chooseSchedule(target), attention } });
    const session = await createSession(gpu.dev, plan);
    gpu.sessions.push(session);
    const out: number[] = [];
    for (const [i, T] of Ts.entries()) {
      const { weights, inputs } = seeded(g, { B: 2, T }, 51 + i);
      session.loadWeights(weights);
      const got = (await session.run(inputs)).outputs.get('logits');
      const want = interpret(g, { inputs, weights }).outputs.get('logits');
      if (want === undefined) throw new Error('no logits');
      expect(got?.shape).toEqual(want.shape);
      out.push(relError(got?.data ?? [], want));
    }
    return out;
  }

  it('the plan: both attentions carry qload and kload; no rope, slice, concat or permute kernel', () => {
    expect(fused.nodes.filter((n) => n.op === 'fused_attention' && n.attrs['qload'] !== undefined && n.attrs['kload'] !== undefined).length).toBe(2);
    const ops = lowerToKernels(fused, targetLimitsOf(gpu.dev)).kernels.map((k) => k.op);
    expect(ops.filter((op) => ['slice', 'concat', 'permute', 'neg'].includes(op))).toEqual([]);
    // the angle table (cos and sin of it are their own kernels), and per layer (2) silu(gate) * up
    // after the prefill lane kernel (pairFold 'separate'; the decode GEMV computes it inline)
    expect(ops.filter((op) => op === 'fused_map').length).toBe(1 + 2);
  });

  for (const [name, s, perRead] of [['staged K tiles', staged, false], ['direct schedule, K staged', direct, false], ['direct schedule, K per read', direct, true], ['split-K kernel', splitK, false], ['Q in registers', qInRegisters, false]] as const) {
    it(`${name}: T = 1, 17, 33 within 1e-4`, { timeout: 180_000 }, async () => {
      const errs = await errors(fused, s, [1, 17, 33], perRead);
      console.log(`llama-nocache ${name} T=1,17,33: max rel error ${errs.map((e) => e.toExponential(2)).join(', ')}`);
      for (const e of errs) expect(e).toBeLessThanOrEqual(1e-4);
    });
  }

  it('a wrong rotate-half sign in the K load fails the comparison (every schedule above)', { timeout: 180_000 }, async () => {
    const bad = wrongSign(fused);
    const errs = [...(await errors(bad, staged, [17])), ...(await errors(bad, direct, [17])), ...(await errors(bad, direct, [17], true)), ...(await errors(bad, splitK, [17])), ...(await errors(bad, qInRegisters, [17]))];
    console.log(`llama-nocache K-load mutation T=17 staged, direct, per read, split-K, Q in registers: ${errs.map((e) => e.toExponential(2)).join(', ')}`);
    for (const e of errs) expect(e).toBeGreaterThan(1e-2);
  });
});
