// The tensor-core matmul body (CUDA sm_80+, schedule/schedule.ts `mmaMatmul`): lower/lower.ts's emitMatmul
// calls it for f16/bf16 operands read contiguously, after binding the buffers, the batch offsets
// and the epilogue. Matrix statements (ir/ir.ts: mma, async_copy) print through codegen/cuda/mma.ts.
//
//   shared a_tile: 2 stages x tileRows x (tileK + 8), b_tile: 2 x tileK x (tileCols + 8) (16-bit;
//   2 x tileCols x (tileK + 8) when B is contiguous along K, `x @ transpose(w)`: 'n_by_k')
//   copy K tile 0 -> stage 0; commit
//   for kt in 0..ceil(K / tileK):
//     if kt + 1 < tiles: copy K tile kt + 1 -> stage (kt + 1) % 2   (in flight during the mma)
//     commit; wait until <= 1 group pending (tile kt landed); barrier
//     per warp: acc[mt][nt] += A[warp rows mt][k16] * B[k16][warp cols nt]   (m16n8k16 mma)
//     barrier (stage kt % 2 is overwritten by the copy issued next iteration)
//   epilogue per accumulator (fragment row/column from the lane), bounds-checked store
// Copies past M, N or K are zero-filled, so partial tiles multiply zeros (the CUTLASS predicated
// tile iterator does the same); only stores are bounds-checked.
import {
  type Expr,
  type KernelSchedule,
  type MatrixInput,
  type MmaBLayout,
  type Stmt,
  add,
  and,
  builtin,
  call,
  div,
  lit,
  lt,
  mul,
  rem,
  select,
  sub,
  u32,
  v,
  arrayLoad,
} from '../ir/ir.js';
import type { KernelBuilder } from '../ir/builder.js';
import { type MmaMatmulSchedule, mmaTilePad } from '../schedule/schedule.js';

export interface MmaMatmulParts {
  readonly kb: KernelBuilder;
  readonly schedule: MmaMatmulSchedule;
  readonly input: MatrixInput;
  readonly aSlot: number;
  readonly bSlot: number;
  /** Matrix sizes (u32): A is M x K, B is K x N. */
  readonly M: Expr;
  readonly N: Expr;
  readonly K: Expr;
  /** Element offset of A[row][k] in its buffer; A[row][k + i] must be at + i (contiguous along K). */
  readonly aAddr: (row: Expr, k: Expr) => Expr;
  /** Element offset of B[k][col]; contiguous along N ('k_by_n') or along K ('n_by_k', a transposed weight). */
  readonly bAddr: (k: Expr, col: Expr) => Expr;
  readonly bLayout: MmaBLayout;
  /** The epilogue and store of one output element at its flat output index. */
  readonly store: (index: Expr, acc: Expr) => Stmt[];
  /** Flat output index of (row, col) of this block's matrix. */
  readonly outIndex: (row: Expr, col: Expr) => Expr;
}

const warpSize = 32;
const stages = 2;

/** Appends the kernel body to `body`; returns the block size and the schedule to record. */
export function emitMmaMatmul(p: MmaMatmulParts, body: Stmt[]): { threads: number; schedule: KernelSchedule } {
  const { kb, schedule: s, M, N, K } = p;
  const { tileRows: BM, tileCols: BN, tileK: BK, warpRows: WR, warpCols: WC } = s;
  const WM = BM / WR;
  const WN = BN / WC;
  if (BK % 16 !== 0 || WM % 16 !== 0 || WN % 8 !== 0 || BN % 8 !== 0) {
    throw new Error(`internal: mma schedule ${BM}x${BN}x${BK} with ${WR}x${WC} warps does not split into m16n8k16 tiles`);
  }
  const MT = WM / 16;
  const NT = WN / 8;
  const threads = warpSize * WR * WC;
  const isNk = p.bLayout === 'n_by_k';
  const LDA = BK + mmaTilePad;
  const LDB = (isNk ? BK : BN) + mmaTilePad; // B tile rows: K rows of N, or N rows of K
  const aStage = BM * LDA; // 16-bit elements per stage
  const bStage = (isNk ? BN : BK) * LDB;
  const aTile = kb.sharedArray('a_tile', 'u32', (stages * aStage) / 2);
  const bTile = kb.sharedArray('b_tile', 'u32', (stages * bStage) / 2);

  const row0 = kb.let(body, 'row0', mul(builtin('workgroup_id', 1), u32(BM)));
  const col0 = kb.let(body, 'col0', mul(builtin('workgroup_id', 0), u32(BN)));
  const tid = builtin('local_index');
  const warp = kb.let(body, 'warp', div(tid, u32(warpSize)));
  const wrow = kb.let(body, 'wrow', mul(div(warp, u32(WC)), u32(WM)));
  const wcol = kb.let(body, 'wcol', mul(rem(warp, u32(WC)), u32(WN)));
  const acc = kb.fresh('acc');
  body.push({ kind: 'private_array', name: acc, type: 'f32', length: MT * NT * 4, init: lit('f32', 0) });
  const tiles = kb.let(body, 'k_tiles', div(add(K, u32(BK - 1)), u32(BK)));

  // 8-element copies of one K tile into stage `stage`: A rows x K chunks, then B K rows x N chunks.
  // count = elements left in the row (0 past M, N or K): the rest of the 8 is zero-filled.
  const eight = u32(8);
  const copies = (stage: Expr, k0: Expr): Stmt[] => {
    const out: Stmt[] = [];
    const part = (array: string, rows: number, cols: number, ld: number, stageElems: number, slot: number, rowLimit: Expr, colLimit: Expr, grow: (r: Expr) => Expr, gcol: (c: Expr) => Expr, addr: (gr: Expr, gc: Expr) => Expr): void => {
      const e = kb.fresh('e');
      const lb: Stmt[] = [];
      const ev = v(e, 'u32');
      const r = kb.let(lb, 'r', div(ev, u32(cols / 8)));
      const c = kb.let(lb, 'c', mul(rem(ev, u32(cols / 8)), eight));
      const gr = kb.let(lb, 'gr', grow(r));
      const gc = kb.let(lb, 'gc', gcol(c));
      const count = select(and(lt(gr, rowLimit), lt(gc, colLimit)), call('min', [sub(colLimit, gc), eight], 'u32'), u32(0));
      lb.push({
        kind: 'async_copy',
        input: p.input,
        array,
        arrayOffset: add(mul(stage, u32(stageElems)), add(mul(r, u32(ld)), c)),
        slot,
        index: addr(gr, gc),
        count,
      });
      out.push({ kind: 'for', var: e, start: tid, end: u32((rows * cols) / 8), step: u32(threads), body: lb });
    };
    part(aTile, BM, BK, LDA, aStage, p.aSlot, M, K, (r) => add(row0, r), (c) => add(k0, c), p.aAddr);
    if (isNk) part(bTile, BN, BK, LDB, bStage, p.bSlot, N, K, (r) => add(col0, r), (c) => add(k0, c), (n, k) => p.bAddr(k, n));
    else part(bTile, BK, BN, LDB, bStage, p.bSlot, K, N, (r) => add(k0, r), (c) => add(col0, c), p.bAddr);
    return out;
  };

  body.push(...copies(u32(0), u32(0)), { kind: 'async_commit' });
  const kt = kb.fresh('kt');
  const ktv = v(kt, 'u32');
  const loop: Stmt[] = [];
  const next = add(ktv, u32(1));
  loop.push({ kind: 'if', cond: lt(next, tiles), then: copies(rem(next, u32(stages)), mul(next, u32(BK))), else: [] });
  loop.push({ kind: 'async_commit' }, { kind: 'async_wait', pending: 1 }, { kind: 'barrier' });
  const cur = kb.let(loop, 'stage', rem(ktv, u32(stages)));
  const aBase = kb.let(loop, 'a_base', add(mul(cur, u32(aStage)), mul(wrow, u32(LDA))));
  const bBase = kb.let(loop, 'b_base', add(mul(cur, u32(bStage)), isNk ? mul(wcol, u32(LDB)) : wcol));
  // Unrolled here (constant offsets), so the accumulators stay in registers after ptxas.
  for (let kk = 0; kk < BK / 16; kk++) {
    for (let mt = 0; mt < MT; mt++) {
      for (let nt = 0; nt < NT; nt++) {
        loop.push({
          kind: 'mma',
          input: p.input,
          acc,
          accOffset: (mt * NT + nt) * 4,
          a: { array: aTile, offset: add(aBase, u32(mt * 16 * LDA + kk * 16)), stride: LDA },
          b: { array: bTile, offset: add(bBase, u32(isNk ? nt * 8 * LDB + kk * 16 : kk * 16 * LDB + nt * 8)), stride: LDB },
          bLayout: p.bLayout,
        });
      }
    }
  }
  loop.push({ kind: 'barrier' });
  body.push({ kind: 'for', var: kt, start: u32(0), end: tiles, step: u32(1), body: loop });

  // Epilogue: accumulator i of tile (mt, nt) sits at row g + 8 * (i >> 1), column 2t + (i & 1).
  const lane = kb.let(body, 'lane', rem(tid, u32(warpSize)));
  const orow0 = kb.let(body, 'orow0', add(row0, add(wrow, div(lane, u32(4)))));
  const ocol0 = kb.let(body, 'ocol0', add(col0, add(wcol, mul(rem(lane, u32(4)), u32(2)))));
  for (let mt = 0; mt < MT; mt++) {
    for (let nt = 0; nt < NT; nt++) {
      for (let i = 0; i < 4; i++) {
        const orow = add(orow0, u32(mt * 16 + 8 * (i >> 1)));
        const ocol = add(ocol0, u32(nt * 8 + (i & 1)));
        const value = arrayLoad(acc, u32((mt * NT + nt) * 4 + i), 'f32');
        body.push({ kind: 'if', cond: and(lt(orow, M), lt(ocol, N)), then: p.store(p.outIndex(orow, ocol), value), else: [] });
      }
    }
  }
  return { threads, schedule: { kind: 'mma_matmul', tileRows: BM, tileCols: BN, tileK: BK, warpRows: WR, warpCols: WC, stages, input: p.input } };
}

