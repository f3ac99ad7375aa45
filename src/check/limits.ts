// `limit T + P <= ctx`: bounds on run-time dims that a model declares (its context length). The
// left side is a polynomial in the dims (and constants), the right side a compile-time integer;
// `<` is `<= max - 1`. Checked when the graph is built (TFC219 for a malformed limit) and
// evaluated at run time by `tfc run` (TFC312 when the inputs' dims break one) and by `generate`
// through the host module's `context` (the first limit's bound).
import type { Expr, Module } from '../../grammar/ast.js';
import { type DiagnosticSink, diag } from '../diag/diagnostic.js';
import type { Span } from '../diag/span.js';
import { type Dim, dimAdd, dimConst, dimConstValue, dimEval, dimMul, dimSub, dimVar, dimVars, printDim } from '../base/dim.js';
import type { ConfigResult } from './config.js';

export interface DimLimit {
  /** The bounded dim expression (`T + P`). */
  readonly dims: Dim;
  /** The largest value it may take. */
  readonly max: number;
  /** As written, for messages: `T + P <= ctx`. */
  readonly text: string;
  readonly loc: Span;
}

/** A broken limit at given dim values, or undefined. */
export function brokenLimit(limits: readonly DimLimit[], dims: ReadonlyMap<string, number>): { limit: DimLimit; value: number } | undefined {
  for (const limit of limits) {
    const value = dimEval(limit.dims, dims);
    if (value !== undefined && value > limit.max) return { limit, value };
  }
  return undefined;
}

/** The limits of a module, with the config's constants; malformed ones are reported (TFC219) and left out. */
export function modelLimits(module: Module, config: ConfigResult, sink: DiagnosticSink): DimLimit[] {
  const out: DimLimit[] = [];
  const dims = new Set(config.dims);
  const toDim = (e: Expr): Dim | string => {
    switch (e.kind) {
      case 'num':
        return e.isInt ? dimConst(e.value) : `${e.value} is not an integer`;
      case 'name': {
        if (dims.has(e.name)) return dimVar(e.name);
        const bound = config.dimBindings.get(e.name);
        if (bound !== undefined) return dimConst(bound);
        const c = config.constants.get(e.name);
        if (c === undefined) return `'${e.name}' is no dim or config constant`;
        return c.isInt ? dimConst(c.value) : `'${e.name}' is ${c.value}, not an integer`;
      }
      case 'binary': {
        if (e.op !== '+' && e.op !== '-' && e.op !== '*') return `'${e.op}' is not allowed in a limit (only + - *)`;
        const l = toDim(e.left);
        if (typeof l === 'string') return l;
        const r = toDim(e.right);
        if (typeof r === 'string') return r;
        return e.op === '+' ? dimAdd(l, r) : e.op === '-' ? dimSub(l, r) : dimMul(l, r);
      }
      default:
        return 'a limit uses only dims, config constants, numbers and + - *';
    }
  };
  for (const item of module.items) {
    if (item.kind !== 'limit') continue;
    const b = item.bound;
    if (b.kind !== 'binary' || (b.op !== '<=' && b.op !== '<')) {
      sink.report(diag('TFC219', item.loc, 'a limit is a comparison `DIMS <= CONSTANT` (or `<`), e.g. `limit T + P <= ctx`'));
      continue;
    }
    const lhs = toDim(b.left);
    const rhs = toDim(b.right);
    if (typeof lhs === 'string' || typeof rhs === 'string') {
      sink.report(diag('TFC219', typeof lhs === 'string' ? b.left.loc : b.right.loc, `bad limit: ${typeof lhs === 'string' ? lhs : rhs}`));
      continue;
    }
    const bound = dimConstValue(rhs);
    if (bound === undefined) {
      sink.report(diag('TFC219', b.right.loc, `the right side of a limit must be a constant; it depends on ${dimVars(rhs).join(', ')}`));
      continue;
    }
    // A limit on dims bound by --set is still checked: it has no dims left, so it holds or it does not.
    const fixed = dimConstValue(lhs);
    const max = b.op === '<' ? bound - 1 : bound;
    if (fixed !== undefined && fixed > max) {
      sink.report(diag('TFC219', item.loc, `the limit does not hold: ${printDim(lhs)} = ${fixed} is over ${max}`));
      continue;
    }
    out.push({ dims: lhs, max, text: `${printDim(lhs)} ${b.op} ${bound}`, loc: item.loc });
  }
  return out;
}
