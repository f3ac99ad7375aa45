// The fused attention prefill kernel on tensor cores (CUDA sm_80+, schedule/schedule.ts `mmaAttention`):
// attention/attention.ts's lowerFusedAttention calls it first for the prefill kernel and keeps its
// scalar kernel where this returns undefined (qload, dtypes other than f16/bf16 for all of q, k, v,
// head widths outside {64, 128}, operands not contiguous along d). Split-K decode stays scalar.
//
//   block = (Br query rows, query head h, batch b); warp w owns rows 16w .. 16w + 15; KV head h / group
//   shared q_tile Br x (dk + 8), k_tile Bc x (dk + 8), v_tile Bc x (dv + 8): 16-bit, single-buffered
//   copy Q; commit; copy K tile kt_start; commit; copy V tile kt_start; commit
//   for each key tile kt in [kt_start, kt_end) (the scalar kernel's block-sparsity bounds):
//     wait (K landed); barrier
//     live: S = Q K^T (mma, K as stored: 'n_by_k'), Bc / 8 accumulator tiles per warp
//     barrier; copy K tile kt + 1 (in flight during the softmax and P V); commit
//     live: per accumulator (row g + 8 (i >> 1), key 2t + (i & 1)): scale, score lambda, mask
//           (only on partial tiles), row max over the quad (shuffles with lanes l^1, l^2),
//           p = exp(s - m) in f32 in place, l and O rescaled by alpha
//     wait (V landed); barrier
//     live: O += P V (mma_regs: the S accumulators of n-tiles 2j, 2j + 1 are the A fragment of
//           key slice j, rounded to f16/bf16 in the wrapper; V as stored, 'k_by_n')
//     barrier; copy V tile kt + 1; commit
//   out = O / l (quad sum of l), 0 where l = 0; LSE m + log l (-inf where l = 0) when the node has one
// Copies past T or S are zero-filled (p is 0 there and V is 0, so no NaN reaches O).
import type { Node } from '../../graph/ir.js';
import { floatAttr } from '../../graph/ir.js';
import { KernelBuilder } from '../ir/builder.js';
import {
  type Expr,
  type KernelSchedule,
  type Stmt,
  type Traffic,
  add,
  and,
  arrayLoad,
  bin,
  builtin,
  call,
  cast,
  div,
  lt,
  mul,
  rem,
  select,
  sub,
  subgroupShuffle,
  u32,
  v,
} from '../ir/ir.js';
import { type AttentionInput, type AttentionKernelDraft, lseBytes, lseValue, shapeOf } from './node.js';
import type { AttentionSchedule } from './schedule.js';
import { lambdaExpr, lambdaOf, scoreBytesOf } from './lambdas.js';
import { type UniformRead, tileLogic } from './sparsity.js';
import { NEG_INF, f32, fmax, fmin, forLoop } from './exprs.js';
import { dimExpr } from '../lower/dims.js';
import { elementOffset } from '../lower/view.js';
import { type TileCopier, copiesAlongD, copyTile as copyTileTo, fragmentCoords, mmaHeadWidths, mmaInputOf, warpSize } from './mma-tiles.js';
import { type MmaAttentionSchedule, mmaAttentionSharedBytes, mmaTilePad } from '../schedule/schedule.js';
import { storageBytes, storageType } from '../ir/storage.js';
import { dimToSize, sAdd, sCeilDiv, sConst, sMul } from '../plan/to-size.js';


/** The tensor-core prefill kernel of `inp`'s node, or undefined where the node does not qualify. */
export function mmaAttentionKernel(inp: AttentionInput, sched: MmaAttentionSchedule): AttentionKernelDraft | undefined {
  const { graph: g, node: n, target } = inp;
  // RoPE at load (Q or K computed by a lambda): the scalar kernel.
  if (lambdaOf(n, 'qload') !== undefined || lambdaOf(n, 'kload') !== undefined || lambdaOf(n, 'vload') !== undefined) return undefined;
  const operand = (i: number): Node | undefined => g.nodes[n.operands[i] ?? -1];
  const qN = operand(0);
  const kN = operand(1);
  const vN = operand(2);
  if (qN === undefined || kN === undefined || vN === undefined) return undefined;
  const input = mmaInputOf([qN, kN, vN]);
  if (input === undefined) return undefined;
  const dtype = input;
  const shape = shapeOf(qN.type, kN.type, vN.type);
  const { dk, dv } = shape;
  if (!mmaHeadWidths.includes(dk) || !mmaHeadWidths.includes(dv)) return undefined;
  if (![qN, kN, vN].every((o) => copiesAlongD(g, o))) return undefined;
  const Br = sched.tileRows;
  if (Br % 16 !== 0 || sched.tileCols % 16 !== 0) throw new Error(`internal: mma attention tile ${Br}x${sched.tileCols} is not a multiple of 16`);
  const warps = Br / 16;
  const threads = warps * warpSize;
  let Bc = sched.tileCols;
  while (Bc > 16 && mmaAttentionSharedBytes(Br, Bc, dk, dv) > target.maxWorkgroupStorageBytes) Bc /= 2;
  if (mmaAttentionSharedBytes(Br, Bc, dk, dv) > target.maxWorkgroupStorageBytes || threads > target.maxInvocationsPerWorkgroup || target.subgroupSize !== warpSize) return undefined;

  const mask = lambdaOf(n, 'mask');
  const scoreL = lambdaOf(n, 'score');
  const scale = floatAttr(n, 'scale');
  const kb = new KernelBuilder();
  const qSlot = kb.slot('q', qN.id, 'read', storageType(dtype));
  const kSlot = kb.slot('k', kN.id, 'read', storageType(dtype));
  const vSlot = kb.slot('v', vN.id, 'read', storageType(dtype));
  const extraSlots = new Map<number, number>();
  const slotOf = (operandIndex: number): number => {
    let sl = extraSlots.get(operandIndex);
    if (sl === undefined) {
      const o = operand(operandIndex);
      if (o === undefined) throw new Error(`internal: fused_attention lacks operand ${operandIndex}`);
      sl = kb.slot(`t${operandIndex}`, o.id, 'read', storageType(o.type.dtype));
      extraSlots.set(operandIndex, sl);
    }
    return sl;
  };
  const outSlot = kb.slot('out', n.id, 'read_write', storageType(n.type.dtype));
  const LQ = dk + mmaTilePad;
  const LK = dk + mmaTilePad;
  const LV = dv + mmaTilePad;
  const qs = kb.sharedArray('q_tile', 'u32', (Br * LQ) / 2);
  const ks = kb.sharedArray('k_tile', 'u32', (Bc * LK) / 2);
  const vs = kb.sharedArray('v_tile', 'u32', (Bc * LV) / 2);

  const T = dimExpr(shape.T);
  const S = dimExpr(shape.S);
  const comp = { kb, slotOf };
  // The scalar kernel's block-sparsity analysis, on this kernel's Br x Bc tiles, one head per block.
  const uniformRead: UniformRead = (out, e, b, h) => lambdaExpr(comp, g, n, out, e, [b, h, u32(0), u32(0)], undefined);
  const tiles: AttentionSchedule = { tileRows: Br, tileCols: Bc, lanes: 4, useSubgroups: true, splits: 1, decodeMaxT: 1 };
  const logic = tileLogic(kb, shape, mask, tiles, { kind: 'prefill', rows: Br, heads: 1 }, uniformRead);
  const body: Stmt[] = [...logic.header];
  const { b, h, q0 } = logic;
  const lid = builtin('local_index');
  const warp = kb.let(body, 'warp', div(lid, u32(warpSize)));
  const lane = kb.let(body, 'lane', rem(lid, u32(warpSize)));
  const hk = kb.let(body, 'hk', div(h, shape.group));
  const qRow0 = kb.let(body, 'q_row0', mul(add(mul(b, dimExpr(shape.Hq)), h), T));
  const kvRow0 = kb.let(body, 'kv_row0', mul(add(mul(b, dimExpr(shape.Hkv)), hk), S));
  const addrOf = (node: Node, head: Expr, rowBase: Expr, width: number): ((i: Expr, d: Expr) => Expr) => (i, d) =>
    node.op === 'view' ? elementOffset(g, node, [b, head, i, d], dimExpr) : add(mul(add(rowBase, i), u32(width)), d);
  const copier: TileCopier = { kb, input, lid, threads };
  const copyTile = (out: Stmt[], array: string, rows: number, width: number, ld: number, slot: number, first: Expr, limit: Expr, at: (i: Expr, d: Expr) => Expr): void =>
    copyTileTo(copier, out, array, rows, width, ld, slot, first, limit, at);
  const kAt = addrOf(kN, hk, kvRow0, dk);
  const vAt = addrOf(vN, hk, kvRow0, dv);
  const copyK = (out: Stmt[], k0: Expr): void => copyTile(out, ks, Bc, dk, LK, kSlot, k0, S, kAt);
  const copyV = (out: Stmt[], k0: Expr): void => copyTile(out, vs, Bc, dv, LV, vSlot, k0, S, vAt);

  copyTile(body, qs, Br, dk, LQ, qSlot, q0, T, addrOf(qN, h, qRow0, dk));
  body.push({ kind: 'async_commit' });
  body.push({ kind: 'comment', text: 'block sparsity: key tiles outside [kt_start, kt_end) are fully masked for every row of this tile' });
  body.push(...logic.bounds);
  const first = kb.let(body, 'k_first_tile', mul(logic.ktStart, u32(Bc)));
  copyK(body, first);
  body.push({ kind: 'async_commit' });
  copyV(body, first);
  body.push({ kind: 'async_commit' });

  // Fragment coordinates: lane = 4g + t owns rows g and g + 8 (half 0, 1) of its warp's 16 and
  // columns 2t, 2t + 1 of every 8-column n-tile; a row's values are spread over the quad 4g..4g+3.
  const { g: gq, col } = fragmentCoords(kb, body, lane);
  const qi = [0, 1].map((hf) => kb.let(body, `qi${hf}`, add(q0, add(mul(warp, u32(16)), add(gq, u32(8 * hf))))));
  // Lambdas see in-range indices (rows past T and keys past S are never stored / always masked).
  const qiLam = qi.map((x) => kb.let(body, 'qi_lam', fmin(x, sub(T, u32(1)))));
  // Lanes l ^ 1 and l ^ 2 without xor: the quad partners of the row reductions.
  const x1 = kb.let(body, 'lane_x1', sub(add(lane, u32(1)), mul(rem(lane, u32(2)), u32(2))));
  const x2 = kb.let(body, 'lane_x2', sub(add(lane, u32(2)), mul(rem(div(lane, u32(2)), u32(2)), u32(4))));
  const quad = (out: Stmt[], x: Expr, op: 'max' | 'sum'): Expr => {
    const f = (a: Expr, c: Expr): Expr => (op === 'max' ? fmax(a, c) : bin('add', a, c));
    const y = kb.let(out, 'quad', f(x, subgroupShuffle(x, x1)));
    return kb.let(out, 'quad', f(y, subgroupShuffle(y, x2)));
  };
  const NS = Bc / 8; // S n-tiles per warp
  const NO = dv / 8; // O n-tiles per warp
  const mRun = kb.fresh('m_run');
  const lLane = kb.fresh('l_lane');
  const oAcc = kb.fresh('o_acc');
  body.push(
    { kind: 'private_array', name: mRun, type: 'f32', length: 2, init: NEG_INF },
    { kind: 'private_array', name: lLane, type: 'f32', length: 2, init: f32(0) },
    { kind: 'private_array', name: oAcc, type: 'f32', length: NO * 4, init: f32(0) },
  );

  const loop: Stmt[] = [...logic.perTile];
  const live = (stmts: Stmt[]): Stmt => ({ kind: 'if', cond: logic.mayTrue, then: stmts, else: [] });
  const sAcc = kb.fresh('s_acc');
  loop.push({ kind: 'private_array', name: sAcc, type: 'f32', length: NS * 4, init: f32(0) });
  loop.push({ kind: 'async_wait', pending: 1 }, { kind: 'barrier' });
  // S = Q K^T.
  {
    const st: Stmt[] = [];
    const qBase = kb.let(st, 'q_base', mul(warp, u32(16 * LQ)));
    for (let kk = 0; kk < dk / 16; kk++) {
      for (let nt = 0; nt < NS; nt++) {
        st.push({ kind: 'mma', input, acc: sAcc, accOffset: nt * 4, a: { array: qs, offset: add(qBase, u32(kk * 16)), stride: LQ }, b: { array: ks, offset: u32(nt * 8 * LK + kk * 16), stride: LK }, bLayout: 'n_by_k' });
      }
    }
    loop.push(live(st));
  }
  loop.push({ kind: 'barrier' });
  const next = add(v(logic.ktVar, 'u32'), u32(1));
  const nextK: Stmt[] = [];
  copyK(nextK, mul(next, u32(Bc)));
  loop.push({ kind: 'if', cond: lt(next, logic.ktEnd), then: nextK, else: [] }, { kind: 'async_commit' });
  // Scores, masks, online softmax.
  {
    const st: Stmt[] = [];
    const mLoc = [0, 1].map(() => kb.var(st, 'm_loc', 'f32', NEG_INF));
    for (let nt = 0; nt < NS; nt++) {
      for (let i = 0; i < 4; i++) {
        const hf = i >> 1;
        const kk = kb.let(st, 'kk', add(logic.k0, add(col, u32(nt * 8 + (i & 1)))));
        const kLam = kb.let(st, 'k_lam', fmin(kk, sub(S, u32(1))));
        const idx = [b, h, qiLam[hf] ?? u32(0), kLam];
        let sc = kb.let(st, 's', bin('mul', arrayLoad(sAcc, u32(nt * 4 + i), 'f32'), f32(scale)));
        if (scoreL !== undefined) sc = kb.let(st, 's_mod', cast('f32', lambdaExpr(comp, g, n, st, scoreL, idx, sc)));
        const keep = kb.var(st, 'keep', 'bool', lt(kk, S));
        if (mask !== undefined) {
          const mb: Stmt[] = [];
          const mv = lambdaExpr(comp, g, n, mb, mask, idx, undefined);
          mb.push({ kind: 'assign', name: keep, value: and(v(keep, 'bool'), mv) });
          // Fully visible tiles skip the predicate (block sparsity's second class).
          st.push({ kind: 'if', cond: logic.mayFalse, then: mb, else: [] });
        }
        const sv = kb.let(st, 's_final', select(v(keep, 'bool'), sc, NEG_INF));
        st.push({ kind: 'array_store', array: sAcc, index: u32(nt * 4 + i), value: sv });
        const m = mLoc[hf] ?? '';
        st.push({ kind: 'assign', name: m, value: fmax(v(m, 'f32'), sv) });
      }
    }
    for (const hf of [0, 1]) {
      const mOld = kb.let(st, 'm_old', arrayLoad(mRun, u32(hf), 'f32'));
      const mNew = kb.let(st, 'm_new', fmax(mOld, quad(st, v(mLoc[hf] ?? '', 'f32'), 'max')));
      // alpha rescales what was summed under the old max; 0 while the row has seen only -inf.
      const alpha = kb.let(st, 'alpha', select(bin('eq', mOld, NEG_INF), f32(0), call('exp', [bin('sub', mOld, mNew)], 'f32')));
      const psum = kb.var(st, 'p_sum', 'f32', f32(0));
      for (let nt = 0; nt < NS; nt++) {
        for (const i of [2 * hf, 2 * hf + 1]) {
          const sv = kb.let(st, 'sv', arrayLoad(sAcc, u32(nt * 4 + i), 'f32'));
          const p = kb.let(st, 'p', select(bin('eq', sv, NEG_INF), f32(0), call('exp', [bin('sub', sv, mNew)], 'f32')));
          st.push({ kind: 'array_store', array: sAcc, index: u32(nt * 4 + i), value: p });
          st.push({ kind: 'assign', name: psum, value: bin('add', v(psum, 'f32'), p) });
        }
      }
      st.push({ kind: 'array_store', array: lLane, index: u32(hf), value: bin('add', bin('mul', arrayLoad(lLane, u32(hf), 'f32'), alpha), v(psum, 'f32')) });
      for (let nt = 0; nt < NO; nt++) {
        for (const i of [2 * hf, 2 * hf + 1]) {
          st.push({ kind: 'array_store', array: oAcc, index: u32(nt * 4 + i), value: bin('mul', arrayLoad(oAcc, u32(nt * 4 + i), 'f32'), alpha) });
        }
      }
      st.push({ kind: 'array_store', array: mRun, index: u32(hf), value: mNew });
    }
    loop.push(live(st));
  }
  loop.push({ kind: 'async_wait', pending: 1 }, { kind: 'barrier' });
  // O += P V, P from the S accumulators.
  {
    const st: Stmt[] = [];
    for (let kc = 0; kc < Bc / 16; kc++) {
      for (let nt = 0; nt < NO; nt++) {
        st.push({ kind: 'mma_regs', input, acc: oAcc, accOffset: nt * 4, aRegs: sAcc, aOffset: kc * 8, b: { array: vs, offset: u32(kc * 16 * LV + nt * 8), stride: LV }, bLayout: 'k_by_n' });
      }
    }
    loop.push(live(st));
  }
  loop.push({ kind: 'barrier' });
  const nextV: Stmt[] = [];
  copyV(nextV, mul(next, u32(Bc)));
  loop.push({ kind: 'if', cond: lt(next, logic.ktEnd), then: nextV, else: [] }, { kind: 'async_commit' });
  body.push(forLoop(logic.ktVar, logic.ktStart, logic.ktEnd, u32(1), loop));

  // ---- write once ----
  const lseSlot = inp.lse === undefined ? undefined : kb.slot('lse', inp.lse.id, 'read_write', storageType(inp.lse.type.dtype));
  for (const hf of [0, 1]) {
    const lRow = quad(body, arrayLoad(lLane, u32(hf), 'f32'), 'sum'); // all lanes: outside the row guard
    const row = qi[hf] ?? u32(0);
    const write: Stmt[] = [];
    const oRow = kb.let(write, 'o_row', add(qRow0, row));
    for (let nt = 0; nt < NO; nt++) {
      for (const i of [2 * hf, 2 * hf + 1]) {
        const j = add(col, u32(nt * 8 + (i & 1)));
        const a = arrayLoad(oAcc, u32(nt * 4 + i), 'f32');
        write.push({ kind: 'store', slot: outSlot, index: add(mul(oRow, u32(dv)), j), value: cast(storageType(n.type.dtype), select(bin('eq', lRow, f32(0)), f32(0), bin('div', a, lRow))) });
      }
    }
    if (lseSlot !== undefined && inp.lse !== undefined) {
      // The row's log-sum-exp (FlexAttention's return_lse), by the quad's first lane.
      const value = cast(storageType(inp.lse.type.dtype), lseValue(arrayLoad(mRun, u32(hf), 'f32'), lRow));
      write.push({ kind: 'if', cond: bin('eq', col, u32(0)), then: [{ kind: 'store', slot: lseSlot, index: oRow, value }], else: [] });
    }
    body.push({ kind: 'if', cond: lt(row, T), then: write, else: [] });
  }

  // ---- traffic: as the scalar prefill kernel (K and V once per query tile of one head) ----
  const B_ = dimToSize(shape.B);
  const Hq_ = dimToSize(shape.Hq);
  const T_ = dimToSize(shape.T);
  const S_ = dimToSize(shape.S);
  const e = storageBytes(dtype);
  const qTiles = sCeilDiv(T_, Br);
  const maskBytes = scoreBytesOf(g, n, mask);
  const scoreBytes = scoreBytesOf(g, n, scoreL);
  const lambdaBytes = maskBytes.perScore + scoreBytes.perScore;
  const reads = [sMul(B_, Hq_, T_, sConst(dk * e)), sMul(B_, Hq_, qTiles, S_, sConst((dk + dv) * e))];
  if (lambdaBytes > 0) reads.push(sMul(B_, Hq_, T_, S_, sConst(lambdaBytes)));
  // Reads of neither q nor k (a per-batch length) once per key tile, as the other kernels.
  const tileBytes = maskBytes.perTile + scoreBytes.perTile;
  if (tileBytes > 0) reads.push(sMul(B_, Hq_, qTiles, sCeilDiv(S_, Bc), sConst(tileBytes)));
  const outBytes = sMul(B_, Hq_, T_, sConst(dv * storageBytes(n.type.dtype)));
  const lseWritten = lseBytes(inp);
  const traffic: Traffic = { bytesRead: sAdd(...reads), bytesWritten: lseWritten === undefined ? outBytes : sAdd(outBytes, lseWritten), flops: sMul(B_, Hq_, T_, S_, sConst(2 * (dk + dv))) };
  const schedule: KernelSchedule = { kind: 'flash_attention', tileRows: Br, tileCols: Bc, lanes: 4, useSubgroups: true, splits: 1, mma: input };
  return {
    op: 'fused_attention',
    workgroupSize: [threads, 1, 1],
    grid: [qTiles, Hq_, B_],
    buffers: kb.buffers,
    shared: kb.shared,
    body,
    schedule,
    traffic,
    bindings: kb.bindings,
  };
}
