// The generated host module (codegen/host) on lavapipe, for examples/charlm with its trained
// weights: prefill and every decode step match the float64 PyTorch model (examples/charlm/model.py)
// and greedy generation gives PyTorch's tokens; bad inputs are refused before any dispatch.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkSource } from '../../src/check/check-source.js';
import { compilePlan } from '../../src/compile/plan.js';
import { evalCondition } from '../../src/kernel/plan/plan.js';
import { webgpuDefaultLimits } from '../../src/kernel/schedule/schedule.js';
import { runPipeline } from '../../src/passes/driver.js';
import { createPassContext } from '../../src/passes/pass.js';
import { pipelines } from '../../src/passes/pipeline.js';
import { emitHostModule } from '../../codegen/host/emit.js';
import { testDevice } from './helpers.js';
import type { AcquiredDevice, CreateModelOptions, GenerateOptions, GenerateResult, LoadedModel, RunOutput, WeightSource } from '../../src/runtime/index.js';

const repo = new URL('../../', import.meta.url).pathname;
const weightsPath = join(repo, 'examples/charlm/charlm.safetensors');
const python = '/usr/bin/python3';
const hasTorch = existsSync(python) && (() => {
  try {
    execFileSync(python, ['-c', 'import torch'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

interface Oracle {
  prefill: number[][];
  steps: number[][];
  tokens: number[];
}

function oracle(ids: readonly number[], steps: number): Oracle {
  const out = execFileSync(python, [join(repo, 'examples/charlm/oracle.py'), weightsPath, ids.join(','), String(steps)], {
    cwd: join(repo, 'examples/charlm'),
    maxBuffer: 64 << 20,
  });
  return JSON.parse(out.toString()) as Oracle;
}

/** max |a - b| / max |b|: fp32 logits against float64. */
function relErr(a: ArrayLike<number>, b: readonly number[]): number {
  let diff = 0;
  let scale = 0;
  expect(a.length).toBe(b.length);
  b.forEach((v, i) => {
    diff = Math.max(diff, Math.abs((a[i] ?? NaN) - v));
    scale = Math.max(scale, Math.abs(v));
  });
  return diff / scale;
}

// The generated module is written into the repo (out/ is ignored) so that vite resolves its
// relative import of the runtime sources.
const dir = join(repo, `out/test-host-charlm-${process.pid}`);
interface GeneratedModel {
  readonly runtime: LoadedModel;
  forward(inputs: Readonly<Record<string, unknown>>): Promise<Readonly<Record<string, RunOutput>>>;
  generate(prompt: ArrayLike<number>, options?: GenerateOptions): Promise<GenerateResult>;
  dispose(): void;
}
interface GeneratedModule {
  createModel(device: AcquiredDevice, weights: WeightSource, options?: CreateModelOptions): Promise<GeneratedModel>;
}
let gen: GeneratedModule;

beforeAll(async () => {
  const src = readFileSync(join(repo, 'examples/charlm/charlm.tfx'), 'utf8');
  const r = checkSource(src, 'charlm.tfx');
  if (r.graph === undefined) throw new Error(r.diagnostics.map((d) => d.message).join('\n'));
  // As `tfc compile` does: the webgpu pipeline (fusion included), kernels for any adapter.
  const g = runPipeline(r.graph, pipelines.webgpu, createPassContext({ target: 'webgpu', verify: true }));
  const plan = compilePlan(g, { target: webgpuDefaultLimits });
  mkdirSync(dir, { recursive: true });
  const runtimeImport = relative(dir, join(repo, 'src/runtime/index.js'));
  writeFileSync(join(dir, 'model.ts'), await emitHostModule(plan, g, { runtimeImport, context: 128, sourceName: 'charlm.tfx' }));
  gen = (await import(/* @vite-ignore */ join(dir, 'model.ts'))) as GeneratedModule;
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('generated charlm module on WebGPU', () => {
  it.runIf(hasTorch)('matches float64 PyTorch for prefill, each decode step and greedy tokens', { timeout: 240_000 }, async () => {
    const dev = await testDevice();
    const progress: string[] = [];
    const model = await gen.createModel(dev, weightsPath, { onProgress: (p) => progress.push(p.phase) });
    expect(progress[0]).toBe('download');
    expect(progress.at(-1)).toBe('ready');
    expect(progress).toContain('upload');
    // "This License" in vocab ids ('\n' is 0, ' ' is 1, then ASCII order).
    const prompt = [...'This License'].map((ch) => (ch === '\n' ? 0 : ch.charCodeAt(0) - 31));
    const steps = 20;
    const ref = oracle(prompt, steps);

    const out = await model.forward({ tokens: prompt });
    const logits = out['logits'];
    if (logits === undefined) throw new Error('no logits');
    expect(logits.shape).toEqual([1, prompt.length, 96]);
    // fp32 kernels against float64: relative to the largest logit, within 1e-4.
    expect(relErr(logits.data, ref.prefill.flat())).toBeLessThan(1e-4);

    const seen: Float32Array[] = [];
    const streamed: number[] = [];
    const g = await model.generate(prompt, {
      maxNewTokens: steps,
      temperature: 0,
      onLogits: (l) => seen.push(l.slice()),
      onToken: (t) => void streamed.push(t),
    });
    expect(g.tokens).toEqual(ref.tokens);
    expect(streamed).toEqual(ref.tokens);
    expect(seen.length).toBe(steps);
    seen.forEach((l, i) => expect(relErr(l, ref.steps[i] ?? []), `decode step ${i}`).toBeLessThan(1e-4));
    expect(g.decodeMs.length).toBe(steps - 1);
    // Decode (T = 1) ran the fused split-K attention kernels selected by `when`, not the prefill one.
    const plan = model.runtime.session.plan;
    const atT1 = plan.steps.filter((s) => s.when === undefined || evalCondition(s.when, new Map([['T', 1]])));
    expect(atT1.filter((s) => s.kernel.endsWith('fused_attention_split')).length).toBe(2);
    expect(atT1.filter((s) => s.kernel.endsWith('fused_attention_combine')).length).toBe(2);
    expect(atT1.some((s) => s.kernel.endsWith('fused_attention'))).toBe(false);
    expect(model.runtime.session.stats.lastDispatches).toBe(atT1.length);
    model.dispose();
  });

  it('refuses bad inputs before any dispatch, with clear messages', async () => {
    const dev = await testDevice();
    const model = await gen.createModel(dev, readFileSync(weightsPath));
    const runs = model.runtime.session.stats.runs;
    await expect(model.forward({ tokens: [1, 2, 96] })).rejects.toThrow(/element 2 is 96: token ids must be integers in \[0, 96\)/);
    await expect(model.forward({ tokens: [1, -1] })).rejects.toThrow(/element 1 is -1/);
    await expect(model.forward({ tokens: [1.5] })).rejects.toThrow(/element 0 is 1.5/);
    await expect(model.forward({ tokens: [] })).rejects.toThrow(/is empty/);
    await expect(model.forward({ tokens: new Array<number>(129).fill(1) })).rejects.toThrow(/129 tokens: more than the context of 128/);
    await expect(model.forward({ tokens: { shape: [2], data: [1, 2] } })).rejects.toThrow(/must be \[batch, length\]/);
    await expect(model.generate(new Array<number>(200).fill(3), { maxNewTokens: 1 })).rejects.toThrow(/200 tokens: more than the context/);
    await expect(model.generate([3], { maxNewTokens: -1 })).rejects.toThrow(/maxNewTokens/);
    await expect(model.forward({ tokens: [1], 'past.0.key': { shape: [1, 2, 0, 15], data: [] } })).rejects.toThrow(/input 'past\.1\.key' is missing/);
    expect(model.runtime.session.stats.runs).toBe(runs);
    model.dispose();
    await expect(model.forward({ tokens: [1] })).rejects.toThrow(/disposed/);
  });

  it('reports missing and malformed weights by name', async () => {
    const dev = await testDevice();
    await expect(gen.createModel(dev, new Uint8Array([1, 2, 3]))).rejects.toThrow(/not a valid safetensors file/);
    const header = JSON.stringify({ 'model.norm.weight': { dtype: 'F32', shape: [64], data_offsets: [0, 256] } });
    const padded = header + ' '.repeat((8 - (header.length % 8)) % 8);
    const bytes = new Uint8Array(8 + padded.length + 256);
    new DataView(bytes.buffer).setBigUint64(0, BigInt(padded.length), true);
    bytes.set(new TextEncoder().encode(padded), 8);
    await expect(gen.createModel(dev, bytes)).rejects.toThrow(/lack 20 tensor\(s\).*model\.embed_tokens\.weight/);
  });
});
