// The fused attention backward kernel: `fused_attention_grad` (src/ops/attention-grad.ts, the
// math in its header) as ONE launch with two roles, the split of Triton's fused-attention
// backward (one program per K/V block for dK, dV and one per Q block for dQ), so neither needs
// float atomics (WebGPU has none) and no T x S value ever reaches global memory:
//   dK/dV role: workgroup (key tile of Bc keys, KV head, batch); K, V tiles staged once; for each
//     query head of the KV head's group and each live query tile of Br rows: stage Q, dO, the
//     rows' LSE and D = dO.o - dLSE; per (key, row): s = scale q.k, z = score(s), masked -inf,
//     P = exp(z - lse), dP = dO.v, dS = P (dP - D) dscore(s) -> P and dS tiles; then
//     dV += P^T dO, dK += dS^T Q. dK (times scale) and dV written once.
//   dQ role: workgroup (query tile, query head, batch); Q, dO, LSE, D staged once; for each live
//     key tile: K, V staged, dS as above -> dS tile; dQ += dS K. dQ (times scale) written once.
// Grid [ceil(S/Bc) + ceil(T/Br), Hq, B]: x below ceil(S/Bc) is the dK/dV role (y >= Hkv idle),
// the rest the dQ role. P is recomputed from the forward's LSE; D is computed where a tile of
// rows is staged (FlashAttention-2's preprocessing kernel folded in: Br * dv more work per tile).
// Block sparsity comes from the mask as in the forward: the dQ role runs the forward's tile
// logic (attention/sparsity.ts); the dK/dV role runs attention/sparsity-kv.ts (query tiles bounded
// by conjuncts linear in q, dead tiles skipped); both evaluate the mask only on partial tiles. Target-neutral kernel IR, no subgroup operations: row exchanges go through
// workgroup memory. A learned table the score mod reads (`table_grads`) gets its gradient from
// the dK/dV role's per-workgroup partial sums and a reduce kernel: attention/backward-table.ts.
import type { Graph, Node } from '../../graph/ir.js';
import { floatAttr } from '../../graph/ir.js';
import { countApplies } from '../../ops/source.js';
import { attentionGradExtrasStart } from '../../ops/attention-vjp.js';
import { type Expr, type KernelSchedule, type Stmt, type Traffic, add, and, arrayLoad, bin, builtin, call, cast, div, load, lt, mul, rem, select, u32, v } from '../ir/ir.js';
import { KernelBuilder } from '../ir/builder.js';
import { dimExpr } from '../lower/dims.js';
import { storageBytes, storageType } from '../ir/storage.js';
import type { TargetLimits } from '../schedule/schedule.js';
import { dimToSize, sAdd, sCeilDiv, sConst, sMul } from '../plan/to-size.js';
import type { SizeExpr } from '../plan/plan.js';
import { type AttentionBackwardSchedule, type AttentionSchedule, attentionBackwardThreads } from './schedule.js';
import { type AttentionKernelDraft, shapeOf } from './node.js';
import { f32, fmin, forLoop, NEG_INF } from './exprs.js';
import { type UniformRead, tileLogic } from './sparsity.js';
import { kvTileLogic } from './sparsity-kv.js';
import { type Compiled, lambdaExpr, lambdaOf, readBytesOf } from './lambdas.js';
import { TableAccumulator, partialRows, tableLayout } from './backward-table.js';

export interface AttentionGradInput {
  readonly graph: Graph;
  /** The fused_attention_grad node (its buffer is dQ). */
  readonly node: Node;
  /** The buffers of dK and dV: the fused_attention_grad_k/_v nodes, or temps where none exists. */
  readonly dK: Node;
  readonly dV: Node;
  /** With learned tables (`table_grads`): the per-workgroup partial sums buffer (attention/backward-table.ts). */
  readonly partials?: Node;
  readonly target: TargetLimits;
  readonly schedule: AttentionBackwardSchedule;
}

/** The buffers every backward kernel binds, in this slot order (q, k, v, o, lse, dO, [dLSE], dQ,
 * dK, dV), and the lambdas' further operands as they are first read. */
export function gradSlots(inp: Pick<AttentionGradInput, 'node' | 'dK' | 'dV'>, operand: (i: number) => Node, qkvoLseDo: readonly [Node, Node, Node, Node, Node, Node], dlseN: Node | undefined) {
  const kb = new KernelBuilder();
  const slot = (role: string, x: Node, access: 'read' | 'read_write' = 'read'): number => kb.slot(role, x.id, access, storageType(x.type.dtype));
  const [qN, kN, vN, oN, lseN, doN] = qkvoLseDo;
  const [qS, kS, vS, oS, lseS, doS] = [slot('q', qN), slot('k', kN), slot('v', vN), slot('o', oN), slot('lse', lseN), slot('d_o', doN)];
  const dlseS = dlseN === undefined ? -1 : slot('d_lse', dlseN);
  const dqS = slot('d_q', inp.node, 'read_write');
  const dkS = slot('d_k', inp.dK, 'read_write');
  const dvS = slot('d_v', inp.dV, 'read_write');
  const extraSlots = new Map<number, number>();
  const slotOf = (i: number): number => {
    let sl = extraSlots.get(i);
    if (sl === undefined) {
      sl = slot(`t${i}`, operand(i));
      extraSlots.set(i, sl);
    }
    return sl;
  };
  const comp: Compiled = { kb, slotOf };
  const ld = (sl: number, x: Node, index: Expr): Expr => cast('f32', load(sl, index, storageType(x.type.dtype)));
  /**
   * Per row r of the query tile at q0 (block row offset qRow0), into the shared arrays: its LSE and
   * D = dO.o (- dLSE), from global memory, 0 past T; `threads` threads from `lid` share the rows.
   * FlashAttention-2's preprocessing kernel folded in. No barrier.
   */
  const stageRowStats = (out: Stmt[], at: { readonly q0: Expr; readonly qRow0: Expr; readonly T: Expr; readonly rows: number; readonly dv: number; readonly lid: Expr; readonly threads: number; readonly lses: string; readonly ds: string }): void => {
    const r = kb.fresh('r');
    const rb: Stmt[] = [];
    const qq = kb.let(rb, 'qq', add(at.q0, v(r, 'u32')));
    const lv = kb.var(rb, 'l', 'f32', f32(0));
    const dvar = kb.var(rb, 'dd', 'f32', f32(0));
    const inT: Stmt[] = [];
    const row = kb.let(inT, 'row', add(at.qRow0, qq));
    inT.push({ kind: 'assign', name: lv, value: ld(lseS, lseN, row) });
    const c = kb.fresh('c');
    const el = add(mul(row, u32(at.dv)), v(c, 'u32'));
    inT.push(forLoop(c, u32(0), u32(at.dv), u32(1), [{ kind: 'assign', name: dvar, value: bin('add', v(dvar, 'f32'), bin('mul', ld(doS, doN, el), ld(oS, oN, el))) }]));
    if (dlseN !== undefined) inT.push({ kind: 'assign', name: dvar, value: bin('sub', v(dvar, 'f32'), ld(dlseS, dlseN, row)) });
    rb.push({ kind: 'if', cond: lt(qq, at.T), then: inT, else: [] });
    rb.push({ kind: 'array_store', array: at.lses, index: v(r, 'u32'), value: v(lv, 'f32') });
    rb.push({ kind: 'array_store', array: at.ds, index: v(r, 'u32'), value: v(dvar, 'f32') });
    out.push(forLoop(r, at.lid, u32(at.rows), u32(at.threads), rb));
  };
  return { kb, slot, comp, ld, stageRowStats, qS, kS, vS, oS, lseS, doS, dlseS, dqS, dkS, dvS };
}

/**
 * Score element (qi, kk) of either backward kernel, from its scaled score s: the modified score,
 * the mask (checked where `partial`: a tile the block sparsity did not prove full), then
 * P = exp(z - lse) (0 where z or lse is -inf) and the score lambda's derivative. `lse` is read
 * after the mask (where the f32 kernel binds it).
 */
export function scoreProbability(
  c: { readonly kb: KernelBuilder; readonly comp: Compiled; readonly g: Graph; readonly n: Node; readonly S: Expr; readonly T: Expr },
  out: Stmt[],
  at: { readonly s: Expr; readonly idx: readonly Expr[]; readonly qi: Expr; readonly kk: Expr; readonly partial: Expr; readonly lse: () => Expr },
): { readonly p: Expr; readonly dsc: Expr | undefined } {
  const { kb, comp, g, n } = c;
  const scoreL = lambdaOf(n, 'score');
  const mask = lambdaOf(n, 'mask');
  const dscoreL = lambdaOf(n, 'dscore');
  const z = scoreL === undefined ? at.s : kb.let(out, 's_mod', cast('f32', lambdaExpr(comp, g, n, out, scoreL, at.idx, at.s)));
  const keep = kb.var(out, 'keep', 'bool', and(lt(at.kk, c.S), lt(at.qi, c.T)));
  if (mask !== undefined) {
    const mb: Stmt[] = [];
    const mv = lambdaExpr(comp, g, n, mb, mask, at.idx, undefined);
    mb.push({ kind: 'assign', name: keep, value: and(v(keep, 'bool'), mv) });
    out.push({ kind: 'if', cond: at.partial, then: mb, else: [] });
  }
  const zf = kb.let(out, 'z', select(v(keep, 'bool'), z, NEG_INF));
  const l = at.lse();
  const p = kb.let(out, 'p', select(bin('or', bin('eq', zf, NEG_INF), bin('eq', l, NEG_INF)), f32(0), call('exp', [bin('sub', zf, l)], 'f32')));
  const dsc = dscoreL === undefined ? undefined : kb.let(out, 'dscore', cast('f32', lambdaExpr(comp, g, n, out, dscoreL, at.idx, at.s)));
  return { p, dsc };
}

export function attentionBackwardKernel(inp: AttentionGradInput): AttentionKernelDraft {
  const { graph: g, node: n, schedule: sch } = inp;
  const operand = (i: number): Node => {
    const o = g.nodes[n.operands[i] ?? -1];
    if (o === undefined) throw new Error(`internal: fused_attention_grad lacks operand ${i}`);
    return o;
  };
  const [qN, kN, vN, oN, lseN, doN] = [0, 1, 2, 3, 4, 5].map(operand) as [Node, Node, Node, Node, Node, Node];
  const dlseN = attentionGradExtrasStart(n.attrs) > 6 ? operand(6) : undefined;
  const shape = shapeOf(qN.type, kN.type, vN.type);
  const { dk, dv } = shape;
  const Br = sch.tileRows;
  const Bc = sch.tileCols;
  const L = sch.lanes;
  if (Br % L !== 0 || Bc % L !== 0) throw new Error(`internal: attention backward tiles ${Br}x${Bc} not multiples of ${L} lanes`);
  const TH = attentionBackwardThreads(sch);
  const JK = Math.ceil(dk / L);
  const JV = Math.ceil(dv / L);
  const scale = floatAttr(n, 'scale');
  const mask = lambdaOf(n, 'mask');

  const { kb, slot, comp, ld, stageRowStats, qS, kS, vS, doS, dqS, dkS, dvS } = gradSlots(inp, operand, [qN, kN, vN, oN, lseN, doN], dlseN);
  const layout = tableLayout(g, n);
  if ((layout === undefined) !== (inp.partials === undefined)) throw new Error('internal: fused_attention_grad tables without a partials buffer, or the reverse');
  const partialsSlot = inp.partials === undefined ? -1 : slot('partials', inp.partials, 'read_write');
  const qs = kb.sharedArray('q_tile', 'f32', Br * dk);
  const dos = kb.sharedArray('do_tile', 'f32', Br * dv);
  const ks = kb.sharedArray('k_tile', 'f32', Bc * dk);
  const vs = kb.sharedArray('v_tile', 'f32', Bc * dv);
  const lses = kb.sharedArray('lse_tile', 'f32', Br);
  const ds = kb.sharedArray('d_tile', 'f32', Br);
  const pt = kb.sharedArray('p_tile', 'f32', Br * Bc);
  const dst = kb.sharedArray('ds_tile', 'f32', Br * Bc);
  const table = layout === undefined ? undefined : new TableAccumulator(kb, comp, g, n, layout, Br * Bc, TH, partialsSlot);

  const T = dimExpr(shape.T);
  const S = dimExpr(shape.S);
  const Hq = dimExpr(shape.Hq);
  const Hkv = dimExpr(shape.Hkv);
  const lid = builtin('local_index');
  const body: Stmt[] = [];
  const nkt = kb.let(body, 'n_kt', div(add(S, u32(Bc - 1)), u32(Bc)));
  const wx = builtin('workgroup_id', 0);
  const wy = builtin('workgroup_id', 1);
  const wz = builtin('workgroup_id', 2);
  const uniformRead: UniformRead = (out, e, b, h) => lambdaExpr(comp, g, n, out, e, [b, h, u32(0), u32(0)], undefined);
  /** `then` for the threads below `count` of the role's rows or keys (all threads when the role fills the workgroup). */
  const guarded = (first: Expr, count: number, then: Stmt[]): Stmt[] => (count * L >= TH ? then : [{ kind: 'if', cond: lt(first, u32(count)), then, else: [] }]);

  /** Q, dO tiles of query rows q0 .. q0 + Br - 1 of the row block at qRow0 (zero past T), their LSE and D; then a barrier. */
  const stageRows = (out: Stmt[], q0: Expr, qRow0: Expr): void => {
    for (const [tile, width, sl, x] of [[qs, dk, qS, qN], [dos, dv, doS, doN]] as const) {
      const e = kb.fresh('e');
      const lb: Stmt[] = [];
      const qq = kb.let(lb, 'qq', add(q0, div(v(e, 'u32'), u32(width))));
      const val = kb.var(lb, 'x', 'f32', f32(0));
      lb.push({ kind: 'if', cond: lt(qq, T), then: [{ kind: 'assign', name: val, value: ld(sl, x, add(mul(add(qRow0, qq), u32(width)), rem(v(e, 'u32'), u32(width)))) }], else: [] });
      lb.push({ kind: 'array_store', array: tile, index: v(e, 'u32'), value: v(val, 'f32') });
      out.push(forLoop(e, lid, u32(Br * width), u32(TH), lb));
    }
    // Per row: its LSE and D = dO.o - dLSE, from global memory (no barrier between the tiles and this).
    stageRowStats(out, { q0, qRow0, T, rows: Br, dv, lid, threads: TH, lses, ds });
    out.push({ kind: 'barrier' });
  };
  /** K, V tiles of keys k0 .. k0 + Bc - 1 of the KV row block at kvRow0 (zero past S), then a barrier. */
  const stageKeys = (out: Stmt[], k0: Expr, kvRow0: Expr): void => {
    for (const [tile, width, sl, x] of [[ks, dk, kS, kN], [vs, dv, vS, vN]] as const) {
      const e = kb.fresh('e');
      const lb: Stmt[] = [];
      const kk = kb.let(lb, 'kk', add(k0, div(v(e, 'u32'), u32(width))));
      const val = kb.var(lb, 'x', 'f32', f32(0));
      lb.push({ kind: 'if', cond: lt(kk, S), then: [{ kind: 'assign', name: val, value: ld(sl, x, add(mul(add(kvRow0, kk), u32(width)), rem(v(e, 'u32'), u32(width)))) }], else: [] });
      lb.push({ kind: 'array_store', array: tile, index: v(e, 'u32'), value: v(val, 'f32') });
      out.push(forLoop(e, lid, u32(Bc * width), u32(TH), lb));
    }
    out.push({ kind: 'barrier' });
  };
  /**
   * P and dS of tile row r (query qi of head hh) and tile key c (key kk) from the staged tiles;
   * the mask is evaluated only where `partial` (block sparsity's second class).
   */
  const scoreGrad = (out: Stmt[], b: Expr, hh: Expr, r: Expr, c: Expr, qi: Expr, kk: Expr, partial: Expr): { p: Expr; dS: Expr; dz: Expr; s: Expr } => {
    const dot = kb.var(out, 'dot', 'f32', f32(0));
    const dp = kb.var(out, 'dp', 'f32', f32(0));
    const d = kb.fresh('d');
    out.push(forLoop(d, u32(0), u32(dk), u32(1), [{ kind: 'assign', name: dot, value: bin('add', v(dot, 'f32'), bin('mul', arrayLoad(qs, add(mul(r, u32(dk)), v(d, 'u32')), 'f32'), arrayLoad(ks, add(mul(c, u32(dk)), v(d, 'u32')), 'f32'))) }]));
    const e = kb.fresh('e');
    out.push(forLoop(e, u32(0), u32(dv), u32(1), [{ kind: 'assign', name: dp, value: bin('add', v(dp, 'f32'), bin('mul', arrayLoad(dos, add(mul(r, u32(dv)), v(e, 'u32')), 'f32'), arrayLoad(vs, add(mul(c, u32(dv)), v(e, 'u32')), 'f32'))) }]));
    const s = kb.let(out, 's', bin('mul', v(dot, 'f32'), f32(scale)));
    const { p, dsc } = scoreProbability({ kb, comp, g, n, S, T }, out, { s, idx: [b, hh, qi, kk], qi, kk, partial, lse: () => kb.let(out, 'lse_r', arrayLoad(lses, r, 'f32')) });
    const dzE = bin('mul', p, bin('sub', v(dp, 'f32'), arrayLoad(ds, r, 'f32')));
    // Bound once where a learned table reads it too (other kernels print as before).
    const dz = table === undefined ? dzE : kb.let(out, 'dz', dzE);
    // p = 0 (masked, past T or S): dS = 0 whatever dscore is there (the float64 rule skips it).
    const dS = kb.let(out, 'ds', select(bin('eq', p, f32(0)), f32(0), dsc === undefined ? dz : bin('mul', dz, dsc)));
    return { p, dS, dz, s };
  };
  /** acc[jj] += sum over i < count of tile[base + i] * src[i * width + col], col = lane + jj * L (clamped; stored only below width). */
  const accumulate = (out: Stmt[], acc: string, J: number, width: number, count: number, lane: Expr, weights: (i: Expr) => Expr, src: string): void => {
    const jj = kb.fresh('jj');
    const lb: Stmt[] = [];
    const col = kb.let(lb, 'col', fmin(add(lane, mul(v(jj, 'u32'), u32(L))), u32(width - 1)));
    const a = kb.var(lb, 'a', 'f32', arrayLoad(acc, v(jj, 'u32'), 'f32'));
    const i = kb.fresh('i');
    lb.push(forLoop(i, u32(0), u32(count), u32(1), [{ kind: 'assign', name: a, value: bin('add', v(a, 'f32'), bin('mul', weights(v(i, 'u32')), arrayLoad(src, add(mul(v(i, 'u32'), u32(width)), col), 'f32'))) }]));
    lb.push({ kind: 'array_store', array: acc, index: v(jj, 'u32'), value: v(a, 'f32') });
    out.push(forLoop(jj, u32(0), u32(J), u32(1), lb));
  };
  /** out[rowBase * width + col] = acc[jj] * factor for the lane's columns below width. */
  const writeRow = (out: Stmt[], sl: number, x: Node, acc: string, J: number, width: number, lane: Expr, rowIndex: Expr, factor: number): void => {
    const jj = kb.fresh('jj');
    const lb: Stmt[] = [];
    const col = kb.let(lb, 'col', add(lane, mul(v(jj, 'u32'), u32(L))));
    const value = cast(storageType(x.type.dtype), factor === 1 ? arrayLoad(acc, v(jj, 'u32'), 'f32') : bin('mul', arrayLoad(acc, v(jj, 'u32'), 'f32'), f32(factor)));
    lb.push({ kind: 'if', cond: lt(col, u32(width)), then: [{ kind: 'store', slot: sl, index: add(mul(rowIndex, u32(width)), col), value }], else: [] });
    out.push(forLoop(jj, u32(0), u32(J), u32(1), lb));
  };

  // ---- dK/dV role: x < ceil(S / Bc), y < Hkv ----
  const roleKV: Stmt[] = [];
  {
    const logic = kvTileLogic(kb, shape, mask, Br, Bc, uniformRead);
    roleKV.push(...logic.header);
    const { k0, hk, b, h, q0 } = logic;
    const key = kb.let(roleKV, 'key', div(lid, u32(L)));
    const lane = kb.let(roleKV, 'lane', rem(lid, u32(L)));
    const kvRow0 = kb.let(roleKV, 'kv_row0', mul(add(mul(b, Hkv), hk), S));
    // The workgroup's row of the tables' partial sums: (batch, KV head, key tile).
    table?.begin(roleKV, add(mul(add(mul(b, Hkv), hk), nkt), wx));
    stageKeys(roleKV, k0, kvRow0);
    const accK = kb.fresh('acc_k');
    const accV = kb.fresh('acc_v');
    roleKV.push({ kind: 'private_array', name: accK, type: 'f32', length: JK, init: f32(0) }, { kind: 'private_array', name: accV, type: 'f32', length: JV, init: f32(0) });
    const hb: Stmt[] = [...logic.perHead];
    const qRow0 = kb.let(hb, 'q_row0', mul(add(mul(b, Hq), h), T));
    const tb: Stmt[] = [...logic.perTile];
    const partial = logic.mayFalse;
    const work: Stmt[] = [];
    stageRows(work, q0, qRow0);
    {
      const sb: Stmt[] = [];
      const kk = kb.let(sb, 'kk', add(k0, key));
      const i = kb.fresh('i');
      const ib: Stmt[] = [];
      const r = kb.let(ib, 'r', add(lane, mul(v(i, 'u32'), u32(L))));
      const { p, dS, dz, s: sc } = scoreGrad(ib, b, h, r, key, add(q0, r), kk, partial);
      const at = add(mul(key, u32(Br)), r);
      ib.push({ kind: 'array_store', array: pt, index: at, value: p }, { kind: 'array_store', array: dst, index: at, value: dS });
      table?.storeElement(ib, at, [b, h, add(q0, r), kk], sc, p, dz);
      sb.push(forLoop(i, u32(0), u32(Br / L), u32(1), ib));
      work.push(...guarded(key, Bc, sb), { kind: 'barrier' });
    }
    {
      const ab: Stmt[] = [];
      accumulate(ab, accV, JV, dv, Br, lane, (i) => arrayLoad(pt, add(mul(key, u32(Br)), i), 'f32'), dos);
      accumulate(ab, accK, JK, dk, Br, lane, (i) => arrayLoad(dst, add(mul(key, u32(Br)), i), 'f32'), qs);
      work.push(...guarded(key, Bc, ab));
      if (table !== undefined) table.accumulate(work); // every thread: its owned table entries
      work.push({ kind: 'barrier' });
    }
    tb.push({ kind: 'if', cond: logic.mayTrue, then: work, else: [] });
    hb.push(forLoop(logic.qtVar, logic.qtStart, logic.qtEnd, u32(1), tb));
    roleKV.push({ kind: 'comment', text: 'each query head of the KV head\'s group; query tiles outside [qt_start, qt_end) see none of this key tile' });
    roleKV.push(forLoop(logic.ghVar, u32(0), shape.group, u32(1), hb));
    const wb: Stmt[] = [];
    const kk = kb.let(wb, 'kk', add(k0, key));
    const write: Stmt[] = [];
    const kvRow = kb.let(write, 'kv_row', add(kvRow0, kk));
    writeRow(write, dkS, inp.dK, accK, JK, dk, lane, kvRow, scale);
    writeRow(write, dvS, inp.dV, accV, JV, dv, lane, kvRow, 1);
    wb.push({ kind: 'if', cond: lt(kk, S), then: write, else: [] });
    roleKV.push(...guarded(key, Bc, wb));
    table?.finish(roleKV);
  }

  // ---- dQ role: x >= ceil(S / Bc); the forward's tile logic over x - ceil(S / Bc) ----
  const roleQ: Stmt[] = [];
  {
    const fwdSchedule: AttentionSchedule = { tileRows: Br, tileCols: Bc, lanes: L, useSubgroups: false, splits: 1, decodeMaxT: 0 };
    const logic = tileLogic(kb, shape, mask, fwdSchedule, { kind: 'prefill', rows: Br, heads: 1 }, uniformRead, { x: bin('sub', wx, nkt), y: wy, z: wz });
    roleQ.push(...logic.header);
    const { b, h, q0 } = logic;
    const row = kb.let(roleQ, 'row', div(lid, u32(L)));
    const lane = kb.let(roleQ, 'lane', rem(lid, u32(L)));
    const hk = kb.let(roleQ, 'hk', div(h, shape.group));
    const qRow0 = kb.let(roleQ, 'q_row0', mul(add(mul(b, Hq), h), T));
    const kvRow0 = kb.let(roleQ, 'kv_row0', mul(add(mul(b, Hkv), hk), S));
    stageRows(roleQ, q0, qRow0);
    roleQ.push({ kind: 'comment', text: 'block sparsity: key tiles outside [kt_start, kt_end) are fully masked for every row of this tile' });
    roleQ.push(...logic.bounds);
    const accQ = kb.fresh('acc_q');
    roleQ.push({ kind: 'private_array', name: accQ, type: 'f32', length: JK, init: f32(0) });
    const work: Stmt[] = [];
    stageKeys(work, logic.k0, kvRow0);
    {
      const sb: Stmt[] = [];
      const qi = kb.let(sb, 'qi', add(q0, row));
      const i = kb.fresh('i');
      const ib: Stmt[] = [];
      const c = kb.let(ib, 'c', add(lane, mul(v(i, 'u32'), u32(L))));
      const { dS } = scoreGrad(ib, b, h, row, c, qi, add(logic.k0, c), logic.mayFalse);
      ib.push({ kind: 'array_store', array: dst, index: add(mul(row, u32(Bc)), c), value: dS });
      sb.push(forLoop(i, u32(0), u32(Bc / L), u32(1), ib));
      work.push(...guarded(row, Br, sb), { kind: 'barrier' });
    }
    {
      const ab: Stmt[] = [];
      accumulate(ab, accQ, JK, dk, Bc, lane, (i) => arrayLoad(dst, add(mul(row, u32(Bc)), i), 'f32'), ks);
      work.push(...guarded(row, Br, ab), { kind: 'barrier' });
    }
    roleQ.push(forLoop(logic.ktVar, logic.ktStart, logic.ktEnd, u32(1), [...logic.perTile, { kind: 'if', cond: logic.mayTrue, then: work, else: [] }]));
    const wb: Stmt[] = [];
    const qi = kb.let(wb, 'qi', add(q0, row));
    const write: Stmt[] = [];
    writeRow(write, dqS, n, accQ, JK, dk, lane, add(qRow0, qi), scale);
    wb.push({ kind: 'if', cond: lt(qi, T), then: write, else: [] });
    roleQ.push(...guarded(row, Br, wb));
  }
  body.push({ kind: 'comment', text: 'dK/dV role: one workgroup per (key tile, KV head, batch); dQ role: one per (query tile, query head, batch)' });
  body.push({ kind: 'if', cond: lt(wx, nkt), then: [{ kind: 'if', cond: lt(wy, Hkv), then: roleKV, else: [] }], else: roleQ });

  const traffic = attentionBackwardTraffic(g, n, Br, Bc);
  const schedule: KernelSchedule = { kind: 'flash_attention', tileRows: Br, tileCols: Bc, lanes: L, useSubgroups: false, splits: 1, backward: true };
  return {
    op: 'fused_attention_grad',
    workgroupSize: [TH, 1, 1],
    grid: [sAdd(sCeilDiv(dimToSize(shape.S), Bc), sCeilDiv(dimToSize(shape.T), Br)), dimToSize(shape.Hq), dimToSize(shape.B)],
    buffers: kb.buffers,
    shared: kb.shared,
    body,
    schedule,
    traffic,
    bindings: kb.bindings,
  };
}

/**
 * The backward's traffic at tiles Br x Bc (requested bytes; the report credits block sparsity per
 * role). The tensor-core kernel (mma-backward.ts) makes the same requests per role and tile.
 */
export function attentionBackwardTraffic(g: Graph, n: Node, Br: number, Bc: number): Traffic {
  const operand = (i: number): Node => {
    const o = g.nodes[n.operands[i] ?? -1];
    if (o === undefined) throw new Error(`internal: fused_attention_grad lacks operand ${i}`);
    return o;
  };
  const [qN, kN, vN] = [operand(0), operand(1), operand(2)];
  const dlseN = attentionGradExtrasStart(n.attrs) > 6 ? operand(6) : undefined;
  const shape = shapeOf(qN.type, kN.type, vN.type);
  const { dk, dv } = shape;
  const mask = lambdaOf(n, 'mask');
  const scoreL = lambdaOf(n, 'score');
  const dscoreL = lambdaOf(n, 'dscore');
  const layout = tableLayout(g, n);
  //   dK/dV role: K, V once; per (key tile, query head, query tile): Q, dO, and o (for D) rows, LSE (+ dLSE)
  //   dQ role: Q, dO, o, LSE once; K, V per (query tile, query head)
  //   both: the lambdas' reads per score element; written: dQ, dK, dV once
  const e = storageBytes(qN.type.dtype);
  const B_ = dimToSize(shape.B);
  const Hq_ = dimToSize(shape.Hq);
  const Hkv_ = dimToSize(shape.Hkv);
  const T_ = dimToSize(shape.T);
  const S_ = dimToSize(shape.S);
  const rowBytes = e * (dk + 2 * dv + 1 + (dlseN === undefined ? 0 : 1));
  const lambdaBytes = readBytesOf(g, n, mask) + readBytesOf(g, n, scoreL) + readBytesOf(g, n, dscoreL);
  const applies = [scoreL, dscoreL, mask].reduce((a, l) => a + (l === undefined ? 0 : countApplies(l)), 0);
  const perScore = (c: number): SizeExpr => sMul(B_, Hq_, T_, S_, sConst(c));
  // Per score element: the dK/dV role's s, dP, dV, dK (4 dk + 4 dv) and the dQ role's s, dP, dQ
  // (4 dk + 2 dv), each role's exp, P and dS (6), and each role's lambdas.
  const kvTile = {
    bytesRead: sAdd(sMul(B_, Hq_, sCeilDiv(S_, Bc), T_, sConst(rowBytes)), ...(lambdaBytes > 0 ? [perScore(lambdaBytes)] : [])),
    flops: perScore(4 * dk + 4 * dv + 6 + applies),
  };
  const qTile = {
    bytesRead: sAdd(sMul(B_, Hq_, sCeilDiv(T_, Br), S_, sConst(e * (dk + dv))), ...(lambdaBytes > 0 ? [perScore(lambdaBytes)] : [])),
    flops: perScore(4 * dk + 2 * dv + 6 + applies),
  };
  const once = [sMul(B_, Hkv_, S_, sConst(e * (dk + dv))), sMul(B_, Hq_, T_, sConst(rowBytes))];
  const written = sAdd(sMul(B_, Hq_, T_, sConst(e * dk)), sMul(B_, Hkv_, S_, sConst(e * (dk + dv))), ...(layout === undefined ? [] : [sMul(partialRows(shape, Bc), sConst(4 * layout.entries))]));
  return {
    bytesRead: sAdd(...once, kvTile.bytesRead, qTile.bytesRead),
    bytesWritten: written,
    flops: sAdd(kvTile.flops, qTile.flops),
    perTile: { ...qTile, tiles: { rows: Br, heads: 1, cols: Bc } },
    perKvTile: kvTile,
  };
}
