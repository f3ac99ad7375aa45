// The scalar fused attention kernel (attention/attention.ts): prefill, and the split-K partial kernel
// of flash-decoding (its combine is attention/combine.ts).
//
// Prefill kernel (Dao 2023, FlashAttention-2, online softmax of Milakov & Gimelshein 2018):
//   one workgroup per (tile of Br rows, KV head's group of G = Hq/Hkv query heads, batch b),
//   a tile row being a (query row, head of the group) pair, row-major (G = 1 without GQA, or
//   when the head counts are symbolic), so K/V tiles serve the whole group; L lanes per row, each
//   thread owning RQ rows (schedule rowsPerThread: register blocking over rows).
//   Q tile -> workgroup memory once; for each key tile kt the analysis keeps (attention/sparsity.ts):
//     K, V tiles (Bc keys) -> workgroup memory (or, schedule isDirect for CPU targets, read
//     from global memory where used); lane computes s = score(scale * q.k) for keys
//     lane, lane+L, ...; masked or k >= S -> -inf; row max over lanes (subgroup op or a small
//     workgroup-memory fold); alpha = exp(m_old - m_new) (0 while m_old = -inf: no NaN);
//     p = exp(s - m_new); l = l * alpha + sum p; acc[j] = acc[j] * alpha + sum_c p_c v[c, j]
//   out = acc / l, or 0 when l = 0 (a fully masked row). No T x S buffer exists anywhere.
// Over 400 lines: one kernel (scalar prefill / split-K partial) whose body reads top to bottom;
// its parts that stand alone already live apart (sparsity.ts, lambdas.ts, node.ts, combine.ts).
import { dimConstValue } from '../../base/dim.js';
import { type Node, type ScalarExpr, floatAttr } from '../../graph/ir.js';
import type { DType } from '../../graph/types.js';
import { countApplies } from '../../ops/source.js';
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
  load,
  lt,
  mul,
  rem,
  select,
  subgroup,
  subgroupShuffle,
  u32,
  v,
} from '../ir/ir.js';
import { KernelBuilder } from '../ir/builder.js';
import { dimExpr } from '../lower/dims.js';
import { elementOffset } from '../lower/view.js';
import { storageBytes, storageType } from '../ir/storage.js';
import { dimToSize, sAdd, sCeilDiv, sConst, sMul } from '../plan/to-size.js';
import { type AttentionSchedule, type Mode, attentionSharedBytes, prefillMode, splitMode } from './schedule.js';
import { type AttentionInput, type AttentionKernelDraft, lseBytes, lseValue, shapeOf } from './node.js';
import { f32, fmax, fmin, forLoop, NEG_INF } from './exprs.js';
import { type UniformRead, rowGroupLogic, tileLogic } from './sparsity.js';
import { type Compiled, keyType, lambdaExpr, lambdaOf, loadBytesOf, queryType, scoreBytesOf, valueType } from './lambdas.js';
import { presentWrite } from './present.js';

/** Body of the prefill kernel (mode prefill) or the split-K kernel (mode split). */
export function attentionKernel(inp: AttentionInput, s: AttentionSchedule, kind: Mode['kind'], tempId: number): AttentionKernelDraft {
  const { graph: g, node: n } = inp;
  const operand = (i: number): Node => {
    const id = n.operands[i];
    const o = id === undefined ? undefined : g.nodes[id];
    if (o === undefined) throw new Error(`internal: fused_attention lacks operand ${i}`);
    return o;
  };
  const qN = operand(0);
  const kN = operand(1);
  const vN = operand(2);
  const qT = queryType(qN, n);
  // With `qload` (RoPE at load), Q's elements are the lambda's values, read through its operands.
  const qload = lambdaOf(n, 'qload');
  // With `kload` (RoPE at load, no KV cache), K's elements are the lambda's values: computed
  // where the key tile is staged, or (direct schedules) at every read of K in the score loop.
  const kload = lambdaOf(n, 'kload');
  // With `vload` (a paged cache read through its page table), V's elements likewise.
  const vload = lambdaOf(n, 'vload');
  const shape = shapeOf(qT, keyType(kN, n), valueType(vN, n));
  const { dk, dv } = shape;
  const mode: Mode = kind === 'prefill' ? prefillMode(shape, s, inp.target) : splitMode(shape, s, inp.target);
  const G = mode.heads;
  const mask = lambdaOf(n, 'mask');
  const scoreL = lambdaOf(n, 'score');
  const scale = floatAttr(n, 'scale');
  const Br = mode.rows;
  const Bc = s.tileCols;
  const L = s.lanes;
  // RQ query rows per thread (register blocking: each K element loaded serves RQ rows, each V
  // element RQ rows); a row's L lanes stay one subgroup. Split-K decode has one row per query
  // head of the workgroup (splitMode: all in one row group on direct schedules, else one each).
  const RQ = mode.rowsPerThread ?? s.rowsPerThread ?? 1;
  const isDirect = s.isDirect === true;
  // P stays in the lanes' registers (`dots`, overwritten by scores, then probabilities) and the
  // P V loop shuffles it from lane c % L; a row's L lanes are one subgroup (useSubgroups).
  const shuffleP = s.shuffleP === true && s.useSubgroups;
  // Q rows in private arrays, block sparsity per row group too (split-K decode: one row group).
  const qRegs = s.qInRegisters === true;
  if (qRegs && !shuffleP) throw new Error('internal: qInRegisters needs shuffleP and subgroups');
  if (Br % RQ !== 0) throw new Error(`internal: attention tile rows ${Br} not a multiple of rows per thread ${RQ}`);
  const groups = Br / RQ;
  const threads = groups * L;
  const JL = Math.ceil(dv / L); // output columns per lane
  const NC = Bc / L; // keys per lane
  const kb = new KernelBuilder();
  const qSlot = qload === undefined ? kb.slot('q', qN.id, 'read', storageType(qN.type.dtype)) : -1;
  const kSlot = kload === undefined ? kb.slot('k', kN.id, 'read', storageType(kN.type.dtype)) : -1;
  const vSlot = vload === undefined ? kb.slot('v', vN.id, 'read', storageType(vN.type.dtype)) : -1;
  const extraSlots = new Map<number, number>();
  const slotOf = (operandIndex: number): number => {
    let sl = extraSlots.get(operandIndex);
    if (sl === undefined) {
      const o = operand(operandIndex);
      sl = kb.slot(`t${operandIndex}`, o.id, 'read', storageType(o.type.dtype));
      extraSlots.set(operandIndex, sl);
    }
    return sl;
  };
  const outSlot = mode.kind === 'prefill' ? kb.slot('out', n.id, 'read_write', storageType(n.type.dtype)) : kb.slot('part', tempId, 'read_write', 'f32');
  const qs = qRegs ? '' : kb.sharedArray('q_tile', 'f32', Br * dk);
  // Direct schedule (CPU targets): K and V are read from global memory, no tiles staged.
  // With kload, a direct schedule still stages K when the tile fits beside the schedule's own
  // arrays: computing rope(k) at every inner-loop read repeats it for each of the workgroup's
  // row groups (2.0x the rope(k)-kernel plan's time on lavapipe, bench/rope-kload.ts); staged
  // once per workgroup it is 1.2x. Else K is computed at each read.
  const stageK = !isDirect || (kload !== undefined && attentionSharedBytes(s, mode.rows, dk, dv) + 4 * Bc * dk <= inp.target.maxWorkgroupStorageBytes);
  const ks = stageK ? kb.sharedArray('k_tile', 'f32', Bc * dk) : '';
  const vs = isDirect ? '' : kb.sharedArray('v_tile', 'f32', Bc * dv);
  const ps = shuffleP ? '' : kb.sharedArray('p_tile', 'f32', Br * Bc);
  const fold = s.useSubgroups ? '' : kb.sharedArray('fold', 'f32', groups * L);

  const T = dimExpr(shape.T);
  const S = dimExpr(shape.S);
  // Reads free of q and k in the mask: the lambda's own load at (b, h) (q and k never used).
  const uniformRead: UniformRead = (out, e, b, h) => lambdaExpr({ kb, slotOf }, g, n, out, e, [b, h, u32(0), u32(0)], undefined);
  const logic = tileLogic(kb, shape, mask, s, mode, uniformRead);
  const body: Stmt[] = [...logic.header];
  const { b, h, q0 } = logic;
  const lid = builtin('local_index');
  const rg = kb.let(body, 'rg', div(lid, u32(L)));
  const lane = kb.let(body, 'lane', rem(lid, u32(L)));
  // The workgroup's heads h .. h + G - 1 all use KV head h / group (G divides the group).
  const hk = kb.let(body, 'hk', G === shape.groupConst && G > 1 ? builtin('workgroup_id', 1) : div(h, shape.group));
  const qRow0 = G === 1 ? kb.let(body, 'q_row0', mul(add(mul(b, dimExpr(shape.Hq)), h), T)) : u32(0); // row of (b, h, 0)
  /** Query index and head of tile row `r`: q0 + r and h, or (q0 + r) / G and h + (q0 + r) % G. */
  const rowHead = (out: Stmt[], r: Expr, name: string): { qi: Expr; hh: Expr } => {
    if (G === 1) return { qi: kb.let(out, name, add(q0, r)), hh: h };
    const vr = kb.let(out, 'vr', add(q0, r));
    return { qi: kb.let(out, name, div(vr, u32(G))), hh: kb.let(out, 'hq', add(h, rem(vr, u32(G)))) };
  };
  /** Row of (b, hh, qi) in the [B, Hq, T] rows of q and out. */
  const rowIndex = (hh: Expr, qi: Expr): Expr => (G === 1 ? add(qRow0, qi) : add(mul(add(mul(b, dimExpr(shape.Hq)), hh), T), qi));
  const kvRow0 = kb.let(body, 'kv_row0', mul(add(mul(b, dimExpr(shape.Hkv)), hk), S));
  /** The tile row of the thread's ii-th row. */
  const rowOf = (ii: Expr): Expr => add(mul(rg, u32(RQ)), ii);
  // Split-K with K/V results (a KV cache's present, fuse-cache-write): partition `part` writes
  // the cache rows of its key range [part * chunk * Bc, (part + 1) * chunk * Bc) as its load
  // lambda computes them, whatever the mask skips, from the first query tile's workgroup of the
  // KV head's first query head only (each row written once).
  const presentWrites = mode.kind === 'split' ? presentWrite(inp, kb, slotOf, body, { b, h, hk, q0, part: logic.part, kvRow0, S, group: shape.group, Bc, splits: s.splits, threads, lid: builtin('local_index') }) : undefined;

  // Q tile, zero past T (or, qRegs, the thread's rows in a private array, built below).
  const qReg = kb.fresh('q_reg');
  if (!qRegs) {
    const e = kb.fresh('e');
    const lb: Stmt[] = [];
    const rr = kb.let(lb, 'rr', div(v(e, 'u32'), u32(dk)));
    const d = kb.let(lb, 'd', rem(v(e, 'u32'), u32(dk)));
    const { qi: qq, hh } = rowHead(lb, rr, 'qq');
    const val = kb.var(lb, 'qv', 'f32', f32(0));
    const load1: Stmt[] = [];
    const qx =
      qload !== undefined
        ? cast('f32', lambdaExpr({ kb, slotOf }, g, n, load1, qload, [b, hh, qq, d], undefined, true))
        : cast('f32', load(qSlot, qN.op === 'view' ? elementOffset(g, qN, [b, hh, qq, d], dimExpr) : add(mul(rowIndex(hh, qq), u32(dk)), d), storageType(qN.type.dtype)));
    load1.push({ kind: 'assign', name: val, value: qx });
    lb.push({ kind: 'if', cond: lt(qq, T), then: load1, else: [] });
    lb.push({ kind: 'array_store', array: qs, index: v(e, 'u32'), value: v(val, 'f32') });
    body.push(forLoop(e, lid, u32(Br * dk), u32(threads), lb));
    body.push({ kind: 'barrier' });
  } else {
    // Lane l loads elements l, l + L, ... of each of its rows once (global Q read once); element
    // d of the row then comes from lane d % L by shuffle (all lanes evaluate the same index).
    const JQ = Math.ceil(dk / L);
    const mine = kb.fresh('q_mine');
    body.push({ kind: 'private_array', name: qReg, type: 'f32', length: RQ * dk, init: f32(0) });
    body.push({ kind: 'private_array', name: mine, type: 'f32', length: JQ, init: f32(0) });
    const ii = kb.fresh('ii');
    const rb: Stmt[] = [];
    const { qi, hh } = rowHead(rb, rowOf(v(ii, 'u32')), 'qq');
    {
      const jq = kb.fresh('jq');
      const lb: Stmt[] = [];
      const d = kb.let(lb, 'd', add(lane, mul(v(jq, 'u32'), u32(L))));
      const val = kb.var(lb, 'qv', 'f32', f32(0));
      const load1: Stmt[] = [];
      const qx =
        qload !== undefined
          ? cast('f32', lambdaExpr({ kb, slotOf }, g, n, load1, qload, [b, hh, qi, d], undefined, true))
          : cast('f32', load(qSlot, qN.op === 'view' ? elementOffset(g, qN, [b, hh, qi, d], dimExpr) : add(mul(rowIndex(hh, qi), u32(dk)), d), storageType(qN.type.dtype)));
      load1.push({ kind: 'assign', name: val, value: qx });
      lb.push({ kind: 'if', cond: and(lt(qi, T), lt(d, u32(dk))), then: load1, else: [] });
      lb.push({ kind: 'array_store', array: mine, index: v(jq, 'u32'), value: v(val, 'f32') });
      rb.push(forLoop(jq, u32(0), u32(JQ), u32(1), lb));
    }
    {
      const d = kb.fresh('d');
      const at = add(mul(v(ii, 'u32'), u32(dk)), v(d, 'u32'));
      rb.push(forLoop(d, u32(0), u32(dk), u32(1), [{ kind: 'array_store', array: qReg, index: at, value: subgroupShuffle(arrayLoad(mine, div(v(d, 'u32'), u32(L)), 'f32'), rem(v(d, 'u32'), u32(L))) }]));
    }
    body.push(forLoop(ii, u32(0), u32(RQ), u32(1), rb));
  }
  body.push({ kind: 'comment', text: 'block sparsity: key tiles outside [kt_start, kt_end) are fully masked for every row of this tile' });
  body.push(...logic.bounds);
  // Per row of the thread: running max, this lane's share of the running sum, JL accumulators.
  const mRun = kb.fresh('m_run');
  body.push({ kind: 'private_array', name: mRun, type: 'f32', length: RQ, init: NEG_INF });
  const lLane = kb.fresh('l_lane');
  body.push({ kind: 'private_array', name: lLane, type: 'f32', length: RQ, init: f32(0) });
  const acc = kb.fresh('acc');
  body.push({ kind: 'private_array', name: acc, type: 'f32', length: RQ * JL, init: f32(0) });

  /** Max or sum of `x` over the L lanes of each row; every lane gets its row's value. */
  const rowReduce = (out: Stmt[], x: Expr, op: 'max' | 'sum', prefix: string): Expr => {
    if (s.useSubgroups) return kb.let(out, prefix, subgroup(op, x));
    out.push({ kind: 'array_store', array: fold, index: lid, value: x });
    out.push({ kind: 'barrier' });
    const tot = kb.var(out, prefix, 'f32', arrayLoad(fold, mul(rg, u32(L)), 'f32'));
    const i = kb.fresh('i');
    const cur = arrayLoad(fold, add(mul(rg, u32(L)), v(i, 'u32')), 'f32');
    out.push(forLoop(i, u32(1), u32(L), u32(1), [{ kind: 'assign', name: tot, value: op === 'max' ? fmax(v(tot, 'f32'), cur) : bin('add', v(tot, 'f32'), cur) }]));
    out.push({ kind: 'barrier' });
    return v(tot, 'f32');
  };

  // ---- one key tile ----
  // Per row group (qRegs): the key-tile range and tile class of the group's own RQ rows.
  const rgLogic = qRegs ? rowGroupLogic(kb, body, shape, mask, s, mode, RQ, rg, logic, uniformRead) : undefined;
  const staging: Stmt[] = []; // K/V tiles and their barrier, run by every thread
  const live: Stmt[] = []; // scores, softmax and P V of the thread's rows
  // The K tile is stored transposed ([dk][Bc]): the score loop's lanes read keys lane + i * L at
  // one d, adjacent words (a vector load on a CPU, no bank conflicts on a GPU) instead of a
  // stride of dk. The V tile stays [Bc][dv]: the P V loop's lanes read adjacent columns.
  /** The element (d) of key kk of K or V as its load lambda computes it (statements to `out`); undefined: load the operand. */
  type ComputedAt = (out: Stmt[], kk: Expr, d: Expr) => Expr;
  const computedBy = (l: ScalarExpr | undefined): ComputedAt | undefined => (l === undefined ? undefined : (out, kk, d) => cast('f32', lambdaExpr({ kb, slotOf }, g, n, out, l, [b, hk, kk, d], undefined, true)));
  const kloadAt = computedBy(kload);
  const vloadAt = computedBy(vload);
  const stageKV = (tile: string, width: number, slot: number, dtype: DType, node: Node, transposed: boolean, computed?: ComputedAt): void => {
    const e = kb.fresh('e');
    const lb: Stmt[] = [];
    const c = kb.let(lb, 'c', div(v(e, 'u32'), u32(width)));
    const d = kb.let(lb, 'd', rem(v(e, 'u32'), u32(width)));
    const kk = kb.let(lb, 'kk', add(logic.k0, c));
    const val = kb.var(lb, 'kv', 'f32', f32(0));
    const load1: Stmt[] = [];
    const x = computed?.(load1, kk, d) ?? cast('f32', load(slot, node.op === 'view' ? elementOffset(g, node, [b, hk, kk, d], dimExpr) : add(mul(add(kvRow0, kk), u32(width)), d), storageType(dtype)));
    load1.push({ kind: 'assign', name: val, value: x });
    lb.push({ kind: 'if', cond: lt(kk, S), then: load1, else: [] });
    lb.push({ kind: 'array_store', array: tile, index: transposed ? add(mul(d, u32(Bc)), c) : v(e, 'u32'), value: v(val, 'f32') });
    staging.push(forLoop(e, lid, u32(Bc * width), u32(threads), lb));
  };
  /** Element d of key c of this tile: the staged tile, or (direct) global memory with the key clamped to S - 1 (its score is -inf, its p 0). */
  const kvAt = (tile: string, width: number, slot: number, node: Node, out: Stmt[], c: Expr, d: Expr, transposed: boolean, computed?: ComputedAt, staged = !isDirect): Expr => {
    if (staged) return arrayLoad(tile, transposed ? add(mul(d, u32(Bc)), c) : add(mul(c, u32(width)), d), 'f32');
    const kk = kb.let(out, 'kk', fmin(add(logic.k0, c), bin('sub', S, u32(1))));
    const x = computed?.(out, kk, d);
    if (x !== undefined) return kb.let(out, 'k_at', x);
    return cast('f32', load(slot, node.op === 'view' ? elementOffset(g, node, [b, hk, kk, d], dimExpr) : add(mul(add(kvRow0, kk), u32(width)), d), storageType(node.type.dtype)));
  };
  if (stageK) stageKV(ks, dk, kSlot, kN.type.dtype, kN, true, kloadAt);
  if (!isDirect) stageKV(vs, dv, vSlot, vN.type.dtype, vN, false, vloadAt);
  if (stageK) staging.push({ kind: 'barrier' });
  // Scores of this lane's keys c = lane + i * L for the thread's RQ rows, register-blocked: per
  // d, NC key elements and RQ query elements are loaded for RQ * NC multiply-adds.
  const dots = kb.fresh('dots');
  live.push({ kind: 'private_array', name: dots, type: 'f32', length: RQ * NC, init: f32(0) });
  {
    const d = kb.fresh('d');
    const lb: Stmt[] = [];
    const kd = kb.fresh('k_val');
    lb.push({ kind: 'private_array', name: kd, type: 'f32', length: NC, init: f32(0) });
    const i = kb.fresh('i');
    const kl: Stmt[] = [];
    const kx = kvAt(ks, dk, kSlot, kN, kl, add(lane, mul(v(i, 'u32'), u32(L))), v(d, 'u32'), true, kloadAt, stageK);
    kl.push({ kind: 'array_store', array: kd, index: v(i, 'u32'), value: kx });
    lb.push(forLoop(i, u32(0), u32(NC), u32(1), kl));
    const ii = kb.fresh('ii');
    const rl: Stmt[] = [];
    const qv = kb.let(rl, 'qd', qRegs ? arrayLoad(qReg, add(mul(v(ii, 'u32'), u32(dk)), v(d, 'u32')), 'f32') : arrayLoad(qs, add(mul(rowOf(v(ii, 'u32')), u32(dk)), v(d, 'u32')), 'f32'));
    const i2 = kb.fresh('i');
    const at = add(mul(v(ii, 'u32'), u32(NC)), v(i2, 'u32'));
    rl.push(forLoop(i2, u32(0), u32(NC), u32(1), [{ kind: 'array_store', array: dots, index: at, value: bin('add', arrayLoad(dots, at, 'f32'), bin('mul', qv, arrayLoad(kd, v(i2, 'u32'), 'f32'))) }]));
    lb.push(forLoop(ii, u32(0), u32(RQ), u32(1), rl));
    live.push(forLoop(d, u32(0), u32(dk), u32(1), lb));
  }
  // Per row: scores (score mod, mask), row max, rescale, probabilities into the P tile.
  {
    const ii = kb.fresh('ii');
    const iiv = v(ii, 'u32');
    const rb: Stmt[] = [];
    const row = kb.let(rb, 'r', rowOf(iiv));
    const { qi, hh } = rowHead(rb, row, 'qi');
    const mLoc = kb.var(rb, 'm_loc', 'f32', NEG_INF);
    {
      const i = kb.fresh('i');
      const lb: Stmt[] = [];
      const c = kb.let(lb, 'c', add(lane, mul(v(i, 'u32'), u32(L))));
      const kk = kb.let(lb, 'kk', add(logic.k0, c));
      let sc = kb.let(lb, 's', bin('mul', arrayLoad(dots, add(mul(iiv, u32(NC)), v(i, 'u32')), 'f32'), f32(scale)));
      const idx = [b, hh, qi, kk];
      const comp: Compiled = { kb, slotOf };
      if (scoreL !== undefined) sc = kb.let(lb, 's_mod', cast('f32', lambdaExpr(comp, g, n, lb, scoreL, idx, sc)));
      const keep = kb.var(lb, 'keep', 'bool', lt(kk, S));
      if (mask !== undefined) {
        const mb: Stmt[] = [];
        const mv = lambdaExpr(comp, g, n, mb, mask, idx, undefined);
        mb.push({ kind: 'assign', name: keep, value: and(v(keep, 'bool'), mv) });
        // Fully visible tiles skip the predicate (block sparsity's second class).
        lb.push({ kind: 'if', cond: rgLogic?.mayFalse ?? logic.mayFalse, then: mb, else: [] });
      }
      const sv = kb.let(lb, 's_final', select(v(keep, 'bool'), sc, NEG_INF));
      if (shuffleP) lb.push({ kind: 'array_store', array: dots, index: add(mul(iiv, u32(NC)), v(i, 'u32')), value: sv });
      else lb.push({ kind: 'array_store', array: ps, index: add(mul(row, u32(Bc)), c), value: sv });
      lb.push({ kind: 'assign', name: mLoc, value: fmax(v(mLoc, 'f32'), sv) });
      rb.push(forLoop(i, u32(0), u32(NC), u32(1), lb));
    }
    const mOld = kb.let(rb, 'm_old', arrayLoad(mRun, iiv, 'f32'));
    const mTile = rowReduce(rb, v(mLoc, 'f32'), 'max', 'm_tile');
    const mNew = kb.let(rb, 'm_new', fmax(mOld, mTile));
    // alpha rescales what was summed under the old max; 0 while the row has seen only -inf.
    const alpha = kb.let(rb, 'alpha', select(bin('eq', mOld, NEG_INF), f32(0), call('exp', [bin('sub', mOld, mNew)], 'f32')));
    const psum = kb.var(rb, 'p_sum', 'f32', f32(0));
    {
      const i = kb.fresh('i');
      const lb: Stmt[] = [];
      const pArr = shuffleP ? dots : ps;
      const at = kb.let(lb, 'at', shuffleP ? add(mul(iiv, u32(NC)), v(i, 'u32')) : add(mul(row, u32(Bc)), add(lane, mul(v(i, 'u32'), u32(L)))));
      const sv = kb.let(lb, 'sv', arrayLoad(pArr, at, 'f32'));
      const p = kb.let(lb, 'p', select(bin('eq', sv, NEG_INF), f32(0), call('exp', [bin('sub', sv, mNew)], 'f32')));
      lb.push({ kind: 'array_store', array: pArr, index: at, value: p });
      lb.push({ kind: 'assign', name: psum, value: bin('add', v(psum, 'f32'), p) });
      rb.push(forLoop(i, u32(0), u32(NC), u32(1), lb));
    }
    rb.push({ kind: 'array_store', array: lLane, index: iiv, value: bin('add', bin('mul', arrayLoad(lLane, iiv, 'f32'), alpha), v(psum, 'f32')) });
    const jj = kb.fresh('jj');
    const at = add(mul(iiv, u32(JL)), v(jj, 'u32'));
    rb.push(forLoop(jj, u32(0), u32(JL), u32(1), [{ kind: 'array_store', array: acc, index: at, value: bin('mul', arrayLoad(acc, at, 'f32'), alpha) }]));
    rb.push({ kind: 'array_store', array: mRun, index: iiv, value: mNew });
    live.push(forLoop(ii, u32(0), u32(RQ), u32(1), rb));
  }
  if (!shuffleP) live.push({ kind: 'barrier' });
  // acc += P V, register-blocked: per key, JL V elements and RQ probabilities for RQ * JL multiply-adds.
  {
    // Key c = src + ci * L: with shuffleP its probability is dots[ii * NC + ci] of lane src.
    const ci = kb.fresh('ci');
    const src = kb.fresh('src');
    const c = kb.fresh('c');
    const lb: Stmt[] = [];
    if (shuffleP) lb.push({ kind: 'let', name: c, type: 'u32', init: add(v(src, 'u32'), mul(v(ci, 'u32'), u32(L))) });
    const vd = kb.fresh('v_val');
    lb.push({ kind: 'private_array', name: vd, type: 'f32', length: JL, init: f32(0) });
    const jj = kb.fresh('jj');
    const vl: Stmt[] = [];
    // Lanes past dv read column dv - 1 (a copy, never stored) so the index stays in range.
    const vx = kvAt(vs, dv, vSlot, vN, vl, v(c, 'u32'), fmin(add(lane, mul(v(jj, 'u32'), u32(L))), u32(dv - 1)), false, vloadAt);
    vl.push({ kind: 'array_store', array: vd, index: v(jj, 'u32'), value: vx });
    lb.push(forLoop(jj, u32(0), u32(JL), u32(1), vl));
    const ii = kb.fresh('ii');
    const rl: Stmt[] = [];
    const p = kb.let(rl, 'pc', shuffleP ? subgroupShuffle(arrayLoad(dots, add(mul(v(ii, 'u32'), u32(NC)), v(ci, 'u32')), 'f32'), v(src, 'u32')) : arrayLoad(ps, add(mul(rowOf(v(ii, 'u32')), u32(Bc)), v(c, 'u32')), 'f32'));
    const jj2 = kb.fresh('jj');
    const at = add(mul(v(ii, 'u32'), u32(JL)), v(jj2, 'u32'));
    rl.push(forLoop(jj2, u32(0), u32(JL), u32(1), [{ kind: 'array_store', array: acc, index: at, value: bin('add', arrayLoad(acc, at, 'f32'), bin('mul', p, arrayLoad(vd, v(jj2, 'u32'), 'f32'))) }]));
    lb.push(forLoop(ii, u32(0), u32(RQ), u32(1), rl));
    if (shuffleP) live.push(forLoop(ci, u32(0), u32(NC), u32(1), [forLoop(src, u32(0), u32(L), u32(1), lb)]));
    else live.push(forLoop(c, u32(0), u32(Bc), u32(1), lb));
  }
  // The next key tile restages K, V (and, without shuffleP, rewrites P).
  const restage: Stmt[] = !shuffleP || stageK ? [{ kind: 'barrier' }] : [];
  // qRegs: a row group whose rows see none of this key tile skips its work (the branch is
  // uniform over the group's subgroup) but still joins the workgroup's staging barriers.
  const work: Stmt[] = rgLogic === undefined ? live : [...rgLogic.perTile, { kind: 'if', cond: rgLogic.active, then: live, else: [], uniformity: 'subgroup' }];
  body.push(forLoop(logic.ktVar, logic.ktStart, logic.ktEnd, u32(1), [...logic.perTile, { kind: 'if', cond: logic.mayTrue, then: [...staging, ...work, ...restage], else: [] }]));

  // ---- write once ----
  {
    const ii = kb.fresh('ii');
    const iiv = v(ii, 'u32');
    const wb: Stmt[] = [];
    const lRow = rowReduce(wb, arrayLoad(lLane, iiv, 'f32'), 'sum', 'l_row');
    const { qi, hh } = rowHead(wb, rowOf(iiv), 'qi');
    const write: Stmt[] = [];
    const oRow = kb.let(write, 'o_row', rowIndex(hh, qi));
    {
      const jj = kb.fresh('jj');
      const lb: Stmt[] = [];
      const j = kb.let(lb, 'j', add(lane, mul(v(jj, 'u32'), u32(L))));
      const a = arrayLoad(acc, add(mul(iiv, u32(JL)), v(jj, 'u32')), 'f32');
      const st: Stmt =
        mode.kind === 'prefill'
          ? { kind: 'store', slot: outSlot, index: add(mul(oRow, u32(dv)), j), value: cast(storageType(n.type.dtype), select(bin('eq', lRow, f32(0)), f32(0), bin('div', a, lRow))) }
          : { kind: 'store', slot: outSlot, index: add(mul(add(mul(oRow, u32(s.splits)), logic.part), u32(dv + 2)), j), value: a };
      lb.push({ kind: 'if', cond: lt(j, u32(dv)), then: [st], else: [] });
      write.push(forLoop(jj, u32(0), u32(JL), u32(1), lb));
    }
    if (mode.kind === 'split') {
      const base = kb.let(write, 'stat', mul(add(mul(oRow, u32(s.splits)), logic.part), u32(dv + 2)));
      write.push({
        kind: 'if',
        cond: bin('eq', lane, u32(0)),
        then: [
          { kind: 'store', slot: outSlot, index: add(base, u32(dv)), value: arrayLoad(mRun, iiv, 'f32') },
          { kind: 'store', slot: outSlot, index: add(base, u32(dv + 1)), value: lRow },
        ],
        else: [],
      });
    }
    if (mode.kind === 'prefill' && inp.lse !== undefined) {
      // The row's log-sum-exp (FlexAttention's return_lse), one lane per row.
      const lseSlot = kb.slot('lse', inp.lse.id, 'read_write', storageType(inp.lse.type.dtype));
      const value = cast(storageType(inp.lse.type.dtype), lseValue(arrayLoad(mRun, iiv, 'f32'), lRow));
      write.push({ kind: 'if', cond: bin('eq', lane, u32(0)), then: [{ kind: 'store', slot: lseSlot, index: oRow, value }], else: [] });
    }
    wb.push({ kind: 'if', cond: lt(qi, T), then: write, else: [] });
    body.push(forLoop(ii, u32(0), u32(RQ), u32(1), wb));
  }
  // ---- traffic ----
  // Q read once, O written once, K and V once per workgroup, i.e. per tile of Br query rows of
  // G heads of a KV head (staged tiles; isDirect: once per row group of RQ rows), tiles the
  // sparsity skips still counted (a worst case), the lambdas' reads once per score element:
  //   read  = B*Hq*T*dk*e + B*(Hq/G)*ceil(T/Br)*S*(dk + dv)*e*(isDirect ? Br*G/RQ : 1) + B*Hq*T*S*lambdaBytes
  //   write = B*Hq*T*dv*e (prefill; + B*Hq*T*e' with an LSE) or B*Hq*T*splits*(dv + 2)*4 (split-K partials)
  // Split-K decode: a workgroup is (partition, G heads, batch) with G/RQ row groups, so K/V are
  // read B*(Hq/G)*T*S*(dk + dv)*e in all (1/G of one head per workgroup) when direct has RQ = G.
  const B_ = dimToSize(shape.B);
  const Hq_ = dimToSize(shape.Hq);
  const T_ = dimToSize(shape.T);
  const S_ = dimToSize(shape.S);
  // With qload: its reads per Q element (the chosen branch of a lazy where), Q computed once per element.
  // (loadBytesOf: a word the same for every element of a row, a page table entry, counts once per
  // row; one the same for the whole tile, a row's length, once per tile. Q's once per row.)
  const qLoad = qload === undefined ? undefined : loadBytesOf(g, n, qload, dk);
  const qBytes = qLoad === undefined ? dk * storageBytes(qN.type.dtype) : qLoad.perRow + qLoad.perTile;
  const eK = storageBytes(kN.type.dtype);
  const maskBytes = scoreBytesOf(g, n, mask);
  const scoreBytes = scoreBytesOf(g, n, scoreL);
  const lambdaBytes = maskBytes.perScore + scoreBytes.perScore;
  // Workgroups: (tile of Br * G rows of T * G, i.e. ceil(T / Br), G heads, batch); G = 1 reads
  // K/V once per query head and query tile.
  const headGroups = G === 1 ? Hq_ : sConst((dimConstValue(shape.Hq) ?? NaN) / G);
  const qTiles = mode.kind === 'prefill' ? sCeilDiv(T_, Br / G) : T_;
  // isDirect: every row group reads the tile's K and V from global memory itself (requested
  // bytes, no credit for the caches that serve the other groups).
  const kvPerTile = isDirect ? groups : 1;
  // With kload: its reads per K element (the dearer branch of a lazy where) replace K's bytes, and
  // K is recomputed by every workgroup that loads the tile (by each row group when per read).
  const kPerTile = stageK ? 1 : groups;
  const kLoad = kload === undefined ? undefined : loadBytesOf(g, n, kload, dk);
  const kBytes = kLoad?.perRow ?? dk * eK;
  // With vload: its reads per V element (the page's element), per key (the page table entry).
  const vLoad = vload === undefined ? undefined : loadBytesOf(g, n, vload, dv);
  const vBytes = vLoad?.perRow ?? dv * eK;
  const reads = [sMul(B_, Hq_, T_, sConst(qBytes)), sMul(B_, headGroups, qTiles, S_, sConst(kBytes * kPerTile + vBytes * kvPerTile))];
  if (lambdaBytes > 0) reads.push(sMul(B_, Hq_, T_, S_, sConst(lambdaBytes)));
  const tileBytes = (kLoad?.perTile ?? 0) * kPerTile + (vLoad?.perTile ?? 0) * kvPerTile + maskBytes.perTile + scoreBytes.perTile;
  if (tileBytes > 0) reads.push(sMul(B_, headGroups, qTiles, sCeilDiv(S_, Bc), sConst(tileBytes)));
  const tiledReads = sAdd(...reads.slice(1));
  const outBytes = mode.kind === 'prefill' ? sMul(B_, Hq_, T_, sConst(dv * storageBytes(n.type.dtype))) : sMul(B_, Hq_, T_, sConst(s.splits * (dv + 2) * 4));
  const lseWritten = mode.kind === 'prefill' ? lseBytes(inp) : undefined;
  const withLse = lseWritten === undefined ? outBytes : sAdd(outBytes, lseWritten);
  const written = presentWrites === undefined ? withLse : sAdd(withLse, presentWrites.written);
  if (presentWrites !== undefined) reads.push(presentWrites.read);
  const dotFlops = sMul(B_, Hq_, T_, S_, sConst(2 * (dk + dv)));
  // kload's applies per K element, once per loading workgroup (per row group when per read).
  const kFlops = kload === undefined ? undefined : sMul(B_, headGroups, qTiles, S_, sConst(dk * countApplies(kload) * kPerTile));
  const vFlops = vload === undefined ? undefined : sMul(B_, headGroups, qTiles, S_, sConst(dv * countApplies(vload) * kvPerTile));
  const kdFlops = kFlops === undefined ? dotFlops : sAdd(dotFlops, kFlops);
  const flops = vFlops === undefined ? kdFlops : sAdd(kdFlops, vFlops);
  // Everything but Q's reads is spent per key tile: the report counts only the tiles visited.
  const tiles = { rows: mode.rows, heads: mode.heads, cols: s.tileCols, ...(mode.kind === 'split' ? { splits: s.splits } : {}) };
  const perTile = { perTile: { bytesRead: tiledReads, flops, tiles } };
  const traffic: Traffic = { bytesRead: sAdd(...reads), bytesWritten: written, flops, ...perTile };
  const gridX = mode.kind === 'prefill' ? qTiles : sMul(sCeilDiv(T_, Br / G), sConst(s.splits));
  const schedule: KernelSchedule = { kind: 'flash_attention', tileRows: Br, tileCols: Bc, lanes: L, useSubgroups: s.useSubgroups, splits: mode.kind === 'split' ? s.splits : 1 };
  return {
    op: mode.kind === 'prefill' ? 'fused_attention' : 'fused_attention_split',
    workgroupSize: [threads, 1, 1],
    grid: [gridX, headGroups, B_],
    buffers: kb.buffers,
    shared: kb.shared,
    body,
    schedule,
    traffic,
    bindings: kb.bindings,
  };
}
