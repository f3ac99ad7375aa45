// The CLI's WebGPU side (issue 4): `tfc compile -o DIR` writes manifest.json + wgsl/*.wgsl +
// model.ir deterministically, `--emit kernels|wgsl` print with source-scoped kernel names, and
// `tfc run` defaults to WebGPU when an adapter exists (same numbers as the interpreter) and falls
// back to the interpreter with a warning when none does (no Vulkan driver: VK_ICD_FILENAMES).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { checkSource } from '../../src/check/check-source.js';
import { compilePlan } from '../../src/compile/plan.js';
import { type Manifest, planFromManifest } from '../../src/kernel/plan/manifest.js';
import { webgpuDefaultLimits } from '../../src/kernel/schedule/schedule.js';
import { runPipeline } from '../../src/passes/driver.js';
import { createPassContext } from '../../src/passes/pass.js';
import { pipelines } from '../../src/passes/pipeline.js';
import { readSafetensors, writeSafetensors } from '../../src/io/safetensors.js';
import { tfc } from '../helpers/cli.js';

const repo = new URL('../../', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'tfc-cli-webgpu-'));
const gpt2 = join(repo, 'examples/gpt2.tfx');
const tinySet = 'layers=2,d=64,heads=4,vocab=256,ctx=64';

// h = layernorm(wte[tokens]) inside fn `norm` called per layer; logits = h @ transpose(wte).
const small = `config {
  d = 12
  vocab = 10
  layers = 2
}
dims B, T
input tokens: i32[B, T]
output logits: f32[B, T, vocab]
weight wte: f32[vocab, d] = "wte"
weight g[l in 0..layers]: f32[d] = "g.{l}"
fn norm(x: f32[B, T, d], l: index) -> f32[B, T, d] {
  return layernorm(x, g[l], g[l] * 0.5)
}
model small {
  x = wte[tokens]
  for l in 0..layers {
    x = norm(x, l) + x
  }
  logits = x @ transpose(wte)
}
`;


let model: string;
let weights: string;
let inputs: string;
beforeAll(() => {
  model = join(dir, 'small.tfx');
  writeFileSync(model, small);
  weights = join(dir, 'w.safetensors');
  inputs = join(dir, 'in.safetensors');
  const vals = (n: number, k: number): Float64Array => Float64Array.from({ length: n }, (_, i) => Math.fround(Math.sin(i * k + 1)));
  writeFileSync(
    weights,
    writeSafetensors(
      new Map([
        ['wte', { dtype: 'f32' as const, shape: [10, 12], data: vals(120, 0.7) }],
        ['g.0', { dtype: 'f32' as const, shape: [12], data: vals(12, 1.3) }],
        ['g.1', { dtype: 'f32' as const, shape: [12], data: vals(12, 2.1) }],
      ]),
    ),
  );
  writeFileSync(inputs, writeSafetensors(new Map([['tokens', { dtype: 'i32' as const, shape: [2, 5], data: Float64Array.from([0, 9, 3, 3, 1, 7, 2, 8, 5, 4]) }]])));
});

describe('tfc compile -o DIR', () => {
  it('writes model.ir, manifest.json and one wgsl file per kernel, byte-identical on a second run', async () => {
    const out = join(dir, 'gpt2-out');
    const r = await tfc('compile', gpt2, '--set', tinySet, '-o', out);
    expect(r.stderr).toContain('manifest.json');
    expect(r.code).toBe(0);
    const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as Manifest;
    expect(manifest.format).toBe('tfc-plan');
    expect(manifest.dims).toEqual(['B', 'T']);
    expect(manifest.inputs).toEqual([{ name: 'tokens', dtype: 'i32', shape: ['B', 'T'], buffer: 0 }]);
    expect(manifest.outputs.map((o) => [o.name, o.dtype, o.shape])).toEqual([['logits', 'f32', ['B', 'T', '256']]]);
    // 2 + 16 per layer (ln_1, c_attn, c_proj, ln_2, c_fc, mlp c_proj: weights and biases; ln_f 2).
    expect(manifest.weights).toHaveLength(2 + 12 * 2 + 2);
    expect(manifest.weights.find((w) => w.name === 'h.1.attn.c_attn.weight')).toMatchObject({ dtype: 'f32', shape: ['64', '192'] });
    const files = readdirSync(join(out, 'wgsl')).sort();
    expect(files).toEqual(manifest.kernels.map((k) => `${k.name}.wgsl`).sort());
    expect(files.some((f) => f.startsWith('attention_l0_'))).toBe(true);
    expect(existsSync(join(out, 'model.ir'))).toBe(true);

    // The manifest reads back into the plan compilePlan gives for the same graph and limits.
    const g = checkSource(readFileSync(gpt2, 'utf8'), gpt2, new Map(tinySet.split(',').map((kv) => [kv.split('=')[0] ?? '', Number(kv.split('=')[1])])));
    if (g.graph === undefined) throw new Error('gpt2 did not check');
    const back = planFromManifest(manifest, (p) => readFileSync(join(out, p), 'utf8'));
    // compile runs the webgpu pass pipeline first; compare launches and kernel sources.
    const passed = runPipeline(g.graph, pipelines.webgpu, createPassContext({ target: 'webgpu' }));
    const direct = compilePlan(passed, { target: webgpuDefaultLimits });
    expect(back.steps.map((s) => s.kernel)).toEqual(direct.steps.map((s) => s.kernel));
    expect(back.kernels.map((k) => k.source.wgsl)).toEqual(direct.kernels.map((k) => k.source.wgsl));

    const before = readFileSync(join(out, 'manifest.json'));
    expect((await tfc('compile', gpt2, '--set', tinySet, '-o', out)).code).toBe(0);
    expect(readFileSync(join(out, 'manifest.json'))).toEqual(before);
    expect(readdirSync(dir).filter((f) => f.includes('.tmp-') || f.includes('.old-'))).toEqual([]);
  });

  it('--emit kernels prints loop nests named after the source function and layer', async () => {
    const r = await tfc('compile', gpt2, '--set', tinySet, '--emit', 'kernels');
    expect(r.code).toBe(0);
    // Which ops get kernels depends on the fusion passes; the names follow the source either way.
    expect(r.stdout).toMatch(/\nkernel attention_l0_\w+ \(/);
    expect(r.stdout).toMatch(/\nkernel attention_l1_\w+ \(/);
    // The embedding (two gathers + arange + add) is one kernel of the model block.
    expect(r.stdout).toContain('kernel gpt2_fused_map (fused_map)');
    expect(r.stdout).not.toMatch(/\nkernel \w+ \(gather\)/);
  });

  it('--emit wgsl prints each deduplicated kernel once', async () => {
    const r = await tfc('compile', model, '--emit', 'wgsl');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('// kernel norm_l0_layernorm: layernorm');
    // layer 1's layernorm has the same source as layer 0's: shared, not printed again.
    expect(r.stdout).not.toContain('norm_l1_layernorm');
    expect(r.stdout.match(/@compute/g)?.length).toBeGreaterThan(2);
  });
});

describe('tfc run', () => {
  it('runs on WebGPU by default and matches --target interp', async () => {
    const gpu = join(dir, 'gpu.safetensors');
    const cpu = join(dir, 'cpu.safetensors');
    const r = await tfc('run', model, '--weights', weights, '--inputs', inputs, '--out', gpu);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/tfc run: small on webgpu \(.*peak GPU memory/);
    expect((await tfc('run', model, '--weights', weights, '--inputs', inputs, '--out', cpu, '--target', 'interp')).code).toBe(0);
    const a = readSafetensors(new Uint8Array(readFileSync(gpu)), gpu).tensors.get('logits');
    const b = readSafetensors(new Uint8Array(readFileSync(cpu)), cpu).tensors.get('logits');
    expect(a?.shape).toEqual([2, 5, 10]);
    let scale = 0;
    for (const v of b?.data ?? []) scale = Math.max(scale, Math.abs(v));
    let worst = 0;
    b?.data.forEach((w, i) => (worst = Math.max(worst, Math.abs((a?.data[i] ?? NaN) - w) / Math.max(Math.abs(w), 1e-2 * scale))));
    // f32 kernels vs float64: 1e-4 relative, floor 1% of the largest logit (values near zero).
    expect(worst).toBeLessThan(1e-4);
  });

  it('reports an out-of-range token before running (exit 1)', async () => {
    const bad = join(dir, 'bad-in.safetensors');
    writeFileSync(bad, writeSafetensors(new Map([['tokens', { dtype: 'i32' as const, shape: [1, 2], data: Float64Array.from([3, 10]) }]])));
    const r = await tfc('run', model, '--weights', weights, '--inputs', bad, '--out', join(dir, 'never.safetensors'), '--target', 'webgpu');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/tokens/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(existsSync(join(dir, 'never.safetensors'))).toBe(false);
  });

  // The built binary with no Vulkan driver: no adapter exists.
  const cli = join(repo, 'dist/src/cli/main.js');
  const noGpu = { ...process.env, VK_ICD_FILENAMES: join(dir, 'no-such-icd.json') };
  it.runIf(existsSync(cli))('falls back to the interpreter with a warning when no adapter exists', () => {
    const out = join(dir, 'fallback.safetensors');
    const r = spawnSync(process.execPath, [cli, 'run', model, '--weights', weights, '--inputs', inputs, '--out', out], { encoding: 'utf8', env: noGpu });
    expect(r.status).toBe(0);
    expect(r.stderr).toContain('tfc: warning: no WebGPU adapter, running on the float64 interpreter');
    expect(r.stderr).toContain('tfc run: small on interp');
    expect(existsSync(out)).toBe(true);
  });

  it.runIf(existsSync(cli))('--target webgpu without an adapter is an error that says what to do (exit 1)', () => {
    const r = spawnSync(process.execPath, [cli, 'run', model, '--weights', weights, '--inputs', inputs, '--out', join(dir, 'x.safetensors'), '--target', 'webgpu'], {
      encoding: 'utf8',
      env: noGpu,
    });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('tfc: error: --target webgpu: WebGPU found no adapter');
    expect(r.stderr).toContain('--target interp');
  });
});
