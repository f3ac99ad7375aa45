// Block sparsity of the attention backward's dK/dV role (attention/backward.ts): the transpose of
// the forward's (attention/sparsity.ts tileLogic). A workgroup owns one key tile
// [k0, min(k0 + Bc, S) - 1] of a KV head; for each query head of the group, conjuncts of the
// mask linear in q bound the query tiles it iterates (axisBounds on axis 2: a causal mask starts
// at the key tile's first key, a window of W ends W rows after its last), and each query tile's
// mask interval says whether the tile is dead (skipped), full (mask not evaluated) or partial; a
// key tile the mask hides from every query (past a per-row length) iterates no query tile.
// The kernel and the host counter (attention/count.ts countBackwardTiles) run these statements.
import type { ScalarExpr } from '../../graph/ir.js';
import { type Expr, type Stmt, add, bin, builtin, cast, div, lit, mul, select, u32, unary, v } from '../ir/ir.js';
import type { KernelBuilder } from '../ir/builder.js';
import { dimExpr } from '../lower/dims.js';
import type { AttentionShape } from './node.js';
import { fmax, fmin, i32 } from './exprs.js';
import { type TileRanges, type UniformRead, axisBounds, intervalOf } from './sparsity.js';

export interface KvTileLogic {
  /** Per workgroup: k0, the KV head, the batch, the key range. */
  readonly header: Stmt[];
  readonly k0: Expr;
  readonly hk: Expr;
  readonly b: Expr;
  /** The loop over the group's query heads: `ghVar` in [0, group). */
  readonly ghVar: string;
  /** Per query head: h and the query-tile bounds [qtStart, qtEnd). */
  readonly perHead: Stmt[];
  readonly h: Expr;
  readonly qtStart: Expr;
  readonly qtEnd: Expr;
  readonly qtVar: string;
  /** Per query tile: q0 and its class. */
  readonly perTile: Stmt[];
  readonly q0: Expr;
  readonly mayTrue: Expr;
  readonly mayFalse: Expr;
}

export function kvTileLogic(kb: KernelBuilder, shape: AttentionShape, mask: ScalarExpr | undefined, Br: number, Bc: number, read: UniformRead): KvTileLogic {
  const T = dimExpr(shape.T);
  const S = dimExpr(shape.S);
  const header: Stmt[] = [];
  const k0 = kb.let(header, 'k0', mul(builtin('workgroup_id', 0), u32(Bc)));
  const hk = builtin('workgroup_id', 1);
  const b = kb.let(header, 'b', builtin('workgroup_id', 2));
  const kLo = kb.let(header, 'k_lo', cast('i32', k0));
  const kHi = kb.let(header, 'k_hi', bin('sub', cast('i32', fmin(add(k0, u32(Bc)), S)), i32(1)));
  const ghVar = kb.fresh('gh');
  const perHead: Stmt[] = [];
  const h = kb.let(perHead, 'h', add(mul(hk, shape.group), v(ghVar, 'u32')));
  const ranges: TileRanges = { b: cast('i32', b), hLo: cast('i32', h), hHi: cast('i32', h), headsVary: false, qLo: i32(0), qHi: i32(0), kLo, kHi, uniformRead: (o, e) => read(o, e, b, h) };
  // Query tiles [qt_start, qt_end): outside, a conjunct linear in q is false for every key of the tile.
  const qr = axisBounds(kb, perHead, mask, ranges, 2, T, 'q');
  const qFirst = kb.let(perHead, 'q_first', cast('u32', fmax(qr.start, i32(0))));
  const qLast = kb.let(perHead, 'q_last', cast('u32', fmax(fmin(qr.end, cast('i32', T)), i32(0))));
  const qtStart = kb.let(perHead, 'qt_start', div(qFirst, u32(Br)));
  // A key tile no query row sees at all (past a per-row length `k < len[b]`): no query tiles.
  let none: Expr = bin('le', qLast, qFirst);
  if (mask !== undefined) {
    const all = intervalOf(kb, perHead, mask, { ...ranges, qLo: i32(0), qHi: bin('sub', cast('i32', T), i32(1)) });
    if (all.kind === 'bool') none = bin('or', none, unary('not', kb.let(perHead, 'key_tile_live', all.mayTrue)));
  }
  const qtEnd = kb.let(perHead, 'qt_end', select(none, qtStart, div(add(qLast, u32(Br - 1)), u32(Br))));
  const qtVar = kb.fresh('qt');
  const perTile: Stmt[] = [];
  const q0 = kb.let(perTile, 'q0', mul(v(qtVar, 'u32'), u32(Br)));
  let mayTrue: Expr = lit('bool', 1);
  let mayFalse: Expr = lit('bool', 0);
  if (mask !== undefined) {
    const qLo = kb.let(perTile, 'q_lo', cast('i32', q0));
    const qHi = kb.let(perTile, 'q_hi', bin('sub', cast('i32', fmin(add(q0, u32(Br)), T)), i32(1)));
    const iv = intervalOf(kb, perTile, mask, { ...ranges, qLo, qHi });
    const bi = iv.kind === 'bool' ? iv : { mayTrue: lit('bool', 1), mayFalse: lit('bool', 1) };
    mayTrue = kb.let(perTile, 'tile_live', bi.mayTrue);
    mayFalse = kb.let(perTile, 'tile_partial', bi.mayFalse);
  }
  return { header, k0, hk, b, ghVar, perHead, h, qtStart, qtEnd, qtVar, perTile, q0, mayTrue, mayFalse };
}
