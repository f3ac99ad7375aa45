// examples/charlm through the generated-module runtime on this machine's WebGPU adapter: prefill
// time of a 12-token prompt and greedy decode tokens/s, fused (the default webgpu pipeline: decode
// takes the split-K attention kernels under `when: T <= 1`) against --no-fuse. Each plan is loaded,
// warmed up with one short generate (lavapipe compiles a pipeline at its first dispatch), then timed
// over REPS generates of N tokens; fused and unfused alternate twice so load drifts hit both.
// Medians of wall-clock times as `generate` reports them (dispatch + logits readback per step).
// Run: npm run build && node bench/charlm-generate.mjs [REPS=7] [N=100]
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';

const repo = new URL('../', import.meta.url).pathname;
const dist = (p) => import(join(repo, 'dist', p));
const { checkSource } = await dist('src/check/check-source.js');
const { runPipeline } = await dist('src/passes/driver.js');
const { createPassContext } = await dist('src/passes/pass.js');
const { pipelines, unfusedPipeline } = await dist('src/passes/pipeline.js');
const { compilePlan } = await dist('src/compile/plan.js');
const { describeModel } = await dist('codegen/host/emit.js');
const { acquireDevice, createLoadedModel, targetLimitsOf } = await dist('src/runtime/index.js');

const reps = Number(process.argv[2] ?? 7);
const n = Number(process.argv[3] ?? 100);
const dev = await acquireDevice();
const r = checkSource(readFileSync(join(repo, 'examples/charlm/charlm.tfx'), 'utf8'), 'charlm.tfx');
if (r.graph === undefined) throw new Error(r.diagnostics.map((d) => d.message).join('\n'));
const vocab = JSON.parse(readFileSync(join(repo, 'examples/charlm/vocab.json'), 'utf8')).chars;
const prompt = [...'This License'].map((c) => vocab.indexOf(c));
const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
console.log(`adapter: ${dev.adapterInfo.description || dev.adapterInfo.device}; prompt ${prompt.length} tokens, ${n} new, ${reps} reps`);
const texts = new Set();
for (const fused of [true, false, true, false]) {
  const g = runPipeline(r.graph, fused ? pipelines.webgpu : unfusedPipeline('webgpu'), createPassContext({ target: 'webgpu' }));
  const plan = compilePlan(g, { target: targetLimitsOf(dev) });
  const model = await createLoadedModel(dev, plan, { name: plan.model, ...describeModel(plan), context: 128 }, join(repo, 'examples/charlm/charlm.safetensors'));
  await model.generate(prompt, { maxNewTokens: 8, temperature: 0 });
  const prefill = [];
  const rate = [];
  for (let i = 0; i < reps; i++) {
    const o = await model.generate(prompt, { maxNewTokens: n, temperature: 0 });
    texts.add(o.tokens.join(','));
    prefill.push(o.prefillMs);
    rate.push((1000 * o.decodeMs.length) / o.decodeMs.reduce((a, b) => a + b, 0));
  }
  model.dispose();
  console.log(
    `${fused ? 'fused  ' : 'unfused'} ${String(plan.steps.length).padStart(3)} steps: prefill median ${median(prefill).toFixed(1)} ms, ` +
      `decode median ${median(rate).toFixed(1)} tokens/s (load average ${loadavg().map((x) => x.toFixed(1)).join(' ')})`,
  );
}
console.log(texts.size === 1 ? 'greedy tokens: identical in every run' : `greedy tokens DIFFER between runs (${texts.size} variants)`);
