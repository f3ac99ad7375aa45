// The lavapipe attention schedule exchanges P within a row's lanes by subgroup shuffle: no P tile
// in workgroup memory and no barrier per key tile; the shuffle's spelling per backend.
import { describe, expect, it } from 'vitest';
import { printCuda } from '../../../codegen/cuda/print.js';
import { printWgsl } from '../../../codegen/wgsl/print.js';
import { type Expr, type Kernel, forEachExpr, forEachStmt } from '../../../src/kernel/ir/ir.js';
import { lowerToKernels } from '../../../src/kernel/lower/lower.js';
import { type AttentionSchedule, chooseAttentionSchedule } from '../../../src/kernel/attention/schedule.js';
import { chooseSchedule, lavapipeLimits } from '../../../src/kernel/schedule/schedule.js';
import { verifyKernel } from '../../../src/kernel/ir/verify.js';
import { graphOf } from './helpers.js';

const g = graphOf(`graph attn(B, T) {
  %0 = input {name="q"} : f32[B,2,T,64]
  %1 = input {name="k"} : f32[B,2,T,64]
  %2 = input {name="v"} : f32[B,2,T,64]
  %3 = fused_attention %0, %1, %2 {mask=(b, h, q, k) => le(k, q), scale=0.125} : f32[B,2,T,64]
  output "o" = %3
}`);

// lavapipe's chosen attention schedule without its broadcast prefill (kernel/attention/lanes.ts):
// the direct, P-by-shuffle kernel it keeps for split-K decode, here lowered as the prefill.
const { lanesPrefill: _broadcast, ...shuffleSchedule } = chooseAttentionSchedule(lavapipeLimits, 64, 64);

function prefill(attention: AttentionSchedule = shuffleSchedule): Kernel {
  const base = chooseSchedule(lavapipeLimits);
  const p = lowerToKernels(g, lavapipeLimits, { ...base, attention });
  const k = p.kernels.find((x) => x.shared.some((a) => a.name === 'q_tile') && x.workgroupSize[0] === 32);
  if (k === undefined) throw new Error('no prefill kernel');
  return k;
}
const shuffles = (k: Kernel): Expr[] => {
  const out: Expr[] = [];
  forEachExpr(k.body, (e) => {
    if (e.kind === 'subgroup' && e.op === 'shuffle') out.push(e);
  });
  return out;
};
const barriers = (k: Kernel): number => {
  let n = 0;
  forEachStmt(k.body, (s) => {
    if (s.kind === 'barrier') n++;
  });
  return n;
};

describe('attention P by subgroup shuffle (lavapipe schedule)', () => {
  it('is chosen on lavapipe (subgroups of 8 = lanes)', () => {
    expect(chooseAttentionSchedule(lavapipeLimits, 64, 64)).toMatchObject({ lanes: 8, useSubgroups: true, isDirect: true, shuffleP: true });
    expect(chooseAttentionSchedule({ ...lavapipeLimits, subgroupSize: 0 }, 64, 64).shuffleP).toBeUndefined();
  });

  it('drops the P tile and every barrier but the Q tile one', () => {
    const k = prefill();
    expect(k.shared.map((a) => a.name)).toEqual(['q_tile']);
    expect(barriers(k)).toBe(1);
    expect(shuffles(k)).toHaveLength(1);
    const before = prefill({ ...shuffleSchedule, shuffleP: false });
    expect(before.shared.map((a) => a.name)).toContain('p_tile');
    expect(barriers(before)).toBe(3);
    expect(shuffles(before)).toHaveLength(0);
  });

  it('verifies, and prints as subgroupShuffle / __shfl_sync with the lane operand', () => {
    const k = prefill();
    expect(verifyKernel(k, lavapipeLimits)).toEqual([]);
    expect(printWgsl(k)).toMatch(/subgroupShuffle\(dots\w*\[\(ii\w* \* 8u\) \+ ci\w*\], src\w*\)/);
    expect(printCuda(k)).toMatch(/__shfl_sync\(0xffffffffu, dots\w*\[\(ii\w* \* 8u\) \+ ci\w*\], src\w*\)/);
  });
});
