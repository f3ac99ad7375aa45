// Per-element semantics of the catalog's elementwise ops as target-neutral kernel-IR expressions
// (scalarLowering: a missing op is a compile error), and the operand types each op computes in.
import type { Attrs } from '../graph/ir.js';
import type { DType } from '../graph/types.js';
import { computeType } from './storage.js';
import { type Expr, type ScalarType, and, bin, call, cast, exprType, lit, select, unary } from './ir.js';

export type ElementwiseOp =
  | 'neg' | 'exp' | 'log' | 'sqrt' | 'rsqrt' | 'tanh' | 'erf' | 'sin' | 'cos' | 'abs' | 'relu' | 'silu' | 'sigmoid' | 'not'
  | 'gelu' | 'cast'
  | 'add' | 'sub' | 'mul' | 'div' | 'mod' | 'pow' | 'max' | 'min'
  | 'eq' | 'ne' | 'lt' | 'le' | 'gt' | 'ge' | 'and' | 'or'
  | 'where';

interface ScalarCtx {
  readonly result: ScalarType;
  readonly attrs: Attrs;
}
type ScalarLower = (args: readonly Expr[], ctx: ScalarCtx) => Expr;

const arg = (args: readonly Expr[], i: number): Expr => {
  const a = args[i];
  if (a === undefined) throw new Error(`internal: missing operand ${i}`);
  return a;
};
const fl = (e: Expr, value: number): Expr => lit(exprType(e), value);
const sigmoidOf = (x: Expr): Expr => bin('div', fl(x, 1), bin('add', fl(x, 1), call('exp', [unary('neg', x)], exprType(x))));
const math1 = (fn: 'exp' | 'log' | 'sqrt' | 'rsqrt' | 'tanh' | 'erf' | 'sin' | 'cos' | 'abs'): ScalarLower => (a) =>
  call(fn, [arg(a, 0)], exprType(arg(a, 0)));
const binary = (op: 'add' | 'sub' | 'mul' | 'div' | 'eq' | 'ne' | 'lt' | 'le' | 'gt' | 'ge' | 'and' | 'or'): ScalarLower => (a) =>
  bin(op, arg(a, 0), arg(a, 1));

/** One entry per catalog elementwise op: a missing op is a compile error here. */
export const scalarLowering: Record<ElementwiseOp, ScalarLower> = {
  neg: (a) => unary('neg', arg(a, 0)),
  exp: math1('exp'),
  log: math1('log'),
  sqrt: math1('sqrt'),
  rsqrt: math1('rsqrt'),
  tanh: math1('tanh'),
  erf: math1('erf'),
  sin: math1('sin'),
  cos: math1('cos'),
  abs: math1('abs'),
  relu: (a) => call('max', [arg(a, 0), fl(arg(a, 0), 0)], exprType(arg(a, 0))),
  sigmoid: (a) => sigmoidOf(arg(a, 0)),
  silu: (a) => bin('mul', arg(a, 0), sigmoidOf(arg(a, 0))),
  not: (a) => unary('not', arg(a, 0)),
  gelu: (a, ctx) => {
    const x = arg(a, 0);
    const t = exprType(x);
    const approx = ctx.attrs['approx'];
    const isTanh = approx !== undefined && approx.kind === 'str' && approx.value === 'tanh';
    // tanh: 0.5*x*(1 + tanh(sqrt(2/pi)*(x + 0.044715*x^3)));  erf: 0.5*x*(1 + erf(x/sqrt(2)))
    const inner = isTanh
      ? call('tanh', [bin('mul', lit(t, Math.sqrt(2 / Math.PI)), bin('add', x, bin('mul', lit(t, 0.044715), bin('mul', x, bin('mul', x, x)))))], t)
      : call('erf', [bin('mul', x, lit(t, Math.SQRT1_2))], t);
    return bin('mul', bin('mul', lit(t, 0.5), x), bin('add', lit(t, 1), inner));
  },
  cast: (a, ctx) => cast(ctx.result, arg(a, 0)),
  add: binary('add'),
  sub: binary('sub'),
  mul: binary('mul'),
  div: binary('div'),
  mod: (a) => {
    // Floor modulo (Python `%`): the result takes the divisor's sign.
    const x = arg(a, 0);
    const y = arg(a, 1);
    const t = exprType(x);
    if (t === 'i32') {
      const r = bin('rem', x, y);
      const fix = and(bin('ne', r, lit(t, 0)), bin('ne', bin('lt', r, lit(t, 0)), bin('lt', y, lit(t, 0))));
      return select(fix, bin('add', r, y), r);
    }
    return bin('sub', x, bin('mul', y, call('floor', [bin('div', x, y)], t)));
  },
  pow: (a) => call('pow', [arg(a, 0), arg(a, 1)], exprType(arg(a, 0))),
  max: (a) => call('max', [arg(a, 0), arg(a, 1)], exprType(arg(a, 0))),
  min: (a) => call('min', [arg(a, 0), arg(a, 1)], exprType(arg(a, 0))),
  eq: binary('eq'),
  ne: binary('ne'),
  lt: binary('lt'),
  le: binary('le'),
  gt: binary('gt'),
  ge: binary('ge'),
  and: binary('and'),
  or: binary('or'),
  where: (a) => select(arg(a, 0), arg(a, 1), arg(a, 2)),
};

export function isElementwiseOp(op: string): op is ElementwiseOp {
  return Object.prototype.hasOwnProperty.call(scalarLowering, op);
}

const comparisonOps: ReadonlySet<string> = new Set(['eq', 'ne', 'lt', 'le', 'gt', 'ge']);

/** The type each operand is converted to before the per-element function. */
export function operandTypes(op: string, operands: readonly DType[], result: DType): ScalarType[] {
  if (op === 'where') return [computeType('bool'), computeType(result), computeType(result)];
  if (op === 'cast') return operands.map(computeType);
  if (comparisonOps.has(op)) {
    const t = computeType(operands[0] ?? result);
    return operands.map(() => t);
  }
  return operands.map(() => computeType(result));
}
