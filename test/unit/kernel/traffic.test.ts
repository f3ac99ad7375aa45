import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { checkSource } from '../../../src/check/check-source.js';
import { lowerToKernels } from '../../../src/kernel/lower/lower.js';
import { lavapipeLimits, webgpuDefaultLimits } from '../../../src/kernel/schedule/schedule.js';
import { runPipeline } from '../../../src/passes/driver.js';
import { createPassContext } from '../../../src/passes/pass.js';
import { pipelines } from '../../../src/passes/pipeline.js';
import { evalSize } from '../../../src/kernel/plan/plan.js';
import { graphOf } from './helpers.js';

const scoresIr = `graph attn(B, T) {
  %0 = input {name="q"} : f32[B,3,T,40]  loc(a.tfx:1:1)
  %1 = input {name="kt"} : f32[B,3,40,T]  loc(a.tfx:2:1)
  %2 = matmul %0, %1 : f32[B,3,T,T]  loc(a.tfx:3:1)
  %3 = softmax %2 {axis=3} : f32[B,3,T,T]  loc(a.tfx:4:1)
  output "p" = %3  loc(a.tfx:5:1)
}
`;

describe('traffic formulas', () => {
  // 16x32 lane tiles (16 rows, 32 columns); the decode-step kernel (T <= 1) comes first.
  const p = lowerToKernels(graphOf(scoresIr), lavapipeLimits);
  const [, mm, sm] = p.kernels;

  it('charges the tiled matmul for re-reading A per column tile and B per row tile', () => {
    for (const [B, T] of [[1, 1], [2, 7], [1, 64], [3, 129], [1, 1024]] as const) {
      const dims = new Map([['B', B], ['T', T]]);
      // Q [B,3,T,40] is read once per column tile of the T x T output: 4*B*3*T*40*ceil(T/32);
      // K^T [B,3,40,T] once per row tile: 4*B*3*40*T*ceil(T/16). Scores written once: 4*B*3*T*T.
      expect(evalSize(mm?.traffic.bytesRead ?? { kind: 'const', value: -1 }, dims)).toBe(4 * B * 3 * T * 40 * (Math.ceil(T / 32) + Math.ceil(T / 16)));
      expect(evalSize(mm?.traffic.bytesWritten ?? { kind: 'const', value: -1 }, dims)).toBe(4 * B * 3 * T * T);
      expect(evalSize(mm?.traffic.flops ?? { kind: 'const', value: -1 }, dims)).toBe(2 * B * 3 * T * T * 40);
    }
  });

  it('charges the unfused softmax two reads and one write of the T x T scores', () => {
    const dims = new Map([['B', 2], ['T', 33]]);
    // online max/sum pass + normalize pass: 2 * 4*B*3*T*T read, 4*B*3*T*T written.
    expect(evalSize(sm?.traffic.bytesRead ?? { kind: 'const', value: -1 }, dims)).toBe(2 * 4 * 2 * 3 * 33 * 33);
    expect(evalSize(sm?.traffic.bytesWritten ?? { kind: 'const', value: -1 }, dims)).toBe(4 * 2 * 3 * 33 * 33);
  });

  it('launches enough workgroups to cover the output', () => {
    const dims = new Map([['B', 2], ['T', 129]]);
    // row tiles first: [ceil(129/16), ceil(129/32), B*3]
    expect(mm?.grid.map((g) => evalSize(g, dims))).toEqual([9, 5, 6]);
    // one workgroup per row: B*3*T rows, below the 65535 per-dimension limit
    expect(sm?.grid.map((g) => evalSize(g, dims))).toEqual([2 * 3 * 129, 1, 1]);
    const big = new Map([['B', 64], ['T', 1024]]);
    const [x, y] = (sm?.grid ?? []).map((g) => evalSize(g, big));
    expect(x).toBe(65535);
    expect((x ?? 0) * (y ?? 0)).toBeGreaterThanOrEqual(64 * 3 * 1024);
  });
});

describe('traffic of the int8 KV cache (examples/variants/gpt2-kv-int8.tfx vs gpt2-kv.tfx)', () => {
  // One layer of GPT-2 small's attention: 12 heads of dh 64, a decode step at P = 1023.
  const kernelsOf = (file: string) => {
    const r = checkSource(readFileSync(file, 'utf8'), file, new Map([['layers', 1]]));
    if (r.graph === undefined) throw new Error(r.diagnostics.map((d) => d.message).join('; '));
    return lowerToKernels(runPipeline(r.graph, pipelines.webgpu, createPassContext({ target: 'webgpu' })), webgpuDefaultLimits).kernels;
  };
  const dims = new Map([['B', 1], ['T', 1], ['P', 1023]]);
  const [H, S, DH] = [12, 1024, 64];
  const f32 = kernelsOf('examples/variants/gpt2-kv.tfx');
  const int8 = kernelsOf('examples/variants/gpt2-kv-int8.tfx');
  const bytes = (ks: typeof f32, name: string, what: 'bytesRead' | 'bytesWritten'): number => {
    const k = ks.find((x) => x.name === name);
    if (k === undefined) throw new Error(`no kernel ${name}: ${ks.map((x) => x.name).join(', ')}`);
    return evalSize(k.traffic[what], dims);
  };

  it('writes the i8 cache at one byte per element (the cache-write kernel of K)', () => {
    expect(bytes(int8, 'attention_l0_fused_map', 'bytesWritten')).toBe(H * S * DH);
    expect(bytes(f32, 'attention_l0_fused_map', 'bytesWritten')).toBe(H * S * DH * 4);
  });

  it('reads K and V in the split attention at dh + 4 bytes a row (values and the scale, once per row) instead of 4 dh', () => {
    // The f32 split kernel also writes the cache (fuse-cache-write; the int8 cache is written by
    // its own kernels): it reads each K and V row once more for that, 4 dh bytes a row.
    const saved = bytes(f32, 'attention_l0_fused_attention_split', 'bytesRead') - bytes(int8, 'attention_l0_fused_attention_split', 'bytesRead');
    expect(saved).toBe(2 * H * S * (4 * DH - (DH + 4)) + 2 * H * S * 4 * DH);
  });

  it('writes the f32 cache from the split attention (present K and V, 4 dh bytes a row each) besides its partials', () => {
    const written = bytes(f32, 'attention_l0_fused_attention_split', 'bytesWritten') - bytes(int8, 'attention_l0_fused_attention_split', 'bytesWritten');
    expect(written).toBe(2 * H * S * 4 * DH);
  });
});
