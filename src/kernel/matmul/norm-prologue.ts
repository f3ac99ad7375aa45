// The norm fold of a tiled fused_matmul (fuse-norm) in ONE pass over A: the K loop stages raw A
// tiles as a plain matmul does; each thread accumulates, for its RM rows, the row statistics
// from the A tile in workgroup memory and acc1 = (x - x0)∘gamma @ W, and for its RN columns
// c1 = gamma @ W (and c2 = beta @ W) from the W tile; the normalization is applied at the store:
//   layernorm: y@W = rstd·(acc1 - (mean - x0)·c1) + c2        rmsnorm: y@W = rstd·acc1 (x0 = 0)
// Gamma/beta are staged once per K tile (TK floats): the traffic is the plain matmul's plus K
// parameter floats per workgroup. No extra global reads of A, no separate statistics pass.
import type { Graph, Node } from '../../graph/ir.js';
import { type Expr, type Stmt, add, arrayLoad, bin, builtin, call, cast, load, lit, lt, mul, select, u32, v } from '../ir/ir.js';
import type { SizeExpr } from '../plan/plan.js';
import { storageBytes, storageType } from '../ir/storage.js';
import { sConst, sMul } from '../plan/to-size.js';

interface FoldBuilder {
  input(role: string, value: number, dtype: Node['type']['dtype']): number;
  sharedArray(prefix: string, type: 'f32', length: number): string;
  fresh(prefix: string): string;
  let(out: Stmt[], prefix: string, init: Expr): Expr;
}

export interface NormFoldInput {
  readonly kb: FoldBuilder;
  /** Kernel body before the K loop: the per-thread accumulators are declared here. */
  readonly body: Stmt[];
  readonly g: Graph;
  readonly n: Node;
  readonly norm: { readonly op: 'layernorm' | 'rmsnorm'; readonly params: number; readonly eps: number };
  /** The K-loop counter (start of the current K tile) and K. */
  readonly k0: Expr;
  readonly K: Expr;
  readonly tile: { readonly TM: number; readonly TN: number; readonly TK: number; readonly RM: number; readonly RN: number; readonly thx: number; readonly thy: number };
  readonly aTile: string;
  readonly bTile: string;
  readonly acc: string;
}

export interface NormFold {
  /** Statements staging gamma (and beta) for the current K tile; run before the tile barrier. */
  readonly stage: readonly Stmt[];
  /** Replaces the plain matmul's kk loop (after the tile barrier). */
  readonly inner: readonly Stmt[];
  /** The normalized product for the thread's output (i, j), lets appended to `out`. */
  finish(out: Stmt[], i: Expr, j: Expr): Expr;
  /** Bytes the fold adds to the matmul's reads: gamma (and beta) once per K tile per workgroup. */
  paramBytes(workgroups: SizeExpr, K: SizeExpr): SizeExpr;
}

/**
 * Precision (why the shift): with x0 = the row's first element, every accumulated term is
 * d_k = x_k - x0, so the f32 rounding of acc1 and of the statistics scales with the row's spread
 * max|x_k - x0| (a few std for activations), not with |mean|: the correction (mean - x0)·c1 is
 * at most spread·|c1|, and it cancels against acc1 only as much as the unfused layernorm's
 * (x - mean) does. Without the shift, acc1 - mean·c1 loses log2(|mean|/std) bits (a row offset
 * by +100 with std 1 loses ~7 of f32's 24). Likewise var = E[d²] - E[d]² cancels only by
 * (mean - x0)²/var, as in the plain layernorm kernel. rmsnorm needs no shift (no mean).
 */
export function normFold(p: NormFoldInput): NormFold {
  const { kb, n, norm, k0, K, aTile, bTile, acc } = p;
  const { TN, TK, RM, RN, thx, thy } = p.tile;
  const isLayer = norm.op === 'layernorm';
  const param = (i: number): Node => {
    const node = p.g.nodes[n.operands[n.operands.length - norm.params + i] ?? -1];
    if (node === undefined) throw new Error('internal: fused_matmul lacks its norm parameters');
    return node;
  };
  const gamma = param(0);
  const beta = isLayer ? param(1) : undefined;
  const gSlot = kb.input('gamma', gamma.id, gamma.type.dtype);
  const bSlot = beta === undefined ? -1 : kb.input('beta', beta.id, beta.type.dtype);
  const gTile = kb.sharedArray('gamma_tile', 'f32', TK);
  const beTile = beta === undefined ? undefined : kb.sharedArray('beta_tile', 'f32', TK);
  const priv = (prefix: string, length: number): string => {
    const name = kb.fresh(prefix);
    p.body.push({ kind: 'private_array', name, type: 'f32', length, init: lit('f32', 0) });
    return name;
  };
  p.body.push({ kind: 'comment', text: `${norm.op} folded into the K loop: row statistics from the A tiles, gamma${isLayer ? '/beta' : ''} @ W from the W tiles` });
  const shift = isLayer ? priv('row_shift', RM) : undefined;
  const s1 = isLayer ? priv('row_sum', RM) : undefined;
  const s2 = priv('row_sumsq', RM);
  const c1 = priv('gamma_w', RN);
  const c2 = beTile === undefined ? undefined : priv('beta_w', RN);
  const bv = priv('b_val', RN);
  const tid = builtin('local_index');
  const tx = builtin('local_id', 0);
  const ty = builtin('local_id', 1);
  // Stage gamma (beta) for this K tile: TK floats, zero past K (so padded columns add nothing).
  const stage: Stmt[] = [];
  const stageParam = (tile: string, slot: number, node: Node): void => {
    const e = kb.fresh('e');
    const ev = v(e, 'u32');
    const lb: Stmt[] = [];
    const gk = kb.let(lb, 'gk', add(k0, ev));
    const t = kb.fresh('t');
    lb.push({ kind: 'var', name: t, type: 'f32', init: lit('f32', 0) });
    lb.push({ kind: 'if', cond: lt(gk, K), then: [{ kind: 'assign', name: t, value: cast('f32', load(slot, gk, storageType(node.type.dtype))) }], else: [] });
    lb.push({ kind: 'array_store', array: tile, index: ev, value: v(t, 'f32') });
    stage.push({ kind: 'for', var: e, start: tid, end: u32(TK), step: u32(thx * thy), body: lb });
  };
  stageParam(gTile, gSlot, gamma);
  if (beta !== undefined && beTile !== undefined) stageParam(beTile, bSlot, beta);

  const inner: Stmt[] = [];
  const rowOf = (i: Expr): Expr => add(ty, mul(i, u32(thy)));
  if (shift !== undefined) {
    // The shift x0 = the mean of the row's first K tile (already in workgroup memory; padded
    // columns hold 0, so the sum is over min(TK, K) elements): within ~std/sqrt(TK) of the mean.
    const i = kb.fresh('i');
    const iv = v(i, 'u32');
    const c = kb.fresh('c');
    const cv = v(c, 'u32');
    const ib: Stmt[] = [];
    const sum = kb.fresh('first_sum');
    ib.push({ kind: 'var', name: sum, type: 'f32', init: lit('f32', 0) });
    ib.push({ kind: 'for', var: c, start: u32(0), end: u32(TK), step: u32(1), body: [{ kind: 'assign', name: sum, value: bin('add', v(sum, 'f32'), arrayLoad(aTile, add(mul(rowOf(iv), u32(TK)), cv), 'f32')) }] });
    const width = cast('f32', call('min', [K, u32(TK)], 'u32'));
    ib.push({ kind: 'array_store', array: shift, index: iv, value: bin('div', v(sum, 'f32'), width) });
    inner.push({ kind: 'if', cond: bin('eq', k0, u32(0)), then: [{ kind: 'for', var: i, start: u32(0), end: u32(RM), step: u32(1), body: ib }], else: [] });
  }
  const kk = kb.fresh('kk');
  const kkv = v(kk, 'u32');
  const kb0: Stmt[] = [];
  const gk = kb.let(kb0, 'g_k', arrayLoad(gTile, kkv, 'f32'));
  const bk = beTile === undefined ? undefined : kb.let(kb0, 'beta_k', arrayLoad(beTile, kkv, 'f32'));
  // Padded columns (k >= K) hold 0 in A; shifted they would be -x0: mask them unless K is a
  // compile-time multiple of TK.
  const needsMask = isLayer && !(K.kind === 'lit' && K.value % TK === 0);
  const inK = needsMask ? kb.let(kb0, 'in_k', lt(add(k0, kkv), K)) : undefined;
  const j = kb.fresh('jj');
  const jv = v(j, 'u32');
  const colLoop: Stmt[] = [];
  const b = kb.let(colLoop, 'b', arrayLoad(bTile, add(mul(kkv, u32(TN)), add(tx, mul(jv, u32(thx)))), 'f32'));
  colLoop.push({ kind: 'array_store', array: bv, index: jv, value: b });
  colLoop.push({ kind: 'array_store', array: c1, index: jv, value: bin('add', arrayLoad(c1, jv, 'f32'), bin('mul', gk, b)) });
  if (c2 !== undefined && bk !== undefined) colLoop.push({ kind: 'array_store', array: c2, index: jv, value: bin('add', arrayLoad(c2, jv, 'f32'), bin('mul', bk, b)) });
  kb0.push({ kind: 'for', var: j, start: u32(0), end: u32(RN), step: u32(1), body: colLoop });
  const i = kb.fresh('i');
  const iv = v(i, 'u32');
  const rowLoop: Stmt[] = [];
  const xa = kb.let(rowLoop, 'x', arrayLoad(aTile, add(mul(rowOf(iv), u32(TK)), kkv), 'f32'));
  let d = xa;
  if (shift !== undefined) {
    d = kb.let(rowLoop, 'd', bin('sub', xa, arrayLoad(shift, iv, 'f32')));
    if (inK !== undefined) d = kb.let(rowLoop, 'dm', select(inK, d, lit('f32', 0)));
  }
  if (s1 !== undefined) rowLoop.push({ kind: 'array_store', array: s1, index: iv, value: bin('add', arrayLoad(s1, iv, 'f32'), d) });
  rowLoop.push({ kind: 'array_store', array: s2, index: iv, value: bin('add', arrayLoad(s2, iv, 'f32'), bin('mul', d, d)) });
  const av = kb.let(rowLoop, 'a_val', bin('mul', d, gk));
  const j2 = kb.fresh('jj');
  const j2v = v(j2, 'u32');
  const accIdx = add(mul(iv, u32(RN)), j2v);
  rowLoop.push({
    kind: 'for',
    var: j2,
    start: u32(0),
    end: u32(RN),
    step: u32(1),
    body: [{ kind: 'array_store', array: acc, index: accIdx, value: bin('add', arrayLoad(acc, accIdx, 'f32'), bin('mul', av, arrayLoad(bv, j2v, 'f32'))) }],
  });
  kb0.push({ kind: 'for', var: i, start: u32(0), end: u32(RM), step: u32(1), body: rowLoop });
  inner.push({ kind: 'for', var: kk, start: u32(0), end: u32(TK), step: u32(1), body: kb0 });

  return {
    stage,
    inner,
    finish: (out, ii, jj) => {
      const count = kb.let(out, 'count', cast('f32', K));
      const accv = arrayLoad(acc, add(mul(ii, u32(RN)), jj), 'f32');
      const sq = kb.let(out, 'msq', bin('div', arrayLoad(s2, ii, 'f32'), count));
      if (s1 === undefined) {
        const rstd = kb.let(out, 'rstd', call('rsqrt', [bin('add', sq, lit('f32', norm.eps))], 'f32'));
        return bin('mul', rstd, accv);
      }
      // mean - x0 and the variance from the shifted sums.
      const md = kb.let(out, 'mean_d', bin('div', arrayLoad(s1, ii, 'f32'), count));
      const variance = kb.let(out, 'variance', call('max', [bin('sub', sq, bin('mul', md, md)), lit('f32', 0)], 'f32'));
      const rstd = kb.let(out, 'rstd', call('rsqrt', [bin('add', variance, lit('f32', norm.eps))], 'f32'));
      const centered = bin('sub', accv, bin('mul', md, arrayLoad(c1, jj, 'f32')));
      const y = bin('mul', rstd, centered);
      return c2 === undefined ? y : bin('add', y, arrayLoad(c2, jj, 'f32'));
    },
    paramBytes: (workgroups, Ks) => sMul(workgroups, Ks, sConst(storageBytes(gamma.type.dtype) + (beta === undefined ? 0 : storageBytes(beta.type.dtype)))),
  };
}
