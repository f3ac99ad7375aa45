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
import type { Attr, Node } from '../../graph/ir.js';
import { attentionLoads } from '../../ops/attention.js';
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
  const anyPrefill = path(s.decodeMaxT, Infinity);
  // K/V results (a KV cache's present): written by the split kernel where the schedule says so,
  // else (and on the prefill path) by a map kernel of the load lambda that the caller emits
  // before these kernels, which then read the written K/V as plain buffers (`fromPresent`: the
  // kernels the node had before fuse-cache-write, vector loads included).
  const writes = s.writesCache !== false;
  const hasPresent = inp.present?.k !== undefined || inp.present?.v !== undefined;
  const cacheWriteKernel = !hasPresent ? undefined : !writes || !hasDecode ? {} : anyPrefill;
  const pre = hasPresent ? { ...inp, node: readingPresent(inp), present: {} } : inp;
  // The tensor-core kernel (CUDA f16/bf16, attention/mma.ts) takes every prefill T where the node qualifies.
  const mmaKernel = pre.mma === undefined || anyPrefill === undefined ? undefined : mmaAttentionKernel(pre, pre.mma);
  if (mmaKernel !== undefined) kernels.push({ ...mmaKernel, ...anyPrefill });
  else if (s.lanesPrefill !== undefined) {
    if (anyPrefill !== undefined) kernels.push({ ...attentionLanesKernel(pre, specializeLanesPrefill(pre.graph, pre.node, s.lanesPrefill, dk, dv)), ...anyPrefill });
  } else {
    if (shortPrefill !== undefined) kernels.push({ ...attentionKernel(pre, s, 'prefill', -1), ...shortPrefill });
    if (long !== undefined && longPrefill !== undefined) kernels.push({ ...attentionKernel(pre, long.schedule, 'prefill', -1), ...longPrefill });
  }
  if (hasDecode) {
    const id = inp.firstTempId;
    const [B, Hq] = inp.node.type.shape;
    // Sized with min(T, decodeMaxT) rows so the buffer stays small when the decode steps are skipped.
    const rows = symbolic ? sMinConst(tSize, s.decodeMaxT) : tSize;
    temps.set(id, { dtype: 'f32', elements: sMul(dimToSize(B ?? { terms: [] }), dimToSize(Hq ?? { terms: [] }), rows, sConst(s.splits * (dv + 2))) });
    const split = attentionKernel(writes ? inp : pre, s, 'split', id);
    kernels.push({ ...split, ...decode }, { ...combineKernel(inp, s, id), ...decode });
  }
  return { kernels, temps, ...(cacheWriteKernel !== undefined ? { cacheWriteKernel } : {}) };
}

/**
 * The node as it reads its K/V results once a map kernel wrote them: operand 1 (2) is the
 * fused_attention_k (_v) node, with no kload (vload); the extras keep their positions.
 */
function readingPresent(inp: AttentionInput): Node {
  const n = inp.node;
  const operands = [...n.operands];
  const attrs: Record<string, Attr> = { ...n.attrs };
  for (const which of ['k', 'v'] as const) {
    const r = inp.present?.[which];
    if (r === undefined) continue;
    const { operand, load, shape } = attentionLoads[which];
    operands[operand] = r.id;
    delete attrs[load];
    delete attrs[shape];
  }
  return { ...n, operands, attrs };
}
