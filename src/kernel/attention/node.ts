// What the fused attention lowering (attention/attention.ts) reads and returns: the node's shapes and
// head widths, its input record and kernel drafts, and the log-sum-exp helpers shared by the scalar
// and tensor-core kernels.
import { type Dim, dimConstValue } from '../../base/dim.js';
import type { Graph, Node } from '../../graph/ir.js';
import type { TensorType } from '../../graph/types.js';
import {
  type Expr,
  type GlobalBuffer,
  type KernelSchedule,
  type KernelTemp,
  type SharedArray,
  type Stmt,
  type Traffic,
  bin,
  call,
  div,
  select,
  u32,
} from '../ir/ir.js';
import { dimExpr } from '../lower/dims.js';
import type { SizeExpr, StepCondition } from '../plan/plan.js';
import type { MmaAttentionSchedule, TargetLimits } from '../schedule/schedule.js';
import { storageBytes } from '../ir/storage.js';
import { dimToSize, sConst, sMul } from '../plan/to-size.js';
import type { AttentionSchedule } from './schedule.js';
import { f32, NEG_INF } from './exprs.js';
import { keyType, valueType } from './lambdas.js';

export interface AttentionShape {
  readonly B: Dim;
  readonly Hq: Dim;
  readonly Hkv: Dim;
  readonly T: Dim;
  readonly S: Dim;
  readonly dk: number;
  readonly dv: number;
  readonly group: Expr; // query heads per KV head (u32)
  /** Query heads per KV head when both head counts are constants, else 1 (the prefill tile's head group). */
  readonly groupConst: number;
}

export function shapeOf(q: TensorType, k: TensorType, vv: TensorType): AttentionShape {
  const [B, Hq, T, dkD] = q.shape;
  const [, Hkv, S] = k.shape;
  const dvD = vv.shape[3];
  if (B === undefined || Hq === undefined || T === undefined || dkD === undefined || Hkv === undefined || S === undefined || dvD === undefined) {
    throw new Error('internal: fused_attention operands must have rank 4');
  }
  const dk = dimConstValue(dkD);
  const dv = dimConstValue(dvD);
  if (dk === undefined || dv === undefined) throw new Error('internal: fused_attention needs constant head widths (tiles live in workgroup memory)');
  const hq = dimConstValue(Hq);
  const hkv = dimConstValue(Hkv);
  const group = hq !== undefined && hkv !== undefined ? u32(hq / hkv) : div(dimExpr(Hq), dimExpr(Hkv));
  const groupConst = hq !== undefined && hkv !== undefined ? hq / hkv : 1;
  return { B, Hq, Hkv, T, S, dk, dv, group, groupConst };
}

export function headWidths(g: Graph, n: Node): { dk: number; dv: number } {
  const k = g.nodes[n.operands[1] ?? -1]; // k: its head width is dk (operand 0 may be a qload source)
  const kt = k === undefined ? undefined : keyType(k, n); // kshape when a kload computes K
  const vv = g.nodes[n.operands[2] ?? -1];
  const vt = vv === undefined ? undefined : valueType(vv, n); // vshape when a vload computes V
  const dk = kt === undefined ? undefined : dimConstValue(kt.shape[3] ?? { terms: [] });
  const dv = vt === undefined ? undefined : dimConstValue(vt.shape[3] ?? { terms: [] });
  if (dk === undefined || dv === undefined) throw new Error('internal: fused_attention needs constant head widths');
  return { dk, dv };
}

export interface AttentionKernelDraft {
  readonly op: string;
  readonly workgroupSize: readonly [number, number, number];
  readonly grid: readonly [SizeExpr, SizeExpr, SizeExpr];
  readonly buffers: readonly GlobalBuffer[];
  readonly shared: readonly SharedArray[];
  readonly body: readonly Stmt[];
  readonly schedule: KernelSchedule;
  readonly traffic: Traffic;
  readonly bindings: readonly number[];
  readonly when?: StepCondition;
}

export interface AttentionLowering {
  readonly kernels: readonly AttentionKernelDraft[];
  readonly temps: ReadonlyMap<number, KernelTemp>;
  /**
   * Present where the node's K/V results (AttentionInput.present) need a map kernel of their
   * load lambda (the prefill path, or every path when the schedule's writesCache is false),
   * guarded by `when` (absent: always).
   */
  readonly cacheWriteKernel?: { readonly when?: StepCondition };
}

export interface AttentionInput {
  readonly graph: Graph;
  readonly node: Node;
  readonly target: TargetLimits;
  /** Forces tile sizes (tests); default chosen from the target. */
  readonly schedule?: AttentionSchedule;
  /** An id for the split-K temp (no graph value has it). */
  readonly firstTempId: number;
  /**
   * The node's fused_attention_lse, if any: the prefill kernel (or the decode combine) also
   * writes each row's log-sum-exp m + log(l) of the final scores there, -inf where l = 0.
   */
  readonly lse?: Node;
  /** The tensor-core prefill kernel (attention/mma.ts) where the node qualifies. */
  readonly mma?: MmaAttentionSchedule;
  /** The node's fused_attention_k / _v results (K / V as loaded: a KV cache's present), if any. */
  readonly present?: { readonly k?: Node; readonly v?: Node };
}

/** A row's log-sum-exp from its running max and sum: -inf for a fully masked row (l = 0). */
export function lseValue(m: Expr, l: Expr): Expr {
  return select(bin('eq', l, f32(0)), NEG_INF, bin('add', m, call('log', [l], 'f32')));
}

/** LSE bytes written: B*Hq*T elements of the LSE node's dtype (0 without one). */
export function lseBytes(inp: AttentionInput): SizeExpr | undefined {
  if (inp.lse === undefined) return undefined;
  const [B, Hq, T] = inp.lse.type.shape;
  return sMul(dimToSize(B ?? { terms: [] }), dimToSize(Hq ?? { terms: [] }), dimToSize(T ?? { terms: [] }), sConst(storageBytes(inp.lse.type.dtype)));
}
