// Kernel lowering of `fused_attention` (the contract: DEVELOPERS.md "Fused attention"): one
// FlashAttention-2 kernel for prefill, and for decode (T <= 1) a flash-decoding split-K kernel
// plus a combine kernel, each step guarded by a plan `when`. Target neutral kernel IR only.
//
// Prefill kernel (Dao 2023, FlashAttention-2, online softmax of Milakov & Gimelshein 2018):
//   one workgroup per (tile of Br rows, KV head's group of G = Hq/Hkv query heads, batch b),
//   a tile row being a (query row, head of the group) pair, row-major (G = 1 without GQA, or
//   when the head counts are symbolic), so K/V tiles serve the whole group; L lanes per row, each
//   thread owning RQ rows (schedule rowsPerThread: register blocking over rows).
//   Q tile -> workgroup memory once; for each key tile kt the analysis keeps (see below):
//     K, V tiles (Bc keys) -> workgroup memory (or, schedule isDirect for CPU targets, read
//     from global memory where used); lane computes s = score(scale * q.k) for keys
//     lane, lane+L, ...; masked or k >= S -> -inf; row max over lanes (subgroup op or a small
//     workgroup-memory fold); alpha = exp(m_old - m_new) (0 while m_old = -inf: no NaN);
//     p = exp(s - m_new); l = l * alpha + sum p; acc[j] = acc[j] * alpha + sum_c p_c v[c, j]
//   out = acc / l, or 0 when l = 0 (a fully masked row). No T x S buffer exists anywhere.
//
// Block sparsity from the mask, per (query tile, key tile), with interval arithmetic run in the
// kernel on workgroup-uniform values: q in [q0, min(q0+Br, T) - 1], k in [k0, min(k0+Bc, S) - 1],
// b and h points, dims their run-time values, a read whose indices depend only on b, h, dims and
// constants (a per-batch length `len[b]`) loaded once: its exact value, a point; other reads
// unknown. The mask's interval is
// (may be true, may be false): not may-true -> the tile is skipped; not may-false -> the mask is
// not evaluated; both -> evaluated per element. Conjuncts linear in k with coefficient +-1
// (`k <= q`, `q - k < W`) also bound the key-tile loop itself, so causal attention iterates about
// half the tiles and a window of W iterates O(W / Bc) tiles per query tile.
// `countAttentionTiles` runs the kernel's own bound and class statements on the host.
import { type Dim, dimConstValue } from '../check/dim.js';
import { type Graph, type Node, type ScalarExpr, floatAttr } from '../graph/ir.js';
import type { DType, TensorType } from '../graph/types.js';
import { attentionKeyType, attentionQueryType } from '../ops/attention.js';
import { countApplies } from '../ops/source.js';
import { isLazyWhere } from '../graph/lambda.js';
import { evalLets, type EvalEnv } from './eval-expr.js';
import {
  type Expr,
  type GlobalBuffer,
  type KernelSchedule,
  type KernelTemp,
  type ScalarType,
  type SharedArray,
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
  exprType,
  lit,
  load,
  lt,
  mul,
  rem,
  select,
  subgroup,
  subgroupShuffle,
  u32,
  unary,
  v,
} from './ir.js';
import { KernelBuilder } from './builder.js';
import { dimExpr, scalarLowering } from './lower.js';
import { elementOffset } from './lower-view.js'; // q/k/v read through fold-views views
import type { SizeExpr, StepCondition } from './plan.js';
import { type MmaAttentionSchedule, type TargetLimits, lavapipeLimits } from './schedule.js';
import { mmaAttentionKernel } from './lower-attention-mma.js';
import { computeType, storageBytes, storageType } from './storage.js';
import { dimToSize, sAdd, sCeilDiv, sConst, sMinConst, sMul } from './to-size.js';

// ---- schedule ------------------------------------------------------------------------------

export interface AttentionSchedule {
  /** Br: query rows per workgroup of the prefill kernel. */
  readonly tileRows: number;
  /** Bc: keys per K/V tile streamed through workgroup memory (a multiple of `lanes`). */
  readonly tileCols: number;
  /** Threads per query row; equals the subgroup size when `useSubgroups`. */
  readonly lanes: number;
  /** Row max/sum over the lanes with subgroup ops (else a workgroup-memory fold). */
  readonly useSubgroups: boolean;
  /** Cache partitions of the split-K decode kernel (each writes acc, max and sum to a temp). */
  readonly splits: number;
  /** The decode path runs when T <= this (and the prefill kernel when T > this). */
  readonly decodeMaxT: number;
  /** Query rows per thread of the prefill kernel (divides `tileRows`; default 1). */
  readonly rowsPerThread?: number;
  /** K and V read from global memory instead of staged tiles (CPU targets; default false). */
  readonly isDirect?: boolean;
  /**
   * With `useSubgroups`: a lane's probabilities stay in its registers and the P V product reads
   * them from the row's lanes by subgroup shuffle (no P tile in workgroup memory, no barriers
   * around it; none at all per key tile with `isDirect`). Default false.
   */
  readonly shuffleP?: boolean;
  /**
   * Each thread holds its rows of Q in a private array (each lane loads dk / L of a row once;
   * subgroup shuffles give every lane the whole row), so no Q tile takes workgroup memory and a
   * workgroup can cover up to 1024 / L * rowsPerThread query rows; with staged K/V (not
   * `isDirect`) each K/V element is then read once per workgroup. Block sparsity also applies
   * per row group (one subgroup): it skips the key tiles its own rows never see under a
   * subgroup-uniform branch, while every thread joins the staging barriers. Needs `shuffleP`
   * and subgroups. Default false.
   */
  readonly qInRegisters?: boolean;
  /**
   * Prefill with T > `aboveT` uses `schedule` instead (its own step, selected at run time by a
   * plan `when` where T is symbolic): long prompts get the traffic-minimal schedule while short
   * ones keep many small workgroups. Its own decode fields are unused.
   */
  readonly longPrefill?: { readonly aboveT: number; readonly schedule: AttentionSchedule };
}

/** Workgroup bytes of a tile configuration: Q, K, V tiles, the score/probability tile, the fold. */
export function attentionSharedBytes(s: AttentionSchedule, rows: number, dk: number, dv: number): number {
  const fold = s.useSubgroups ? 0 : (rows / (s.rowsPerThread ?? 1)) * s.lanes;
  const kv = s.isDirect === true ? 0 : s.tileCols * (dk + dv);
  const pTile = s.shuffleP === true && s.useSubgroups ? 0 : rows * s.tileCols;
  const qTile = s.qInRegisters === true ? 0 : rows * dk;
  return 4 * (qTile + kv + pTile + fold);
}

/** Prompts longer than this take the CPU's traffic-minimal prefill schedule (see longPrefillSchedule). */
export const LONG_PREFILL_ABOVE_T = 256;

/**
 * The traffic-minimal CPU prefill: one workgroup of as many row groups as the target allows (up
 * to 1024 rows: 8 rows per thread, lanes = the subgroup size), Q in private arrays, K/V tiles of
 * the most keys that fit staged once per workgroup, P by shuffle, block sparsity per row group.
 * At T <= 1024 every Q, K, V element is read once and O written once (the lower bound).
 */
export function longPrefillSchedule(target: TargetLimits, base: AttentionSchedule, dk: number, dv: number): AttentionSchedule | undefined {
  const lanes = target.subgroupSize;
  const rowsPerThread = 8;
  const rows = Math.min(1024, Math.floor(target.maxInvocationsPerWorkgroup / lanes) * rowsPerThread);
  for (const keys of [64, 32, 16, 8]) {
    const s: AttentionSchedule = { ...base, tileRows: rows, tileCols: Math.ceil(keys / lanes) * lanes, lanes, useSubgroups: true, rowsPerThread, isDirect: false, shuffleP: true, qInRegisters: true };
    if (rows >= 64 && attentionSharedBytes(s, rows, dk, dv) <= target.maxWorkgroupStorageBytes) return s;
  }
  return undefined;
}

/**
 * Largest tiles that fit the target: lanes = the subgroup size where the target has subgroups
 * (so a row's lanes are one subgroup), else 8 with a workgroup-memory fold. Br x Bc from
 * 32x32 down, within workgroup storage and invocations.
 */
export function chooseAttentionSchedule(target: TargetLimits, dk: number, dv: number): AttentionSchedule {
  const useSubgroups = target.subgroupSize > 0;
  const lanes = useSubgroups ? target.subgroupSize : 8;
  if (target.isCpu === true) {
    // CPU (lavapipe): K/V read directly, 8 query rows per thread, 4 row groups (32 threads),
    // 64 keys per tile (DEVELOPERS.md, Performance notes): per d, 8 q and 8 K loads feed 64
    // multiply-adds; per key, 8 p and 8 V loads feed 64. 1.9x the 32x32 staged tiles on lavapipe.
    // With subgroups P is exchanged by shuffle within a row's lanes (no P tile, no barriers).
    const s: AttentionSchedule = { tileRows: 32, tileCols: 8 * lanes, lanes, useSubgroups, splits: 32, decodeMaxT: 1, rowsPerThread: 8, isDirect: true, ...(useSubgroups ? { shuffleP: true } : {}) };
    if (4 * lanes <= target.maxInvocationsPerWorkgroup && attentionSharedBytes(s, 32, dk, dv) <= target.maxWorkgroupStorageBytes) {
      const long = useSubgroups ? longPrefillSchedule(target, s, dk, dv) : undefined;
      return long === undefined ? s : { ...s, longPrefill: { aboveT: LONG_PREFILL_ABOVE_T, schedule: long } };
    }
  }
  const roundUp = (x: number): number => Math.ceil(x / lanes) * lanes;
  const candidates: readonly (readonly [number, number])[] = [
    [32, 32],
    [16, 32],
    [16, 16],
    [8, 16],
    [4, 8],
    [2, 8],
    [1, 8],
  ];
  for (const [br, bc] of candidates) {
    const s: AttentionSchedule = { tileRows: br, tileCols: roundUp(bc), lanes, useSubgroups, splits: 32, decodeMaxT: 1 };
    if (br * lanes <= target.maxInvocationsPerWorkgroup && attentionSharedBytes(s, br, dk, dv) <= target.maxWorkgroupStorageBytes) return s;
  }
  throw new Error(`internal: no attention tile fits ${target.name} for head widths ${dk}, ${dv}`);
}

// ---- the node's shapes ---------------------------------------------------------------------

export interface AttentionShape {
  readonly B: Dim;
  readonly Hq: Dim;
  readonly Hkv: Dim;
  readonly T: Dim;
  readonly S: Dim;
  readonly dk: number;
  readonly dv: number;
  readonly group: Expr; // query heads per KV head (u32)
  /** Query heads per KV head when both head counts are constants, else 1 (the prefill tile's head group). */
  readonly groupConst: number;
}

export function lambdaOf(n: Node, key: string): ScalarExpr | undefined {
  const a = n.attrs[key];
  return a !== undefined && a.kind === 'lambda' ? a.body : undefined;
}

/** Q's type: operand 0's, or `qshape` when a `qload` lambda computes Q at load (src/ops/attention.ts). */
export function queryType(q: Node, n: Node): TensorType {
  const t = attentionQueryType(q.type, n.attrs);
  if (t === undefined) throw new Error('internal: fused_attention qload without qshape');
  return t;
}

/** K's type: operand 1's, or `kshape` when a `kload` lambda computes K at load (src/ops/attention.ts). */
function keyType(k: Node, n: Node): TensorType {
  const t = attentionKeyType(k.type, n.attrs);
  if (t === undefined) throw new Error('internal: fused_attention kload without kshape');
  return t;
}

export function shapeOf(q: TensorType, k: TensorType, vv: TensorType): AttentionShape {
  const [B, Hq, T, dkD] = q.shape;
  const [, Hkv, S] = k.shape;
  const dvD = vv.shape[3];
  if (B === undefined || Hq === undefined || T === undefined || dkD === undefined || Hkv === undefined || S === undefined || dvD === undefined) {
    throw new Error('internal: fused_attention operands must have rank 4');
  }
  const dk = dimConstValue(dkD);
  const dv = dimConstValue(dvD);
  if (dk === undefined || dv === undefined) throw new Error('internal: fused_attention needs constant head widths (tiles live in workgroup memory)');
  const hq = dimConstValue(Hq);
  const hkv = dimConstValue(Hkv);
  const group = hq !== undefined && hkv !== undefined ? u32(hq / hkv) : div(dimExpr(Hq), dimExpr(Hkv));
  const groupConst = hq !== undefined && hkv !== undefined ? hq / hkv : 1;
  return { B, Hq, Hkv, T, S, dk, dv, group, groupConst };
}

const f32 = (x: number): Expr => lit('f32', x);
const i32 = (x: number): Expr => lit('i32', x);
const NEG_INF = f32(-Infinity);
const fmax = (a: Expr, b: Expr): Expr => call('max', [a, b], exprType(a));
const fmin = (a: Expr, b: Expr): Expr => call('min', [a, b], exprType(a));
const forLoop = (name: string, start: Expr, end: Expr, step: Expr, body: readonly Stmt[]): Stmt => ({ kind: 'for', var: name, start, end, step, body });

// ---- interval arithmetic over the mask (block sparsity) -------------------------------------

/** A mask subexpression over a tile: unknown, a numeric range [lo, hi], or a bool's (may-true, may-false). */
type Interval = { readonly kind: 'top' } | { readonly kind: 'num'; readonly lo: Expr; readonly hi: Expr } | { readonly kind: 'bool'; readonly mayTrue: Expr; readonly mayFalse: Expr };

const top: Interval = { kind: 'top' };
const unknownBool: Interval = { kind: 'bool', mayTrue: lit('bool', 1), mayFalse: lit('bool', 1) };

interface TileRanges {
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
  switch (e.kind) {
    case 'index':
      return e.axis === 2 || e.axis === 3 || (headsVary && e.axis === 1);
    case 'dim':
    case 'const':
      return false;
    case 'read':
      return e.indices.some((x) => mentionsQK(x, headsVary));
    case 'apply':
      return e.op === 'score' || e.args.some((x) => mentionsQK(x, headsVary));
  }
}

function intervalOf(kb: KernelBuilder, out: Stmt[], e: ScalarExpr, r: TileRanges): Interval {
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

function mentionsK(e: ScalarExpr): boolean {
  switch (e.kind) {
    case 'index':
      return e.axis === 3;
    case 'dim':
    case 'const':
      return false;
    case 'read':
      return e.indices.some(mentionsK);
    case 'apply':
      return e.args.some(mentionsK);
  }
}

function linearInK(e: ScalarExpr): LinearInK | undefined {
  if (e.kind === 'index' && e.axis === 3) return { c: 1, parts: [] };
  if (!mentionsK(e)) return { c: 0, parts: [{ sign: 1, e }] };
  if (e.kind !== 'apply') return undefined;
  const [a, b] = e.args;
  const la = a === undefined ? undefined : linearInK(a);
  const lb = b === undefined ? undefined : linearInK(b);
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
  let start: Expr = i32(0);
  let end: Expr = cast('i32', S);
  if (mask === undefined) return { start, end };
  const dummy: TileRanges = { ...r, kLo: i32(0), kHi: i32(0) }; // parts never mention k
  for (const atom of conjuncts(mask)) {
    if (atom.kind !== 'apply' || !['lt', 'le', 'gt', 'ge'].includes(atom.op)) continue;
    const [A, B] = atom.args;
    if (A === undefined || B === undefined) continue;
    const la = linearInK(A);
    const lb = linearInK(B);
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
      const iv = intervalOf(kb, scratch, p.e, dummy);
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
      // k + R op 0  <=>  k op -R; some row of the tile allows k only below max(-R) = -rLo (or above min(-R) = -rHi).
      if (op === 'lt') end = fmin(end, unary('neg', rLo));
      else if (op === 'le') end = fmin(end, bin('add', unary('neg', rLo), i32(1)));
      else if (op === 'gt') start = fmax(start, bin('add', unary('neg', rHi), i32(1)));
      else start = fmax(start, unary('neg', rHi));
    } else {
      // -k + R op 0  <=>  k op' R with op' flipped.
      if (op === 'lt') start = fmax(start, bin('add', rLo, i32(1)));
      else if (op === 'le') start = fmax(start, rLo);
      else if (op === 'gt') end = fmin(end, rHi);
      else end = fmin(end, bin('add', rHi, i32(1)));
    }
    start = kb.let(out, 'k_start', start);
    end = kb.let(out, 'k_end', end);
  }
  return { start, end };
}

// ---- kernel bodies ---------------------------------------------------------------------------

export interface AttentionKernelDraft {
  readonly op: string;
  readonly workgroupSize: readonly [number, number, number];
  readonly grid: readonly [SizeExpr, SizeExpr, SizeExpr];
  readonly buffers: readonly GlobalBuffer[];
  readonly shared: readonly SharedArray[];
  readonly body: readonly Stmt[];
  readonly schedule: KernelSchedule;
  readonly traffic: Traffic;
  readonly bindings: readonly number[];
  readonly when?: StepCondition;
}

export interface AttentionLowering {
  readonly kernels: readonly AttentionKernelDraft[];
  readonly temps: ReadonlyMap<number, KernelTemp>;
}

export interface AttentionInput {
  readonly graph: Graph;
  readonly node: Node;
  readonly target: TargetLimits;
  /** Forces tile sizes (tests); default chosen from the target. */
  readonly schedule?: AttentionSchedule;
  /** An id for the split-K temp (no graph value has it). */
  readonly firstTempId: number;
  /**
   * The node's fused_attention_lse, if any: the prefill kernel (or the decode combine) also
   * writes each row's log-sum-exp m + log(l) of the final scores there, -inf where l = 0.
   */
  readonly lse?: Node;
  /** The tensor-core prefill kernel (lower-attention-mma.ts) where the node qualifies. */
  readonly mma?: MmaAttentionSchedule;
}

/** A row's log-sum-exp from its running max and sum: -inf for a fully masked row (l = 0). */
export function lseValue(m: Expr, l: Expr): Expr {
  return select(bin('eq', l, f32(0)), NEG_INF, bin('add', m, call('log', [l], 'f32')));
}

/** LSE bytes written: B*Hq*T elements of the LSE node's dtype (0 without one). */
export function lseBytes(inp: AttentionInput): SizeExpr | undefined {
  if (inp.lse === undefined) return undefined;
  const [B, Hq, T] = inp.lse.type.shape;
  return sMul(dimToSize(B ?? { terms: [] }), dimToSize(Hq ?? { terms: [] }), dimToSize(T ?? { terms: [] }), sConst(storageBytes(inp.lse.type.dtype)));
}

interface Mode {
  readonly kind: 'prefill' | 'split';
  readonly rows: number; // tile rows per workgroup: (query row, head) pairs, query rows * heads
  /**
   * Query heads per workgroup (Gt, a divisor of G = Hq / Hkv for GQA/MQA prefill, else 1): tile
   * row r is query row floor((q0 + r) / Gt) of head h0 + (q0 + r) % Gt, so the Gt heads that
   * share a KV head share its K/V tiles (read once per Gt heads instead of once per head).
   */
  readonly heads: number;
}

/**
 * Prefill tiles of Br query rows for Gt heads of a KV head's group: the largest divisor Gt of
 * the (constant) group whose Br * Gt rows fit the target's invocations and workgroup memory.
 */
function prefillMode(shape: AttentionShape, s: AttentionSchedule, target: TargetLimits): Mode {
  if (s.qInRegisters === true) {
    // Already as many rows as the workgroup holds: the G heads share them (Br / Gt query rows).
    let heads = 1;
    for (let gt = 2; gt <= shape.groupConst; gt++) if (shape.groupConst % gt === 0 && s.tileRows % (gt * (s.rowsPerThread ?? 1)) === 0) heads = gt;
    return { kind: 'prefill', rows: s.tileRows, heads };
  }
  const fits = (gt: number): boolean =>
    ((s.tileRows * gt) / (s.rowsPerThread ?? 1)) * s.lanes <= target.maxInvocationsPerWorkgroup &&
    attentionSharedBytes(s, s.tileRows * gt, shape.dk, shape.dv) <= target.maxWorkgroupStorageBytes;
  let heads = 1;
  for (let gt = 2; gt <= shape.groupConst; gt++) if (shape.groupConst % gt === 0 && fits(gt)) heads = gt;
  return { kind: 'prefill', rows: s.tileRows * heads, heads };
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

/** Loads a read free of q and k for the workgroup of batch `b`, head `h` (u32). */
export type UniformRead = (out: Stmt[], e: ScalarExpr & { kind: 'read' }, b: Expr, h: Expr) => Expr;

export function tileLogic(kb: KernelBuilder, shape: AttentionShape, mask: ScalarExpr | undefined, s: AttentionSchedule, mode: Mode, read: UniformRead): TileLogic {
  const header: Stmt[] = [];
  const Br = mode.rows;
  const Bc = s.tileCols;
  const T = dimExpr(shape.T);
  const S = dimExpr(shape.S);
  const wx = builtin('workgroup_id', 0);
  const qt = mode.kind === 'split' ? kb.let(header, 'qt', div(wx, u32(s.splits))) : kb.let(header, 'qt', wx);
  const split = mode.kind === 'split' ? kb.let(header, 'part', rem(wx, u32(s.splits))) : u32(0);
  const G = mode.heads;
  const h = kb.let(header, 'h', G === 1 ? builtin('workgroup_id', 1) : mul(builtin('workgroup_id', 1), u32(G)));
  const b = kb.let(header, 'b', builtin('workgroup_id', 2));
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
function rowGroupLogic(kb: KernelBuilder, out: Stmt[], shape: AttentionShape, mask: ScalarExpr | undefined, s: AttentionSchedule, mode: Mode, RQ: number, rg: Expr, logic: TileLogic, read: UniformRead): RowGroupLogic {
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

export interface Compiled {
  readonly kb: KernelBuilder;
  readonly slotOf: (operand: number) => number;
}

/** A score or mask lambda as an inline kernel expression; `score()` is `scoreVar`. */
export function lambdaExpr(c: Compiled, g: Graph, n: Node, out: Stmt[], e: ScalarExpr, idx: readonly Expr[], scoreVar: Expr | undefined): Expr {
  const tr = (x: ScalarExpr): Expr => lambdaExpr(c, g, n, out, x, idx, scoreVar);
  switch (e.kind) {
    case 'index':
      return cast('i32', idx[e.axis] ?? u32(0));
    case 'dim':
      return cast('i32', dimExpr(e.dim));
    case 'const':
      return lit(computeType(e.dtype), e.value);
    case 'read': {
      const id = n.operands[e.operand];
      const o = id === undefined ? undefined : g.nodes[id];
      if (o === undefined) throw new Error(`internal: fused_attention lambda reads missing operand ${e.operand}`);
      const slot = c.slotOf(e.operand);
      // A qload's operand 0 may be a view (fold-views: the projection read in head layout).
      if (o.op === 'view') return cast(computeType(e.dtype), load(slot, elementOffset(g, o, e.indices.map((ix) => cast('u32', tr(ix))), dimExpr), storageType(o.type.dtype)));
      let index: Expr = u32(0);
      let stride: Expr = u32(1);
      for (let k = o.type.shape.length - 1; k >= 0; k--) {
        const ix = e.indices[k];
        if (ix !== undefined) index = add(index, mul(cast('u32', tr(ix)), stride));
        stride = mul(stride, dimExpr(o.type.shape[k] ?? { terms: [] }));
      }
      return cast(computeType(e.dtype), load(slot, index, storageType(o.type.dtype)));
    }
    case 'apply': {
      if (e.op === 'score' && e.args.length === 0) {
        if (scoreVar === undefined) throw new Error('internal: score() outside the score lambda');
        return scoreVar;
      }
      const op = e.op;
      if (!Object.prototype.hasOwnProperty.call(scalarLowering, op)) throw new Error(`internal: fused_attention lambda applies non-elementwise op '${op}'`);
      const result = computeType(e.dtype);
      if (isLazyWhere(e)) {
        // RoPE's rotate-half `where(d < half, -x[d + half], x[d - half])` in a qload: only the
        // chosen branch reads (the other index is out of range), as in lower-fused.ts.
        const [c0, a1, a2] = e.args;
        if (c0 === undefined || a1 === undefined || a2 === undefined) throw new Error('internal: where needs 3 arguments');
        const cond = tr(c0);
        const name = c.kb.fresh('w');
        out.push({ kind: 'var', name, type: result, init: lit(result, 0) });
        const branch = (x: ScalarExpr): Stmt[] => {
          const stmts: Stmt[] = [];
          stmts.push({ kind: 'assign', name, value: cast(result, lambdaExpr(c, g, n, stmts, x, idx, scoreVar)) });
          return stmts;
        };
        out.push({ kind: 'if', cond, then: branch(a1), else: branch(a2) });
        return v(name, result);
      }
      let args = e.args.map(tr);
      // Weak typing: arithmetic on an index and a float value happens in the float type.
      if (['add', 'sub', 'mul', 'div', 'max', 'min', 'pow', 'mod'].includes(op)) args = args.map((a) => cast(result, a));
      if (['lt', 'le', 'gt', 'ge', 'eq', 'ne'].includes(op)) {
        const [a0, a1] = args;
        if (a0 !== undefined && a1 !== undefined && exprType(a0) !== exprType(a1)) args = [cast('f32', a0), cast('f32', a1)];
      }
      if (op === 'where') {
        const [c0, a1, a2] = args;
        if (c0 !== undefined && a1 !== undefined && a2 !== undefined) args = [c0, cast(result, a1), cast(result, a2)];
      }
      const lower = scalarLowering[op as keyof typeof scalarLowering];
      return c.kb.let(out, 'lam', lower(args, { result, attrs: {} }));
    }
  }
}

export function readBytesOf(g: Graph, n: Node, e: ScalarExpr | undefined): number {
  if (e === undefined) return 0;
  switch (e.kind) {
    case 'read': {
      const id = n.operands[e.operand];
      const o = id === undefined ? undefined : g.nodes[id];
      return (o === undefined ? 0 : storageBytes(o.type.dtype)) + e.indices.reduce((s, x) => s + readBytesOf(g, n, x), 0);
    }
    case 'apply': {
      // A lazy where (lambdaExpr) reads one branch: count the dearer one.
      const [c, a, b] = e.args;
      if (isLazyWhere(e) && c !== undefined) return readBytesOf(g, n, c) + Math.max(readBytesOf(g, n, a), readBytesOf(g, n, b));
      return e.args.reduce((s, x) => s + readBytesOf(g, n, x), 0);
    }
    default:
      return 0;
  }
}

/** Body of the prefill kernel (mode prefill) or the split-K kernel (mode split). */
function attentionKernel(inp: AttentionInput, s: AttentionSchedule, kind: Mode['kind'], tempId: number): AttentionKernelDraft {
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
  const shape = shapeOf(qT, keyType(kN, n), vN.type);
  const { dk, dv } = shape;
  const mode: Mode = kind === 'prefill' ? prefillMode(shape, s, inp.target) : { kind: 'split', rows: 1, heads: 1 };
  const G = mode.heads;
  const mask = lambdaOf(n, 'mask');
  const scoreL = lambdaOf(n, 'score');
  const scale = floatAttr(n, 'scale');
  const Br = mode.rows;
  const Bc = s.tileCols;
  const L = s.lanes;
  // RQ query rows per thread (register blocking: each K element loaded serves RQ rows, each V
  // element RQ rows); a row's L lanes stay one subgroup. Split-K decode has one row.
  const RQ = mode.kind === 'split' ? 1 : (s.rowsPerThread ?? 1);
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
  const vSlot = kb.slot('v', vN.id, 'read', storageType(vN.type.dtype));
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
        ? cast('f32', lambdaExpr({ kb, slotOf }, g, n, load1, qload, [b, hh, qq, d], undefined))
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
          ? cast('f32', lambdaExpr({ kb, slotOf }, g, n, load1, qload, [b, hh, qi, d], undefined))
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
  /** K's element (d) of key kk: the kload lambda's value (its statements go to `out`), or undefined to load operand 1. */
  const kloadAt = (out: Stmt[], kk: Expr, d: Expr): Expr | undefined =>
    kload === undefined ? undefined : cast('f32', lambdaExpr({ kb, slotOf }, g, n, out, kload, [b, hk, kk, d], undefined));
  const stageKV = (tile: string, width: number, slot: number, dtype: DType, node: Node, transposed: boolean, computed?: typeof kloadAt): void => {
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
  const kvAt = (tile: string, width: number, slot: number, node: Node, out: Stmt[], c: Expr, d: Expr, transposed: boolean, computed?: typeof kloadAt, staged = !isDirect): Expr => {
    if (staged) return arrayLoad(tile, transposed ? add(mul(d, u32(Bc)), c) : add(mul(c, u32(width)), d), 'f32');
    const kk = kb.let(out, 'kk', fmin(add(logic.k0, c), bin('sub', S, u32(1))));
    const x = computed?.(out, kk, d);
    if (x !== undefined) return kb.let(out, 'k_at', x);
    return cast('f32', load(slot, node.op === 'view' ? elementOffset(g, node, [b, hk, kk, d], dimExpr) : add(mul(add(kvRow0, kk), u32(width)), d), storageType(node.type.dtype)));
  };
  if (stageK) stageKV(ks, dk, kSlot, kN.type.dtype, kN, true, kloadAt);
  if (!isDirect) stageKV(vs, dv, vSlot, vN.type.dtype, vN, false);
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
    const vx = kvAt(vs, dv, vSlot, vN, vl, v(c, 'u32'), fmin(add(lane, mul(v(jj, 'u32'), u32(L))), u32(dv - 1)), false);
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
  const B_ = dimToSize(shape.B);
  const Hq_ = dimToSize(shape.Hq);
  const T_ = dimToSize(shape.T);
  const S_ = dimToSize(shape.S);
  // With qload: its reads per Q element (the chosen branch of a lazy where), Q computed once per element.
  const qBytes = qload === undefined ? dk * storageBytes(qN.type.dtype) : dk * readBytesOf(g, n, qload);
  const eK = storageBytes(kN.type.dtype);
  const lambdaBytes = readBytesOf(g, n, mask) + readBytesOf(g, n, scoreL);
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
  const kBytes = kload === undefined ? dk * eK : dk * readBytesOf(g, n, kload);
  const reads = [sMul(B_, Hq_, T_, sConst(qBytes)), sMul(B_, headGroups, qTiles, S_, sConst(kBytes * kPerTile + dv * eK * kvPerTile))];
  if (lambdaBytes > 0) reads.push(sMul(B_, Hq_, T_, S_, sConst(lambdaBytes)));
  const outBytes = mode.kind === 'prefill' ? sMul(B_, Hq_, T_, sConst(dv * storageBytes(n.type.dtype))) : sMul(B_, Hq_, T_, sConst(s.splits * (dv + 2) * 4));
  const lseWritten = mode.kind === 'prefill' ? lseBytes(inp) : undefined;
  const written = lseWritten === undefined ? outBytes : sAdd(outBytes, lseWritten);
  const dotFlops = sMul(B_, Hq_, T_, S_, sConst(2 * (dk + dv)));
  // kload's applies per K element, once per loading workgroup (per row group when per read).
  const kFlops = kload === undefined ? undefined : sMul(B_, headGroups, qTiles, S_, sConst(dk * countApplies(kload) * kPerTile));
  const traffic: Traffic = { bytesRead: sAdd(...reads), bytesWritten: written, flops: kFlops === undefined ? dotFlops : sAdd(dotFlops, kFlops) };
  const gridX = mode.kind === 'prefill' ? qTiles : sMul(sCeilDiv(T_, Br), sConst(s.splits));
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

/** The flash-decoding combine: out[row, j] = sum_p w_p acc_p[j] / sum_p w_p l_p, w_p = exp(m_p - max m). */
function combineKernel(inp: AttentionInput, s: AttentionSchedule, tempId: number): AttentionKernelDraft {
  const n = inp.node;
  const [B, Hq, T, dvD] = n.type.shape;
  const dv = dvD === undefined ? undefined : dimConstValue(dvD);
  if (B === undefined || Hq === undefined || T === undefined || dv === undefined) throw new Error('internal: fused_attention result must be [B, Hq, T, dv]');
  const kb = new KernelBuilder();
  const pSlot = kb.slot('part', tempId, 'read', 'f32');
  const oSlot = kb.slot('out', n.id, 'read_write', storageType(n.type.dtype));
  const wg = 64;
  const body: Stmt[] = [];
  const total = mul(mul(mul(dimExpr(B), dimExpr(Hq)), dimExpr(T)), u32(dv));
  const flat = kb.let(body, 'flat', add(mul(builtin('workgroup_id', 0), u32(wg)), builtin('local_id', 0)));
  const inner: Stmt[] = [];
  const row = kb.let(inner, 'row', div(flat, u32(dv)));
  const j = kb.let(inner, 'j', rem(flat, u32(dv)));
  const at = (p: Expr, k: Expr): Expr => add(mul(add(mul(row, u32(s.splits)), p), u32(dv + 2)), k);
  const m = kb.var(inner, 'm', 'f32', NEG_INF);
  const p1 = kb.fresh('p');
  inner.push(forLoop(p1, u32(0), u32(s.splits), u32(1), [{ kind: 'assign', name: m, value: fmax(v(m, 'f32'), load(pSlot, at(v(p1, 'u32'), u32(dv)), 'f32')) }]));
  const num = kb.var(inner, 'num', 'f32', f32(0));
  const den = kb.var(inner, 'den', 'f32', f32(0));
  const p2 = kb.fresh('p');
  const lb: Stmt[] = [];
  const mp = kb.let(lb, 'mp', load(pSlot, at(v(p2, 'u32'), u32(dv)), 'f32'));
  // A partition that saw only masked keys (m = -inf) weighs 0 (exp(-inf - -inf) would be NaN).
  const w = kb.let(lb, 'w', select(bin('eq', mp, NEG_INF), f32(0), call('exp', [bin('sub', mp, v(m, 'f32'))], 'f32')));
  lb.push({ kind: 'assign', name: num, value: bin('add', v(num, 'f32'), bin('mul', w, load(pSlot, at(v(p2, 'u32'), j), 'f32'))) });
  lb.push({ kind: 'assign', name: den, value: bin('add', v(den, 'f32'), bin('mul', w, load(pSlot, at(v(p2, 'u32'), u32(dv + 1)), 'f32'))) });
  inner.push(forLoop(p2, u32(0), u32(s.splits), u32(1), lb));
  inner.push({ kind: 'store', slot: oSlot, index: flat, value: cast(storageType(n.type.dtype), select(bin('eq', v(den, 'f32'), f32(0)), f32(0), bin('div', v(num, 'f32'), v(den, 'f32')))) });
  if (inp.lse !== undefined) {
    // The row's log-sum-exp: max over partitions m plus log of the rescaled sum, by column 0's thread.
    const lseSlot = kb.slot('lse', inp.lse.id, 'read_write', storageType(inp.lse.type.dtype));
    const value = cast(storageType(inp.lse.type.dtype), lseValue(v(m, 'f32'), v(den, 'f32')));
    inner.push({ kind: 'if', cond: bin('eq', j, u32(0)), then: [{ kind: 'store', slot: lseSlot, index: row, value }], else: [] });
  }
  body.push({ kind: 'if', cond: lt(flat, total), then: inner, else: [] });
  const elems = sMul(dimToSize(B), dimToSize(Hq), dimToSize(T), sConst(dv));
  const outWritten = sMul(elems, sConst(storageBytes(n.type.dtype)));
  const lseWritten = lseBytes(inp);
  return {
    op: 'fused_attention_combine',
    workgroupSize: [wg, 1, 1],
    grid: [sCeilDiv(elems, wg), sConst(1), sConst(1)],
    buffers: kb.buffers,
    shared: kb.shared,
    body,
    schedule: { kind: 'map', workgroupSize: wg },
    // Each output element reads every partition's max, sum and its own accumulator (max twice).
    traffic: { bytesRead: sMul(elems, sConst(s.splits * 4 * 4)), bytesWritten: lseWritten === undefined ? outWritten : sAdd(outWritten, lseWritten), flops: sMul(elems, sConst(s.splits * 6)) },
    bindings: kb.bindings,
  };
}

function headWidths(g: Graph, n: Node): { dk: number; dv: number } {
  const k = g.nodes[n.operands[1] ?? -1]; // k: its head width is dk (operand 0 may be a qload source)
  const kt = k === undefined ? undefined : keyType(k, n); // kshape when a kload computes K
  const vv = g.nodes[n.operands[2] ?? -1];
  const dk = kt === undefined ? undefined : dimConstValue(kt.shape[3] ?? { terms: [] });
  const dv = vv === undefined ? undefined : dimConstValue(vv.type.shape[3] ?? { terms: [] });
  if (dk === undefined || dv === undefined) throw new Error('internal: fused_attention needs constant head widths');
  return { dk, dv };
}

/**
 * The kernels of one fused_attention node: the prefill kernel when T can exceed `decodeMaxT`,
 * the split-K pair when T can be at most `decodeMaxT`, guarded by `when` where T is symbolic.
 */
export function lowerFusedAttention(inp: AttentionInput): AttentionLowering {
  const { dk, dv } = headWidths(inp.graph, inp.node);
  const s = inp.schedule ?? chooseAttentionSchedule(inp.target, dk, dv);
  const T = inp.node.type.shape[2];
  if (T === undefined) throw new Error('internal: fused_attention result must have rank 4');
  const tConst = dimConstValue(T);
  const tSize = dimToSize(T);
  /** A path for T in (lo, hi]: absent when T is a constant outside it; `when` keeps the bounds T may cross. */
  const path = (lo: number, hi: number): { readonly when?: StepCondition } | undefined => {
    if (tConst !== undefined) return tConst > lo && tConst <= hi ? {} : undefined;
    const conds: StepCondition[] = [];
    if (lo >= 1) conds.push({ size: tSize, op: '>', value: lo }); // T >= 1 always
    if (hi < Infinity) conds.push({ size: tSize, op: '<=', value: hi });
    const when = conds.reduceRight<StepCondition | undefined>((rest, c) => (rest === undefined ? c : { ...c, and: rest }), undefined);
    return when === undefined ? {} : { when };
  };
  const long = s.longPrefill;
  const shortPrefill = path(s.decodeMaxT, long?.aboveT ?? Infinity);
  const longPrefill = long === undefined ? undefined : path(Math.max(s.decodeMaxT, long.aboveT), Infinity);
  const decode = path(0, s.decodeMaxT);
  const hasDecode = decode !== undefined;
  const symbolic = tConst === undefined;
  const kernels: AttentionKernelDraft[] = [];
  const temps = new Map<number, KernelTemp>();
  // The tensor-core kernel (CUDA f16/bf16, lower-attention-mma.ts) takes every prefill T where the node qualifies.
  const anyPrefill = path(s.decodeMaxT, Infinity);
  const mmaKernel = inp.mma === undefined || anyPrefill === undefined ? undefined : mmaAttentionKernel(inp, inp.mma);
  if (mmaKernel !== undefined) kernels.push({ ...mmaKernel, ...anyPrefill });
  else {
    if (shortPrefill !== undefined) kernels.push({ ...attentionKernel(inp, s, 'prefill', -1), ...shortPrefill });
    if (long !== undefined && longPrefill !== undefined) kernels.push({ ...attentionKernel(inp, long.schedule, 'prefill', -1), ...longPrefill });
  }
  if (hasDecode) {
    const id = inp.firstTempId;
    const [B, Hq] = inp.node.type.shape;
    // Sized with min(T, decodeMaxT) rows so the buffer stays small when the decode steps are skipped.
    const rows = symbolic ? sMinConst(tSize, s.decodeMaxT) : tSize;
    temps.set(id, { dtype: 'f32', elements: sMul(dimToSize(B ?? { terms: [] }), dimToSize(Hq ?? { terms: [] }), rows, sConst(s.splits * (dv + 2))) });
    kernels.push({ ...attentionKernel(inp, s, 'split', id), ...decode }, { ...combineKernel(inp, s, id), ...decode });
  }
  return { kernels, temps };
}

// ---- host-side tile counter ------------------------------------------------------------------

export interface TileCounts {
  /** Query tiles x key tiles (all of them, per batch and head group: a GQA tile spans the G query heads of a KV head). */
  readonly tiles: number;
  /** Key tiles the loop iterates (inside the monotone bounds). */
  readonly iterated: number;
  /** Tiles whose K/V are loaded and scores computed (iterated and may be true). */
  readonly visited: number;
  /** Visited tiles that evaluate the mask per element. */
  readonly partial: number;
}

/**
 * Runs the prefill kernel's own block-sparsity statements (bounds per query tile, class per key
 * tile) on the host for concrete dims: how many tiles the kernel visits. `tensors` holds the
 * values (row-major) of the operands the mask reads free of q and k, by operand index as in
 * `read(i, ...)` (a per-batch length); needed only when the mask has such reads. `target`: the
 * limits the kernel is lowered for (they decide how many heads of a GQA group share a tile).
 */
export function countAttentionTiles(
  g: Graph,
  n: Node,
  dims: ReadonlyMap<string, number>,
  s: AttentionSchedule,
  tensors?: ReadonlyMap<number, ArrayLike<number>>,
  target: TargetLimits = lavapipeLimits,
): TileCounts {
  const operand = (i: number): Node => {
    const o = g.nodes[n.operands[i] ?? -1];
    if (o === undefined) throw new Error(`internal: fused_attention lacks operand ${i}`);
    return o;
  };
  const shape = shapeOf(queryType(operand(0), n), keyType(operand(1), n), operand(2).type);
  const kb = new KernelBuilder();
  const buffers = new Map<number, ArrayLike<number>>(); // slot -> values
  const slots = new Map<number, number>(); // operand -> slot
  const slotOf = (i: number): number => {
    let sl = slots.get(i);
    if (sl === undefined) {
      const values = tensors?.get(i);
      if (values === undefined) throw new Error(`countAttentionTiles: the mask reads operand ${i} per workgroup; pass its values`);
      const o = operand(i);
      sl = kb.slot(`t${i}`, o.id, 'read', storageType(o.type.dtype));
      slots.set(i, sl);
      buffers.set(sl, values);
    }
    return sl;
  };
  const uniformRead: UniformRead = (out, e, b, h) => lambdaExpr({ kb, slotOf }, g, n, out, e, [b, h, u32(0), u32(0)], undefined);
  const mode = prefillMode(shape, s, target);
  const logic = tileLogic(kb, shape, lambdaOf(n, 'mask'), s, mode, uniformRead);
  const val = (d: Dim): number => d.terms.reduce((acc, t) => acc + t.coef * t.vars.reduce((p, x) => p * (dims.get(x) ?? NaN), 1), 0);
  const [B, Hq, T, S] = [val(shape.B), val(shape.Hq), val(shape.T), val(shape.S)];
  const qTiles = Math.ceil(T / (mode.rows / mode.heads));
  const kTiles = Math.ceil(S / s.tileCols);
  let iterated = 0;
  let visited = 0;
  let partial = 0;
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < Hq / mode.heads; h++) {
      for (let qt = 0; qt < qTiles; qt++) {
        const env: EvalEnv = { vars: new Map(), uniforms: dims, workgroupId: [qt, h, b], buffers };
        evalLets([...logic.header, ...logic.bounds], env);
        const start = evalOf(logic.ktStart, env);
        const end = evalOf(logic.ktEnd, env);
        for (let kt = start; kt < end; kt++) {
          env.vars.set(logic.ktVar, kt);
          evalLets(logic.perTile, env);
          iterated++;
          if (evalOf(logic.mayTrue, env) !== 0) {
            visited++;
            if (evalOf(logic.mayFalse, env) !== 0) partial++;
          }
        }
      }
    }
  }
  return { tiles: B * (Hq / mode.heads) * qTiles * kTiles, iterated, visited, partial };
}

function evalOf(e: Expr, env: EvalEnv): number {
  const tmp: Stmt[] = [{ kind: 'let', name: '__x', type: exprType(e), init: e }];
  evalLets(tmp, env);
  return env.vars.get('__x') ?? NaN;
}
