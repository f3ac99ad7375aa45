// Pieces shared by the tensor-core attention kernels (attention/mma.ts: the prefill forward;
// attention/mma-backward.ts: FlashAttention-2's backward): which operands qualify, the 8-element
// async copies of a row block into a padded 16-bit shared tile, and the m16n8k16 fragment
// coordinates of a lane.
import type { Graph, Node } from '../../graph/ir.js';
import type { KernelBuilder } from '../ir/builder.js';
import { type Expr, type MatrixInput, type Stmt, add, div, lt, mul, rem, select, u32, v } from '../ir/ir.js';
import { unitStrideAxis, hasVectorRuns } from '../lower/view.js';
import { forLoop } from './exprs.js';

export const warpSize = 32;
/** Head widths the mma kernels take: whole 16-wide k slices and 8-wide n-tiles, and shared tiles that fit. */
export const mmaHeadWidths: readonly number[] = [64, 128];

/** 'f16' or 'bf16' when every node has that dtype, else undefined (the scalar kernels). */
export function mmaInputOf(nodes: readonly Node[]): MatrixInput | undefined {
  const dtype = nodes[0]?.type.dtype;
  if (dtype !== 'f16' && dtype !== 'bf16') return undefined;
  return nodes.every((x) => x.type.dtype === dtype) ? dtype : undefined;
}

/**
 * Whether `x` can be copied 8 elements at a time along d (axis 3): d contiguous in memory (a
 * head-layout view of a projection is), or aligned runs of 8 along d (GPT-2's q/k/v are views of
 * one qkv projection whose source index is `h * dh + d + offset`, a split, not d alone).
 */
export function copiesAlongD(g: Graph, x: Node): boolean {
  return unitStrideAxis(g, x) === 3 || hasVectorRuns(g, x, 3, 8);
}

/** The async copies of one kernel: its element type, thread index and thread count. */
export interface TileCopier {
  readonly kb: KernelBuilder;
  readonly input: MatrixInput;
  readonly lid: Expr;
  readonly threads: number;
}

/**
 * Rows [first, first + rows) x width of a head into the 16-bit shared `array` (row stride ld,
 * padded), 8 elements per async copy spread over the threads; rows at or past `limit` are zero.
 * `at(i, d)` is the element index of row i, column d in `slot`.
 */
export function copyTile(c: TileCopier, out: Stmt[], array: string, rows: number, width: number, ld: number, slot: number, first: Expr, limit: Expr, at: (i: Expr, d: Expr) => Expr): void {
  const { kb } = c;
  const e = kb.fresh('e');
  const ev = v(e, 'u32');
  const lb: Stmt[] = [];
  const r = kb.let(lb, 'r', div(ev, u32(width / 8)));
  const col = kb.let(lb, 'c', mul(rem(ev, u32(width / 8)), u32(8)));
  const i = kb.let(lb, 'i', add(first, r));
  lb.push({ kind: 'async_copy', input: c.input, array, arrayOffset: add(mul(r, u32(ld)), col), slot, index: at(i, col), count: select(lt(i, limit), u32(8), u32(0)) });
  out.push(forLoop(e, c.lid, u32((rows * width) / 8), u32(c.threads), lb));
}

/**
 * A lane's place in the m16n8k16 fragments (lane = 4 g + t): accumulator i of an n-tile holds row
 * g + 8 (i >> 1), column `col` + (i & 1) with col = 2 t; A and B fragments follow the PTX layouts
 * in the wrappers (codegen/cuda/mma.ts).
 */
export function fragmentCoords(kb: KernelBuilder, out: Stmt[], lane: Expr): { readonly g: Expr; readonly col: Expr } {
  const g = kb.let(out, 'g', div(lane, u32(4)));
  const col = kb.let(out, 'col', mul(rem(lane, u32(4)), u32(2)));
  return { g, col };
}
