// Block sparsity of fused attention (attention/attention.ts's kernels) from the mask, per (query tile,
// key tile), with interval arithmetic run in the kernel on workgroup-uniform values:
// q in [q0, min(q0+Br, T) - 1], k in [k0, min(k0+Bc, S) - 1], b and h points, dims their run-time
// values, a read whose indices depend only on b, h, dims and constants (a per-batch length
// `len[b]`) loaded once: its exact value, a point; other reads unknown. The mask's interval is
// (may be true, may be false): not may-true -> the tile is skipped; not may-false -> the mask is
// not evaluated; both -> evaluated per element. Conjuncts linear in k with coefficient +-1
// (`k <= q`, `q - k < W`) also bound the key-tile loop itself, so causal attention iterates about
// half the tiles and a window of W iterates O(W / Bc) tiles per query tile.
// tileLogic emits those statements for one workgroup, rowGroupLogic for a row group
// (qInRegisters); `countAttentionTiles` (attention/count.ts) runs them on the host.
import type { ScalarExpr } from '../../graph/ir.js';
import { type Expr, type ScalarType, type Stmt, add, and, bin, builtin, cast, div, exprType, lit, lt, mul, rem, select, u32, unary, v } from '../ir/ir.js';
import { KernelBuilder } from '../ir/builder.js';
import { dimExpr } from '../lower/dims.js';
import { computeType } from '../ir/storage.js';
import type { AttentionSchedule, Mode } from './schedule.js';
import type { AttentionShape } from './node.js';
import { fmax, fmin, i32 } from './exprs.js';
import { someScalarExpr } from '../../graph/lambda.js';

/** A mask subexpression over a tile: unknown, a numeric range [lo, hi], or a bool's (may-true, may-false). */
export type Interval = { readonly kind: 'top' } | { readonly kind: 'num'; readonly lo: Expr; readonly hi: Expr } | { readonly kind: 'bool'; readonly mayTrue: Expr; readonly mayFalse: Expr };

const top: Interval = { kind: 'top' };
const unknownBool: Interval = { kind: 'bool', mayTrue: lit('bool', 1), mayFalse: lit('bool', 1) };

export interface TileRanges {
  readonly b: Expr; // i32 point
  readonly hLo: Expr; // i32, inclusive: one head, or the query heads of one KV head (GQA tiles)
  readonly hHi: Expr;
  /** The tile spans several query heads: a read indexed by h is no longer one value per workgroup. */
  readonly headsVary: boolean;
  readonly qLo: Expr; // i32, inclusive
  readonly qHi: Expr;
  readonly kLo: Expr;
  readonly kHi: Expr;
  /** Loads a read free of q and k (one value per workgroup); absent: every read is unknown. */
  readonly uniformRead?: (out: Stmt[], e: ScalarExpr & { kind: 'read' }) => Expr;
}

/** Whether `e` depends on the query or key index (axes 2, 3; also the head, axis 1, when `headsVary`), directly or through a read's indices. */
function mentionsQK(e: ScalarExpr, headsVary: boolean): boolean {
  return someScalarExpr(e, (x) => (x.kind === 'index' && (x.axis === 2 || x.axis === 3 || (headsVary && x.axis === 1))) || (x.kind === 'apply' && x.op === 'score'));
}

export function intervalOf(kb: KernelBuilder, out: Stmt[], e: ScalarExpr, r: TileRanges): Interval {
  const point = (x: Expr): Interval => ({ kind: 'num', lo: x, hi: x });
  const num = (lo: Expr, hi: Expr): Interval => ({ kind: 'num', lo: kb.let(out, 'lo', lo), hi: kb.let(out, 'hi', hi) });
  const boolIv = (mayTrue: Expr, mayFalse: Expr): Interval => ({ kind: 'bool', mayTrue: kb.let(out, 'may_t', mayTrue), mayFalse: kb.let(out, 'may_f', mayFalse) });
  const asBool = (x: Interval): { mayTrue: Expr; mayFalse: Expr } => (x.kind === 'bool' ? x : { mayTrue: lit('bool', 1), mayFalse: lit('bool', 1) });
  switch (e.kind) {
    case 'index':
      switch (e.axis) {
        case 0:
          return point(r.b);
        case 1:
          return { kind: 'num', lo: r.hLo, hi: r.hHi };
        case 2:
          return { kind: 'num', lo: r.qLo, hi: r.qHi };
        case 3:
          return { kind: 'num', lo: r.kLo, hi: r.kHi };
        default:
          return top;
      }
    case 'dim':
      return point(cast('i32', dimExpr(e.dim)));
    case 'const':
      if (e.dtype === 'bool') return { kind: 'bool', mayTrue: lit('bool', e.value !== 0 ? 1 : 0), mayFalse: lit('bool', e.value !== 0 ? 0 : 1) };
      return point(lit(computeType(e.dtype), e.value));
    case 'read': {
      // One value per workgroup (b and h are fixed there): loaded, then exact. Else unknown.
      if (r.uniformRead === undefined || mentionsQK(e, r.headsVary)) return e.dtype === 'bool' ? unknownBool : top;
      const x = kb.let(out, 'rd', r.uniformRead(out, e));
      return e.dtype === 'bool' ? { kind: 'bool', mayTrue: x, mayFalse: unary('not', x) } : point(x);
    }
    case 'apply': {
      const args = e.args.map((a) => intervalOf(kb, out, a, r));
      const [a, b2, c] = args;
      const nums = args.every((x) => x.kind === 'num') ? (args as { kind: 'num'; lo: Expr; hi: Expr }[]) : undefined;
      const isBoolResult = e.dtype === 'bool';
      const [x, y] = nums ?? [];
      switch (e.op) {
        case 'add':
          return x !== undefined && y !== undefined ? num(bin('add', x.lo, y.lo), bin('add', x.hi, y.hi)) : top;
        case 'sub':
          return x !== undefined && y !== undefined ? num(bin('sub', x.lo, y.hi), bin('sub', x.hi, y.lo)) : top;
        case 'neg':
          return x !== undefined ? num(unary('neg', x.hi), unary('neg', x.lo)) : top;
        case 'mul': {
          if (x === undefined || y === undefined) return top;
          const p = [bin('mul', x.lo, y.lo), bin('mul', x.lo, y.hi), bin('mul', x.hi, y.lo), bin('mul', x.hi, y.hi)].map((t) => kb.let(out, 'prod', t));
          const [p0, p1, p2, p3] = p as [Expr, Expr, Expr, Expr];
          return num(fmin(fmin(p0, p1), fmin(p2, p3)), fmax(fmax(p0, p1), fmax(p2, p3)));
        }
        case 'max':
          return x !== undefined && y !== undefined ? num(fmax(x.lo, y.lo), fmax(x.hi, y.hi)) : top;
        case 'min':
          return x !== undefined && y !== undefined ? num(fmin(x.lo, y.lo), fmin(x.hi, y.hi)) : top;
        case 'abs': {
          if (x === undefined) return top;
          const zero = lit(exprType(x.lo), 0);
          const lo = select(bin('ge', x.lo, zero), x.lo, select(bin('le', x.hi, zero), unary('neg', x.hi), zero));
          return num(lo, fmax(unary('neg', x.lo), x.hi));
        }
        case 'cast': {
          const to = computeType(e.dtype);
          if (x === undefined || to === 'bool') return isBoolResult ? unknownBool : top;
          return num(cast(to, x.lo), cast(to, x.hi));
        }
        case 'lt':
        case 'le':
        case 'gt':
        case 'ge':
        case 'eq':
        case 'ne': {
          if (x === undefined || y === undefined) return unknownBool;
          // Compare in one type (an i32 index against an f32 value compares as f32).
          const t: ScalarType = exprType(x.lo) === exprType(y.lo) ? exprType(x.lo) : 'f32';
          const [al, ah, bl, bh] = [cast(t, x.lo), cast(t, x.hi), cast(t, y.lo), cast(t, y.hi)];
          switch (e.op) {
            case 'lt':
              return boolIv(bin('lt', al, bh), bin('ge', ah, bl));
            case 'le':
              return boolIv(bin('le', al, bh), bin('gt', ah, bl));
            case 'gt':
              return boolIv(bin('gt', ah, bl), bin('le', al, bh));
            case 'ge':
              return boolIv(bin('ge', ah, bl), bin('lt', al, bh));
            case 'eq': {
              const overlap = and(bin('le', al, bh), bin('le', bl, ah));
              const same = and(and(bin('eq', al, ah), bin('eq', bl, bh)), bin('eq', al, bl));
              return boolIv(overlap, unary('not', same));
            }
            case 'ne': {
              const overlap = and(bin('le', al, bh), bin('le', bl, ah));
              const same = and(and(bin('eq', al, ah), bin('eq', bl, bh)), bin('eq', al, bl));
              return boolIv(unary('not', same), overlap);
            }
          }
          return unknownBool;
        }
        case 'and': {
          if (a === undefined || b2 === undefined) return unknownBool;
          const p = asBool(a);
          const q = asBool(b2);
          return boolIv(and(p.mayTrue, q.mayTrue), bin('or', p.mayFalse, q.mayFalse));
        }
        case 'or': {
          if (a === undefined || b2 === undefined) return unknownBool;
          const p = asBool(a);
          const q = asBool(b2);
          return boolIv(bin('or', p.mayTrue, q.mayTrue), and(p.mayFalse, q.mayFalse));
        }
        case 'not': {
          if (a === undefined) return unknownBool;
          const p = asBool(a);
          return { kind: 'bool', mayTrue: p.mayFalse, mayFalse: p.mayTrue };
        }
        case 'where': {
          if (a === undefined || b2 === undefined || c === undefined) return isBoolResult ? unknownBool : top;
          const cond = asBool(a);
          if (isBoolResult) {
            const p = asBool(b2);
            const q = asBool(c);
            return boolIv(
              bin('or', and(cond.mayTrue, p.mayTrue), and(cond.mayFalse, q.mayTrue)),
              bin('or', and(cond.mayTrue, p.mayFalse), and(cond.mayFalse, q.mayFalse)),
            );
          }
          if (b2.kind !== 'num' || c.kind !== 'num') return top;
          return num(fmin(b2.lo, c.lo), fmax(b2.hi, c.hi)); // the union of both branches: sound
        }
        default:
          return isBoolResult ? unknownBool : top;
      }
    }
  }
}

/** `e` as c*k + sum(sign * part) with parts free of k, or undefined when not of that form. */
interface LinearInK {
  readonly c: number;
  readonly parts: readonly { readonly sign: 1 | -1; readonly e: ScalarExpr }[];
}

function mentionsAxis(e: ScalarExpr, axis: number): boolean {
  return someScalarExpr(e, (x) => x.kind === 'index' && x.axis === axis);
}

/** `e` as c*x + sum(sign * part) for x the index of `axis` (3: k, 2: q), parts free of x; undefined when not of that form. */
function linearIn(e: ScalarExpr, axis: number): LinearInK | undefined {
  if (e.kind === 'index' && e.axis === axis) return { c: 1, parts: [] };
  if (!mentionsAxis(e, axis)) return { c: 0, parts: [{ sign: 1, e }] };
  if (e.kind !== 'apply') return undefined;
  const [a, b] = e.args;
  const la = a === undefined ? undefined : linearIn(a, axis);
  const lb = b === undefined ? undefined : linearIn(b, axis);
  const neg = (l: LinearInK): LinearInK => ({ c: -l.c, parts: l.parts.map((p) => ({ sign: p.sign === 1 ? -1 : 1, e: p.e })) });
  if (e.op === 'add' && la !== undefined && lb !== undefined) return { c: la.c + lb.c, parts: [...la.parts, ...lb.parts] };
  if (e.op === 'sub' && la !== undefined && lb !== undefined) {
    const nb = neg(lb);
    return { c: la.c + nb.c, parts: [...la.parts, ...nb.parts] };
  }
  if (e.op === 'neg' && la !== undefined) return neg(la);
  return undefined;
}

/** The conjuncts of a mask: and(a, and(b, c)) -> [a, b, c]. */
function conjuncts(e: ScalarExpr): ScalarExpr[] {
  return e.kind === 'apply' && e.op === 'and' ? e.args.flatMap(conjuncts) : [e];
}

/**
 * Key range [kStart, kEnd) outside which every conjunct linear in k is false for all rows of the
 * query tile: `k + R op 0` or `-k + R op 0` with R free of k, R's interval over the tile.
 */
function keyBounds(kb: KernelBuilder, out: Stmt[], mask: ScalarExpr | undefined, r: Omit<TileRanges, 'kLo' | 'kHi'>, S: Expr): { start: Expr; end: Expr } {
  return axisBounds(kb, out, mask, { ...r, kLo: i32(0), kHi: i32(0) }, 3, S, 'k'); // parts never mention k
}

/**
 * The same for either index: the range [start, end) of index `axis` (3: k, 2: q; i32) outside
 * which some conjunct linear in it is false for all of the tile's values of the other indices
 * (`r`, whose range of `axis` is unused). The backward's dK/dV role bounds its query tiles so.
 */
export function axisBounds(kb: KernelBuilder, out: Stmt[], mask: ScalarExpr | undefined, r: TileRanges, axis: 2 | 3, extent: Expr, name: string): { start: Expr; end: Expr } {
  let start: Expr = i32(0);
  let end: Expr = cast('i32', extent);
  if (mask === undefined) return { start, end };
  for (const atom of conjuncts(mask)) {
    if (atom.kind !== 'apply' || !['lt', 'le', 'gt', 'ge'].includes(atom.op)) continue;
    const [A, B] = atom.args;
    if (A === undefined || B === undefined) continue;
    const la = linearIn(A, axis);
    const lb = linearIn(B, axis);
    if (la === undefined || lb === undefined) continue;
    const c = la.c - lb.c;
    if (c !== 1 && c !== -1) continue;
    const parts = [...la.parts, ...lb.parts.map((p) => ({ sign: (p.sign === 1 ? -1 : 1) as 1 | -1, e: p.e }))];
    // Interval of R = sum(sign * part), in i32 (a float part makes the atom unusable here).
    let lo: Expr = i32(0);
    let hi: Expr = i32(0);
    let usable = true;
    const scratch: Stmt[] = [];
    for (const p of parts) {
      const iv = intervalOf(kb, scratch, p.e, r);
      if (iv.kind !== 'num' || exprType(iv.lo) !== 'i32') {
        usable = false;
        break;
      }
      if (p.sign === 1) {
        lo = bin('add', lo, iv.lo);
        hi = bin('add', hi, iv.hi);
      } else {
        lo = bin('sub', lo, iv.hi);
        hi = bin('sub', hi, iv.lo);
      }
    }
    if (!usable) continue;
    out.push(...scratch);
    const rLo = kb.let(out, 'r_lo', lo);
    const rHi = kb.let(out, 'r_hi', hi);
    const op = atom.op;
    if (c === 1) {
      // x + R op 0  <=>  x op -R; some value of the tile allows x only below max(-R) = -rLo (or above min(-R) = -rHi).
      if (op === 'lt') end = fmin(end, unary('neg', rLo));
      else if (op === 'le') end = fmin(end, bin('add', unary('neg', rLo), i32(1)));
      else if (op === 'gt') start = fmax(start, bin('add', unary('neg', rHi), i32(1)));
      else start = fmax(start, unary('neg', rHi));
    } else {
      // -x + R op 0  <=>  x op' R with op' flipped.
      if (op === 'lt') start = fmax(start, bin('add', rLo, i32(1)));
      else if (op === 'le') start = fmax(start, rLo);
      else if (op === 'gt') end = fmin(end, rHi);
      else end = fmin(end, bin('add', rHi, i32(1)));
    }
    start = kb.let(out, `${name}_start`, start);
    end = kb.let(out, `${name}_end`, end);
  }
  return { start, end };
}

/** The statements the host counter re-runs: header and bound lets (per workgroup), class lets (per key tile). */
export interface TileLogic {
  readonly header: Stmt[];
  readonly bounds: Stmt[];
  readonly ktStart: Expr;
  readonly ktEnd: Expr;
  readonly ktVar: string;
  readonly perTile: Stmt[];
  readonly k0: Expr;
  readonly mayTrue: Expr;
  readonly mayFalse: Expr;
  readonly b: Expr;
  readonly h: Expr; // the workgroup's first query head
  readonly q0: Expr; // the first tile row (query row when mode.heads = 1)
  readonly part: Expr; // the cache partition (split mode), else 0
}

/** The workgroup's ids as the tile logic reads them (default the builtins; the backward kernel's dQ role offsets x). */
export interface WorkgroupIds {
  readonly x: Expr;
  readonly y: Expr;
  readonly z: Expr;
}

/** Loads a read free of q and k for the workgroup of batch `b`, head `h` (u32). */
export type UniformRead = (out: Stmt[], e: ScalarExpr & { kind: 'read' }, b: Expr, h: Expr) => Expr;

export function tileLogic(kb: KernelBuilder, shape: AttentionShape, mask: ScalarExpr | undefined, s: AttentionSchedule, mode: Mode, read: UniformRead, ids?: WorkgroupIds): TileLogic {
  const header: Stmt[] = [];
  const Br = mode.rows;
  const Bc = s.tileCols;
  const T = dimExpr(shape.T);
  const S = dimExpr(shape.S);
  const wx = ids?.x ?? builtin('workgroup_id', 0);
  const qt = mode.kind === 'split' ? kb.let(header, 'qt', div(wx, u32(s.splits))) : kb.let(header, 'qt', wx);
  const split = mode.kind === 'split' ? kb.let(header, 'part', rem(wx, u32(s.splits))) : u32(0);
  const G = mode.heads;
  const wy = ids?.y ?? builtin('workgroup_id', 1);
  const h = kb.let(header, 'h', G === 1 ? wy : mul(wy, u32(G)));
  const b = kb.let(header, 'b', ids?.z ?? builtin('workgroup_id', 2));
  const q0 = kb.let(header, 'q0', mul(qt, u32(Br)));
  const bounds: Stmt[] = [];
  // Query rows of the tile: rows [q0, q0 + Br) of T * G, row r being query floor(r / G).
  const qLo = kb.let(bounds, 'q_lo', cast('i32', G === 1 ? q0 : div(q0, u32(G))));
  const qHi = G === 1 ? kb.let(bounds, 'q_hi', bin('sub', cast('i32', fmin(add(q0, u32(Br)), T)), i32(1))) : kb.let(bounds, 'q_hi', cast('i32', div(bin('sub', fmin(add(q0, u32(Br)), mul(T, u32(G))), u32(1)), u32(G))));
  const uniformRead = (out: Stmt[], e: ScalarExpr & { kind: 'read' }): Expr => read(out, e, b, h);
  const hI = cast('i32', h);
  const ranges = { b: cast('i32', b), hLo: hI, hHi: G === 1 ? hI : bin('add', hI, i32(G - 1)), headsVary: G > 1, qLo, qHi, uniformRead };
  const kr = keyBounds(kb, bounds, mask, ranges, S);
  // Key tiles [kt_start, kt_end): the bounds clamped to [0, S), empty when end <= start.
  const kStart = kb.let(bounds, 'k_first', cast('u32', fmax(kr.start, i32(0))));
  const kEnd = kb.let(bounds, 'k_last', cast('u32', fmax(fmin(kr.end, cast('i32', S)), i32(0))));
  let ktStart = kb.let(bounds, 'kt_start', div(kStart, u32(Bc)));
  let ktEnd = kb.let(bounds, 'kt_end', select(bin('le', kEnd, kStart), ktStart, div(add(kEnd, u32(Bc - 1)), u32(Bc))));
  if (mode.kind === 'split') {
    // Partition `part` of the cache: key tiles [part * chunk, (part + 1) * chunk).
    const chunk = kb.let(bounds, 'chunk', div(add(div(add(S, u32(Bc - 1)), u32(Bc)), u32(s.splits - 1)), u32(s.splits)));
    ktStart = kb.let(bounds, 'kt_first', fmax(ktStart, mul(split, chunk)));
    ktEnd = kb.let(bounds, 'kt_stop', fmax(ktStart, fmin(ktEnd, mul(add(split, u32(1)), chunk))));
  }
  const ktVar = kb.fresh('kt');
  const perTile: Stmt[] = [];
  const k0 = kb.let(perTile, 'k0', mul(v(ktVar, 'u32'), u32(Bc)));
  let mayTrue: Expr = lit('bool', 1);
  let mayFalse: Expr = lit('bool', 0);
  if (mask !== undefined) {
    const kLo = kb.let(perTile, 'k_lo', cast('i32', k0));
    const kHi = kb.let(perTile, 'k_hi', bin('sub', cast('i32', fmin(add(k0, u32(Bc)), S)), i32(1)));
    const iv = intervalOf(kb, perTile, mask, { ...ranges, kLo, kHi });
    const bi = iv.kind === 'bool' ? iv : { mayTrue: lit('bool', 1), mayFalse: lit('bool', 1) };
    mayTrue = kb.let(perTile, 'tile_live', bi.mayTrue);
    mayFalse = kb.let(perTile, 'tile_partial', bi.mayFalse);
  }
  return { header, bounds, ktStart, ktEnd, ktVar, perTile, k0, mayTrue, mayFalse, b, h, q0, part: split };
}

/** Block sparsity of one row group (qInRegisters): its key-tile range and, per key tile, its class. */
interface RowGroupLogic {
  /** Per key tile (after the workgroup's): the group's class lets. */
  readonly perTile: Stmt[];
  /** The group has rows below T, the tile is inside its key range and may be visible to it. */
  readonly active: Expr;
  /** The tile may be masked for some of the group's rows (else the mask is not evaluated). */
  readonly mayFalse: Expr;
}

/**
 * The tile analysis again, for the RQ rows of row group `rg` (one subgroup): bounds lets into
 * `out` (once per thread), class lets per key tile. Workgroup-level tiles of up to 1024 rows
 * would otherwise visit every key tile any row needs (all of them, for causal attention).
 */
export function rowGroupLogic(kb: KernelBuilder, out: Stmt[], shape: AttentionShape, mask: ScalarExpr | undefined, s: AttentionSchedule, mode: Mode, RQ: number, rg: Expr, logic: TileLogic, read: UniformRead): RowGroupLogic {
  const G = mode.heads;
  const Bc = s.tileCols;
  const T = dimExpr(shape.T);
  const S = dimExpr(shape.S);
  const rows = G === 1 ? T : mul(T, u32(G));
  const r0 = kb.let(out, 'rg_row0', add(logic.q0, mul(rg, u32(RQ))));
  const inRange = kb.let(out, 'rg_in', lt(r0, rows));
  const last = kb.let(out, 'rg_last', bin('sub', fmin(add(r0, u32(RQ)), rows), u32(1)));
  const qLo = kb.let(out, 'rg_q_lo', cast('i32', G === 1 ? r0 : div(r0, u32(G))));
  const qHi = kb.let(out, 'rg_q_hi', cast('i32', G === 1 ? last : div(last, u32(G))));
  const hI = cast('i32', logic.h);
  const ranges = { b: cast('i32', logic.b), hLo: hI, hHi: G === 1 ? hI : bin('add', hI, i32(G - 1)), headsVary: G > 1, qLo, qHi, uniformRead: (o: Stmt[], e: ScalarExpr & { kind: 'read' }): Expr => read(o, e, logic.b, logic.h) };
  const kr = keyBounds(kb, out, mask, ranges, S);
  const kStart = kb.let(out, 'rg_k_first', cast('u32', fmax(kr.start, i32(0))));
  const kEnd = kb.let(out, 'rg_k_last', cast('u32', fmax(fmin(kr.end, cast('i32', S)), i32(0))));
  const ktStart = kb.let(out, 'rg_kt_start', div(kStart, u32(Bc)));
  const ktEnd = kb.let(out, 'rg_kt_end', select(bin('le', kEnd, kStart), ktStart, div(add(kEnd, u32(Bc - 1)), u32(Bc))));
  const perTile: Stmt[] = [];
  const kt = v(logic.ktVar, 'u32');
  let live: Expr = lit('bool', 1);
  let mayFalse: Expr = lit('bool', 0);
  if (mask !== undefined) {
    const kLo = kb.let(perTile, 'rg_k_lo', cast('i32', logic.k0));
    const kHi = kb.let(perTile, 'rg_k_hi', bin('sub', cast('i32', fmin(add(logic.k0, u32(Bc)), S)), i32(1)));
    const iv = intervalOf(kb, perTile, mask, { ...ranges, kLo, kHi });
    const bi = iv.kind === 'bool' ? iv : { mayTrue: lit('bool', 1), mayFalse: lit('bool', 1) };
    live = bi.mayTrue;
    mayFalse = kb.let(perTile, 'rg_partial', bi.mayFalse);
  }
  const active = kb.let(perTile, 'rg_active', and(and(inRange, and(bin('ge', kt, ktStart), lt(kt, ktEnd))), live));
  return { perTile, active, mayFalse };
}
