// The CPU adapter's attention prefill (AttentionSchedule.lanesPrefill): FlashAttention-2's online
// softmax in the subgroup-broadcast form of the CPU matmul (matmul/lanes.ts). On lavapipe a
// per-lane load is a gather and `subgroupBroadcast(x, c)` a lane extract, so the workgroup is one
// subgroup of L lanes owning R tile rows (query rows x Gt heads of a KV head) and, per key tile of
// Bc keys, lane l owns keys l*NC .. l*NC + NC - 1 (NC = Bc / L) and output columns l*JV .. + JV:
//   S = Q K^T  per 4 elements of d: each lane loads its keys' K (vec4 along d where legal) and
//              multiplies every row's q (broadcast from the lane that loaded the row) into them;
//   softmax    per row: the lanes' score maxima -> subgroupMax (every lane holds every row's
//              running max), p = exp(s - m) in the key's lane, its sum stays per lane until the end;
//   O += P V   per key: each lane loads V's row at its own columns (vec4), and multiplies the
//              key's p for every row (broadcast from the key's lane) into them.
// Every Q, K and V element is loaded once per workgroup by one lane; no workgroup memory, no
// barrier. Accumulators live in private arrays indexed by constants only (the loops over rows,
// keys and columns are unrolled); what is indexed at run time (the lane's Q rows, the P values of
// a key index) is copied into separate arrays, so LLVM keeps the accumulators in registers.
// Masks, score mods, qload/kload, GQA head groups and the LSE output work as in the scalar kernel
// (attention/kernel.ts); split-K decode keeps that kernel.
import { dimConstValue } from '../../base/dim.js';
import { type Node, floatAttr } from '../../graph/ir.js';
import { countApplies } from '../../ops/source.js';
import { type Expr, type KernelSchedule, type Stmt, type Traffic, add, and, arrayLoad, bin, builtin, call, cast, div, load, lt, mul, rem, select, subgroup, subgroupBroadcast, u32, v } from '../ir/ir.js';
import { KernelBuilder } from '../ir/builder.js';
import { ScheduleError } from '../schedule/schedule.js';
import { dimExpr } from '../lower/dims.js';
import { elementOffset, hasVectorRuns } from '../lower/view.js';
import { storageBytes, storageType } from '../ir/storage.js';
import { dimToSize, sAdd, sCeilDiv, sConst, sMul } from '../plan/to-size.js';
import type { LanesPrefill, Mode } from './schedule.js';
import { type AttentionInput, type AttentionKernelDraft, lseBytes, lseValue, shapeOf } from './node.js';
import { f32, fmax, fmin, forLoop, NEG_INF } from './exprs.js';
import { type UniformRead, tileLogic } from './sparsity.js';
import { type Compiled, keyType, lambdaExpr, lambdaOf, loadBytesOf, queryType, scoreBytesOf, valueType } from './lambdas.js';

/** Query heads per workgroup for GQA: the largest divisor of the group that divides the tile rows. */
export function lanesMode(groupConst: number, p: LanesPrefill): Mode {
  let heads = 1;
  for (let gt = 2; gt <= groupConst; gt++) if (groupConst % gt === 0 && p.tileRows % gt === 0) heads = gt;
  return { kind: 'prefill', rows: p.tileRows, heads };
}

export function attentionLanesKernel(inp: AttentionInput, p: LanesPrefill): AttentionKernelDraft {
  const { graph: g, node: n } = inp;
  const operand = (i: number): Node => {
    const o = g.nodes[n.operands[i] ?? -1];
    if (o === undefined) throw new Error(`internal: fused_attention lacks operand ${i}`);
    return o;
  };
  const [qN, kN, vN] = [operand(0), operand(1), operand(2)];
  const qload = lambdaOf(n, 'qload');
  const kload = lambdaOf(n, 'kload');
  const vload = lambdaOf(n, 'vload');
  const shape = shapeOf(queryType(qN, n), keyType(kN, n), valueType(vN, n));
  const { dk, dv } = shape;
  const L = p.lanes;
  const mode = lanesMode(shape.groupConst, p);
  const G = mode.heads;
  const R = mode.rows;
  const Bc = p.tileCols;
  const NC = Bc / L;
  const JV = Math.ceil(dv / L);
  const RB = R / L;
  const mask = lambdaOf(n, 'mask');
  const scoreL = lambdaOf(n, 'score');
  const scale = floatAttr(n, 'scale');
  const kb = new KernelBuilder();
  // Vector loads along d (K) and along the output columns (V): the chooser's decision, checked.
  const kVec = p.kVector === 4 && kload === undefined && dk % 4 === 0 && hasVectorRuns(g, kN, 3, 4);
  const vVec = p.vVector === 4 && vload === undefined && JV % 4 === 0 && dv % 4 === 0 && hasVectorRuns(g, vN, 3, 4);
  if (p.kVector === 4 && !kVec) throw new ScheduleError('attention.lanesPrefill.kVector', `%${n.id}: vector loads of K need K contiguous along d in runs of 4 and no kload`);
  if (p.vVector === 4 && !vVec) throw new ScheduleError('attention.lanesPrefill.vVector', `%${n.id}: vector loads of V need V contiguous along its columns, ${JV} columns per lane a multiple of 4 and no vload`);
  if (R % L !== 0 || R < L) throw new ScheduleError('attention.lanesPrefill.tileRows', `%${n.id}: tile rows ${R} must be a positive multiple of the ${L} lanes`);
  if (Bc % L !== 0 || Bc < L) throw new ScheduleError('attention.lanesPrefill.tileCols', `%${n.id}: key tile ${Bc} must be a positive multiple of the ${L} lanes`);
  if (L !== inp.target.subgroupSize) throw new ScheduleError('attention.lanesPrefill.lanes', `%${n.id}: lanes ${L} must equal the target's subgroup size ${inp.target.subgroupSize}`);
  const qSlot = qload === undefined ? kb.slot('q', qN.id, 'read', storageType(qN.type.dtype)) : -1;
  const kSlot = kload !== undefined ? -1 : kVec ? kb.inputVector('k', kN.id, kN.type.dtype, 4) : kb.slot('k', kN.id, 'read', storageType(kN.type.dtype));
  const vSlot = vload !== undefined ? -1 : vVec ? kb.inputVector('v', vN.id, vN.type.dtype, 4) : kb.slot('v', vN.id, 'read', storageType(vN.type.dtype));
  const extraSlots = new Map<number, number>();
  const slotOf = (i: number): number => {
    let sl = extraSlots.get(i);
    if (sl === undefined) {
      const o = operand(i);
      sl = kb.slot(`t${i}`, o.id, 'read', storageType(o.type.dtype));
      extraSlots.set(i, sl);
    }
    return sl;
  };
  const comp: Compiled = { kb, slotOf };
  const outSlot = kb.slot('out', n.id, 'read_write', storageType(n.type.dtype));
  const T = dimExpr(shape.T);
  const S = dimExpr(shape.S);
  const uniformRead: UniformRead = (out, e, b, h) => lambdaExpr(comp, g, n, out, e, [b, h, u32(0), u32(0)], undefined);
  // Block sparsity per workgroup (tile rows R, keys Bc): the scalar kernel's analysis.
  const logic = tileLogic(kb, shape, mask, { tileRows: R, tileCols: Bc, lanes: L, useSubgroups: true, splits: 1, decodeMaxT: 0 }, mode, uniformRead);
  const body: Stmt[] = [...logic.header];
  const { b, h, q0 } = logic;
  const lane = kb.let(body, 'lane', builtin('local_index'));
  const hk = kb.let(body, 'hk', G === shape.groupConst && G > 1 ? builtin('workgroup_id', 1) : div(h, shape.group));
  /** Query index and head of tile row `r`. */
  const rowHead = (out: Stmt[], r: Expr, name: string): { qi: Expr; hh: Expr } => {
    if (G === 1) return { qi: kb.let(out, name, add(q0, r)), hh: h };
    const vr = kb.let(out, 'vr', add(q0, r));
    return { qi: kb.let(out, name, div(vr, u32(G))), hh: kb.let(out, 'hq', add(h, rem(vr, u32(G)))) };
  };
  const rowIndex = (hh: Expr, qi: Expr): Expr => add(mul(add(mul(b, dimExpr(shape.Hq)), hh), T), qi);
  const kvRow0 = kb.let(body, 'kv_row0', mul(add(mul(b, dimExpr(shape.Hkv)), hk), S));
  const kAddr = (key: Expr, d: Expr): Expr => (kN.op === 'view' ? elementOffset(g, kN, [b, hk, key, d], dimExpr) : add(mul(add(kvRow0, key), u32(dk)), d));
  const vAddr = (key: Expr, c: Expr): Expr => (vN.op === 'view' ? elementOffset(g, vN, [b, hk, key, c], dimExpr) : add(mul(add(kvRow0, key), u32(dv)), c));

  // The lane's Q rows (tile rows lane + L*rb), times `scale` (so the dot product is the scaled
  // score), zero past T; read at run-time indices d in the S loop, hence its own array.
  const qReg = kb.fresh('q_reg');
  body.push({ kind: 'private_array', name: qReg, type: 'f32', length: RB * dk, init: f32(0) });
  for (let rb = 0; rb < RB; rb++) {
    const d = kb.fresh('d');
    const lb: Stmt[] = [];
    const { qi, hh } = rowHead(lb, add(lane, u32(rb * L)), 'qq');
    const val = kb.var(lb, 'qv', 'f32', f32(0));
    const ld: Stmt[] = [];
    const x =
      qload !== undefined
        ? cast('f32', lambdaExpr(comp, g, n, ld, qload, [b, hh, qi, v(d, 'u32')], undefined, true))
        : cast('f32', load(qSlot, qN.op === 'view' ? elementOffset(g, qN, [b, hh, qi, v(d, 'u32')], dimExpr) : add(mul(rowIndex(hh, qi), u32(dk)), v(d, 'u32')), storageType(qN.type.dtype)));
    ld.push({ kind: 'assign', name: val, value: bin('mul', x, f32(scale)) });
    lb.push({ kind: 'if', cond: lt(qi, T), then: ld, else: [] });
    lb.push({ kind: 'array_store', array: qReg, index: add(u32(rb * dk), v(d, 'u32')), value: v(val, 'f32') });
    body.push(forLoop(d, u32(0), u32(dk), u32(1), lb));
  }
  body.push({ kind: 'comment', text: 'block sparsity: key tiles outside [kt_start, kt_end) are fully masked for every row of this tile' });
  body.push(...logic.bounds);
  // Per tile row (the same on every lane): running max; per lane: its share of the running sum.
  const mRun = kb.fresh('m_run');
  body.push({ kind: 'private_array', name: mRun, type: 'f32', length: R, init: NEG_INF });
  const lLane = kb.fresh('l_lane');
  body.push({ kind: 'private_array', name: lLane, type: 'f32', length: R, init: f32(0) });
  const acc = kb.fresh('acc');
  body.push({ kind: 'private_array', name: acc, type: 'f32', length: R * JV, init: f32(0) });
  // The tile rows' query index and head: workgroup-uniform, computed once.
  const rows = Array.from({ length: R }, (_, t) => rowHead(body, u32(t), 'qt'));

  // ---- one key tile ----
  const live: Stmt[] = [];
  const sAcc = kb.fresh('s_acc');
  live.push({ kind: 'private_array', name: sAcc, type: 'f32', length: R * NC, init: f32(0) });
  // The lane's keys, clamped to S - 1 (their scores are masked to -inf below).
  const sLast = kb.let(live, 's_last', bin('sub', S, u32(1)));
  const keyOf = (i: number): Expr => add(logic.k0, add(mul(lane, u32(NC)), u32(i)));
  const keys = Array.from({ length: NC }, (_, i) => kb.let(live, 'key', fmin(keyOf(i), sLast)));
  {
    // S = Q K^T over d in steps of 4 (dk % 4 == 0) or 1.
    const step = dk % 4 === 0 ? 4 : 1;
    const d0 = kb.fresh('d0');
    const d0v = v(d0, 'u32');
    const lb: Stmt[] = [];
    const kv: Expr[][] = Array.from({ length: NC }, () => []); // kv[i][e]: K[key_i, d0 + e]
    for (let i = 0; i < NC; i++) {
      const key = keys[i] ?? u32(0);
      if (kVec) {
        const names = [0, 1, 2, 3].map(() => kb.fresh('kx'));
        lb.push({ kind: 'load_vec', names, slot: kSlot, index: div(kAddr(key, d0v), u32(4)), type: storageType(kN.type.dtype) });
        kv[i] = names.map((nm) => kb.let(lb, 'kf', cast('f32', v(nm, storageType(kN.type.dtype)))));
      } else {
        for (let e = 0; e < step; e++) {
          const d = add(d0v, u32(e));
          const x = kload !== undefined ? cast('f32', lambdaExpr(comp, g, n, lb, kload, [b, hk, key, d], undefined, true)) : cast('f32', load(kSlot, kAddr(key, d), storageType(kN.type.dtype)));
          (kv[i] ?? []).push(kb.let(lb, 'kf', x));
        }
      }
    }
    for (let rb = 0; rb < RB; rb++) {
      for (let e = 0; e < step; e++) {
        const qx = kb.let(lb, 'qx', arrayLoad(qReg, add(u32(rb * dk + e), d0v), 'f32'));
        for (let r = 0; r < L; r++) {
          const x = kb.let(lb, 'x', subgroupBroadcast(qx, r));
          for (let i = 0; i < NC; i++) {
            const at = u32((rb * L + r) * NC + i);
            lb.push({ kind: 'array_store', array: sAcc, index: at, value: bin('add', arrayLoad(sAcc, at, 'f32'), bin('mul', x, (kv[i] ?? [])[e] ?? f32(0))) });
          }
        }
      }
    }
    live.push(forLoop(d0, u32(0), u32(dk), u32(step), lb));
  }
  // Scores -> probabilities, row by row (unrolled: sAcc stays constant-indexed); alpha per row.
  const alphas: Expr[] = [];
  const pArr = kb.fresh('p_vals');
  live.push({ kind: 'private_array', name: pArr, type: 'f32', length: R * NC, init: f32(0) });
  for (let t = 0; t < R; t++) {
    const { qi, hh } = rows[t] ?? { qi: u32(0), hh: u32(0) };
    const sv: Expr[] = [];
    for (let i = 0; i < NC; i++) {
      const kk = keyOf(i);
      let sc: Expr = arrayLoad(sAcc, u32(t * NC + i), 'f32');
      const idx = [b, hh, qi, kk];
      if (scoreL !== undefined) sc = kb.let(live, 's_mod', cast('f32', lambdaExpr(comp, g, n, live, scoreL, idx, kb.let(live, 's', sc))));
      const keep = kb.var(live, 'keep', 'bool', lt(kk, S));
      if (mask !== undefined) {
        const mb: Stmt[] = [];
        const mv = lambdaExpr(comp, g, n, mb, mask, idx, undefined);
        mb.push({ kind: 'assign', name: keep, value: and(v(keep, 'bool'), mv) });
        live.push({ kind: 'if', cond: logic.mayFalse, then: mb, else: [] });
      }
      sv.push(kb.let(live, 's_final', select(v(keep, 'bool'), sc, NEG_INF)));
    }
    const mLoc = sv.reduce((m, x) => kb.let(live, 'm_loc', fmax(m, x)), NEG_INF);
    const mOld = kb.let(live, 'm_old', arrayLoad(mRun, u32(t), 'f32'));
    const mNew = kb.let(live, 'm_new', fmax(mOld, subgroup('max', mLoc)));
    // 0 while the row has seen only -inf (no NaN from exp(-inf - -inf)).
    alphas.push(kb.let(live, 'alpha', select(bin('eq', mOld, NEG_INF), f32(0), call('exp', [bin('sub', mOld, mNew)], 'f32'))));
    let psum: Expr = f32(0);
    sv.forEach((x, i) => {
      const pv = kb.let(live, 'p', select(bin('eq', x, NEG_INF), f32(0), call('exp', [bin('sub', x, mNew)], 'f32')));
      live.push({ kind: 'array_store', array: pArr, index: u32(t * NC + i), value: pv });
      psum = bin('add', psum, pv);
    });
    live.push({ kind: 'array_store', array: lLane, index: u32(t), value: bin('add', bin('mul', arrayLoad(lLane, u32(t), 'f32'), alphas[t] ?? f32(0)), psum) });
    live.push({ kind: 'array_store', array: mRun, index: u32(t), value: mNew });
  }
  for (let t = 0; t < R; t++) {
    for (let c = 0; c < JV; c++) {
      const at = u32(t * JV + c);
      live.push({ kind: 'array_store', array: acc, index: at, value: bin('mul', arrayLoad(acc, at, 'f32'), alphas[t] ?? f32(0)) });
    }
  }
  {
    // O += P V: keys i, i + NC, ... (key j = owner * NC + i of lane `owner`), i at run time.
    const i = kb.fresh('ki');
    const iv = v(i, 'u32');
    const lb: Stmt[] = [];
    const cols = Array.from({ length: JV }, (_, c) => fmin(add(mul(lane, u32(JV)), u32(c)), u32(dv - 1)));
    for (let owner = 0; owner < L; owner++) {
      const key = kb.let(lb, 'vkey', fmin(add(logic.k0, add(u32(owner * NC), iv)), sLast));
      const vv: Expr[] = [];
      if (vVec) {
        for (let c = 0; c < JV; c += 4) {
          const names = [0, 1, 2, 3].map(() => kb.fresh('vx'));
          lb.push({ kind: 'load_vec', names, slot: vSlot, index: div(vAddr(key, add(mul(lane, u32(JV)), u32(c))), u32(4)), type: storageType(vN.type.dtype) });
          vv.push(...names.map((nm) => kb.let(lb, 'vf', cast('f32', v(nm, storageType(vN.type.dtype))))));
        }
      } else if (vload !== undefined) {
        // V computed at load (a paged cache read through its page table): the vload lambda per element.
        for (let c = 0; c < JV; c++) vv.push(kb.let(lb, 'vf', cast('f32', lambdaExpr(comp, g, n, lb, vload, [b, hk, key, cols[c] ?? u32(0)], undefined, true))));
      } else for (let c = 0; c < JV; c++) vv.push(kb.let(lb, 'vf', cast('f32', load(vSlot, vAddr(key, cols[c] ?? u32(0)), storageType(vN.type.dtype)))));
      for (let t = 0; t < R; t++) {
        const pv = kb.let(lb, 'pb', subgroupBroadcast(arrayLoad(pArr, add(u32(t * NC), iv), 'f32'), owner));
        for (let c = 0; c < JV; c++) {
          const at = u32(t * JV + c);
          lb.push({ kind: 'array_store', array: acc, index: at, value: bin('add', arrayLoad(acc, at, 'f32'), bin('mul', pv, vv[c] ?? f32(0))) });
        }
      }
    }
    live.push(forLoop(i, u32(0), u32(NC), u32(1), lb));
  }
  body.push(forLoop(logic.ktVar, logic.ktStart, logic.ktEnd, u32(1), [...logic.perTile, { kind: 'if', cond: logic.mayTrue, then: live, else: [] }]));

  // ---- write once: the lane's columns of every row ----
  const lseSlot = inp.lse === undefined ? -1 : kb.slot('lse', inp.lse.id, 'read_write', storageType(inp.lse.type.dtype));
  for (let t = 0; t < R; t++) {
    const { qi, hh } = rows[t] ?? { qi: u32(0), hh: u32(0) };
    const lRow = kb.let(body, 'l_row', subgroup('sum', arrayLoad(lLane, u32(t), 'f32')));
    const write: Stmt[] = [];
    const oRow = kb.let(write, 'o_row', rowIndex(hh, qi));
    for (let c = 0; c < JV; c++) {
      const col = kb.let(write, 'col', add(mul(lane, u32(JV)), u32(c)));
      const value = cast(storageType(n.type.dtype), select(bin('eq', lRow, f32(0)), f32(0), bin('div', arrayLoad(acc, u32(t * JV + c), 'f32'), lRow)));
      const st: Stmt = { kind: 'store', slot: outSlot, index: add(mul(oRow, u32(dv)), col), value };
      write.push(dv % L === 0 && JV * L === dv ? st : { kind: 'if', cond: lt(col, u32(dv)), then: [st], else: [] });
    }
    if (inp.lse !== undefined) {
      // The row's log-sum-exp, from the lane the row maps to (one store per row).
      const value = cast(storageType(inp.lse.type.dtype), lseValue(arrayLoad(mRun, u32(t), 'f32'), lRow));
      write.push({ kind: 'if', cond: bin('eq', lane, u32(t % L)), then: [{ kind: 'store', slot: lseSlot, index: oRow, value }], else: [] });
    }
    body.push({ kind: 'if', cond: lt(qi, T), then: write, else: [] });
  }

  // ---- traffic ----
  // Q read once (qload: its reads per element), O written once, K and V once per workgroup
  // (each element by one lane), tiles the sparsity skips still counted; lambdas once per score.
  const B_ = dimToSize(shape.B);
  const Hq_ = dimToSize(shape.Hq);
  const T_ = dimToSize(shape.T);
  const S_ = dimToSize(shape.S);
  // Load lambdas: per element, per row (a page table entry) and per tile (a length): loadBytesOf.
  const qLoad = qload === undefined ? undefined : loadBytesOf(g, n, qload, dk);
  const qBytes = qLoad === undefined ? dk * storageBytes(qN.type.dtype) : qLoad.perRow + qLoad.perTile;
  const eK = storageBytes(kN.type.dtype);
  const kLoad = kload === undefined ? undefined : loadBytesOf(g, n, kload, dk);
  const kBytes = kLoad?.perRow ?? dk * eK;
  const headGroups = G === 1 ? Hq_ : sConst((dimConstValue(shape.Hq) ?? NaN) / G);
  const qTiles = sCeilDiv(T_, R / G);
  const vLoad = vload === undefined ? undefined : loadBytesOf(g, n, vload, dv);
  const vBytes = vLoad?.perRow ?? dv * storageBytes(vN.type.dtype);
  const reads = [sMul(B_, Hq_, T_, sConst(qBytes)), sMul(B_, headGroups, qTiles, S_, sConst(kBytes + vBytes))];
  const maskBytes = scoreBytesOf(g, n, mask);
  const scoreBytes = scoreBytesOf(g, n, scoreL);
  const lambdaBytes = maskBytes.perScore + scoreBytes.perScore;
  if (lambdaBytes > 0) reads.push(sMul(B_, Hq_, T_, S_, sConst(lambdaBytes)));
  const tileBytes = (kLoad?.perTile ?? 0) + (vLoad?.perTile ?? 0) + maskBytes.perTile + scoreBytes.perTile;
  if (tileBytes > 0) reads.push(sMul(B_, headGroups, qTiles, sCeilDiv(S_, Bc), sConst(tileBytes)));
  const outBytes = sMul(B_, Hq_, T_, sConst(dv * storageBytes(n.type.dtype)));
  const lseWritten = lseBytes(inp);
  const dotFlops = sMul(B_, Hq_, T_, S_, sConst(2 * (dk + dv)));
  const kFlops = kload === undefined ? undefined : sMul(B_, headGroups, qTiles, S_, sConst(dk * countApplies(kload)));
  const vFlops = vload === undefined ? undefined : sMul(B_, headGroups, qTiles, S_, sConst(dv * countApplies(vload)));
  const kdFlops = kFlops === undefined ? dotFlops : sAdd(dotFlops, kFlops);
  const flops = vFlops === undefined ? kdFlops : sAdd(kdFlops, vFlops);
  const traffic: Traffic = {
    bytesRead: sAdd(...reads),
    bytesWritten: lseWritten === undefined ? outBytes : sAdd(outBytes, lseWritten),
    flops,
    // Everything but Q's reads is spent per key tile: the report counts only the tiles visited.
    perTile: { bytesRead: sAdd(...reads.slice(1)), flops, tiles: { rows: mode.rows, heads: mode.heads, cols: Bc } },
  };
  const schedule: KernelSchedule = { kind: 'flash_attention', tileRows: R, tileCols: Bc, lanes: L, useSubgroups: true, splits: 1, laneBroadcast: true };
  return { op: 'fused_attention', workgroupSize: [L, 1, 1], grid: [qTiles, headGroups, B_], buffers: kb.buffers, shared: kb.shared, body, schedule, traffic, bindings: kb.bindings };
}
