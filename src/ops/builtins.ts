// The surface builtins: the function names users write in .tfx, their parameters, and the
// catalog op each one lowers onto. The graph builder (src/check/builtin-calls.ts) binds call
// arguments by this table and lowers the call; the catalog gives every result type.
import type { OpDef } from './define.js';
import { getOp, opsInFamily } from './catalog.js';

/** How a builtin call becomes graph nodes (src/check/builtin-calls.ts has one case per kind). */
export type BuiltinLowering =
  | 'unary' // one catalog op, one operand
  | 'binary' // one catalog op, two operands with weak-typed scalars
  | 'max' // max(a, b) elementwise, max(x, axis=..) -> max_reduce
  | 'where'
  | 'gelu'
  | 'cast'
  | 'reduce'
  | 'softmax'
  | 'layernorm'
  | 'rmsnorm'
  | 'transpose' // -> permute
  | 'permute'
  | 'reshape'
  | 'split' // -> slice nodes, a tuple of results
  | 'concat'
  | 'slice'
  | 'arange'
  | 'tensors'; // one catalog op, every parameter a tensor (scatter)

export interface BuiltinParam {
  readonly name: string;
  /** A default makes the parameter optional; `null` means optional without a value. */
  readonly default?: number | string | boolean | null;
}

export interface Builtin {
  readonly name: string;
  readonly lowering: BuiltinLowering;
  /** The catalog op the call lowers onto (for `max`, the elementwise one; see reduceOp). */
  readonly op: string;
  readonly reduceOp?: string;
  readonly params: readonly BuiltinParam[];
  /** The first parameter takes every positional argument (concat). */
  readonly variadic?: boolean;
  readonly doc: string;
}

const p = (name: string, dflt?: number | string | boolean | null): BuiltinParam =>
  dflt === undefined ? { name } : { name, default: dflt };

const unary = (name: string, doc: string): Builtin => ({ name, lowering: 'unary', op: name, params: [p('x')], doc });
const binary = (name: string, doc: string): Builtin => ({
  name,
  lowering: 'binary',
  op: name,
  params: [p('a'), p('b')],
  doc,
});
const reduce = (name: string, op: string, doc: string): Builtin => ({
  name,
  lowering: 'reduce',
  op,
  params: [p('x'), p('axis', -1), p('keepdims', false)],
  doc,
});

/** The builtin of an elementwise op users call by name (its catalog entry's `builtin` doc): `exp(x)`, `pow(a, b)`. */
function fromCatalog(op: OpDef): Builtin | undefined {
  if (op.family !== 'elementwise' || op.builtin === undefined) return undefined;
  if (op.arity === 1) return unary(op.name, op.builtin);
  if (op.arity === 2) return binary(op.name, op.builtin);
  return undefined;
}

const table: readonly Builtin[] = [
  // neg exp log sqrt rsqrt tanh erf sin cos abs relu silu sigmoid, pow, min: from the catalog.
  ...opsInFamily('elementwise').flatMap((op) => fromCatalog(op) ?? []),
  { name: 'gelu', lowering: 'gelu', op: 'gelu', params: [p('x'), p('approx', 'erf')], doc: 'GELU; approx "tanh" or "erf"' },
  {
    name: 'max',
    lowering: 'max',
    op: 'max',
    reduceOp: 'max_reduce',
    params: [p('x'), p('b', null), p('axis', null), p('keepdims', false)],
    doc: 'max(a, b) per element; max(x, axis=..) reduces',
  },
  { name: 'where', lowering: 'where', op: 'where', params: [p('cond'), p('a'), p('b')], doc: 'cond ? a : b, with broadcasting' },
  { name: 'cast', lowering: 'cast', op: 'cast', params: [p('x'), p('to')], doc: 'dtype conversion (float -> int truncates)' },
  reduce('sum', 'sum', 'sum over axes'),
  reduce('mean', 'mean', 'mean over axes'),
  reduce('logsumexp', 'logsumexp', 'log(sum(exp(x))) over axes; all -inf gives -inf'),
  { name: 'softmax', lowering: 'softmax', op: 'softmax', params: [p('x'), p('axis', -1)], doc: 'softmax along an axis' },
  {
    name: 'layernorm',
    lowering: 'layernorm',
    op: 'layernorm',
    params: [p('x'), p('gamma'), p('beta'), p('eps', 1e-5)],
    doc: 'layer normalization over the last axis',
  },
  {
    name: 'rmsnorm',
    lowering: 'rmsnorm',
    op: 'rmsnorm',
    params: [p('x'), p('gamma'), p('eps', 1e-6)],
    doc: 'RMS normalization over the last axis',
  },
  {
    name: 'transpose',
    lowering: 'transpose',
    op: 'permute',
    params: [p('x'), p('a', null), p('b', null)],
    doc: 'swap the last two axes, or axes a and b',
  },
  { name: 'permute', lowering: 'permute', op: 'permute', params: [p('x'), p('perm')], doc: 'reorder axes' },
  { name: 'reshape', lowering: 'reshape', op: 'reshape', params: [p('x'), p('shape')], doc: 'new shape; one -1 is inferred' },
  {
    name: 'split',
    lowering: 'split',
    op: 'slice',
    params: [p('x'), p('parts'), p('axis', -1)],
    doc: 'n equal parts or parts of the given sizes, as several values',
  },
  { name: 'concat', lowering: 'concat', op: 'concat', params: [p('xs'), p('axis', 0)], variadic: true, doc: 'join along an axis' },
  {
    name: 'slice',
    lowering: 'slice',
    op: 'slice',
    params: [p('x'), p('start'), p('end'), p('axis', -1)],
    doc: 'x[start:end] along an axis (end exclusive)',
  },
  {
    name: 'scatter',
    lowering: 'tensors',
    op: 'scatter',
    params: [p('dest'), p('index'), p('values')],
    doc: 'dest with the elements at flat offsets `index` replaced by `values` (index and values of one shape); written in place when dest is not read later',
  },
  { name: 'arange', lowering: 'arange', op: 'arange', params: [p('a'), p('b', null)], doc: 'i32 positions: arange(n) or arange(start, end)' },
];

export const builtins: ReadonlyMap<string, Builtin> = new Map(table.map((b) => [b.name, b]));

export function getBuiltin(name: string): Builtin | undefined {
  // An op registered after load (registerOp) is callable by name too.
  const op = builtins.has(name) ? undefined : getOp(name);
  return builtins.get(name) ?? (op === undefined ? undefined : fromCatalog(op));
}
