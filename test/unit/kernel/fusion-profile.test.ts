// The model bench's fusion profile (src/cli/bench-fusion.ts): fused plan steps traced to the
// unfused steps they replaced, per layer, without a device (times are given, not measured).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { benchCompilation } from '../../../src/cli/bench.js';
import { type StepSources, formatFusionProfile, fusionProfile } from '../../../src/kernel/analysis/fusion-profile.js';
import { lowerModel } from '../../../src/compile/kernels.js';
import { lavapipeLimits } from '../../../src/kernel/schedule/schedule.js';

const file = 'examples/gpt2.tfx';
const config = new Map([['layers', 2], ['d', 32], ['heads', 2], ['vocab', 64], ['ctx', 32]]);
const sources = (fuse: boolean): StepSources => {
  const c = benchCompilation(readFileSync(file, 'utf8'), file, config, fuse);
  return { graph: c.graph, program: lowerModel(c, { limits: lavapipeLimits }).program };
};

describe('fusion profile', () => {
  const fused = sources(true);
  const unfused = sources(false);
  // Every fused step 1 ms, every unfused step 2 ms: each row's times count its steps.
  const rows = fusionProfile(fused, fused.program.kernels.map(() => 1), unfused, unfused.program.kernels.map(() => 2));

  it('folds the layers of a fused kernel into one row and gives each unfused step to one row', () => {
    const attention = rows.find((r) => r.fused.some((n) => n.endsWith('fused_attention')));
    expect(attention?.count).toBe(2);
    expect(attention?.replaced).toEqual(expect.arrayContaining(['attention_l*_softmax', 'attention_l*_where']));
    // Per layer the attention row has its 3 kernels (prefill, split, combine): 2 layers x 3 x 1 ms.
    expect(attention?.fusedMs).toBe(6);
    const claimed = rows.reduce((a, r) => a + r.replacedMs / 2, 0);
    expect(claimed).toBeLessThanOrEqual(unfused.program.kernels.length);
    // The layernorm + qkv matmul + bias of layer 1 goes to layer 1's row (not layer 0's): each
    // row replaces the same number of unfused steps per layer.
    const qkv = rows.find((r) => r.replaced.includes('block_l*_layernorm') && r.replaced.includes('attention_l*_add'));
    expect(qkv?.count).toBe(2);
    expect((qkv?.replacedMs ?? 0) % 2).toBe(0);
  });

  it('prints one line per row and flags a fused kernel slower than what it replaced', () => {
    const slow = fusionProfile(fused, fused.program.kernels.map(() => 100), unfused, unfused.program.kernels.map(() => 1));
    const text = formatFusionProfile(slow);
    expect(text.split('\n').filter((l) => l.startsWith('  '))).toHaveLength(slow.length);
    expect(text).toContain('SLOWER than what it replaced');
    expect(formatFusionProfile(rows)).not.toContain('SLOWER');
  });
});
