// Binding a call's arguments to a function's parameters: dtype and rank checks, and unification
// of the generic dims (`fn attend[N, M](q: f32[B, h, N, dh], ...)`) with the argument shapes.
// Used by the model checker when it inlines a call (src/check/build.ts).
import type { FnItem } from '../../grammar/ast.js';
import type { Span } from '../diag/span.js';
import { type TensorType, printType } from '../graph/types.js';
import { type Dim, dimConstValue, dimDiv, dimEquals, dimSub, dimSubstitute, dimVar, dimVars } from '../base/dim.js';
import type { ArgValue } from './builtin-calls.js';
import type { Checker, Scope } from './checker.js';
import { type Value, describe, dimValue, num } from './values.js';

const GENERIC = '?'; // prefix of a generic dim while it is being solved; no source name has it

interface Equation {
  readonly declared: Dim; // may mention ?N
  readonly actual: Dim;
}

/** Solves `declared == actual` for one unknown generic when the declared dim is linear in it. */
function solveOne(eq: Equation, sub: Map<string, Dim>): boolean {
  const d = dimSubstitute(eq.declared, sub);
  const unknowns = dimVars(d).filter((v) => v.startsWith(GENERIC));
  const [v] = unknowns;
  if (v === undefined || unknowns.length !== 1) return false;
  const withV = d.terms.filter((t) => t.vars.includes(v));
  const [term] = withV;
  if (term === undefined || withV.length !== 1 || term.vars.length !== 1) return false;
  const rest = dimSub(d, { terms: [term] });
  const value = dimDiv(dimSub(eq.actual, rest), { terms: [{ coef: term.coef, vars: [] }] });
  if (value === undefined) return false;
  const c = dimConstValue(value);
  if (c !== undefined && c < 0) return false;
  sub.set(v, value);
  return true;
}

/** `f32[B,heads,N,dh]` with solved generics substituted and unsolved ones shown by name. */
function showDeclared(t: TensorType, sub: ReadonlyMap<string, Dim>): string {
  const shown = new Map(sub);
  for (const d of t.shape) for (const v of dimVars(d)) if (v.startsWith(GENERIC) && !shown.has(v)) shown.set(v, dimVar(v.slice(1)));
  return printType({ dtype: t.dtype, shape: t.shape.map((d) => dimSubstitute(d, shown)) });
}

/**
 * Checks the arguments of a call against the parameters and returns the scope the body runs in
 * (parameters and generic dims bound), or undefined after reporting TFC213/TFC217/TFC110.
 */
export function unifyCall(b: Checker, fn: FnItem, args: readonly ArgValue[], loc: Span): Scope | undefined {
  const fname = fn.name.name;
  const sig: Scope = { locals: new Map(), fn };
  const seen = new Set<string>();
  for (const g of fn.generics) {
    if (seen.has(g.name)) b.error('TFC102', g.loc, `generic dim '${g.name}' of '${fname}' is declared twice`);
    seen.add(g.name);
    sig.locals.set(g.name, { value: { kind: 'dim', dim: dimVar(GENERIC + g.name) }, kind: 'generic' });
  }
  for (const p of fn.params) {
    if (seen.has(p.name.name)) b.error('TFC102', p.name.loc, `parameter '${p.name.name}' of '${fname}' is declared twice`);
    else if (b.config.constants.has(p.name.name)) b.error('TFC102', p.name.loc, `parameter '${p.name.name}' of '${fname}' has the name of a config constant`);
    seen.add(p.name.name);
  }

  const sub = new Map<string, Dim>();
  const equations: { eq: Equation; arg: number }[] = [];
  const paramTypes: (TensorType | undefined)[] = [];
  const values: Value[] = [];
  let ok = true;

  fn.params.forEach((p, i) => {
    const a = args[i];
    if (a === undefined) return;
    if (p.type.kind === 'index') {
      paramTypes.push(undefined);
      const n = b.compileTimeInt(a.value, a.loc, `argument '${p.name.name}' of '${fname}' (an index)`);
      if (n === undefined) ok = false;
      values.push(num(n ?? 0, true));
      return;
    }
    const t = b.evalType(p.type, sig);
    paramTypes.push(t);
    if (t === undefined) {
      ok = false;
      values.push(a.value);
      return;
    }
    let v = a.value;
    if (v.kind !== 'tensor' && t.shape.length === 0) v = b.scalarAsTensor(v, t.dtype, a.loc, `argument '${p.name.name}' of '${fname}'`);
    values.push(v);
    if (v.kind === 'poison') {
      ok = false;
      return;
    }
    if (v.kind !== 'tensor' || v.type.dtype !== t.dtype || v.type.shape.length !== t.shape.length) {
      b.error('TFC213', a.loc, `argument '${p.name.name}' of '${fname}' is ${v.kind === 'tensor' ? printType(v.type) : describe(v)}, the parameter is ${showDeclared(t, sub)}`, [
        { message: 'parameter declared', loc: p.loc },
      ]);
      ok = false;
      return;
    }
    const actual = v.type.shape;
    t.shape.forEach((d, k) => {
      const ad = actual[k];
      if (ad !== undefined) equations.push({ eq: { declared: d, actual: ad }, arg: i });
    });
  });
  if (!ok) return undefined;

  for (let progress = true; progress; ) {
    progress = false;
    for (const { eq } of equations) if (solveOne(eq, sub)) progress = true;
  }

  const unbound = fn.generics.filter((g) => !sub.has(GENERIC + g.name));
  if (unbound.length > 0) {
    b.error('TFC217', loc, `cannot infer the generic dim${unbound.length > 1 ? 's' : ''} ${unbound.map((g) => `'${g.name}'`).join(', ')} of '${fname}' from the arguments`, [
      { message: `'${fname}' declared`, loc: fn.name.loc },
    ]);
    return undefined;
  }

  const badArgs = new Set<number>();
  for (const { eq, arg } of equations) {
    if (!dimEquals(dimSubstitute(eq.declared, sub), eq.actual)) badArgs.add(arg);
  }
  for (const i of badArgs) {
    const p = fn.params[i];
    const a = args[i];
    const t = paramTypes[i];
    const v = values[i];
    if (p === undefined || a === undefined || t === undefined || v === undefined || v.kind !== 'tensor') continue;
    b.error('TFC213', a.loc, `argument '${p.name.name}' of '${fname}' is ${printType(v.type)}, the parameter is ${showDeclared(t, sub)}`, [
      { message: 'parameter declared', loc: p.loc },
    ]);
  }
  if (badArgs.size > 0) return undefined;

  const scope: Scope = { locals: new Map(), fn };
  for (const g of fn.generics) {
    const d = sub.get(GENERIC + g.name);
    if (d !== undefined) scope.locals.set(g.name, { value: dimValue(d), kind: 'generic' });
  }
  fn.params.forEach((p, i) => {
    const v = values[i];
    if (v !== undefined) scope.locals.set(p.name.name, { value: v, kind: p.type.kind === 'index' ? 'index-param' : 'param' });
  });
  return scope;
}
