// The decode-shaped matmul (MatmulSchedule.kLanes): few rows (a token per sequence), so every
// weight element is used by at most tileRows multiply-adds and the kernel is bound by reading the
// weight once. The workgroup is one subgroup of L lanes owning tileRows rows x tileCols columns;
// the lanes split K instead of the outputs: lane l reads k = k0 + l * tileK ... (vec4 loads of
// A along K, and of the weight along N or, transposed, along K), accumulates its partial sums for
// all the tile's outputs, and one subgroupAdd per output combines the lanes at the end. Each
// weight element is loaded exactly once per row tile, by one lane, with no lane idle: what the
// lane-broadcast kernel cannot do for M = 1 (it would compute 2L - 1 clamped copies of the row).
// A folded norm is applied on load: a first pass over the tile's rows (tiny: tileRows x K) gives
// each row's mean and rstd, then every loaded A element is normalized before the multiply-adds.
import {
  type Expr,
  type ScalarType,
  type Stmt,
  add,
  and,
  arrayLoad,
  bin,
  builtin,
  call,
  cast,
  div,
  lit,
  load,
  lt,
  mul,
  select,
  subgroup,
  u32,
  v,
} from '../ir/ir.js';
import type { KernelBuilder } from '../ir/builder.js';
import type { MatmulSchedule } from '../schedule/schedule.js';
import type { LaneNorm } from './lanes.js';

export interface GemvInput {
  readonly kb: KernelBuilder;
  readonly schedule: MatmulSchedule;
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
  readonly aAddr: (row: Expr, k: Expr) => Expr;
  readonly bAddr: (k: Expr, col: Expr) => Expr;
  readonly bLayout: 'k_by_n' | 'n_by_k';
  readonly norm?: LaneNorm;
  readonly outIndex: (row: Expr, col: Expr) => Expr;
  readonly store: (index: Expr, value: Expr) => Stmt[];
  /**
   * A paired epilogue (MatmulSchedule.pairFold 'inline'): N is the result's width and the weight
   * has 2N columns; the tile's first tileCols / 2 columns are result columns col0 + j of the first
   * half, the rest the same columns of the second (N + col0 + j), so each lane holds both.
   */
  readonly pairStore?: (index: Expr, acc: Expr, accPair: Expr) => Stmt[];
}

/** The kernel body; launch [L, 1, 1] threads x [ceil(N / tileCols), ceil(M / tileRows), batch]. */
export function emitGemv(p: GemvInput, body: Stmt[]): void {
  const { kb, lanes: L, M, N, K } = p;
  const { tileRows: TM, tileCols: TN, tileK: KU } = p.schedule;
  const f32 = (e: Expr): Expr => cast('f32', e);
  const fv = (name: string): Expr => v(name, 'f32');
  const lane = builtin('local_index');
  const pair = p.pairStore;
  const half = TN / 2; // paired: result columns per workgroup
  if (pair !== undefined && (TN % 2 !== 0 || (p.bLayout === 'k_by_n' && p.bVector === 4))) throw new Error('internal: a paired GEMV needs an even tileCols and per-column weight loads');
  const row0 = kb.let(body, 'row0', mul(builtin('workgroup_id', 1), u32(TM)));
  const col0 = kb.let(body, 'col0', mul(builtin('workgroup_id', 0), u32(pair === undefined ? TN : half)));
  const mLast = kb.let(body, 'm_last', bin('sub', M, u32(1)));
  const nLast = kb.let(body, 'n_last', bin('sub', N, u32(1)));
  const rows = Array.from({ length: TM }, (_, r) => kb.let(body, 'a_row', call('min', [add(row0, u32(r)), mLast], 'u32')));
  // Paired: tile column j < half is result column col0 + j of the first half, j >= half the same column of the second (N + ...).
  const colOf = (j: number): Expr =>
    pair === undefined ? call('min', [add(col0, u32(j)), nLast], 'u32') : j < half ? call('min', [add(col0, u32(j)), nLast], 'u32') : add(N, call('min', [add(col0, u32(j - half)), nLast], 'u32'));
  const cols = Array.from({ length: TN }, (_, j) => (p.bLayout === 'n_by_k' || p.bVector === 1 ? kb.let(body, 'b_col', colOf(j)) : undefined));
  const nVecLast = p.bVector === 4 && p.bLayout === 'k_by_n' ? kb.let(body, 'n_vec_last', bin('sub', N, u32(4))) : undefined;
  // A subgroup step covers L * tileK consecutive k; the last step's lanes past K clamp their
  // loads and contribute zeros. Whole steps only when K is a known multiple of L * tileK.
  const step = L * KU;
  const kConst = K.kind === 'lit' ? K.value : undefined;
  const exact = kConst !== undefined && kConst % step === 0;
  const kMax = exact ? undefined : kb.let(body, 'k_max', bin('sub', K, u32(KU)));

  /** `ku` values along K of row `row` from `k` (clamped when not exact), as f32, zero past K. */
  const loadRow = (out: Stmt[], row: Expr, k: Expr, inK: Expr | undefined, prefix: string): Expr[] => {
    const kk0 = kMax === undefined ? k : kb.let(out, 'kc', call('min', [k, kMax], 'u32'));
    const raw = p.aVector === 4 ? loadVec(kb, out, p.aSlot, p.aType, div(p.aAddr(row, kk0), u32(4)), prefix) : Array.from({ length: KU }, (_, e) => kb.let(out, prefix, load(p.aSlot, p.aAddr(row, add(kk0, u32(e))), p.aType)));
    return raw.map((x) => (inK === undefined ? f32(x) : kb.let(out, prefix, select(inK, f32(x), lit('f32', 0)))));
  };
  const kLoop = (out: Stmt[], f: (s: Stmt[], k: Expr, inK: Expr | undefined) => void): void => {
    const k0 = kb.fresh('k0');
    const s: Stmt[] = [];
    const k = kb.let(s, 'k', add(v(k0, 'u32'), mul(lane, u32(KU))));
    // Non-exact K: with whole vectors (K % tileK == 0, checked) a lane's run is all in or all out.
    const inK = exact ? undefined : kb.let(s, 'in_k', lt(k, K));
    f(s, k, inK);
    out.push({ kind: 'for', var: k0, start: u32(0), end: K, step: u32(step), body: s });
  };

  // The folded norm: per row mean and rstd from two passes over the row (lanes split K, then
  // subgroupAdd), then normalized A on load: ((x - mean) rstd) gamma (+ beta).
  const norm = p.norm;
  const shift: Expr[] = [];
  const mean: Expr[] = []; // layernorm: mean(x - shift), not the mean itself
  const rstd: Expr[] = [];
  if (norm !== undefined) {
    const isLayer = norm.op === 'layernorm';
    const count = kb.let(body, 'count', f32(K));
    if (isLayer) {
      // Centered on x0, the row's first element: x - x0 is exact in f32 for x near x0 (Sterbenz)
      // and mean_d = mean(x - x0) is small, so (x - x0) - mean_d rounds at the row's spread, not
      // at |mean|. Forming mean = x0 + mean_d in f32 rounds it by ulp(|mean|) / 2, an error common
      // to every element (5e-4 relative in the outputs at mean 100, std 0.5; summing x itself 1.5e-3).
      rows.forEach((row) => shift.push(kb.let(body, 'x0', loadRow(body, row, u32(0), undefined, 'x0')[0] ?? lit('f32', 0))));
      const sums = Array.from({ length: TM }, () => kb.var(body, 'row_sum', 'f32', lit('f32', 0)));
      kLoop(body, (s, k, inK) => {
        rows.forEach((row, r) => {
          for (const x of loadRow(s, row, k, inK, 'p')) {
            const d = bin('sub', x, shift[r] ?? lit('f32', 0));
            s.push({ kind: 'assign', name: sums[r] ?? '', value: bin('add', fv(sums[r] ?? ''), inK === undefined ? d : select(inK, d, lit('f32', 0))) });
          }
        });
      });
      sums.forEach((sum) => mean.push(kb.let(body, 'mean_d', bin('div', subgroup('sum', fv(sum)), count))));
    }
    const sq = Array.from({ length: TM }, () => kb.var(body, 'row_sq', 'f32', lit('f32', 0)));
    kLoop(body, (s, k, inK) => {
      rows.forEach((row, r) => {
        for (const x of loadRow(s, row, k, inK, 'q')) {
          // Centered on the exact mean: no cancellation whatever the row's offset (zeros past K
          // would add mean^2 each, so they are masked again after centering).
          let d = isLayer ? bin('sub', bin('sub', x, shift[r] ?? lit('f32', 0)), mean[r] ?? lit('f32', 0)) : x;
          if (isLayer && inK !== undefined) d = select(inK, d, lit('f32', 0));
          const dv = kb.let(s, 'd', d);
          s.push({ kind: 'assign', name: sq[r] ?? '', value: bin('add', fv(sq[r] ?? ''), bin('mul', dv, dv)) });
        }
      });
    });
    sq.forEach((x) => rstd.push(kb.let(body, 'rstd', call('rsqrt', [bin('add', bin('div', subgroup('sum', fv(x)), count), lit('f32', norm.eps))], 'f32'))));
  }

  const acc = kb.fresh('acc');
  body.push({ kind: 'private_array', name: acc, type: 'f32', length: TM * TN, init: lit('f32', 0) });
  kLoop(body, (s, k, inK) => {
    const kc = kMax === undefined ? k : kb.let(s, 'kb', call('min', [k, kMax], 'u32'));
    const g = norm === undefined ? [] : loadParam(kb, s, norm.gammaSlot, norm.type, kc, KU, norm.vector, 'g');
    const be = norm?.betaSlot === undefined ? [] : loadParam(kb, s, norm.betaSlot, norm.type, kc, KU, norm.vector, 'beta');
    const a = rows.map((row, r) =>
      loadRow(s, row, k, inK, 'a').map((x, e) => {
        if (norm === undefined) return x;
        const centered = mean.length > 0 ? bin('sub', bin('sub', x, shift[r] ?? lit('f32', 0)), mean[r] ?? lit('f32', 0)) : x;
        let y = bin('mul', bin('mul', centered, rstd[r] ?? lit('f32', 1)), g[e] ?? lit('f32', 1));
        if (be.length > 0) y = bin('add', y, be[e] ?? lit('f32', 0));
        // Past K the normalized value is beta, not zero: mask it.
        return kb.let(s, 'an', inK === undefined ? y : select(inK, y, lit('f32', 0)));
      }),
    );
    // The weight: b[e][j] for k + e, the tile's columns (its loads are where the bandwidth goes).
    const b: Expr[][] = Array.from({ length: KU }, () => new Array<Expr>(TN));
    if (p.bLayout === 'k_by_n') {
      for (let e = 0; e < KU; e++) {
        for (let j = 0; j < TN; j += p.bVector) {
          const kr = add(kc, u32(e));
          if (p.bVector === 4) loadVec(kb, s, p.bSlot, p.bType, div(p.bAddr(kr, call('min', [add(col0, u32(j)), nVecLast ?? u32(0)], 'u32')), u32(4)), 'b').forEach((x, c) => ((b[e] ?? [])[j + c] = f32(x)));
          else (b[e] ?? [])[j] = kb.let(s, 'b', f32(load(p.bSlot, p.bAddr(kr, cols[j] ?? u32(0)), p.bType)));
        }
      }
    } else {
      for (let j = 0; j < TN; j++) {
        for (let e = 0; e < KU; e += p.bVector) {
          if (p.bVector === 4) loadVec(kb, s, p.bSlot, p.bType, div(p.bAddr(add(kc, u32(e)), cols[j] ?? u32(0)), u32(4)), 'b').forEach((x, c) => ((b[e + c] ?? [])[j] = f32(x)));
          else (b[e] ?? [])[j] = kb.let(s, 'b', f32(load(p.bSlot, p.bAddr(add(kc, u32(e)), cols[j] ?? u32(0)), p.bType)));
        }
      }
    }
    for (let r = 0; r < TM; r++) {
      for (let e = 0; e < KU; e++) {
        const x = (a[r] ?? [])[e] ?? lit('f32', 0);
        for (let j = 0; j < TN; j++) {
          const at = u32(r * TN + j);
          s.push({ kind: 'array_store', array: acc, index: at, value: bin('add', arrayLoad(acc, at, 'f32'), bin('mul', x, (b[e] ?? [])[j] ?? lit('f32', 0))) });
        }
      }
    }
  });

  // Combine the lanes' partial sums (every lane gets each total), then lane l stores columns
  // l, l + L, ... through the epilogue: a loop indexing `res` at run time, `acc` stays constant-indexed.
  const res = kb.fresh('res');
  body.push({ kind: 'private_array', name: res, type: 'f32', length: TM * TN, init: lit('f32', 0) });
  for (let e = 0; e < TM * TN; e++) body.push({ kind: 'array_store', array: res, index: u32(e), value: subgroup('sum', arrayLoad(acc, u32(e), 'f32')) });
  const r = kb.fresh('i');
  const jj = kb.fresh('jj');
  const rv = v(r, 'u32');
  const inner: Stmt[] = [];
  const width = pair === undefined ? TN : half; // result columns of the tile
  const j = kb.let(inner, 'j', add(mul(v(jj, 'u32'), u32(L)), lane));
  const orow = kb.let(inner, 'orow', add(row0, rv));
  const ocol = kb.let(inner, 'ocol', add(col0, j));
  const then: Stmt[] = [];
  const y = kb.let(then, 'y', arrayLoad(res, add(mul(rv, u32(TN)), j), 'f32'));
  if (pair === undefined) then.push(...p.store(p.outIndex(orow, ocol), y));
  else then.push(...pair(p.outIndex(orow, ocol), y, kb.let(then, 'y_pair', arrayLoad(res, add(mul(rv, u32(TN)), add(j, u32(half))), 'f32'))));
  inner.push({ kind: 'if', cond: and(and(lt(j, u32(width)), lt(orow, M)), lt(ocol, N)), then, else: [] });
  body.push({
    kind: 'for',
    var: r,
    start: u32(0),
    end: u32(TM),
    step: u32(1),
    body: [{ kind: 'for', var: jj, start: u32(0), end: u32(Math.ceil(width / L)), step: u32(1), body: inner }],
  });
}

function loadVec(kb: KernelBuilder, out: Stmt[], slot: number, type: ScalarType, index: Expr, prefix: string): Expr[] {
  const names = [0, 1, 2, 3].map(() => kb.fresh(prefix));
  out.push({ kind: 'load_vec', names, slot, index, type });
  return names.map((n) => v(n, type));
}

function loadParam(kb: KernelBuilder, out: Stmt[], slot: number, type: ScalarType, k: Expr, count: number, width: 1 | 4, prefix: string): Expr[] {
  if (width === 4) {
    const xs: Expr[] = [];
    for (let q = 0; q < count; q += 4) xs.push(...loadVec(kb, out, slot, type, div(add(k, u32(q)), u32(4)), prefix).map((x) => cast('f32', x)));
    return xs;
  }
  return Array.from({ length: count }, (_, e) => kb.let(out, prefix, cast('f32', load(slot, add(k, u32(e)), type))));
}
