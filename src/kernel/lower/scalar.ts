// The catalog's per-element lowerings (each elementwise op's `lower`, src/ops/elementwise.ts) as
// kernel IR: this file implements their ScalarBuilder over kernel-IR expressions and converts
// operands by each op's typing class. It names no op: an op added to the catalog lowers here as is.
import type { Attrs } from '../../graph/ir.js';
import type { DType } from '../../graph/types.js';
import type { OpDef, ScalarBuilder } from '../../ops/define.js';
import { getOp } from '../../ops/catalog.js';
import { computeType } from '../ir/storage.js';
import { type Expr, type ScalarType, bin, call, cast, exprType, lit, select, unary } from '../ir/ir.js';

/** An elementwise catalog op with a kernel lowering, or undefined. */
export function elementwiseOp(op: string): (OpDef & Required<Pick<OpDef, 'lower' | 'typing'>>) | undefined {
  const def = getOp(op);
  if (def === undefined || def.family !== 'elementwise' || def.lower === undefined || def.typing === undefined) return undefined;
  return { ...def, lower: def.lower, typing: def.typing };
}

export function isElementwiseOp(op: string): boolean {
  return elementwiseOp(op) !== undefined;
}

/**
 * `result` is the compute type; `dtype` the graph dtype when it is narrower: an i8 result is
 * computed as i32, so a conversion into it (`cast(x, i8)`) saturates to -128..127 right here,
 * not only when stored, and later arithmetic in the same body sees the i8 value.
 */
function builder(result: ScalarType, dtype?: DType): ScalarBuilder<Expr> {
  return {
    lit: (like, value) => lit(exprType(like), value),
    unary: (op, x) => unary(op, x),
    binary: (op, a, b) => bin(op, a, b),
    call: (fn, args) => call(fn, args, exprType(args[0] ?? lit(result, 0))),
    select: (c, a, b) => select(c, a, b),
    toResult: (x) => (dtype === 'i8' ? cast(result, cast('i8', x)) : cast(result, x)),
    isInt: (x) => exprType(x) === 'i32',
  };
}

/** One element of op `op` (catalog lowering) on operands already converted (operandTypes). */
export function lowerScalarOp(op: string, args: readonly Expr[], result: ScalarType, attrs: Attrs, dtype?: DType): Expr {
  const def = elementwiseOp(op);
  if (def === undefined) throw new Error(`internal: '${op}' has no per-element lowering`);
  return def.lower(builder(result, dtype), args, attrs);
}

/** The type each operand of a graph node is converted to before the per-element function. */
export function operandTypes(op: string, operands: readonly DType[], result: DType): ScalarType[] {
  switch (elementwiseOp(op)?.typing) {
    case 'select':
      return [computeType('bool'), computeType(result), computeType(result)];
    case 'own':
      return operands.map(computeType);
    case 'compare': {
      const t = computeType(operands[0] ?? result);
      return operands.map(() => t);
    }
    default:
      return operands.map(() => computeType(result));
  }
}
