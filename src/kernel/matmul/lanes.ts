// The subgroup-broadcast matmul (MatmulSchedule.laneBroadcast): the schedule a CPU adapter wants.
// On lavapipe a workgroup is one CPU thread and its invocations are SIMD lanes, so a load whose
// address differs per lane is a gather (one scalar load per lane) while arithmetic is one vector
// instruction for all lanes. Speed is multiply-adds per gathered element. Here the workgroup is
// one subgroup of L lanes and owns a tileRows x tileCols output tile:
//   - lane l loads A's rows l, l + L, ... (tileK values along K each, vec4 loads where legal);
//   - `subgroupBroadcast(a, r)` (a lane extract and a splat on a CPU) gives every lane row r's
//     values, so each A element is loaded once, by one lane, and used tileCols times;
//   - lane l loads its own threadCols contiguous columns of B and multiplies every row into them.
// Per K step: (tileRows / L + threadCols) x tileK loads feed tileRows x threadCols x tileK
// multiply-adds per lane (32 x 4 tiles: 32 loads, 512 FMAs). The norm fold (fuse-norm) costs one
// subtract and multiply per loaded A element plus 2 x threadCols multiply-adds per K for
// gamma @ W and beta @ W: each A element is loaded by exactly one lane, so its statistics come
// for free (the staged fold recomputes them per thread column).
import {
  type Expr,
  type ScalarType,
  type Stmt,
  add,
  arrayLoad,
  bin,
  builtin,
  call,
  cast,
  div,
  lit,
  load,
  lt,
  and,
  mul,
  subgroupBroadcast,
  u32,
  v,
} from '../ir/ir.js';
import type { KernelBuilder } from '../ir/builder.js';
import type { MatmulSchedule } from '../schedule/schedule.js';

/** The folded norm (fuse-norm) as the lane kernel reads it: parameter slots and the formula. */
export interface LaneNorm {
  readonly op: 'layernorm' | 'rmsnorm';
  readonly eps: number;
  readonly gammaSlot: number;
  readonly betaSlot?: number;
  /** Parameter storage type and elements per load (the slots are vector slots when 4). */
  readonly type: ScalarType;
  readonly vector: 1 | 4;
}

export interface LaneMatmulInput {
  readonly kb: KernelBuilder;
  readonly schedule: MatmulSchedule;
  /** Subgroup size L: lanes per workgroup. */
  readonly lanes: number;
  readonly aSlot: number;
  readonly bSlot: number;
  readonly aType: ScalarType;
  readonly bType: ScalarType;
  readonly aVector: 1 | 4;
  readonly bVector: 1 | 4;
  readonly M: Expr;
  readonly N: Expr;
  readonly K: Expr;
  /** Element address of A at (row, k) and of B at (k, col), in their buffers. */
  readonly aAddr: (row: Expr, k: Expr) => Expr;
  readonly bAddr: (k: Expr, col: Expr) => Expr;
  /** B's contiguous axis (vector loads run along it): N ('k_by_n') or K ('n_by_k', a transposed weight). */
  readonly bLayout: 'k_by_n' | 'n_by_k';
  readonly norm?: LaneNorm;
  /** The output's flat index at (row, col) and the statements storing `value` there (epilogue included). */
  readonly outIndex: (row: Expr, col: Expr) => Expr;
  readonly store: (index: Expr, value: Expr) => Stmt[];
}

/**
 * Emits the kernel body into `body`; the launch is [L, 1, 1] threads x [ceil(N / tileCols),
 * ceil(M / tileRows), batch] workgroups, x and y swapped with `rowsFirst`.
 */
export function emitLaneMatmul(p: LaneMatmulInput, body: Stmt[]): void {
  const { kb, lanes: L, M, N, K } = p;
  const { tileRows: TM, tileCols: TN, threadCols: RN, tileK: KU } = p.schedule;
  const RB = TM / L;
  const f32 = (e: Expr): Expr => cast('f32', e);
  const fv = (name: string): Expr => v(name, 'f32');
  const lane = builtin('local_index');
  const rowsFirst = p.schedule.rowsFirst === true;
  const row0 = kb.let(body, 'row0', mul(builtin('workgroup_id', rowsFirst ? 0 : 1), u32(TM)));
  const col0 = kb.let(body, 'col0', add(mul(builtin('workgroup_id', rowsFirst ? 1 : 0), u32(TN)), mul(lane, u32(RN))));
  const mLast = kb.let(body, 'm_last', bin('sub', M, u32(1)));
  const nLast = kb.let(body, 'n_last', bin('sub', N, u32(1)));
  // The rows lane l loads (clamped: rows past M are computed from row M - 1 and never stored).
  const loadRow = Array.from({ length: RB }, (_, rb) => kb.let(body, 'a_row', call('min', [add(row0, add(lane, u32(rb * L))), mLast], 'u32')));
  // The lane's columns (clamped likewise); vector loads along N start at a multiple of 4 <= N - 4.
  const colAt = (j: number): Expr => call('min', [add(col0, u32(j)), nLast], 'u32');
  const nVecLast = p.bVector === 4 && p.bLayout === 'k_by_n' ? kb.let(body, 'n_vec_last', bin('sub', N, u32(4))) : undefined;
  const loadCol = Array.from({ length: RN }, (_, j) => (p.bLayout === 'n_by_k' || p.bVector === 1 ? kb.let(body, 'b_col', colAt(j)) : undefined));
  // Whole K steps of tileK (vector loads where the schedule says), then single k with scalar
  // loads when K is not a known multiple of tileK (the schedule then has no vector loads).
  const kConst = K.kind === 'lit' ? K.value : undefined;
  const exact = kConst !== undefined && kConst % KU === 0;
  const kMain = exact || KU === 1 ? K : kb.let(body, 'k_main', bin('sub', K, bin('rem', K, u32(KU))));
  const loopK = (out: Stmt[], step: (k0: Expr, ku: number, vec: boolean) => Stmt[]): void => {
    const k0 = kb.fresh('k0');
    out.push({ kind: 'for', var: k0, start: u32(0), end: kMain, step: u32(KU), body: step(v(k0, 'u32'), KU, true) });
    if (!exact && KU > 1) {
      const kt = kb.fresh('k');
      out.push({ kind: 'for', var: kt, start: kMain, end: K, step: u32(1), body: step(v(kt, 'u32'), 1, false) });
    }
  };
  const acc = kb.fresh('acc');
  body.push({ kind: 'private_array', name: acc, type: 'f32', length: TM * RN, init: lit('f32', 0) });

  const norm = p.norm;
  const isLayer = norm?.op === 'layernorm';
  const stat = (prefix: string, count: number): string[] => Array.from({ length: count }, () => kb.var(body, prefix, 'f32', lit('f32', 0)));
  const sumSq = norm === undefined ? [] : stat('row_sumsq', RB);
  const sumD = isLayer ? stat('row_sum', RB) : [];
  const gammaW = norm === undefined ? [] : stat('gamma_w', RN);
  const betaW = isLayer ? stat('beta_w', RN) : [];
  // layernorm's shift: the row's mean from a first pass over the lane's own rows (x0 + mean of
  // x - x0, x0 its first element), so the sums of the main loop see x - mean: acc1 - mean_d c1
  // then cancels nothing (mean_d ~ rounding), whatever the row's offset. The pass costs one load
  // per A element per workgroup, about RB / (RB + RN) of the main loop's loads and no FMAs.
  // (A first element alone as the shift lost 1.5x precision at mean 100, std 1.)
  const shift: Expr[] = [];
  if (isLayer) {
    const first: Expr[] = [];
    const sums: string[] = [];
    for (let rb = 0; rb < RB; rb++) {
      const [x0] = loadA(p, body, loadRow[rb] ?? u32(0), u32(0), Math.min(p.aVector, 4), 'x0');
      first.push(kb.let(body, 'first', f32(x0 ?? lit('f32', 0))));
      sums.push(kb.var(body, 'pre_sum', 'f32', lit('f32', 0)));
    }
    const prePass = (k0: Expr, ku: number, vec: boolean): Stmt[] => {
      const s: Stmt[] = [];
      for (let rb = 0; rb < RB; rb++) {
        for (const x of loadA(p, s, loadRow[rb] ?? u32(0), k0, vec ? p.aVector : 1, 'p', ku)) {
          s.push({ kind: 'assign', name: sums[rb] ?? '', value: bin('add', fv(sums[rb] ?? ''), bin('sub', f32(x), first[rb] ?? lit('f32', 0))) });
        }
      }
      return s;
    };
    loopK(body, prePass);
    for (let rb = 0; rb < RB; rb++) shift.push(kb.let(body, 'shift', bin('add', first[rb] ?? lit('f32', 0), bin('div', fv(sums[rb] ?? ''), f32(K)))));
  }

  /** Loads, statistics and multiply-adds of `ku` consecutive k from `k0` (vector loads when `vec`). */
  const kStep = (k0: Expr, ku: number, vec: boolean): Stmt[] => {
    const s: Stmt[] = [];
    const aw = vec ? p.aVector : 1;
    const bw = vec ? p.bVector : 1;
    // Norm parameters for these k (the same address on every lane).
    const g = norm === undefined ? [] : loadParam(p, s, norm.gammaSlot, norm.type, k0, ku, vec ? norm.vector : 1, 'g');
    const be = norm?.betaSlot === undefined ? [] : loadParam(p, s, norm.betaSlot, norm.type, k0, ku, vec ? norm.vector : 1, 'beta');
    // A: a[rb][kk], scaled by gamma (and shifted) for the norm; statistics per loaded element.
    const a: Expr[][] = [];
    for (let rb = 0; rb < RB; rb++) {
      const raw = loadA(p, s, loadRow[rb] ?? u32(0), k0, aw, 'a', ku).map(f32);
      a.push(
        raw.map((x, kk) => {
          if (norm === undefined) return x;
          const d = isLayer ? kb.let(s, 'd', bin('sub', x, shift[rb] ?? lit('f32', 0))) : x;
          if (isLayer) s.push({ kind: 'assign', name: sumD[rb] ?? '', value: bin('add', fv(sumD[rb] ?? ''), d) });
          s.push({ kind: 'assign', name: sumSq[rb] ?? '', value: bin('add', fv(sumSq[rb] ?? ''), bin('mul', d, d)) });
          return kb.let(s, 'dg', bin('mul', d, g[kk] ?? lit('f32', 1)));
        }),
      );
    }
    // B: b[kk][j] for the lane's columns.
    const b: Expr[][] = Array.from({ length: ku }, () => new Array<Expr>(RN));
    if (p.bLayout === 'k_by_n') {
      for (let kk = 0; kk < ku; kk++) {
        for (let j = 0; j < RN; j += bw) {
          const k = add(k0, u32(kk));
          if (bw === 4) {
            const c = call('min', [add(col0, u32(j)), nVecLast ?? u32(0)], 'u32');
            loadVec(p, s, p.bSlot, p.bType, div(p.bAddr(k, c), u32(4)), 'b').forEach((x, e) => ((b[kk] ?? [])[j + e] = f32(x)));
          } else (b[kk] ?? [])[j] = kb.let(s, 'b', f32(load(p.bSlot, p.bAddr(k, loadCol[j] ?? u32(0)), p.bType)));
        }
      }
    } else {
      for (let j = 0; j < RN; j++) {
        for (let kk = 0; kk < ku; kk += bw) {
          const k = add(k0, u32(kk));
          if (bw === 4) loadVec(p, s, p.bSlot, p.bType, div(p.bAddr(k, loadCol[j] ?? u32(0)), u32(4)), 'b').forEach((x, e) => ((b[kk + e] ?? [])[j] = f32(x)));
          else (b[kk] ?? [])[j] = kb.let(s, 'b', f32(load(p.bSlot, p.bAddr(k, loadCol[j] ?? u32(0)), p.bType)));
        }
      }
    }
    if (norm !== undefined) {
      for (let kk = 0; kk < ku; kk++) {
        for (let j = 0; j < RN; j++) {
          const bkj = (b[kk] ?? [])[j] ?? lit('f32', 0);
          s.push({ kind: 'assign', name: gammaW[j] ?? '', value: bin('add', fv(gammaW[j] ?? ''), bin('mul', g[kk] ?? lit('f32', 1), bkj)) });
          if (isLayer) s.push({ kind: 'assign', name: betaW[j] ?? '', value: bin('add', fv(betaW[j] ?? ''), bin('mul', be[kk] ?? lit('f32', 0), bkj)) });
        }
      }
    }
    // Row r of the tile comes from lane r % L's block r / L.
    for (let rb = 0; rb < RB; rb++) {
      for (let r = 0; r < L; r++) {
        for (let kk = 0; kk < ku; kk++) {
          const x = kb.let(s, 'x', subgroupBroadcast((a[rb] ?? [])[kk] ?? lit('f32', 0), r));
          for (let j = 0; j < RN; j++) {
            const at = u32((rb * L + r) * RN + j);
            s.push({ kind: 'array_store', array: acc, index: at, value: bin('add', arrayLoad(acc, at, 'f32'), bin('mul', x, (b[kk] ?? [])[j] ?? lit('f32', 0))) });
          }
        }
      }
    }
    return s;
  };

  loopK(body, kStep);

  // Per-row normalization (statistics broadcast from the lane that loaded the row), then the stores.
  const rowScale = norm === undefined ? undefined : kb.fresh('row_rstd');
  const rowMean = isLayer ? kb.fresh('row_mean_d') : undefined;
  if (norm !== undefined && rowScale !== undefined) {
    body.push({ kind: 'private_array', name: rowScale, type: 'f32', length: TM, init: lit('f32', 0) });
    if (rowMean !== undefined) body.push({ kind: 'private_array', name: rowMean, type: 'f32', length: TM, init: lit('f32', 0) });
    const count = kb.let(body, 'count', f32(K));
    for (let rb = 0; rb < RB; rb++) {
      for (let r = 0; r < L; r++) {
        const at = u32(rb * L + r);
        const msq = kb.let(body, 'msq', bin('div', subgroupBroadcast(fv(sumSq[rb] ?? ''), r), count));
        let variance = msq;
        if (rowMean !== undefined) {
          const md = kb.let(body, 'mean_d', bin('div', subgroupBroadcast(fv(sumD[rb] ?? ''), r), count));
          body.push({ kind: 'array_store', array: rowMean, index: at, value: md });
          variance = kb.let(body, 'variance', call('max', [bin('sub', msq, bin('mul', md, md)), lit('f32', 0)], 'f32'));
        }
        body.push({ kind: 'array_store', array: rowScale, index: at, value: call('rsqrt', [bin('add', variance, lit('f32', norm.eps))], 'f32') });
      }
    }
  }
  // The stores loop over rows (one epilogue copy per column, not per accumulator), which indexes
  // an array at run time: copy the accumulators out first with constant indices, so `acc` itself
  // is only ever indexed by constants and the compiler keeps it in registers (and spill slots)
  // instead of a memory array touched by every multiply-add (1.5-2x on lavapipe).
  const res = kb.fresh('res');
  body.push({ kind: 'private_array', name: res, type: 'f32', length: TM * RN, init: lit('f32', 0) });
  for (let e = 0; e < TM * RN; e++) body.push({ kind: 'array_store', array: res, index: u32(e), value: arrayLoad(acc, u32(e), 'f32') });
  const i = kb.fresh('i');
  const iv = v(i, 'u32');
  const rows: Stmt[] = [];
  const orow = kb.let(rows, 'orow', add(row0, iv));
  for (let j = 0; j < RN; j++) {
    const ocol = add(col0, u32(j));
    const then: Stmt[] = [];
    let value: Expr = arrayLoad(res, add(mul(iv, u32(RN)), u32(j)), 'f32');
    if (rowScale !== undefined) {
      // layernorm: y @ W = rstd (acc1 - (mean - x0) gamma@W) + beta@W; rmsnorm: rstd acc.
      const centered = rowMean === undefined ? value : bin('sub', value, bin('mul', arrayLoad(rowMean, iv, 'f32'), fv(gammaW[j] ?? '')));
      value = bin('mul', arrayLoad(rowScale, iv, 'f32'), centered);
      if (isLayer) value = bin('add', value, fv(betaW[j] ?? ''));
    }
    const y = kb.let(then, 'y', value);
    then.push(...p.store(p.outIndex(orow, ocol), y));
    rows.push({ kind: 'if', cond: and(lt(orow, M), lt(ocol, N)), then, else: [] });
  }
  body.push({ kind: 'for', var: i, start: u32(0), end: u32(TM), step: u32(1), body: rows });
}

/** `count` elements along K of A's row from k0 (vector loads of `width`), as expressions in storage type. */
function loadA(p: LaneMatmulInput, out: Stmt[], row: Expr, k0: Expr, width: number, prefix: string, count = 1): Expr[] {
  const xs: Expr[] = [];
  if (width === 4) {
    const vecs = Math.max(1, count / 4);
    for (let q = 0; q < vecs; q++) xs.push(...loadVec(p, out, p.aSlot, p.aType, div(p.aAddr(row, add(k0, u32(4 * q))), u32(4)), prefix));
    return xs.slice(0, Math.max(count, 1));
  }
  for (let kk = 0; kk < count; kk++) xs.push(p.kb.let(out, prefix, load(p.aSlot, p.aAddr(row, add(k0, u32(kk))), p.aType)));
  return xs;
}

/** Four lets bound by one vector load of `slot` at vector index `index`. */
function loadVec(p: LaneMatmulInput, out: Stmt[], slot: number, type: ScalarType, index: Expr, prefix: string): Expr[] {
  const names = [0, 1, 2, 3].map(() => p.kb.fresh(prefix));
  out.push({ kind: 'load_vec', names, slot, index, type });
  return names.map((n) => v(n, type));
}

/** gamma/beta at k0..k0 + count - 1 as f32 (vector loads of 4 when `width` is 4). */
function loadParam(p: LaneMatmulInput, out: Stmt[], slot: number, type: ScalarType, k0: Expr, count: number, width: 1 | 4, prefix: string): Expr[] {
  const xs: Expr[] = [];
  if (width === 4) {
    for (let q = 0; q < count; q += 4) xs.push(...loadVec(p, out, slot, type, div(add(k0, u32(q)), u32(4)), prefix).map((x) => cast('f32', x)));
    return xs;
  }
  for (let kk = 0; kk < count; kk++) xs.push(p.kb.let(out, prefix, cast('f32', load(slot, add(k0, u32(kk)), type))));
  return xs;
}
