// `tfc bench model`: a seeded or exported GPT-2 prefill (fused and --no-fuse tfc against ONNX
// Runtime Web) with the fusion profile, checked against float64; the GPT-2 export helpers that
// `tfc bench decode` (bench-decode.ts) shares.
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
import { targetLimitsOf } from '../runtime/target.js';
import { benchDevice, ortRunner, tfcRunner, type Runner } from './bench-peers.js';
import { type StepSources, fusionProfile } from '../kernel/analysis/fusion-profile.js';
import { type CaseResult, type SystemResult, Progress, compare } from './bench-report.js';
import { type BenchOptions, type Contender, benchCompilation, benchStages, graphFlops, measureAll, repoRoot, skipped, wanted } from './bench.js';

export const modelPresets: Readonly<Record<string, Readonly<Record<string, number>>>> = {
  tiny: { layers: 2, d: 128, heads: 4, vocab: 512, ctx: 256, T: 128 },
  // GPT-2 small's real shapes: wte alone is 154 MB, above lavapipe's 128 MiB storage binding.
  small: { layers: 12, d: 768, heads: 12, vocab: 50257, ctx: 1024, T: 128 },
  // A Llama-style model of about 100M parameters (issue 13's second prefill target), for examples/llama.tfx.
  llama100m: { layers: 12, d: 768, heads: 12, kv_heads: 4, ffn: 2048, vocab: 32000, T: 128 },
};

export function exportGpt2(set: Readonly<Record<string, number>>, kv: boolean): string {
  const key = Object.entries(set)
    .map(([k, v]) => `${k}${v}`)
    .join('-');
  const dir = join(tmpdir(), `tfc-bench-gpt2-${key}${kv ? '-kv' : ''}`);
  const done = join(dir, kv ? 'decode_expected.safetensors' : 'model.onnx');
  if (existsSync(done)) return dir;
  const args = ['--out', dir, '--layers', String(set['layers']), '--d', String(set['d']), '--heads', String(set['heads']), '--vocab', String(set['vocab']), '--ctx', String(set['ctx']), '--batch', '1', '--seq', String(set['T'])];
  // A sliding window (the decode bench's tfc-paged-sw row): every query sees its `window` most recent positions.
  if (set['window'] !== undefined) args.push('--window', String(set['window']));
  const script = kv ? join(repoRoot, 'bench', 'oracle', 'gpt2_oracle.py') : join(repoRoot, 'bench', 'export_gpt2.py');
  const r = spawnSync('/usr/bin/python3', [script, ...args, ...(kv ? ['--kv'] : [])], { encoding: 'utf8', env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' } });
  if (r.status !== 0) throw new Error(`${script} failed: ${(r.stderr ?? r.error?.message ?? '').slice(-400)}`);
  return dir;
}

export function readDir(dir: string, file: string): Map<string, HostTensor> {
  const f = readSafetensors(readFileSync(join(dir, file)), file);
  return new Map([...f.tensors].map(([n, t]) => [n, { dtype: t.dtype, shape: t.shape, data: t.data }]));
}

export function configOverrides(set: Readonly<Record<string, number>>): Map<string, number> {
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


