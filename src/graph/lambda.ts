// Helpers over lambda bodies (ScalarExpr) shared by the passes and the kernel lowering: the
// walkers (map, fold, some) that the per-purpose rewrites are written with, the constructors the
// passes build bodies from, and the `where` that runs as if/else.
import { type Dim, dimConst, dimConstValue } from '../base/dim.js';
import type { DType } from './types.js';
import type { ScalarExpr } from './ir.js';

/** A read's indices or an apply's arguments; nothing for the leaves. */
export function scalarChildren(e: ScalarExpr): readonly ScalarExpr[] {
  return e.kind === 'read' ? e.indices : e.kind === 'apply' ? e.args : [];
}

/**
 * Rewrites `e` top-down. `f(x, rec)` returns x's replacement (the walk does not descend into it;
 * `rec` rewrites a subexpression with the same `f`), or undefined to keep x and rewrite its
 * children (a read's indices, an apply's arguments).
 */
export function mapScalarExpr(e: ScalarExpr, f: (x: ScalarExpr, rec: (y: ScalarExpr) => ScalarExpr) => ScalarExpr | undefined): ScalarExpr {
  const rec = (y: ScalarExpr): ScalarExpr => mapScalarExpr(y, f);
  const r = f(e, rec);
  if (r !== undefined) return r;
  switch (e.kind) {
    case 'read':
      return { ...e, indices: e.indices.map(rec) };
    case 'apply':
      return { ...e, args: e.args.map(rec) };
    default:
      return e;
  }
}

/** Folds `e` bottom-up: `f(x, children)` gets x and its children's results, in order. */
export function foldScalarExpr<T>(e: ScalarExpr, f: (x: ScalarExpr, children: readonly T[]) => T): T {
  return f(e, scalarChildren(e).map((c) => foldScalarExpr(c, f)));
}

/** Whether some node of `e` (itself included) satisfies `pred`; stops at the first, pre-order. */
export function someScalarExpr(e: ScalarExpr, pred: (x: ScalarExpr) => boolean): boolean {
  return pred(e) || scalarChildren(e).some((c) => someScalarExpr(c, pred));
}

// Constructors (the passes' lambda bodies).
export const idx = (axis: number): ScalarExpr => ({ kind: 'index', axis });
export const i32 = (value: number): ScalarExpr => ({ kind: 'const', value, dtype: 'i32' });
export const ap = (op: string, dtype: DType, ...args: ScalarExpr[]): ScalarExpr => ({ kind: 'apply', op, args, dtype });
/** A dim as an i32 value: a literal when it is a constant. */
export const dimValue = (d: Dim): ScalarExpr => {
  const c = dimConstValue(d);
  return c !== undefined ? i32(c) : { kind: 'dim', dim: d };
};

const isConst = (e: ScalarExpr, v: number): boolean => e.kind === 'const' && e.value === v;
/** i32 index arithmetic (add, sub, mul, div, mod) with the identities folded: `x + 0` is `x`, `x * 1` is `x`, `x % 1` is 0. */
export function indexOp(op: 'add' | 'sub' | 'mul' | 'div' | 'mod', a: ScalarExpr, b: ScalarExpr): ScalarExpr {
  if (op === 'add' && isConst(a, 0)) return b;
  if ((op === 'add' || op === 'sub') && isConst(b, 0)) return a;
  if (op === 'mul' && (isConst(a, 0) || isConst(b, 0))) return i32(0);
  if (op === 'mul' && isConst(a, 1)) return b;
  if ((op === 'mul' || op === 'div') && isConst(b, 1)) return a;
  if (op === 'mod' && isConst(b, 1)) return i32(0);
  return { kind: 'apply', op, args: [a, b], dtype: 'i32' };
}

/** Replaces `index(k)` by `at[k]`: substitutes a lambda's parameters, or composes index maps. */
export function substituteIndex(e: ScalarExpr, at: readonly ScalarExpr[]): ScalarExpr {
  return mapScalarExpr(e, (x) => (x.kind === 'index' ? (at[x.axis] ?? x) : undefined));
}

/** `cond` as "index(axis) < bound" with a dim or constant bound (a concat's branch test), else undefined. */
export function indexBelow(cond: ScalarExpr): { axis: number; bound: Dim } | undefined {
  if (cond.kind !== 'apply' || cond.op !== 'lt') return undefined;
  const [a, b] = cond.args;
  if (a === undefined || a.kind !== 'index' || b === undefined) return undefined;
  if (b.kind === 'dim') return { axis: a.axis, bound: b.dim };
  if (b.kind === 'const' && Number.isInteger(b.value)) return { axis: a.axis, bound: dimConst(b.value) };
  return undefined;
}

/** A `where` run as if/else: an `index < bound` test with a read in a branch (the kernels run only the chosen branch: a concat from fuse-elementwise reads each operand only in its own range). */
export function isLazyWhere(e: ScalarExpr): boolean {
  if (e.kind !== 'apply' || e.op !== 'where') return false;
  const [c, a, b] = e.args;
  return c !== undefined && indexBelow(c) !== undefined && (hasRead(a) || hasRead(b));
}

/** Whether a lambda body reads an operand anywhere. */
export function hasRead(e: ScalarExpr | undefined): boolean {
  return e !== undefined && someScalarExpr(e, (x) => x.kind === 'read');
}

/** The dtype of a lambda expression: indices and dims are i32. */
export function scalarExprDtype(e: ScalarExpr): DType {
  switch (e.kind) {
    case 'index':
    case 'dim':
      return 'i32';
    case 'const':
    case 'read':
    case 'apply':
      return e.dtype;
  }
}
