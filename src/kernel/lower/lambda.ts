// The one translator from lambda bodies (ScalarExpr) to kernel-IR expressions: grid bodies
// (lower/map.ts), fused_map bodies and matmul epilogues (lower/fused.ts) and fused_attention's
// score/mask/qload/kload lambdas (attention/lambdas.ts). The rules are the same for all:
// an index or dim is an i32, a constant a literal of its compute type, an apply the catalog op's
// scalar lowering with weak typing (an i32 index meeting a float computes in the float type), and
// a `where(index < bound, ..)` with a read in a branch runs as if/else so the other branch's
// out-of-range read never happens (graph/lambda.ts isLazyWhere). What differs per user is a hook:
// how a read resolves (buffer slot, offset, views, folded constants), the 0-ary values (`acc()`,
// `score()`), and whether results are let-bound and equal subexpressions shared.
import type { Dim } from '../../base/dim.js';
import type { ScalarExpr } from '../../graph/ir.js';
import { isLazyWhere } from '../../graph/lambda.js';
import { type Expr, type Stmt, cast, exprType, lit, u32, v } from '../ir/ir.js';
import { dimExpr } from './dims.js';
import { elementwiseOp, lowerScalarOp } from './scalar.js';
import { computeType } from '../ir/storage.js';

export type ReadExpr = ScalarExpr & { readonly kind: 'read' };
export type ApplyExpr = ScalarExpr & { readonly kind: 'apply' };

export interface LambdaHooks {
  /** Fresh names and let statements (ir/builder.ts KernelBuilder). */
  readonly kb: { let(out: Stmt[], prefix: string, init: Expr): Expr; fresh(prefix: string): string };
  /** The lambda's parameters, u32 or i32 (each `index(k)` is cast to i32). */
  readonly idx: readonly Expr[];
  /** A dim as a u32 expression; default lower/dims.ts dimExpr. */
  readonly dim?: (d: Dim) => Expr;
  /** The value of a read in its compute type; `at` translates an index expression into `out`. */
  read(e: ReadExpr, at: (x: ScalarExpr) => Expr, out: Stmt[]): Expr;
  /** A 0-ary value the fused op computes (`acc()`, `score()`); undefined when `op` is none here. */
  nullary?(e: ApplyExpr): Expr | undefined;
  /** Let-bind each op's result with this prefix; absent: nested expressions. */
  readonly bindApply?: string;
  /**
   * Share equal subexpressions (by this key, the printed text) within a block: a value computed
   * once is reused (gelu's tanh form uses its argument four times). A lazy where's branches see a
   * copy (their lets are not visible after the `if`).
   */
  readonly shareKey?: (e: ScalarExpr) => string;
  /**
   * More `where`s to run as if/else than isLazyWhere's (fused attention's K/V loads: a paged
   * cache's `where(new slot, new[..], pool[table[..], ..])` then reads one of the two per element).
   */
  readonly lazyWhere?: (e: ApplyExpr) => boolean;
}


/** `e` as a kernel expression; statements it needs (lets, a lazy where's if/else) go to `out`. */
export function translateScalar(e: ScalarExpr, out: Stmt[], hooks: LambdaHooks): Expr {
  return tr(e, out, hooks.shareKey === undefined ? undefined : new Map(), hooks);
}

function tr(x: ScalarExpr, out: Stmt[], memo: Map<string, Expr> | undefined, h: LambdaHooks): Expr {
  const key = memo === undefined || h.shareKey === undefined ? undefined : h.shareKey(x);
  const hit = key === undefined ? undefined : memo?.get(key);
  if (hit !== undefined) return hit;
  const sub = (y: ScalarExpr): Expr => tr(y, out, memo, h);
  let r: Expr;
  switch (x.kind) {
    case 'index':
      r = cast('i32', h.idx[x.axis] ?? u32(0));
      break;
    case 'dim':
      r = cast('i32', (h.dim ?? dimExpr)(x.dim));
      break;
    case 'const':
      r = lit(computeType(x.dtype), x.value);
      break;
    case 'read':
      r = h.read(x, sub, out);
      break;
    case 'apply':
      r = applyOf(x, out, memo, h, sub);
      break;
  }
  if (key !== undefined) memo?.set(key, r);
  return r;
}

function applyOf(x: ApplyExpr, out: Stmt[], memo: Map<string, Expr> | undefined, h: LambdaHooks, sub: (y: ScalarExpr) => Expr): Expr {
  const result = computeType(x.dtype);
  if (x.args.length === 0) {
    const value = h.nullary?.(x);
    if (value === undefined) throw new Error(`internal: '${x.op}()' has no value in this lambda`);
    return value;
  }
  if (isLazyWhere(x) || h.lazyWhere?.(x) === true) {
    const [c, a, b] = x.args;
    if (c === undefined || a === undefined || b === undefined) throw new Error('internal: where needs 3 arguments');
    const cond = sub(c);
    const name = h.kb.fresh('w');
    out.push({ kind: 'var', name, type: result, init: lit(result, 0) });
    const branch = (y: ScalarExpr): Stmt[] => {
      const stmts: Stmt[] = [];
      stmts.push({ kind: 'assign', name, value: cast(result, tr(y, stmts, memo === undefined ? undefined : new Map(memo), h)) });
      return stmts;
    };
    out.push({ kind: 'if', cond, then: branch(a), else: branch(b) });
    return v(name, result);
  }
  const def = elementwiseOp(x.op);
  if (def === undefined) throw new Error(`internal: lambda applies non-elementwise op '${x.op}'`);
  let args = x.args.map(sub);
  // Operands converted by the op's typing class (src/ops/define.ts OperandTyping): weak typing,
  // so arithmetic on an index and a float value happens in the float type.
  if (def.typing === 'result') args = args.map((a) => cast(result, a));
  if (def.typing === 'compare') {
    const [a0, a1] = args;
    if (a0 !== undefined && a1 !== undefined && exprType(a0) !== exprType(a1)) args = [cast('f32', a0), cast('f32', a1)];
  }
  if (def.typing === 'select') {
    const [c0, a1, a2] = args;
    if (c0 !== undefined && a1 !== undefined && a2 !== undefined) args = [c0, cast(result, a1), cast(result, a2)];
  }
  const value = lowerScalarOp(x.op, args, result, x.attrs ?? {}, x.dtype);
  return h.bindApply === undefined ? value : h.kb.let(out, h.bindApply, value);
}
