// Resources on WebGPU (issue 9): through `tfc run --target webgpu`, a shape whose unfused
// attention scores (B*heads*T*T*4 bytes) pass the adapter's storage binding limit is refused before
// any dispatch with a message naming the buffer, the bytes and the limit, exit 1 and no output
// file (the same model at a small T runs); and a device lost in the middle of `generate` (the
// host-module runtime behind `tfc run --prompt`) ends the call with an error instead of hanging.
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkSource } from '../../src/check/check-source.js';
import { writeSafetensors } from '../../src/io/safetensors.js';
import { compilePlan } from '../../src/compile/plan.js';
import type { Tensor64 } from '../../src/base/tensor.js';
import { runPipeline } from '../../src/passes/driver.js';
import { createPassContext } from '../../src/passes/pass.js';
import { pipelines } from '../../src/passes/pipeline.js';
import { acquireDevice } from '../../src/runtime/device.js';
import { createLoadedModel } from '../../src/runtime/host.js';
import { targetLimitsOf } from '../../src/runtime/target.js';
import { tinyLm } from '../helpers/tiny-lm.js';
import { tfc } from '../helpers/cli.js';

process.env['XDG_RUNTIME_DIR'] ??= '/tmp';
const dir = mkdtempSync(join(tmpdir(), 'tfc-resources-'));


// The scores have a second user (their row max is an output), so attention is not fused and
// the [B, heads, T, T] f32 scores are a temp buffer of the plan.
const attention = `config {
  heads = 1
  dh = 4
}
dims B, T
input q: f32[B, heads, T, dh]
input k: f32[B, heads, T, dh]
input v: f32[B, heads, T, dh]
output o: f32[B, heads, T, dh]
output top: f32[B, heads, T]
model attn {
  s = q @ transpose(k) / sqrt(dh)
  o = softmax(s) @ v
  top = max(s, axis=-1)
}
`;

describe('tfc run --target webgpu past the storage binding limit', () => {
  it('refuses T = 6000 (144,000,000-byte scores > 128 MiB) before dispatch: exit 1, one clear line, no output', async () => {
    const model = join(dir, 'attn.tfx');
    writeFileSync(model, attention);
    const weights = join(dir, 'w.safetensors');
    expect((await tfc('init-weights', model, '--out', weights)).code).toBe(0);
    // A small T runs: the refusal below is the size, not the model.
    const small = join(dir, 'small.safetensors');
    expect((await tfc('random-inputs', model, '--out', small, '--set', 'B=1,T=8')).code).toBe(0);
    const ok = await tfc('run', model, '--weights', weights, '--inputs', small, '--out', join(dir, 'small-out.safetensors'), '--target', 'webgpu');
    expect(ok.stderr).toContain('on webgpu');
    expect(ok.code).toBe(0);

    const big = join(dir, 'big.safetensors');
    expect((await tfc('random-inputs', model, '--out', big, '--set', 'B=1,T=6000')).code).toBe(0);
    const out = join(dir, 'big-out.safetensors');
    const r = await tfc('run', model, '--weights', weights, '--inputs', big, '--out', out, '--target', 'webgpu');
    expect(r.code, r.stderr).toBe(1);
    // One message line (Dawn's adapter warnings and the reporter's "1 error" summary aside).
    const lines = r.stderr.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('Warning: ') && !/^\d+ errors?$/.test(l.trim()));
    expect(lines, r.stderr).toHaveLength(1);
    // 1 * 1 * 6000 * 6000 * 4 bytes, by hand.
    expect(lines[0]).toContain('144000000 bytes');
    expect(lines[0]).toContain('storage binding limit');
    expect(lines[0]).toContain('T=6000');
    expect(lines[0]).not.toContain('internal compiler error');
    expect(existsSync(out)).toBe(false);
  }, 600_000);
});

// No KV cache: each decode step of `generate` runs the whole sequence again.
const tiny = tinyLm(8);

describe('a device lost in the middle of generate', () => {
  it('rejects with a device-lost error at the next step, without hanging', async () => {
    const r = checkSource(tiny, 'tiny.tfx', new Map());
    if (r.graph === undefined) throw new Error(r.diagnostics.map((d) => d.message).join('; '));
    const own = await acquireDevice();
    const plan = compilePlan(runPipeline(r.graph, pipelines.webgpu, createPassContext({ target: 'webgpu', verify: true })), { target: targetLimitsOf(own) });
    const t = (shape: number[]): Tensor64 => ({ dtype: 'f32', shape, data: Float64Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => ((i * 7) % 11) / 11 - 0.5) });
    const bytes = writeSafetensors(new Map([['wte.weight', t([8, 4])], ['wpe.weight', t([8, 4])]]));
    const m = await createLoadedModel(own, plan, { name: 'tiny', tokens: 'tokens', vocab: 8, context: 8, logits: 'logits', cache: [] }, bytes);
    // Sanity: the model generates before the device goes.
    expect((await m.generate([1, 2], { maxNewTokens: 2, temperature: 0 })).tokens).toHaveLength(2);
    const seen: number[] = [];
    const run = m.generate([1, 2], {
      maxNewTokens: 4,
      temperature: 0,
      onToken: (_tok, step) => {
        seen.push(step);
        if (step === 0) own.device.destroy();
      },
    });
    await expect(run).rejects.toThrow(/device was lost/);
    expect(seen).toEqual([0]);
    expect((await own.lost).reason).toBe('destroyed');
    m.dispose();
  }, 300_000);
});
