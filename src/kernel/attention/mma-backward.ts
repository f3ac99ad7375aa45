// The fused attention backward on tensor cores (CUDA sm_80+, schedule/schedule.ts
// `mmaAttentionBackward`): FlashAttention-2's backward for f16/bf16 q, k, v, o, dO with f32
// accumulation, every product on m16n8k16 mma.sync. lower.ts asks it first for a
// fused_attention_grad and keeps the f32 kernel (attention/backward.ts) where it returns
// undefined. Same two roles and grid as that kernel (no float atomics: dQ has its own blocks),
// the same block sparsity (sparsity.ts tileLogic for the dQ role, sparsity-kv.ts for dK/dV) and
// math (src/ops/attention-grad.ts), so the report's per-role tile counts hold for it too.
//
//   grid [ceil(S/Bc) + ceil(T/Br), Hq, B]; max(Br, Bc) / 16 warps; tiles 16-bit in shared memory
//   dK/dV role (x < ceil(S/Bc), y < Hkv): warp w owns keys k0 + 16w .. + 15 (the M side)
//     K, V tiles copied once; per query head of the group, per live query tile (Br rows):
//       Q, dO tiles (cp.async), each row's LSE and D = dO.o - dLSE (f32, from global)
//       S^T = K Q^T, dP^T = V dO^T (mma, Q and dO as stored: 'n_by_k'), Br / 8 n-tiles each
//       per accumulator (key g + 8 (i >> 1), row 2t + (i & 1) of its n-tile): P, dS in place
//       dV += P^T dO, dK += dS^T Q (mma_regs: the accumulators are the A fragments; 'k_by_n')
//     dK * scale, dV stored once
//   dQ role (x >= ceil(S/Bc)): warp w owns query rows q0 + 16w .. + 15
//     Q, dO tiles, LSE, D once; per live key tile: K, V tiles; S = Q K^T, dP = dO V^T (mma,
//     'n_by_k'); dS in place; dQ += dS K (mma_regs, K as stored: 'k_by_n'); dQ * scale stored once
// P and dS are rounded to f16/bf16 as A operands (mma_regs), as FlashAttention-2 does; S, dP and
// every accumulator stay f32. A warp past the role's rows or keys (Br != Bc) skips the products
// under a warp-uniform `if` (mma needs whole warps) but joins every copy and barrier.
import type { Node } from '../../graph/ir.js';
import { floatAttr } from '../../graph/ir.js';
import { attentionGradExtrasStart } from '../../ops/attention-vjp.js';
import { type Expr, type KernelSchedule, type MatrixInput, type Stmt, add, arrayLoad, bin, builtin, cast, div, lt, mul, rem, select, sub, u32 } from '../ir/ir.js';
import { storageType } from '../ir/storage.js';
import { dimExpr } from '../lower/dims.js';
import { dimToSize, sAdd, sCeilDiv } from '../plan/to-size.js';
import { type MmaAttentionBackwardSchedule, ScheduleError, mmaAttentionBackwardSharedBytes, mmaTilePad } from '../schedule/schedule.js';
import { type AttentionGradInput, attentionBackwardTraffic, gradSlots, scoreProbability } from './backward.js';
import { f32, fmin, forLoop } from './exprs.js';
import { lambdaExpr, lambdaOf } from './lambdas.js';
import { type TileCopier, copyTile, fragmentCoords, mmaHeadWidths, mmaInputOf, warpSize } from './mma-tiles.js';
import { type AttentionKernelDraft, shapeOf } from './node.js';
import type { AttentionSchedule } from './schedule.js';
import { type UniformRead, tileLogic } from './sparsity.js';
import { kvTileLogic } from './sparsity-kv.js';

/**
 * Rows (dK/dV role) or keys (dQ role) of a tile per round of products: the S and dP accumulators
 * of a round are chunk / 2 f32 per lane each (64 at 64-row tiles took 192-230 registers at
 * dk = dv = 64; see docs/cuda.md for the figures at 32).
 */
const chunk = 32;

/** The attributes this kernel implements; a node with any other (a later extension) keeps the f32 kernel. */
const knownAttrs: ReadonlySet<string> = new Set(['scale', 'mask', 'score', 'dscore', 'lse_cotangent']);

/**
 * The tiles for head widths dk, dv: the schedule's, halved (the larger, both when equal) while
 * they exceed the target's shared memory. Throws a ScheduleError naming the field that is not a
 * positive multiple of 16, or when even 16 x 16 does not fit.
 */
export function mmaBackwardTiles(s: MmaAttentionBackwardSchedule, dk: number, dv: number, sharedBytes: number, maxThreads: number): { rows: number; keys: number } {
  for (const [field, x] of [['tileRows', s.tileRows], ['tileCols', s.tileCols]] as const) {
    if (!Number.isInteger(x) || x < 16 || x % 16 !== 0) throw new ScheduleError(`mmaAttentionBackward.${field}`, `must be a positive multiple of 16 (16 rows or keys per warp), got ${x}`);
  }
  let rows = s.tileRows;
  let keys = s.tileCols;
  while (mmaAttentionBackwardSharedBytes(rows, keys, dk, dv) > sharedBytes && Math.max(rows, keys) > 16) {
    const big = Math.max(rows, keys);
    if (rows === big) rows /= 2;
    if (keys === big) keys /= 2;
    rows = Math.max(16, rows - (rows % 16));
    keys = Math.max(16, keys - (keys % 16));
  }
  if (mmaAttentionBackwardSharedBytes(rows, keys, dk, dv) > sharedBytes) throw new ScheduleError('mmaAttentionBackward.tileRows', `16 x 16 tiles at head widths ${dk}, ${dv} need ${mmaAttentionBackwardSharedBytes(16, 16, dk, dv)} bytes of shared memory, the target has ${sharedBytes}`);
  if ((Math.max(rows, keys) / 16) * warpSize > maxThreads) throw new ScheduleError(rows >= keys ? 'mmaAttentionBackward.tileRows' : 'mmaAttentionBackward.tileCols', `${rows} x ${keys} tiles need ${(Math.max(rows, keys) / 16) * warpSize} threads, the target allows ${maxThreads}`);
  return { rows, keys };
}

/** The tensor-core backward of `inp`'s fused_attention_grad, or undefined where the node does not qualify. */
export function mmaAttentionBackwardKernel(inp: Omit<AttentionGradInput, 'schedule'>, sched: MmaAttentionBackwardSchedule): AttentionKernelDraft | undefined {
  const { graph: g, node: n, target } = inp;
  if (Object.keys(n.attrs).some((key) => !knownAttrs.has(key))) return undefined;
  const operand = (i: number): Node => {
    const o = g.nodes[n.operands[i] ?? -1];
    if (o === undefined) throw new Error(`internal: fused_attention_grad lacks operand ${i}`);
    return o;
  };
  const [qN, kN, vN, oN, lseN, doN] = [0, 1, 2, 3, 4, 5].map(operand) as [Node, Node, Node, Node, Node, Node];
  const input: MatrixInput | undefined = mmaInputOf([qN, kN, vN, oN, doN]);
  if (input === undefined || target.subgroupSize !== warpSize) return undefined;
  const dlseN = attentionGradExtrasStart(n.attrs) > 6 ? operand(6) : undefined;
  const shape = shapeOf(qN.type, kN.type, vN.type);
  const { dk, dv } = shape;
  if (!mmaHeadWidths.includes(dk) || !mmaHeadWidths.includes(dv)) return undefined;
  const { rows: Br, keys: Bc } = mmaBackwardTiles(sched, dk, dv, target.maxWorkgroupStorageBytes, target.maxInvocationsPerWorkgroup);
  const warps = Math.max(Br, Bc) / 16;
  const threads = warps * warpSize;
  const scale = floatAttr(n, 'scale');
  const mask = lambdaOf(n, 'mask');

  const { kb, comp, stageRowStats, qS, kS, vS, doS, dqS, dkS, dvS } = gradSlots(inp, operand, [qN, kN, vN, oN, lseN, doN], dlseN);
  const LQ = dk + mmaTilePad;
  const LO = dv + mmaTilePad;
  const LK = dk + mmaTilePad;
  const LV = dv + mmaTilePad;
  const qs = kb.sharedArray('q_tile', 'u32', (Br * LQ) / 2);
  const dos = kb.sharedArray('do_tile', 'u32', (Br * LO) / 2);
  const ks = kb.sharedArray('k_tile', 'u32', (Bc * LK) / 2);
  const vs = kb.sharedArray('v_tile', 'u32', (Bc * LV) / 2);
  const lses = kb.sharedArray('lse_tile', 'f32', Br);
  const ds = kb.sharedArray('d_tile', 'f32', Br);

  const T = dimExpr(shape.T);
  const S = dimExpr(shape.S);
  const Hq = dimExpr(shape.Hq);
  const Hkv = dimExpr(shape.Hkv);
  const lid = builtin('local_index');
  const copier: TileCopier = { kb, input, lid, threads };
  const body: Stmt[] = [];
  const nkt = kb.let(body, 'n_kt', div(add(S, u32(Bc - 1)), u32(Bc)));
  const warp = kb.let(body, 'warp', div(lid, u32(warpSize)));
  const { g: gq, col } = fragmentCoords(kb, body, rem(lid, u32(warpSize)));
  const wx = builtin('workgroup_id', 0);
  const wy = builtin('workgroup_id', 1);
  const wz = builtin('workgroup_id', 2);
  const uniformRead: UniformRead = (out, e, b, h) => lambdaExpr(comp, g, n, out, e, [b, h, u32(0), u32(0)], undefined);
  /** `then` for the warps below `count` / 16 (every warp when the role fills the block): warp-uniform. */
  const warpsOf = (count: number, then: Stmt[]): Stmt[] => (count / 16 >= warps ? then : [{ kind: 'if', cond: lt(warp, u32(count / 16)), then, else: [], uniformity: 'subgroup' }]);
  const rowAt = (width: number, row0: Expr) => (i: Expr, d: Expr): Expr => add(mul(add(row0, i), u32(width)), d);

  /** Q and dO tiles of rows q0 .. q0 + Br - 1 (zero past T), committed; each row's LSE and D (0 past T). No barrier. */
  const stageRows = (out: Stmt[], q0: Expr, qRow0: Expr): void => {
    copyTile(copier, out, qs, Br, dk, LQ, qS, q0, T, rowAt(dk, qRow0));
    copyTile(copier, out, dos, Br, dv, LO, doS, q0, T, rowAt(dv, qRow0));
    out.push({ kind: 'async_commit' });
    stageRowStats(out, { q0, qRow0, T, rows: Br, dv, lid, threads, lses, ds });
  };
  /** K and V tiles of keys k0 .. k0 + Bc - 1 (zero past S), committed. No barrier. */
  const stageKeys = (out: Stmt[], k0: Expr, kvRow0: Expr): void => {
    copyTile(copier, out, ks, Bc, dk, LK, kS, k0, S, rowAt(dk, kvRow0));
    copyTile(copier, out, vs, Bc, dv, LV, vS, k0, S, rowAt(dv, kvRow0));
    out.push({ kind: 'async_commit' });
  };
  /** acc[4 nt ..] += A (16 rows at aRow of `a`, width kDim) x B^T (n-tiles of 8 rows of `b` from bRow0): 'n_by_k', B as stored. */
  const mmaNK = (out: Stmt[], acc: string, a: string, aRow: Expr, lda: number, b: string, bRow0: number, ldb: number, kDim: number, nTiles: number): void => {
    for (let kk = 0; kk < kDim / 16; kk++) {
      for (let nt = 0; nt < nTiles; nt++) {
        out.push({ kind: 'mma', input, acc, accOffset: nt * 4, a: { array: a, offset: add(mul(aRow, u32(lda)), u32(kk * 16)), stride: lda }, b: { array: b, offset: u32((bRow0 + nt * 8) * ldb + kk * 16), stride: ldb }, bLayout: 'n_by_k' });
      }
    }
  };
  /** acc[4 nt ..] += A (registers `regs`: kRows / 16 fragments) x B (kRows x width, rows from bRow0 of `b`, 'k_by_n'). */
  const mmaRegs = (out: Stmt[], acc: string, regs: string, b: string, bRow0: number, ldb: number, kRows: number, width: number): void => {
    for (let kc = 0; kc < kRows / 16; kc++) {
      for (let nt = 0; nt < width / 8; nt++) {
        out.push({ kind: 'mma_regs', input, acc, accOffset: nt * 4, aRegs: regs, aOffset: kc * 8, b: { array: b, offset: u32((bRow0 + kc * 16) * ldb + nt * 8), stride: ldb }, bLayout: 'k_by_n' });
      }
    }
  };
  /**
   * Accumulator `at` of S (in `sAcc`) and dP (in `dpAcc`) for query qi and key kk of head hh, the
   * row's LSE and D given: P into sAcc, dS into dpAcc (src/ops/attention-grad.ts's math; 0 where
   * masked, past T or S). The mask is evaluated only where `partial`; lambdas see clamped indices.
   */
  const scoreGrad = (out: Stmt[], sAcc: string, dpAcc: string, at: number, b: Expr, hh: Expr, qi: Expr, kk: Expr, lse: Expr, dRow: Expr, partial: Expr): void => {
    const idx = [b, hh, fmin(qi, sub(T, u32(1))), fmin(kk, sub(S, u32(1)))];
    const s = kb.let(out, 's', bin('mul', arrayLoad(sAcc, u32(at), 'f32'), f32(scale)));
    const { p, dsc } = scoreProbability({ kb, comp, g, n, S, T }, out, { s, idx, qi, kk, partial, lse: () => lse });
    const dz = bin('mul', p, bin('sub', arrayLoad(dpAcc, u32(at), 'f32'), dRow));
    out.push({ kind: 'array_store', array: sAcc, index: u32(at), value: p });
    out.push({ kind: 'array_store', array: dpAcc, index: u32(at), value: select(bin('eq', p, f32(0)), f32(0), dsc === undefined ? dz : bin('mul', dz, dsc)) });
  };
  /** Stores acc (4 per n-tile of `width / 8`) times `factor` as rows `row(hf)` (hf = i >> 1) of `sl` where `ok(hf)`. */
  const storeAcc = (out: Stmt[], acc: string, sl: number, x: Node, width: number, row: (hf: number) => Expr, ok: (hf: number) => Expr, factor: number): void => {
    for (const hf of [0, 1]) {
      const st: Stmt[] = [];
      for (let nt = 0; nt < width / 8; nt++) {
        for (const i of [2 * hf, 2 * hf + 1]) {
          const a = arrayLoad(acc, u32(nt * 4 + i), 'f32');
          st.push({ kind: 'store', slot: sl, index: add(mul(row(hf), u32(width)), add(col, u32(nt * 8 + (i & 1)))), value: cast(storageType(x.type.dtype), factor === 1 ? a : bin('mul', a, f32(factor))) });
        }
      }
      out.push({ kind: 'if', cond: ok(hf), then: st, else: [] });
    }
  };

  // ---- dK/dV role: x < ceil(S / Bc), y < Hkv ----
  const roleKV: Stmt[] = [];
  {
    const logic = kvTileLogic(kb, shape, mask, Br, Bc, uniformRead);
    roleKV.push(...logic.header);
    const { k0, hk, b, h, q0 } = logic;
    const kvRow0 = kb.let(roleKV, 'kv_row0', mul(add(mul(b, Hkv), hk), S));
    stageKeys(roleKV, k0, kvRow0);
    const accK = kb.fresh('acc_k');
    const accV = kb.fresh('acc_v');
    roleKV.push({ kind: 'private_array', name: accK, type: 'f32', length: dk / 2, init: f32(0) }, { kind: 'private_array', name: accV, type: 'f32', length: dv / 2, init: f32(0) });
    // This lane's keys (M side of S^T): k0 + 16 warp + g + 8 hf.
    const keyLocal = [0, 1].map((hf) => kb.let(roleKV, `key${hf}`, add(mul(warp, u32(16)), add(gq, u32(8 * hf)))));
    const hb: Stmt[] = [...logic.perHead];
    const qRow0 = kb.let(hb, 'q_row0', mul(add(mul(b, Hq), h), T));
    const work: Stmt[] = [{ kind: 'barrier' }]; // the previous tile's products are done with Q, dO, LSE, D
    stageRows(work, q0, qRow0);
    work.push({ kind: 'async_wait', pending: 0 }, { kind: 'barrier' });
    const prod: Stmt[] = [];
    // The tile's rows in chunks of R: S^T and dP^T hold R / 2 accumulators each, not Br / 2.
    const R = Math.min(Br, chunk);
    for (let c0 = 0; c0 < Br; c0 += R) {
      const sAcc = kb.fresh('st_acc');
      const dpAcc = kb.fresh('dpt_acc');
      prod.push({ kind: 'private_array', name: sAcc, type: 'f32', length: R / 2, init: f32(0) }, { kind: 'private_array', name: dpAcc, type: 'f32', length: R / 2, init: f32(0) });
      mmaNK(prod, sAcc, ks, mul(warp, u32(16)), LK, qs, c0, LQ, dk, R / 8); // S^T = K Q^T
      mmaNK(prod, dpAcc, vs, mul(warp, u32(16)), LV, dos, c0, LO, dv, R / 8); // dP^T = V dO^T
      for (let nt = 0; nt < R / 8; nt++) {
        for (const j of [0, 1]) {
          const r = kb.let(prod, 'r', add(col, u32(c0 + nt * 8 + j)));
          const lse = kb.let(prod, 'lse_r', arrayLoad(lses, r, 'f32'));
          const dRow = kb.let(prod, 'd_r', arrayLoad(ds, r, 'f32'));
          for (const hf of [0, 1]) scoreGrad(prod, sAcc, dpAcc, nt * 4 + 2 * hf + j, b, h, add(q0, r), add(k0, keyLocal[hf] ?? u32(0)), lse, dRow, logic.mayFalse);
        }
      }
      mmaRegs(prod, accV, sAcc, dos, c0, LO, R, dv); // dV += P^T dO
      mmaRegs(prod, accK, dpAcc, qs, c0, LQ, R, dk); // dK += dS^T Q
    }
    work.push(...warpsOf(Bc, prod));
    hb.push(forLoop(logic.qtVar, logic.qtStart, logic.qtEnd, u32(1), [...logic.perTile, { kind: 'if', cond: logic.mayTrue, then: work, else: [] }]));
    roleKV.push({ kind: 'comment', text: "each query head of the KV head's group; query tiles outside [qt_start, qt_end) see none of this key tile" });
    roleKV.push(forLoop(logic.ghVar, u32(0), shape.group, u32(1), hb));
    const kvRow = (hf: number): Expr => add(kvRow0, add(k0, keyLocal[hf] ?? u32(0)));
    const inS = (hf: number): Expr => lt(add(k0, keyLocal[hf] ?? u32(0)), S);
    const wb: Stmt[] = [];
    storeAcc(wb, accK, dkS, inp.dK, dk, kvRow, inS, scale);
    storeAcc(wb, accV, dvS, inp.dV, dv, kvRow, inS, 1);
    roleKV.push(...warpsOf(Bc, wb));
  }

  // ---- dQ role: x >= ceil(S / Bc); the forward's tile logic over x - ceil(S / Bc) ----
  const roleQ: Stmt[] = [];
  {
    const fwdSchedule: AttentionSchedule = { tileRows: Br, tileCols: Bc, lanes: 4, useSubgroups: true, splits: 1, decodeMaxT: 0 };
    const logic = tileLogic(kb, shape, mask, fwdSchedule, { kind: 'prefill', rows: Br, heads: 1 }, uniformRead, { x: bin('sub', wx, nkt), y: wy, z: wz });
    roleQ.push(...logic.header);
    const { b, h, q0 } = logic;
    const hk = kb.let(roleQ, 'hk', div(h, shape.group));
    const qRow0 = kb.let(roleQ, 'q_row0', mul(add(mul(b, Hq), h), T));
    const kvRow0 = kb.let(roleQ, 'kv_row0', mul(add(mul(b, Hkv), hk), S));
    stageRows(roleQ, q0, qRow0);
    roleQ.push({ kind: 'async_wait', pending: 0 }, { kind: 'barrier' });
    // This lane's rows (M side of S): q0 + 16 warp + g + 8 hf, their LSE and D (clamped into the tile for idle warps).
    const rowLocal = [0, 1].map((hf) => kb.let(roleQ, `row${hf}`, fmin(add(mul(warp, u32(16)), add(gq, u32(8 * hf))), u32(Br - 1))));
    const qi = rowLocal.map((r) => kb.let(roleQ, 'qi', add(q0, r)));
    const lse = rowLocal.map((r) => kb.let(roleQ, 'lse_r', arrayLoad(lses, r, 'f32')));
    const dRow = rowLocal.map((r) => kb.let(roleQ, 'd_r', arrayLoad(ds, r, 'f32')));
    roleQ.push({ kind: 'comment', text: 'block sparsity: key tiles outside [kt_start, kt_end) are fully masked for every row of this tile' });
    roleQ.push(...logic.bounds);
    const accQ = kb.fresh('acc_q');
    roleQ.push({ kind: 'private_array', name: accQ, type: 'f32', length: dk / 2, init: f32(0) });
    const work: Stmt[] = [{ kind: 'barrier' }]; // the previous tile's products are done with K, V
    stageKeys(work, logic.k0, kvRow0);
    work.push({ kind: 'async_wait', pending: 0 }, { kind: 'barrier' });
    const prod: Stmt[] = [];
    // The tile's keys in chunks of R: S and dP hold R / 2 accumulators each.
    const R = Math.min(Bc, chunk);
    for (let c0 = 0; c0 < Bc; c0 += R) {
      const sAcc = kb.fresh('s_acc');
      const dpAcc = kb.fresh('dp_acc');
      prod.push({ kind: 'private_array', name: sAcc, type: 'f32', length: R / 2, init: f32(0) }, { kind: 'private_array', name: dpAcc, type: 'f32', length: R / 2, init: f32(0) });
      mmaNK(prod, sAcc, qs, mul(warp, u32(16)), LQ, ks, c0, LK, dk, R / 8); // S = Q K^T
      mmaNK(prod, dpAcc, dos, mul(warp, u32(16)), LO, vs, c0, LV, dv, R / 8); // dP = dO V^T
      for (let nt = 0; nt < R / 8; nt++) {
        for (let i = 0; i < 4; i++) {
          const hf = i >> 1;
          const kk = kb.let(prod, 'kk', add(logic.k0, add(col, u32(c0 + nt * 8 + (i & 1)))));
          scoreGrad(prod, sAcc, dpAcc, nt * 4 + i, b, h, qi[hf] ?? u32(0), kk, lse[hf] ?? f32(0), dRow[hf] ?? f32(0), logic.mayFalse);
        }
      }
      mmaRegs(prod, accQ, dpAcc, ks, c0, LK, R, dk); // dQ += dS K
    }
    work.push(...warpsOf(Br, prod));
    roleQ.push(forLoop(logic.ktVar, logic.ktStart, logic.ktEnd, u32(1), [...logic.perTile, { kind: 'if', cond: logic.mayTrue, then: work, else: [] }]));
    const wb: Stmt[] = [];
    storeAcc(wb, accQ, dqS, n, dk, (hf) => add(qRow0, qi[hf] ?? u32(0)), (hf) => lt(qi[hf] ?? u32(0), T), scale);
    roleQ.push(...warpsOf(Br, wb));
  }
  body.push({ kind: 'comment', text: 'dK/dV role: one block per (key tile, KV head, batch); dQ role: one per (query tile, query head, batch)' });
  body.push({ kind: 'if', cond: lt(wx, nkt), then: [{ kind: 'if', cond: lt(wy, Hkv), then: roleKV, else: [] }], else: roleQ });

  // The same requests per role and tile as the f32 kernel at these tiles (one formula: its traffic).
  const traffic = attentionBackwardTraffic(g, n, Br, Bc);
  const schedule: KernelSchedule = { kind: 'flash_attention', tileRows: Br, tileCols: Bc, lanes: 4, useSubgroups: true, splits: 1, backward: true, mma: input };
  return {
    op: 'fused_attention_grad',
    workgroupSize: [threads, 1, 1],
    grid: [sAdd(sCeilDiv(dimToSize(shape.S), Bc), sCeilDiv(dimToSize(shape.T), Br)), dimToSize(shape.Hq), dimToSize(shape.B)],
    buffers: kb.buffers,
    shared: kb.shared,
    body,
    schedule,
    traffic,
    bindings: kb.bindings,
  };
}
