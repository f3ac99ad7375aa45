// `tfc bench model|decode`: a seeded or exported GPT-2 prefill (fused and --no-fuse tfc against
// ONNX Runtime Web) with the fusion profile, and KV-cache decode steps; checked against float64.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import type { Diagnostic } from '../diag/diagnostic.js';
import { neededTensors } from '../io/check-tensors.js';
import { interpret } from '../interp/interpret.js';
import type { Tensor64 } from '../base/tensor.js';
import { randomInputs, randomWeights } from './random.js';
import { readSafetensors } from '../io/safetensors.js';
import type { HostTensor } from '../runtime/session.js';
import { createSession } from '../runtime/session.js';
import { targetLimitsOf } from '../runtime/target.js';
import { benchDevice, ortRunner, tfcRunner, type Runner } from './bench-peers.js';
import { type StepSources, fusionProfile } from '../kernel/analysis/fusion-profile.js';
import { lowerBound } from '../kernel/analysis/report.js';
import { type CaseResult, type SystemResult, Progress, compare, median } from './bench-report.js';
import { type BenchOptions, type Contender, benchCompilation, benchPlan, benchStages, graphFlops, measureAll, repoRoot, skipped, wanted } from './bench.js';

export const modelPresets: Readonly<Record<string, Readonly<Record<string, number>>>> = {
  tiny: { layers: 2, d: 128, heads: 4, vocab: 512, ctx: 256, T: 128 },
  // GPT-2 small's real shapes: wte alone is 154 MB, above lavapipe's 128 MiB storage binding.
  small: { layers: 12, d: 768, heads: 12, vocab: 50257, ctx: 1024, T: 128 },
  // A Llama-style model of about 100M parameters (issue 13's second prefill target), for examples/llama.tfx.
  llama100m: { layers: 12, d: 768, heads: 12, kv_heads: 4, ffn: 2048, vocab: 32000, T: 128 },
};

function exportGpt2(set: Readonly<Record<string, number>>, kv: boolean): string {
  const key = Object.entries(set)
    .map(([k, v]) => `${k}${v}`)
    .join('-');
  const dir = join(tmpdir(), `tfc-bench-gpt2-${key}${kv ? '-kv' : ''}`);
  const done = join(dir, kv ? 'decode_expected.safetensors' : 'model.onnx');
  if (existsSync(done)) return dir;
  const args = ['--out', dir, '--layers', String(set['layers']), '--d', String(set['d']), '--heads', String(set['heads']), '--vocab', String(set['vocab']), '--ctx', String(set['ctx']), '--batch', '1', '--seq', String(set['T'])];
  const script = kv ? join(repoRoot, 'test', 'oracle', 'gpt2_oracle.py') : join(repoRoot, 'bench', 'export_gpt2.py');
  const r = spawnSync('/usr/bin/python3', [script, ...args, ...(kv ? ['--kv'] : [])], { encoding: 'utf8', env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' } });
  if (r.status !== 0) throw new Error(`${script} failed: ${(r.stderr ?? r.error?.message ?? '').slice(-400)}`);
  return dir;
}

function readDir(dir: string, file: string): Map<string, HostTensor> {
  const f = readSafetensors(readFileSync(join(dir, file)), file);
  return new Map([...f.tensors].map(([n, t]) => [n, { dtype: t.dtype, shape: t.shape, data: t.data }]));
}

function configOverrides(set: Readonly<Record<string, number>>): Map<string, number> {
  return new Map(Object.entries(set).filter(([k]) => k !== 'T'));
}

/**
 * A model other than GPT-2 (no ONNX export, no PyTorch oracle here): seeded weights and tokens
 * (`tfc init-weights` / `random-inputs` values), the float64 interpreter as the reference, tfc
 * fused and --no-fuse. Dims other than T that are not set are 0 (an empty KV cache: prefill).
 */
async function benchSeededModel(o: BenchOptions, file: string, set: Readonly<Record<string, number>>, presetName: string): Promise<CaseResult[]> {
  const dev = await benchDevice();
  const systems = ['tfc', 'tfc --no-fuse'].filter((s) => wanted(o, s));
  const src = readFileSync(file, 'utf8');
  const checked = benchCompilation(src, file, configOverrides(set), false).checked;
  const dims = new Map(checked.dims.map((d) => [d, d === 'T' ? (set['T'] ?? 1) : d === 'B' ? 1 : 0]));
  const ds: Diagnostic[] = [];
  const needed = neededTensors(checked);
  const weights64 = randomWeights(needed, 1, dims, ds);
  const inputs64 = randomInputs(checked, needed, 2, dims, ds);
  if (ds.length > 0) throw new Error(`${file}: ${ds.map((d) => d.message).join('; ')}`);
  const host = (m: Map<string, Tensor64>): Map<string, HostTensor> => new Map([...m].map(([n, t]) => [n, { dtype: t.dtype, shape: t.shape, data: t.dtype === 'i32' ? Int32Array.from(t.data) : Float32Array.from(t.data) }]));
  const output = checked.outputs[0]?.name ?? 'logits';
  o.err(`tfc bench model: float64 reference of ${file} (the interpreter; a minute at ~100M parameters)\n`);
  const want = interpret(checked, { inputs: inputs64, weights: weights64 }).outputs.get(output);
  if (want === undefined) throw new Error(`${file}: no output ${output}`);
  const label = `${presetName} T=${set['T']}`;
  const progress = new Progress(systems.length, o.err, o.isTty);
  const sources = new Map<string, StepSources>();
  const contenders: Contender[] = systems.map((system) => ({
    system,
    make: async (): Promise<Runner> => {
      const st = benchStages(src, file, configOverrides(set), system === 'tfc', targetLimitsOf(dev));
      sources.set(system, st);
      return tfcRunner({ system, plan: st.plan, weights: host(weights64), inputs: host(inputs64), output });
    },
    check: (got: Float32Array) => compare(got, want.data),
    tol: 1e-3,
  }));
  const results = await measureAll(contenders, o, progress, label);
  progress.end();
  const flops = graphFlops(checked, dims);
  const name = `${basename(file, '.tfx')} ${label}`;
  return [{ suite: 'model', name, params: { ...set, preset: presetName }, results, work: { flops }, ...fusionOf(results, sources, dims) }];
}

/** The fusion profile of a model case from the two tfc systems' step minimums, when both ran. */
function fusionOf(results: readonly SystemResult[], sources: ReadonlyMap<string, StepSources>, dims: ReadonlyMap<string, number>): { fusion?: ReturnType<typeof fusionProfile> } {
  const fusedR = results.find((r) => r.system === 'tfc' && r.stepMinMs !== undefined);
  const unfusedR = results.find((r) => r.system === 'tfc --no-fuse' && r.stepMinMs !== undefined);
  const fs = sources.get('tfc');
  const us = sources.get('tfc --no-fuse');
  if (fusedR?.stepMinMs === undefined || unfusedR?.stepMinMs === undefined || fs === undefined || us === undefined) return {};
  return { fusion: fusionProfile(fs, fusedR.stepMinMs, us, unfusedR.stepMinMs, dims) };
}

export async function benchModel(o: BenchOptions, file: string, set: Readonly<Record<string, number>>, presetName: string): Promise<CaseResult[]> {
  if (!basename(file).startsWith('gpt2')) return benchSeededModel(o, file, set, presetName);
  const dev = await benchDevice();
  const systems = ['tfc', 'tfc --no-fuse', 'ort'].filter((s) => wanted(o, s));
  const progress = new Progress(systems.length, o.err, o.isTty);
  const label = `${presetName} T=${set['T']}`;
  let dir: string;
  try {
    dir = exportGpt2(set, false);
  } catch (e) {
    progress.end();
    const note = e instanceof Error ? e.message : String(e);
    return [{ suite: 'model', name: `gpt2 ${label}`, params: { ...set, preset: presetName }, results: systems.map((s) => ({ ...skipped(s, note), status: 'failed' as const })) }];
  }
  const weights = readDir(dir, 'weights.safetensors');
  const inputs = readDir(dir, 'inputs.safetensors');
  const expected = readDir(dir, 'expected.safetensors').get('logits');
  const tokens = inputs.get('tokens');
  if (expected === undefined || tokens === undefined) throw new Error('export: missing logits or tokens');
  const check = (got: Float32Array): { maxAbsErr: number; relErr: number } => compare(got, expected.data);
  const src = readFileSync(file, 'utf8');
  const contenders: Contender[] = [];
  const sources = new Map<string, StepSources>();
  for (const system of systems) {
    const make = async (): Promise<Runner> => {
      if (system.startsWith('tfc')) {
        const st = benchStages(src, file, configOverrides(set), system === 'tfc', targetLimitsOf(dev));
        sources.set(system, st);
        return tfcRunner({ system, plan: st.plan, weights, inputs, output: 'logits' });
      }
      const model = readFileSync(join(dir, 'model.onnx'));
      const ids = BigInt64Array.from(Array.from(tokens.data, (x) => BigInt(x)));
      return ortRunner(system, new Uint8Array(model.buffer, model.byteOffset, model.byteLength), [{ name: 'tokens', type: 'int64', dims: tokens.shape, data: ids }], 'logits');
    };
    // Logits over L layers in f32 against the float64 oracle: 1e-3 of max|logit|.
    contenders.push({ system, make, check, tol: 1e-3 });
  }
  const results = await measureAll(contenders, o, progress, label);
  progress.end();
  const flops = graphFlops(benchCompilation(src, file, configOverrides(set), false).graph, new Map([['B', 1], ['T', set['T'] ?? 1]]));
  // Each fused kernel against the unfused kernels it replaced, from both tfc plans' step minimums.
  return [{ suite: 'model', name: `gpt2 ${label}`, params: { ...set, preset: presetName }, results, work: { flops }, ...fusionOf(results, sources, new Map([['B', 1], ['T', set['T'] ?? 1]])) }];
}

/** Tokens/s of one-token decode steps with a KV cache (gpt2-kv.tfx), after a prefill of T tokens. */
export async function benchDecode(o: BenchOptions, set: Readonly<Record<string, number>>, steps: number): Promise<CaseResult[]> {
  const dev = await benchDevice();
  const file = join(repoRoot, 'examples', 'variants', 'gpt2-kv.tfx');
  const systems = ['tfc', 'tfc --no-fuse'].filter((s) => wanted(o, s));
  const progress = new Progress(systems.length, o.err, o.isTty);
  let dir: string;
  try {
    dir = exportGpt2(set, true);
  } catch (e) {
    // The oracle could not run (e.g. P + steps beyond ctx): every system fails with its message.
    progress.end();
    const note = e instanceof Error ? (e.message.split('\n').find((l) => l.includes('Error')) ?? e.message.split('\n')[0] ?? '') : String(e);
    return [{ suite: 'decode', name: `gpt2-kv decode P=${set['T']} +${steps}`, params: { ...set, steps }, results: systems.map((system) => ({ system, status: 'failed' as const, timeSource: 'wall', wallMs: [], note: `the PyTorch oracle failed: ${note.trim()}` })) }];
  }
  const weights = readDir(dir, 'weights.safetensors');
  const prefill = readDir(dir, 'inputs.safetensors');
  const decodeIn = readDir(dir, 'decode_inputs.safetensors');
  const decodeWant = readDir(dir, 'decode_expected.safetensors').get('logits');
  if (decodeWant === undefined) throw new Error('oracle: no decode logits');
  const src = readFileSync(file, 'utf8');
  const layers = set['layers'] ?? 1;
  const results: SystemResult[] = [];
  for (const system of systems) {
    try {
      const plan = benchPlan(src, file, configOverrides(set), system === 'tfc', targetLimitsOf(dev));
      const session = await createSession(dev, plan);
      session.loadWeights(weights);
      const run = async (ins: Map<string, HostTensor>, timing: boolean): Promise<{ outs: Map<string, HostTensor>; gpuMs: number }> => {
        const r = await session.run(ins, { timing });
        const outs = new Map<string, HostTensor>([...r.outputs].map(([n, t]) => [n, { dtype: t.dtype, shape: t.shape, data: t.data }]));
        return { outs, gpuMs: (r.timing ?? []).reduce((a, t) => a + t.ns, 0) / 1e6 };
      };
      const nextInputs = (outs: Map<string, HostTensor>, token: number | readonly number[]): Map<string, HostTensor> => {
        const ids = typeof token === 'number' ? [token] : token;
        const m = new Map<string, HostTensor>([['tokens', { dtype: 'i32', shape: [1, ids.length], data: ids }]]);
        for (let l = 0; l < layers; l++) {
          for (const kv of ['key', 'value']) {
            const t = outs.get(`present.${l}.${kv}`);
            if (t === undefined) throw new Error(`no present.${l}.${kv}`);
            m.set(`past.${l}.${kv}`, t);
          }
        }
        return m;
      };
      // The prompt in chunks of at most 512 tokens (each chunk's logits [1, chunk, vocab] must fit
      // one storage binding: GPT-2's 1024 x 50257 f32 logits are 206 MB, over lavapipe's 128 MiB).
      const prompt = Array.from(prefill.get('tokens')?.data ?? [], Number);
      let pre = await run(new Map([...prefill].map(([n, t]) => (n === 'tokens' ? [n, { dtype: 'i32', shape: [1, Math.min(512, prompt.length)], data: prompt.slice(0, 512) }] : [n, t]))), false);
      for (let at = 512; at < prompt.length; at += 512) pre = await run(nextInputs(pre.outs, prompt.slice(at, at + 512)), false);
      const firstToken = decodeIn.get('tokens')?.data[0] ?? 0;
      const step1 = await run(nextInputs(pre.outs, firstToken), false);
      const got = step1.outs.get('logits');
      const err = compare(Float32Array.from(got?.data ?? []), decodeWant.data);
      const wallMs: number[] = [];
      const gpuMs: number[] = [];
      let outs = step1.outs;
      for (let i = 0; i < steps; i++) {
        const t0 = performance.now();
        const r = await run(nextInputs(outs, (firstToken + i + 1) % (set['vocab'] ?? 2)), true);
        wallMs.push(performance.now() - t0);
        gpuMs.push(r.gpuMs);
        outs = r.outs;
      }
      session.dispose();
      const isWrong = !(err.relErr <= 1e-3);
      results.push({
        system,
        status: isWrong ? 'wrong' : 'ok',
        timeSource: dev.features.has('timestamp-query') ? 'timestamp-query' : 'wall',
        wallMs,
        ...(dev.features.has('timestamp-query') ? { gpuMs } : {}),
        maxAbsErr: err.maxAbsErr,
        relErr: err.relErr,
        kernels: plan.steps.length,
        note: `${(1000 / median(wallMs)).toFixed(1)} tokens/s wall (cache grows from ${set['T']} to ${(set['T'] ?? 0) + steps})`,
      });
    } catch (e) {
      results.push({ system, status: 'failed', timeSource: 'wall', wallMs: [], note: e instanceof Error ? (e.message.split('\n')[0] ?? '') : String(e) });
    }
    progress.step(`decode ${system}`);
  }
  progress.end();
  // Bytes a step must move at the cache length of the middle measured step: weights and the cache read, logits and the new cache written.
  const lb = lowerBound(benchCompilation(src, file, configOverrides(set), false).graph, new Map([['B', 1], ['T', 1], ['P', (set['T'] ?? 0) + 1 + (steps >> 1)]]));
  return [{ suite: 'decode', name: `gpt2-kv decode P=${set['T']} +${steps}`, params: { ...set, steps }, results, work: { bytes: lb.bytesRead + lb.bytesWritten } }];
}

