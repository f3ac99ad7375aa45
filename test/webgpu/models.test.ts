// Whole example models compiled by compilePlan (unfused: the cleanup passes only, the --no-fuse
// baseline) and run on WebGPU (lavapipe in CI), against the float64 interpreter on the same
// seeded weights and inputs, and GPT-2 tiny against the PyTorch oracle. Also: changing T reuses
// every pipeline, and f16 kernels (`enable f16`) against the interpreter.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkSource } from '../../src/check/check-source.js';
import { gatherIndexRanges } from '../../src/cli/webgpu.js';
import { randomInputs, randomWeights } from '../../src/cli/random.js';
import type { Diagnostic } from '../../src/diag/diagnostic.js';
import type { Graph } from '../../src/graph/ir.js';
import { interpret } from '../../src/interp/interpret.js';
import { neededTensors } from '../../src/io/check-tensors.js';
import { compilePlan } from '../../src/compile/plan.js';
import type { Plan } from '../../src/kernel/plan/plan.js';
import type { Tensor64 } from '../../src/base/tensor.js';
import { runPipeline } from '../../src/passes/driver.js';
import { createPassContext } from '../../src/passes/pass.js';
import { graphPasses } from '../../src/passes/pipeline.js';
import { f16Bits, f16FromBits } from '../../src/runtime/convert.js';
import { RuntimeError } from '../../src/runtime/errors.js';
import { createSession, pipelineCreations, type RunOutput, type Session } from '../../src/runtime/session.js';
import { targetLimitsOf } from '../../src/runtime/target.js';
import { readOracle, runOracle, torchMissingReason } from '../oracle/oracle.js';
import { relError } from '../helpers/tensors.js';
import { asTensors, cacheFrom, deviceAndSessions } from './helpers.js';

/** This file's device and the sessions its tests open (disposed after the file). */
const gpu = deviceAndSessions();

const gpt2Tiny = { layers: 2, d: 64, heads: 4, vocab: 256, ctx: 64 };

function graphOf(src: string, file: string, overrides: Record<string, number> = {}): Graph {
  const r = checkSource(src, file, new Map(Object.entries(overrides)));
  expect(r.diagnostics.map((d) => d.message)).toEqual([]);
  if (r.graph === undefined) throw new Error(`${file}: no graph`);
  // The unfused baseline: the cleanup passes every target runs, no fusion.
  return runPipeline(r.graph, graphPasses, createPassContext({ target: 'webgpu', verify: true }));
}

function example(name: string, overrides: Record<string, number>): Graph {
  const file = join('examples', name);
  return graphOf(readFileSync(file, 'utf8'), file, overrides);
}

async function sessionFor(g: Graph): Promise<{ plan: Plan; session: Session }> {
  const plan = compilePlan(g, { target: targetLimitsOf(gpu.dev) });
  const session = await createSession(gpu.dev, plan, { inputRanges: gatherIndexRanges(g) });
  gpu.sessions.push(session);
  return { plan, session };
}

function seededData(g: Graph, dims: Record<string, number>, seed: number): { weights: Map<string, Tensor64>; inputs: Map<string, Tensor64> } {
  const ds: Diagnostic[] = [];
  const needed = neededTensors(g);
  const dimMap = new Map(Object.entries(dims));
  const weights = randomWeights(needed, seed, dimMap, ds);
  const inputs = randomInputs(g, needed, seed + 1, dimMap, ds);
  expect(ds.map((d) => d.message)).toEqual([]);
  return { weights, inputs };
}

function expectClose(outputs: ReadonlyMap<string, RunOutput>, ref: ReadonlyMap<string, Tensor64>, what: string, tol = 1e-4): void {
  expect(ref.size).toBeGreaterThan(0);
  for (const [name, want] of ref) {
    const got = outputs.get(name);
    expect(got?.shape, `${what}: ${name}`).toEqual(want.shape);
    expect(got?.data.length ?? 0, `${what}: ${name}`).toBe(want.data.length);
    const err = relError(got?.data ?? [], want);
    console.log(`${what} ${name}${JSON.stringify(want.shape)}: max rel error ${err.toExponential(2)}`);
    expect(err, `${what}: ${name}`).toBeLessThanOrEqual(tol);
  }
}

describe('whole models on WebGPU vs the float64 interpreter (max rel error <= 1e-4, floor 1% of max|ref|)', () => {
  it('GPT-2 tiny (2 layers, d=64, 4 heads, vocab 256), B=2, T=32; then T=17 reuses every pipeline', { timeout: 120_000 }, async () => {
    const g = example('gpt2.tfx', gpt2Tiny);
    const { plan, session } = await sessionFor(g);
    const { weights, inputs } = seededData(g, { B: 2, T: 32 }, 11);
    session.loadWeights(weights);
    const r = await session.run(inputs);
    expect(r.dims).toEqual(new Map([['B', 2], ['T', 32]]));
    expectClose(r.outputs, interpret(g, { inputs, weights }).outputs, 'gpt2 T=32');
    console.log(`gpt2 tiny: ${plan.steps.length} launches, ${plan.kernels.length} distinct kernels, peak GPU memory ${r.memory.peakBytes} B`);

    const created = pipelineCreations(gpu.dev.device);
    const second = seededData(g, { B: 2, T: 17 }, 12).inputs;
    const r2 = await session.run(second);
    expect(pipelineCreations(gpu.dev.device), 'changing T rebuilt pipelines').toBe(created);
    expect(session.stats.pipelinesCreated).toBe(plan.kernels.length);
    expectClose(r2.outputs, interpret(g, { inputs: second, weights }).outputs, 'gpt2 T=17');
  });

  it('Llama-style (GQA 4/2 heads, RoPE, SwiGLU): prefill T=9 with P=0, then one decode step from the GPU cache', { timeout: 120_000 }, async () => {
    const overrides = { layers: 2, d: 32, heads: 4, kv_heads: 2, ffn: 48, vocab: 64 };
    const g = example('llama.tfx', overrides);
    const { session } = await sessionFor(g);
    const { weights, inputs } = seededData(g, { B: 2, T: 9, P: 0 }, 21);
    session.loadWeights(weights);
    const first = await session.run(inputs);
    expect(first.dims.get('P')).toBe(0);
    const ref1 = interpret(g, { inputs, weights });
    expectClose(first.outputs, ref1.outputs, 'llama prefill');

    const tokens = seededData(g, { B: 2, T: 1, P: 9 }, 22).inputs.get('tokens');
    if (tokens === undefined) throw new Error('no tokens');
    const gpuIn = new Map([['tokens', tokens], ...cacheFrom(asTensors(first.outputs))]);
    const refIn = new Map([['tokens', tokens], ...cacheFrom(ref1.outputs)]);
    const second = await session.run(gpuIn);
    expect(Object.fromEntries(second.dims)).toMatchObject({ T: 1, P: 9 });
    expectClose(second.outputs, interpret(g, { inputs: refIn, weights }).outputs, 'llama decode');
  });

  it('encoder-decoder (nn.Transformer names), S=11, T=7', { timeout: 120_000 }, async () => {
    const g = example('transformer.tfx', { layers: 2, d: 32, heads: 4, ffn: 64, vocab: 64 });
    const { session } = await sessionFor(g);
    const { weights, inputs } = seededData(g, { B: 2, S: 11, T: 7 }, 31);
    session.loadWeights(weights);
    const r = await session.run(inputs);
    expectClose(r.outputs, interpret(g, { inputs, weights }).outputs, 'transformer');
  });
});

const missing = torchMissingReason();
if (missing !== undefined) console.warn(`PyTorch oracle test skipped: ${missing}`);

describe('GPT-2 tiny on WebGPU vs PyTorch', () => {
  // Oracle: f32 weights, float64 torch math. The bar is the same as against the interpreter:
  // max |gpu - torch| / max |torch| <= 1e-4 (the oracle's own relError: scale-relative).
  it.skipIf(missing !== undefined)('logits match bench/oracle/gpt2_oracle.py (B=2, T=32)', { timeout: 120_000 }, async () => {
    const dir = runOracle('gpt2_oracle.py', ['--seed', '1', '--layers', '2', '--d', '64', '--heads', '4', '--vocab', '256', '--ctx', '64', '--batch', '2', '--seq', '32']);
    const { weights, inputs, expected } = readOracle(dir);
    const g = example('gpt2.tfx', gpt2Tiny);
    const { session } = await sessionFor(g);
    session.loadWeights(weights);
    const r = await session.run(inputs);
    for (const [name, want] of expected) {
      const got = r.outputs.get(name);
      expect(got?.shape).toEqual(want.shape);
      let scale = 0;
      let diff = 0;
      want.data.forEach((w, i) => {
        scale = Math.max(scale, Math.abs(w));
        diff = Math.max(diff, Math.abs((got?.data[i] ?? NaN) - w));
      });
      console.log(`gpt2 vs torch ${name}: max|gpu - torch| / max|torch| = ${(diff / scale).toExponential(2)}`);
      expect(diff / scale).toBeLessThanOrEqual(1e-4);
    }
  });
});

// ---- f16 ------------------------------------------------------------------------------------

const halfSrc = `config {
  d = 33
}
dims B, T
input x: f16[B, T, d]
weight w: f16[d, 7] = "w"
weight g: f16[d] = "g"
weight b: f16[d] = "b"
output mm: f16[B, T, 7]
output sm: f16[B, T, d]
output ln: f16[B, T, d]
model half {
  mm = x @ w
  sm = softmax(x * 4, axis=-1)
  ln = layernorm(x, g, b)
}
`;

const f16 = (v: number): number => f16FromBits(f16Bits(v));

function halfData(g: Graph, B: number, T: number): { weights: Map<string, Tensor64>; inputs: Map<string, Tensor64> } {
  const { weights, inputs } = seededData(g, { B, T }, 41);
  // f16-representable values on both sides: the comparison sees only the kernels' rounding.
  const round = (m: Map<string, Tensor64>): Map<string, Tensor64> =>
    new Map([...m].map(([k, t]) => [k, { ...t, data: t.data.map(f16) }]));
  return { weights: round(weights), inputs: round(inputs) };
}

describe('f16 models', () => {
  it('compile to WGSL with `enable f16` and match the interpreter within f16 rounding', { timeout: 60_000 }, async () => {
    const g = graphOf(halfSrc, 'half.tfx');
    if (!gpu.dev.features.has('shader-f16')) {
      // Without the feature the runtime must refuse clearly (lavapipe has it, so CI takes the other branch).
      await expect(createSession(gpu.dev, compilePlan(g, { target: targetLimitsOf(gpu.dev) }))).rejects.toThrow(/shader-f16/);
      return;
    }
    const { plan, session } = await sessionFor(g);
    for (const k of plan.kernels) expect(k.source.wgsl, k.name).toMatch(/^enable f16;$/m);
    for (const k of plan.kernels) expect(k.features).toContain('shader-f16');
    const { weights, inputs } = halfData(g, 2, 13);
    session.loadWeights(weights);
    const r = await session.run(inputs);
    for (const o of r.outputs.values()) expect(o.dtype).toBe('f16');
    // The kernels read exact f16 inputs, accumulate in f32 and round once to f16 on the store;
    // the interpreter keeps float64. The gap is one f16 rounding: at most half an ulp, 2^-11 ~ 4.9e-4
    // relative for normal values; 1e-3 leaves room for the f32 accumulation (~1e-6). Same floor.
    expectClose(r.outputs, interpret(g, { inputs, weights }).outputs, 'f16', 1e-3);
  });

  it('says clearly that the adapter lacks shader-f16 when it does', async () => {
    const g = graphOf(halfSrc, 'half.tfx');
    const plan = compilePlan(g, { target: targetLimitsOf(gpu.dev) });
    // The same device seen without the feature (a proxy: every other member is the real one).
    const real = gpu.dev.device;
    const noF16 = new Proxy(real, {
      get(target, prop) {
        if (prop === 'features') return new Set([...real.features].filter((f) => f !== 'shader-f16'));
        const v = Reflect.get(target, prop, target) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    const err = await createSession(noF16, plan).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RuntimeError);
    expect((err as RuntimeError).kind).toBe('feature');
    expect((err as RuntimeError).message).toMatch(/needs WebGPU feature\(s\) shader-f16, which this adapter does not offer/);
  });
});
