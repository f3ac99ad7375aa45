// Operand checks and small helpers shared by the matmul kernels (matmul.ts, stream.ts): the rows
// M of a product, a laneBroadcast/kLanes schedule checked against the operands, the tensor-core
// operand test, and a FusedHost that binds each graph value once.
import { type Dim, dimConst, dimConstValue, dimMul } from '../../base/dim.js';
import type { Graph, Node } from '../../graph/ir.js';
import type { DType } from '../../graph/types.js';
import type { MatrixInput, MmaBLayout } from '../ir/ir.js';
import type { KernelBuilder } from '../ir/builder.js';
import type { SizeExpr } from '../plan/plan.js';
import { type MatmulSchedule, ScheduleError } from '../schedule/schedule.js';
import { printType } from '../../graph/types.js';
import type { FusedHost } from '../lower/fused.js';
import { hasVectorRuns, unitStrideAxis } from '../lower/view.js';
import { normPrologueOf } from '../../ops/fused.js';
import type { Lowering } from '../lower/lowering.js';

/** Rows of the product: M, times the batch when the batch folds into M (a 2-D right operand). */
export function matmulRows(n: Node, a: Node, b: Node): Dim {
  const out = n.type.shape;
  const rank = out.length;
  const foldBatch = b.type.shape.length === 2 && a.type.shape.length === rank;
  return foldBatch ? out.slice(0, -1).reduce((p, d) => dimMul(p, d), dimConst(1)) : (out[rank - 2] ?? dimConst(1));
}

/**
 * Checks a laneBroadcast schedule against the node and the target (never silently changed):
 * the lane count, tile shape, and each vector width against the operands' layouts. Returns B's
 * loop layout and the vector widths; throws ScheduleError naming the field otherwise.
 */
export function laneLayout(lw: Lowering, n: Node, a: Node, b: Node, ms: MatmulSchedule): { readonly lanes: number; readonly aVector: 1 | 4; readonly bVector: 1 | 4; readonly normVector: 1 | 4; readonly bLayout: 'k_by_n' | 'n_by_k' } {
  const what = `%${n.id} (${n.op} ${printType(a.type)} x ${printType(b.type)})`;
  const L = lw.target.subgroupSize;
  if (L === 0 || !lw.s.useSubgroups) throw new ScheduleError('matmul.laneBroadcast', `${what}: the target has no subgroups`);
  if (ms.laneBroadcast === true && ms.kLanes === true) throw new ScheduleError('matmul.kLanes', `${what}: laneBroadcast and kLanes exclude each other`);
  if (ms.kLanes === true) {
    if (ms.threadRows !== ms.tileRows || ms.threadCols !== ms.tileCols || ms.tileRows < 1 || ms.tileCols < 1) throw new ScheduleError('matmul.threadRows', `${what}: kLanes needs threadRows = tileRows and threadCols = tileCols (every lane holds the whole tile), got ${ms.tileRows}x${ms.tileCols} tiles of ${ms.threadRows}x${ms.threadCols}`);
    const Kc = dimConstValue(a.type.shape[a.type.shape.length - 1] ?? dimConst(1));
    if (ms.tileK !== 1 && (Kc === undefined || Kc % ms.tileK !== 0)) throw new ScheduleError('matmul.tileK', `${what}: kLanes needs tileK to divide K (or be 1), got tileK ${ms.tileK}`);
  } else {
    if (ms.threadRows !== ms.tileRows || ms.tileCols !== L * ms.threadCols) throw new ScheduleError('matmul.threadRows', `${what}: laneBroadcast needs threadRows = tileRows and tileCols = ${L} (subgroup size) x threadCols, got ${ms.tileRows}x${ms.tileCols} tiles of ${ms.threadRows}x${ms.threadCols}`);
    if (ms.tileRows % L !== 0 || ms.tileRows <= 0) throw new ScheduleError('matmul.tileRows', `${what}: laneBroadcast needs tileRows a positive multiple of the subgroup size ${L}, got ${ms.tileRows}`);
  }
  if (!Number.isInteger(ms.tileK) || ms.tileK < 1) throw new ScheduleError('matmul.tileK', `${what}: tileK must be a positive integer, got ${ms.tileK}`);
  const aRank = a.type.shape.length;
  const bRank = b.type.shape.length;
  const K = dimConstValue(a.type.shape[aRank - 1] ?? dimConst(1));
  const unitB = unitStrideAxis(lw.g, b);
  const bLayout = unitB === bRank - 2 ? 'n_by_k' : 'k_by_n';
  const wholeSteps = K !== undefined && K % ms.tileK === 0;
  const aVector = ms.aVector ?? 1;
  const bVector = ms.bVector ?? 1;
  if (aVector === 4 && !(ms.tileK % 4 === 0 && wholeSteps && hasVectorRuns(lw.g, a, aRank - 1, 4))) throw new ScheduleError('matmul.aVector', `${what}: vector loads of A need tileK a multiple of 4 dividing K and A contiguous along K in runs of 4`);
  if (bVector === 4) {
    const ok = bLayout === 'k_by_n' ? ms.threadCols % 4 === 0 && wholeSteps && hasVectorRuns(lw.g, b, bRank - 1, 4) : ms.tileK % 4 === 0 && wholeSteps && hasVectorRuns(lw.g, b, bRank - 2, 4);
    if (!ok) throw new ScheduleError('matmul.bVector', `${what}: vector loads of B need it contiguous along ${bLayout === 'k_by_n' ? 'N with threadCols' : 'K with tileK'} a multiple of 4 and K a multiple of tileK`);
  }
  const vectorTypes = new Set(['f32', 'f16', 'bf16']);
  if ((aVector === 4 && !vectorTypes.has(a.type.dtype)) || (bVector === 4 && !vectorTypes.has(b.type.dtype))) throw new ScheduleError('matmul.aVector', `${what}: vector loads need float operands`);
  // The norm parameters ride A's vector loads: 4 at a time exactly when A is.
  return { lanes: L, aVector, bVector, normVector: aVector, bLayout };
}

/** `host` whose `kb.input` gives one slot per graph value, however often a lambda is translated. */
export function bindOnce(host: FusedHost, kb: KernelBuilder): FusedHost {
  const slots = new Map<number, number>();
  const input = (role: string, value: number, dtype: DType): number => {
    const known = slots.get(value);
    if (known !== undefined) return known;
    const slot = kb.input(role, value, dtype);
    slots.set(value, slot);
    return slot;
  };
  return { ...host, kb: { input, let: (out, prefix, init) => kb.let(out, prefix, init), fresh: (prefix) => kb.fresh(prefix) } };
}

/**
 * The tensor-core operands of a matmul: both f16 or both bf16, A contiguous along K and B along
 * N or (a transposed weight, `x @ transpose(w)`) along K, so 8-element copies are runs of memory;
 * no norm fold. Undefined: the scalar tiled path.
 */
export function mmaOperands(g: Graph, n: Node, a: Node, b: Node): { readonly input: MatrixInput; readonly bLayout: MmaBLayout } | undefined {
  const t = a.type.dtype;
  if ((t !== 'f16' && t !== 'bf16') || b.type.dtype !== t) return undefined;
  if (n.op === 'fused_matmul' && normPrologueOf(n.attrs) !== undefined) return undefined;
  const aRank = a.type.shape.length;
  const bRank = b.type.shape.length;
  if (unitStrideAxis(g, a) !== aRank - 1) return undefined;
  const bAxis = unitStrideAxis(g, b);
  if (bAxis === bRank - 1) return { input: t, bLayout: 'k_by_n' };
  if (bAxis === bRank - 2) return { input: t, bLayout: 'n_by_k' };
  return undefined;
}

export function sAddAll(xs: readonly SizeExpr[]): SizeExpr {
  return xs.length === 1 && xs[0] !== undefined ? xs[0] : { kind: 'add', args: xs };
}
