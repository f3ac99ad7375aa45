// Helpers over lambda bodies (ScalarExpr) shared by the passes and the kernel lowering.
import { type Dim, dimConst } from '../base/dim.js';
import type { ScalarExpr } from './ir.js';

/** Replaces `index(k)` by `at[k]`: substitutes a lambda's parameters, or composes index maps. */
export function substituteIndex(e: ScalarExpr, at: readonly ScalarExpr[]): ScalarExpr {
  switch (e.kind) {
    case 'index':
      return at[e.axis] ?? e;
    case 'dim':
    case 'const':
      return e;
    case 'read':
      return { ...e, indices: e.indices.map((x) => substituteIndex(x, at)) };
    case 'apply':
      return { ...e, args: e.args.map((x) => substituteIndex(x, at)) };
  }
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
  if (e === undefined) return false;
  switch (e.kind) {
    case 'index':
    case 'dim':
    case 'const':
      return false;
    case 'read':
      return true;
    case 'apply':
      return e.args.some(hasRead);
  }
}
