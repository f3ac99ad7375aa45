// The streaming decode matmul (MatmulSchedule.kSplit): few rows of A against a weight stored
// [K, N] (contiguous along N), read the way a CPU adapter streams memory best. A workgroup of one
// subgroup owns a tile of tileK rows of the weight x tileCols columns: each step its L lanes read
// L consecutive vec4s of one weight row (128 contiguous bytes on lavapipe) and the next row comes
// next, so every workgroup streams a few kilobytes of adjacent rows. The K-split kernel
// (matmul/gemv.ts) instead gives each lane its own rows, 4 rows apart: 3.4 GB/s where these
// tiles streamed ~5 GB/s in a scratch test (bench/lavapipe/gemv2.mjs; a plain streaming read ~6).
// Each workgroup writes its partial sums for its columns to a temp [ceil(K / tileK), M, N]; a
// second kernel sums the partials of each output and applies the epilogue.
import { type Expr, type Stmt, add, and, arrayLoad, bin, builtin, call, cast, div, lit, load, lt, mul, u32, v } from '../ir/ir.js';
import type { KernelBuilder } from '../ir/builder.js';
import type { MatmulSchedule } from '../schedule/schedule.js';
import type { ScalarType } from '../ir/ir.js';

export interface StreamPartialsInput {
  readonly kb: KernelBuilder;
  readonly schedule: MatmulSchedule;
  readonly lanes: number;
  readonly aSlot: number;
  readonly bSlot: number;
  readonly partSlot: number;
  readonly aType: ScalarType;
  readonly bType: ScalarType;
  readonly M: Expr;
  readonly N: Expr;
  readonly K: Expr;
  readonly aAddr: (row: Expr, k: Expr) => Expr;
  /** Element address of the weight at (k, col): contiguous along col, vec4-aligned at col % 4 == 0. */
  readonly bAddr: (k: Expr, col: Expr) => Expr;
  /** Flat index of partial (tile kt, row, col) in the temp: (kt * M + row) * N + col, batch offset included. */
  readonly partIndex: (kt: Expr, row: Expr, col: Expr) => Expr;
}

/**
 * Kernel 1: partial sums. Launch [L, 1, 1] x [ceil(N / tileCols), ceil(K / tileK), ceil(M / tileRows)]; each
 * lane owns tileCols / (4L) vec4 columns (lane l, l + L, ...), tileRows rows of A (the rows are
 * few: a decode step's tokens).
 */
export function emitStreamPartials(p: StreamPartialsInput, body: Stmt[]): void {
  const { kb, lanes: L, M, N, K } = p;
  const { tileRows: TM, tileCols: TN, tileK: R } = p.schedule;
  const C4 = TN / (4 * L); // vec4 columns per lane
  const lane = builtin('local_index');
  const col0 = kb.let(body, 'col0', mul(builtin('workgroup_id', 0), u32(TN)));
  const kt = kb.let(body, 'kt', builtin('workgroup_id', 1));
  const k0 = kb.let(body, 'k0', mul(kt, u32(R)));
  const kEnd = kb.let(body, 'k_end', call('min', [add(k0, u32(R)), K], 'u32'));
  const nVecLast = kb.let(body, 'n_vec_last', bin('sub', N, u32(4)));
  const mLast = kb.let(body, 'm_last', bin('sub', M, u32(1)));
  const row0 = kb.let(body, 'row0', mul(builtin('workgroup_id', 2), u32(TM)));
  // The lane's column groups, clamped to the last vec4 (columns past N are never stored).
  const cols = Array.from({ length: C4 }, (_, c) => kb.let(body, 'c4', call('min', [add(col0, mul(add(lane, u32(c * L)), u32(4))), nVecLast], 'u32')));
  const acc = kb.fresh('acc');
  body.push({ kind: 'private_array', name: acc, type: 'f32', length: TM * C4 * 4, init: lit('f32', 0) });
  const k = kb.fresh('k');
  const kv = v(k, 'u32');
  const s: Stmt[] = [];
  const xs = Array.from({ length: TM }, (_, r) => kb.let(s, 'x', cast('f32', load(p.aSlot, p.aAddr(call('min', [add(row0, u32(r)), mLast], 'u32'), kv), p.aType))));
  for (let c = 0; c < C4; c++) {
    const names = [0, 1, 2, 3].map(() => kb.fresh('b'));
    s.push({ kind: 'load_vec', names, slot: p.bSlot, index: div(p.bAddr(kv, cols[c] ?? u32(0)), u32(4)), type: p.bType });
    for (let e = 0; e < 4; e++) {
      const bv = cast('f32', v(names[e] ?? '', p.bType));
      for (let r = 0; r < TM; r++) {
        const at = u32((r * C4 + c) * 4 + e);
        s.push({ kind: 'array_store', array: acc, index: at, value: bin('add', arrayLoad(acc, at, 'f32'), bin('mul', xs[r] ?? lit('f32', 0), bv)) });
      }
    }
  }
  body.push({ kind: 'for', var: k, start: k0, end: kEnd, step: u32(1), body: s });
  // Store the lane's partials (rows past M and columns past N are not stored).
  for (let r = 0; r < TM; r++) {
    for (let c = 0; c < C4; c++) {
      for (let e = 0; e < 4; e++) {
        const col = add(col0, add(mul(add(lane, u32(c * L)), u32(4)), u32(e)));
        const row = add(row0, u32(r));
        body.push({
          kind: 'if',
          cond: and(lt(row, M), lt(col, N)),
          then: [{ kind: 'store', slot: p.partSlot, index: p.partIndex(kt, row, col), value: arrayLoad(acc, u32((r * C4 + c) * 4 + e), 'f32') }],
          else: [],
        });
      }
    }
  }
}

/** Kernel 2: out[row, col] = epilogue(sum over the K tiles of the partials); one thread per output. */
export function emitStreamReduce(kb: KernelBuilder, body: Stmt[], o: { readonly tiles: Expr; readonly flat: Expr; readonly partIndex: (kt: Expr) => Expr; readonly partSlot: number; readonly store: (value: Expr) => Stmt[] }): void {
  const sum = kb.var(body, 'sum', 'f32', lit('f32', 0));
  const t = kb.fresh('t');
  body.push({ kind: 'for', var: t, start: u32(0), end: o.tiles, step: u32(1), body: [{ kind: 'assign', name: sum, value: bin('add', v(sum, 'f32'), load(o.partSlot, o.partIndex(v(t, 'u32')), 'f32')) }] });
  body.push(...o.store(v(sum, 'f32')));
}
