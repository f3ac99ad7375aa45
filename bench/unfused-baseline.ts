// The unfused WebGPU baseline (issue 4), printed for the notes; no asserts anywhere.
//   npm run build && node dist/bench/unfused-baseline.js
// Prints: kernel launches per GPT-2 layer (unfused: cleanup passes only), peak GPU memory for
// GPT-2 tiny and GPT-2 small at T=128 (tiny measured by the runtime; small from the plan with the
// runtime's own liveness assignment, since wte alone, 154 MB, is over lavapipe's 128 MiB binding
// cap), the wall time of a GPT-2 tiny forward (B=2, T=32) after warm-up, and of one unfused causal
// attention at T=1024, dh=64, 12 heads (B=1). Times are medians of several runs, wall clock around
// session.run (upload, one command buffer, readback); with timestamp-query also the GPU sum.
import { readFileSync } from 'node:fs';
import { checkSource } from '../src/check/check-source.js';
import { randomInputs, randomWeights } from '../src/cli/random.js';
import { gatherIndexRanges } from '../src/cli/webgpu.js';
import type { Diagnostic } from '../src/diag/diagnostic.js';
import type { Graph } from '../src/graph/ir.js';
import { neededTensors } from '../src/io/check-tensors.js';
import { compilePlan } from '../src/compile/plan.js';
import { evalSize, type Plan } from '../src/kernel/plan/plan.js';
import { runPipeline } from '../src/passes/driver.js';
import { createPassContext } from '../src/passes/pass.js';
import { graphPasses } from '../src/passes/pipeline.js';
import { paddedBytes } from '../src/runtime/convert.js';
import { acquireDevice, type AcquiredDevice } from '../src/runtime/device.js';
import { assignTemps } from '../src/runtime/memory.js';
import { createSession } from '../src/runtime/session.js';
import { targetLimitsOf } from '../src/runtime/target.js';

const gpt2Tiny = { layers: 2, d: 64, heads: 4, vocab: 256, ctx: 64 };
const gpt2Small = { layers: 12, d: 768, heads: 12, vocab: 50257, ctx: 1024 };

function unfused(src: string, file: string, overrides: Record<string, number>): Graph {
  const r = checkSource(src, file, new Map(Object.entries(overrides)));
  if (r.graph === undefined) throw new Error(`${file}: ${r.diagnostics.map((d) => d.message).join('; ')}`);
  return runPipeline(r.graph, graphPasses, createPassContext({ target: 'webgpu' }));
}

const gpt2Src = readFileSync('examples/gpt2.tfx', 'utf8');
const gpt2 = (o: Record<string, number>): Graph => unfused(gpt2Src, 'examples/gpt2.tfx', o);

const mib = (b: number): string => `${(b / 2 ** 20).toFixed(2)} MiB`;
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

/** Peak bytes the runtime would hold (weights + inputs/outputs + temps after liveness reuse). */
function plannedPeak(plan: Plan, dims: ReadonlyMap<string, number>): { weights: number; io: number; temps: number; noReuse: number } {
  let weights = 0;
  let io = 0;
  const temps = [];
  for (const b of plan.buffers) {
    const bytes = paddedBytes(b.dtype, evalSize(b.elements, dims));
    if (b.kind === 'weight') weights += bytes;
    else if (b.kind === 'temp') temps.push({ id: b.id, bytes, firstUse: b.firstUse, lastUse: b.lastUse });
    else io += bytes;
  }
  const a = assignTemps(temps);
  let t = 0;
  for (const i of a.usedSlots) t += a.slotBytes[i] ?? 0;
  return { weights, io, temps: t, noReuse: temps.reduce((s, x) => s + x.bytes, 0) };
}

function seeded(g: Graph, dims: Record<string, number>, seed: number): { weights: ReturnType<typeof randomWeights>; inputs: ReturnType<typeof randomInputs> } {
  const ds: Diagnostic[] = [];
  const m = new Map(Object.entries(dims));
  const weights = randomWeights(neededTensors(g), seed, m, ds);
  const inputs = randomInputs(g, neededTensors(g), seed + 1, m, ds);
  if (ds.length > 0) throw new Error(ds.map((d) => d.message).join('; '));
  return { weights, inputs };
}

async function timeRuns(dev: AcquiredDevice, g: Graph, dims: Record<string, number>, runs: number): Promise<{ wallMs: number; gpuMs: number | undefined; peak: number; plan: Plan }> {
  const plan = compilePlan(g, { target: targetLimitsOf(dev) });
  const s = await createSession(dev, plan, { inputRanges: gatherIndexRanges(g) });
  try {
    const { weights, inputs } = seeded(g, dims, 7);
    s.loadWeights(weights);
    await s.run(inputs); // warm-up: pipelines, buffers
    const walls: number[] = [];
    const gpus: number[] = [];
    let peak = 0;
    for (let i = 0; i < runs; i++) {
      const t0 = performance.now();
      const r = await s.run(inputs);
      walls.push(performance.now() - t0);
      peak = r.memory.peakBytes;
    }
    const timed = await s.run(inputs, { timing: true });
    if (timed.timing !== undefined) gpus.push(timed.timing.reduce((a, t) => a + t.ns, 0) / 1e6);
    return { wallMs: median(walls), gpuMs: gpus[0], peak, plan };
  } finally {
    s.dispose();
  }
}

const attentionSrc = `config {
  heads = 12
  dh = 64
}
dims B, T
input q: f32[B, heads, T, dh]
input k: f32[B, heads, T, dh]
input v: f32[B, heads, T, dh]
output o: f32[B, heads, T, dh]
model attention {
  causal = grid[T, T](i, j) => j <= i
  o = softmax(where(causal, q @ transpose(k) / sqrt(dh), -inf), axis=-1) @ v
}
`;

async function main(): Promise<void> {
  const one = compilePlan(gpt2({ ...gpt2Tiny, layers: 1 }));
  const two = compilePlan(gpt2(gpt2Tiny));
  const perLayer = two.steps.length - one.steps.length;
  console.log(`kernels per GPT-2 layer (unfused): ${perLayer} launches (model: ${two.steps.length} launches at 2 layers, ${two.kernels.length} distinct kernels)`);
  console.log(`  the 1-layer model's launches: ${one.steps.map((s) => s.kernel).join(' ')}`);

  for (const [name, cfg] of [
    ['GPT-2 tiny', gpt2Tiny],
    ['GPT-2 small', gpt2Small],
  ] as const) {
    const dims = new Map([['B', 1], ['T', 128]]);
    const p = plannedPeak(compilePlan(gpt2(cfg)), dims);
    console.log(
      `peak GPU memory, ${name}, B=1, T=128 (plan + liveness): ${mib(p.weights + p.io + p.temps)} = weights ${mib(p.weights)} + io ${mib(p.io)} + temps ${mib(p.temps)} (temps without reuse ${mib(p.noReuse)})`,
    );
  }

  const dev = await acquireDevice();
  console.log(`device: ${dev.adapterInfo.description || dev.adapterInfo.device} (${[...dev.features].sort().join(', ')})`);
  const tinyPeak = await timeRuns(dev, gpt2(gpt2Tiny), { B: 1, T: 128 }, 1);
  console.log(`peak GPU memory, GPT-2 tiny, B=1, T=128 (measured by the runtime, incl. uniforms): ${mib(tinyPeak.peak)}`);
  const fwd = await timeRuns(dev, gpt2(gpt2Tiny), { B: 2, T: 32 }, 7);
  console.log(`GPT-2 tiny forward, B=2, T=32, after warm-up: ${fwd.wallMs.toFixed(1)} ms wall (median of 7)${fwd.gpuMs !== undefined ? `, ${fwd.gpuMs.toFixed(1)} ms GPU (timestamp sum)` : ''}`);
  const att = await timeRuns(dev, unfused(attentionSrc, 'attention.tfx', {}), { B: 1, T: 1024 }, 3);
  console.log(
    `unfused causal attention, B=1, 12 heads, T=1024, dh=64 (${att.plan.steps.length} launches: ${att.plan.steps.map((s) => s.kernel).join(', ')}): ` +
      `${att.wallMs.toFixed(0)} ms wall (median of 3)${att.gpuMs !== undefined ? `, ${att.gpuMs.toFixed(0)} ms GPU` : ''}, peak ${mib(att.peak)}`,
  );
}

await main();
