// Dims and shapes as u32 kernel-IR expressions over the uniforms (used by every lowering).
import { type Dim, dimConst, dimConstValue } from '../../base/dim.js';
import { type Expr, type ScalarType, add, lit, mul, sub, u32, uniform } from '../ir/ir.js';

/** A dim polynomial as a u32 expression over uniforms; negative terms are subtracted. */
export function dimExpr(d: Dim): Expr {
  let pos: Expr = u32(0);
  let neg: Expr = u32(0);
  for (const t of d.terms) {
    let p: Expr = u32(Math.abs(t.coef));
    for (const name of t.vars) p = mul(p, uniform(name));
    if (t.coef > 0) pos = add(pos, p);
    else neg = add(neg, p);
  }
  return sub(pos, neg);
}

export const productExpr = (dims: readonly Dim[]): Expr => dims.reduce<Expr>((acc, d) => mul(acc, dimExpr(d)), u32(1));

/** Row-major strides (as u32 expressions) of a shape. */
export function strides(shape: readonly Dim[]): Expr[] {
  const out: Expr[] = new Array<Expr>(shape.length);
  let s: Expr = u32(1);
  for (let k = shape.length - 1; k >= 0; k--) {
    out[k] = s;
    s = mul(s, dimExpr(shape[k] ?? dimConst(1)));
  }
  return out;
}

export const isOne = (d: Dim): boolean => dimConstValue(d) === 1;

export function zeroOf(t: ScalarType): Expr {
  return t === 'bool' ? lit('bool', 0) : lit(t, 0);
}
