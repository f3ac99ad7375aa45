// Symbolic reverse mode over lambda bodies (the `grid` op and the ops that reuse its semantics:
// fused_map, view): each elementwise `apply` is differentiated by its catalog entry's
// `scalarVjp`, the same rule graph nodes use, so a lambda's derivative is again a lambda. The
// cotangent of an operand is then the transpose of each `read`'s index map: a sum over the
// grid axes a read does not use (the common case: reads at plain indices), or, for any other
// index expression (`j % half`, `t + P`, a data-dependent index), a mask-and-sum over the grid.
import { type Dim, dimConstValue, dimEquals } from '../base/dim.js';
import { InternalError } from '../diag/diagnostic.js';
import type { Attrs, ScalarExpr } from '../graph/ir.js';
import { idx, scalarExprDtype, substituteIndex } from '../graph/lambda.js';
import { type DType, type TensorType, isFloat } from '../graph/types.js';
import type { DiffBuilder, GradBuilder, VjpArgs } from './define.js';
import { registry } from './registry.js';

/** A lambda op has no derivative rule: the transform reports it as a user error (TFC316). */
export class LambdaGradError extends Error {
  constructor(
    readonly op: string,
    /** Why, when it is not a lambda apply without a rule (a vjp that declines a form it cannot differentiate). */
    message?: string,
  ) {
    super(message ?? `'${op}' inside a lambda has no derivative rule`);
  }
}

const isConst = (e: ScalarExpr, v: number): boolean => e.kind === 'const' && e.value === v;

/** DiffBuilder over lambda expressions; folds x*1, 1*x, x+0, 0+x (derivatives are full of them). */
export const lambdaDiff: DiffBuilder<ScalarExpr> = {
  op: (name, ...args) => lambdaDiff.opWith(name, {}, ...args),
  opWith(name, attrs, ...args) {
    const [a, b] = args;
    if (a !== undefined && b !== undefined && args.length === 2) {
      if (name === 'mul' && isConst(b, 1)) return a;
      if (name === 'mul' && isConst(a, 1)) return b;
      if (name === 'add' && isConst(b, 0)) return a;
      if (name === 'add' && isConst(a, 0)) return b;
    }
    const op = registry.get(name);
    if (op === undefined || op.family !== 'elementwise') throw new InternalError(`lambda derivative applies '${name}', not an elementwise op`);
    const t = op.infer(args.map((x) => ({ dtype: scalarExprDtype(x), shape: [] })), attrs);
    if ('code' in t) throw new InternalError(`lambda derivative: ${t.message}`);
    const own = Object.keys(attrs).length > 0 ? { attrs } : {};
    return { kind: 'apply', op: name, args, dtype: t.dtype, ...own };
  },
  lit: (like, value) => ({ kind: 'const', value, dtype: scalarExprDtype(like) }),
  cast: (x, dtype) => (scalarExprDtype(x) === dtype ? x : { kind: 'apply', op: 'cast', args: [x], dtype }),
  dtype: scalarExprDtype,
};

/** One float `read` of an operand in a body, with the cotangent that reaches it (an expression over the grid indices). */
export interface ReadAdjoint {
  readonly operand: number;
  readonly indices: readonly ScalarExpr[];
  readonly adjoint: ScalarExpr;
}

/**
 * Reverse mode over `body` (a tree: every occurrence of a read is its own site) seeded with `g`,
 * the cotangent of the body's value: the adjoint of every float read of an operand `wants`.
 */
export function readAdjoints(body: ScalarExpr, g: ScalarExpr, wants: (operand: number) => boolean): ReadAdjoint[] {
  const out: ReadAdjoint[] = [];
  const walk = (e: ScalarExpr, adj: ScalarExpr): void => {
    if (e.kind === 'read') {
      if (isFloat(e.dtype) && wants(e.operand)) out.push({ operand: e.operand, indices: e.indices, adjoint: adj });
      return;
    }
    if (e.kind !== 'apply' || !isFloat(e.dtype)) return;
    const op = registry.get(e.op);
    if (op?.scalarVjp === undefined) {
      // Only an argument that carries a wanted read needs a derivative.
      if (e.args.some((a) => hasWantedRead(a, wants))) throw new LambdaGradError(e.op);
      return;
    }
    const parts = op.scalarVjp(lambdaDiff, e.args, e, adj, e.attrs ?? {});
    e.args.forEach((a, i) => {
      const p = parts[i];
      if (p !== undefined && isFloat(scalarExprDtype(a))) walk(a, p);
    });
  };
  walk(body, g);
  return out;
}

function hasWantedRead(e: ScalarExpr, wants: (operand: number) => boolean): boolean {
  if (e.kind === 'read') return isFloat(e.dtype) && wants(e.operand);
  return e.kind === 'apply' && e.args.some((a) => hasWantedRead(a, wants));
}

/** Index `i` of a read as a plain grid axis, `const 0` on a size-1 operand axis, or neither. */
function directAxes(indices: readonly ScalarExpr[], operand: TensorType, grid: readonly Dim[]): (number | 'one')[] | undefined {
  const used = new Set<number>();
  const out: (number | 'one')[] = [];
  for (let i = 0; i < indices.length; i++) {
    const e = indices[i];
    const d = operand.shape[i];
    if (e === undefined || d === undefined) return undefined;
    if (e.kind === 'const' && e.value === 0 && dimConstValue(d) === 1) out.push('one');
    else if (e.kind === 'index' && !used.has(e.axis) && grid[e.axis] !== undefined && dimEquals(grid[e.axis] as Dim, d)) {
      used.add(e.axis);
      out.push(e.axis);
    } else return undefined;
  }
  return out;
}

function lambdaAttrs(shape: readonly Dim[], params: readonly string[], body: ScalarExpr): Attrs {
  return { shape: { kind: 'dims', value: shape }, body: { kind: 'lambda', params, body } };
}

/**
 * The cotangent of operand `k` of a lambda over `shape` from the adjoints of its reads: grids
 * over the lambda's operands plus the result's cotangent, summed back to the operand.
 */
function operandCotangent(g: GradBuilder, operands: readonly number[], shape: readonly Dim[], params: readonly string[], sites: readonly ReadAdjoint[], t: TensorType): number {
  // Sites with the same index expressions share one grid: their adjoints add.
  const groups = new Map<string, { indices: readonly ScalarExpr[]; adjoint: ScalarExpr }>();
  for (const s of sites) {
    const key = JSON.stringify(s.indices);
    const prev = groups.get(key);
    groups.set(key, { indices: s.indices, adjoint: prev === undefined ? s.adjoint : lambdaDiff.op('add', prev.adjoint, s.adjoint) });
  }
  const parts = [...groups.values()].map(({ indices, adjoint }) => {
    const direct = directAxes(indices, t, shape);
    if (direct === undefined) return maskedSum(g, operands, shape, params, indices, adjoint, t);
    const value = g.node('grid', operands, lambdaAttrs(shape, params, adjoint));
    const kept = direct.filter((a): a is number => a !== 'one');
    const dropped = shape.map((_, a) => a).filter((a) => !kept.includes(a));
    const summed = dropped.length === 0 ? value : g.node('sum', [value], { axes: { kind: 'ints', value: dropped }, keepdims: { kind: 'bool', value: false } });
    // `summed` holds the kept axes in grid order; the operand wants them in its own order.
    const sorted = [...kept].sort((x, y) => x - y);
    const perm = kept.map((a) => sorted.indexOf(a));
    const permuted = perm.every((p, i) => p === i) ? summed : g.node('permute', [summed], { perm: { kind: 'ints', value: perm } });
    return kept.length === t.shape.length ? permuted : g.node('reshape', [permuted], { shape: { kind: 'dims', value: t.shape } });
  });
  return parts.reduce((acc, p) => g.op('add', acc, p));
}

/**
 * Any index map: a grid over [operand axes, grid axes] holding the adjoint where the read lands
 * on that operand element (0 elsewhere), summed over the grid axes. O(operand x grid) work: the
 * general case, for reads the sum-over-axes form cannot express.
 */
function maskedSum(g: GradBuilder, operands: readonly number[], shape: readonly Dim[], params: readonly string[], indices: readonly ScalarExpr[], adjoint: ScalarExpr, t: TensorType): number {
  const q = t.shape.length;
  const shift = (e: ScalarExpr): ScalarExpr => substituteIndex(e, shape.map((_, a) => idx(q + a)));
  let hit: ScalarExpr | undefined;
  indices.forEach((e, i) => {
    const eq = lambdaDiff.op('eq', shift(e), idx(i));
    hit = hit === undefined ? eq : lambdaDiff.op('and', hit, eq);
  });
  const adj = shift(adjoint);
  const body = hit === undefined ? adj : lambdaDiff.op('where', hit, adj, lambdaDiff.lit(adj, 0));
  const names = new Set(params);
  const outer = t.shape.map((_, i) => {
    let n = `o${i}`;
    while (names.has(n)) n = `_${n}`;
    return n;
  });
  const big = g.node('grid', operands, lambdaAttrs([...t.shape, ...shape], [...outer, ...params], body));
  const axes = shape.map((_, a) => q + a);
  return axes.length === 0 ? big : g.node('sum', [big], { axes: { kind: 'ints', value: axes }, keepdims: { kind: 'bool', value: false } });
}

/**
 * The vjp of an op whose value is a lambda over `shape` reading its operands (grid, fused_map,
 * view): reverse mode through the body, then each wanted operand's reads transposed.
 */
export function lambdaVjp(g: GradBuilder, a: VjpArgs, params: readonly string[], body: ScalarExpr, shape: readonly Dim[]): (number | undefined)[] {
  const dtype: DType = scalarExprDtype(body);
  const seed: ScalarExpr = { kind: 'read', operand: a.x.length, indices: shape.map((_, i) => idx(i)), dtype };
  const sites = readAdjoints(body, seed, (k) => a.needs[k] === true);
  const operands = [...a.x, a.dy];
  return a.x.map((x, k) => {
    if (a.needs[k] !== true) return undefined;
    const mine = sites.filter((s) => s.operand === k);
    // Read only through non-differentiable paths (a comparison, an index): a true zero.
    return mine.length === 0 ? g.zeros(g.type(x)) : operandCotangent(g, operands, shape, params, mine, g.type(x));
  });
}
