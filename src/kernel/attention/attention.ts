// Kernel lowering of `fused_attention` (the contract: docs/passes.md "Fused attention"): one
// FlashAttention-2 kernel for prefill, and for decode (T <= 1) a flash-decoding split-K kernel
// plus a combine kernel, each step guarded by a plan `when`. Target neutral kernel IR only.
//
// This file is the driver (which kernels a node gets, and their `when` guards). The pieces:
// attention/schedule.ts (tile sizes, rows per workgroup), attention/node.ts (the
// node's shapes, the lowering's input and output records, LSE), attention/lambdas.ts
// (score/mask/qload/kload lambdas inlined), attention/sparsity.ts (block sparsity),
// attention/kernel.ts (prefill and split-K kernel), attention/combine.ts (split-K
// combine), attention/mma.ts (tensor-core prefill), attention/count.ts (host tile counter).
import { dimConstValue } from '../../base/dim.js';
import type { KernelTemp } from '../ir/ir.js';
import type { StepCondition } from '../plan/plan.js';
import { mmaAttentionKernel } from './mma.js';
import { dimToSize, sConst, sMinConst, sMul } from '../plan/to-size.js';
import { chooseAttentionSchedule, specializeLanesPrefill } from './schedule.js';
import { attentionLanesKernel } from './lanes.js';
import { type AttentionInput, type AttentionKernelDraft, type AttentionLowering, headWidths } from './node.js';
import { attentionKernel } from './kernel.js';
import { combineKernel } from './combine.js';

/**
 * The kernels of one fused_attention node: the prefill kernel when T can exceed `decodeMaxT`,
 * the split-K pair when T can be at most `decodeMaxT`, guarded by `when` where T is symbolic.
 */
export function lowerFusedAttention(inp: AttentionInput): AttentionLowering {
  const { dk, dv } = headWidths(inp.graph, inp.node);
  const s = inp.schedule ?? chooseAttentionSchedule(inp.target, dk, dv);
  const T = inp.node.type.shape[2];
  if (T === undefined) throw new Error('internal: fused_attention result must have rank 4');
  const tConst = dimConstValue(T);
  const tSize = dimToSize(T);
  /** A path for T in (lo, hi]: absent when T is a constant outside it; `when` keeps the bounds T may cross. */
  const path = (lo: number, hi: number): { readonly when?: StepCondition } | undefined => {
    if (tConst !== undefined) return tConst > lo && tConst <= hi ? {} : undefined;
    const conds: StepCondition[] = [];
    if (lo >= 1) conds.push({ size: tSize, op: '>', value: lo }); // T >= 1 always
    if (hi < Infinity) conds.push({ size: tSize, op: '<=', value: hi });
    const when = conds.reduceRight<StepCondition | undefined>((rest, c) => (rest === undefined ? c : { ...c, and: rest }), undefined);
    return when === undefined ? {} : { when };
  };
  const long = s.longPrefill;
  const shortPrefill = path(s.decodeMaxT, long?.aboveT ?? Infinity);
  const longPrefill = long === undefined ? undefined : path(Math.max(s.decodeMaxT, long.aboveT), Infinity);
  const decode = path(0, s.decodeMaxT);
  const hasDecode = decode !== undefined;
  const symbolic = tConst === undefined;
  const kernels: AttentionKernelDraft[] = [];
  const temps = new Map<number, KernelTemp>();
  // The tensor-core kernel (CUDA f16/bf16, attention/mma.ts) takes every prefill T where the node qualifies.
  const anyPrefill = path(s.decodeMaxT, Infinity);
  const mmaKernel = inp.mma === undefined || anyPrefill === undefined ? undefined : mmaAttentionKernel(inp, inp.mma);
  if (mmaKernel !== undefined) kernels.push({ ...mmaKernel, ...anyPrefill });
  else if (s.lanesPrefill !== undefined) {
    if (anyPrefill !== undefined) kernels.push({ ...attentionLanesKernel(inp, specializeLanesPrefill(inp.graph, inp.node, s.lanesPrefill, dk, dv)), ...anyPrefill });
  } else {
    if (shortPrefill !== undefined) kernels.push({ ...attentionKernel(inp, s, 'prefill', -1), ...shortPrefill });
    if (long !== undefined && longPrefill !== undefined) kernels.push({ ...attentionKernel(inp, long.schedule, 'prefill', -1), ...longPrefill });
  }
  if (hasDecode) {
    const id = inp.firstTempId;
    const [B, Hq] = inp.node.type.shape;
    // Sized with min(T, decodeMaxT) rows so the buffer stays small when the decode steps are skipped.
    const rows = symbolic ? sMinConst(tSize, s.decodeMaxT) : tSize;
    temps.set(id, { dtype: 'f32', elements: sMul(dimToSize(B ?? { terms: [] }), dimToSize(Hq ?? { terms: [] }), rows, sConst(s.splits * (dv + 2))) });
    kernels.push({ ...attentionKernel(inp, s, 'split', id), ...decode }, { ...combineKernel(inp, s, id), ...decode });
  }
  return { kernels, temps };
}
