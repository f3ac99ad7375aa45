// GPT-2 small shape (12 layers, d=768, vocab 50257, HF names, seeded random weights) through the
// generated-module runtime on WebGPU at T=128, against the float64 PyTorch oracle. Heavy (~500 MB of
// weights, minutes on lavapipe), so it is a script, not a test: `npm run check:gpt2-small`.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const repo = new URL('../', import.meta.url).pathname;
const dist = (p) => import(join(repo, 'dist', p));
const { checkSource } = await dist('src/check/check-source.js');
const { runPipeline } = await dist('src/passes/driver.js');
const { createPassContext } = await dist('src/passes/pass.js');
const { pipelines } = await dist('src/passes/pipeline.js');
const { compilePlan } = await dist('src/compile/plan.js');
const { webgpuDefaultLimits } = await dist('src/kernel/schedule/schedule.js');
const { describeModel } = await dist('codegen/host/emit.js');
const { acquireDevice, createLoadedModel, parseSafetensors } = await dist('src/runtime/index.js');
const { readSafetensors } = await dist('src/io/safetensors.js');

/** The oracle's expected F64 tensor (read as exact doubles). */
const readExpected = (path, name) => {
  const t = readSafetensors(readFileSync(path), path).tensors.get(name);
  if (t === undefined) throw new Error(`${path} has no tensor '${name}'`);
  return t;
};


const cfg = { layers: 12, d: 768, heads: 12, vocab: 50257, ctx: 1024 };
const T = 128;
const dir = mkdtempSync(join(tmpdir(), 'tfc-gpt2-small-'));
const t0 = performance.now();
try {
  execFileSync('/usr/bin/python3', [join(repo, 'bench/oracle/gpt2_oracle.py'), '--out', dir, '--seed', '0', '--layers', '12', '--d', '768', '--heads', '12', '--vocab', '50257', '--ctx', '1024', '--batch', '1', '--seq', String(T)], { stdio: 'inherit' });
  const tOracle = performance.now();
  const file = join(repo, 'examples/gpt2.tfx');
  const r = checkSource(readFileSync(file, 'utf8'), 'examples/gpt2.tfx', new Map(Object.entries(cfg)));
  if (r.graph === undefined) throw new Error(r.diagnostics.map((d) => d.message).join('\n'));
  const g = runPipeline(r.graph, pipelines.webgpu, createPassContext({ target: 'webgpu' }));
  const plan = compilePlan(g, { target: webgpuDefaultLimits });
  const dev = await acquireDevice();
  const model = await createLoadedModel(dev, plan, { name: plan.model, ...describeModel(plan), context: cfg.ctx }, join(dir, 'weights.safetensors'));
  const tLoad = performance.now();
  const inputs = parseSafetensors(readFileSync(join(dir, 'inputs.safetensors')));
  const expected = readExpected(join(dir, 'expected.safetensors'), 'logits');
  const tRun = performance.now();
  const out = (await model.forward({ tokens: inputs.get('tokens') })).get('logits');
  const runMs = performance.now() - tRun;
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < expected.data.length; i++) {
    diff = Math.max(diff, Math.abs(out.data[i] - expected.data[i]));
    scale = Math.max(scale, Math.abs(expected.data[i]));
  }
  // expected.safetensors holds the float64 oracle's logits as F64.
  console.log(`gpt2-small T=${T}: logits [${out.shape}], max |diff| ${diff.toExponential(2)}, relative to max |logit| ${(diff / scale).toExponential(2)}`);
  console.log(`oracle ${((tOracle - t0) / 1000).toFixed(0)} s, compile+load ${((tLoad - tOracle) / 1000).toFixed(0)} s, forward ${(runMs / 1000).toFixed(1)} s (${dev.adapterInfo.description})`);
  model.dispose();
  process.exitCode = diff / scale < 1e-4 ? 0 : 1;
} finally {
  rmSync(dir, { recursive: true, force: true });
}
