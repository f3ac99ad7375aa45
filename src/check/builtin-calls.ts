// Lowering of builtin calls (table in src/ops/builtins.ts) to catalog ops: binds positional and
// named arguments, folds calls on compile-time scalars, normalizes axes (non-negative, sorted),
// infers reshape's -1 and split sizes by exact dim division. Called by the model checker (build.ts) through the Checker interface.
import type { Ident } from '../../grammar/ast.js';
import { closestName } from '../diag/diagnostic.js';
import type { Span } from '../diag/span.js';
import { type Attrs, attr } from '../graph/ir.js';
import { type DType, dtypes, printType } from '../graph/types.js';
import { getOp } from '../ops/catalog.js';
import type { Builtin } from '../ops/builtins.js';
import { type Dim, dimAdd, dimConst, dimDiv, dimEquals, dimMul, printDim } from '../base/dim.js';
import type { Checker } from './checker.js';
import { type Value, describe, num, poison } from './values.js';

export interface ArgValue {
  readonly name?: Ident;
  readonly value: Value;
  readonly loc: Span;
}

interface Bound {
  readonly values: ReadonlyMap<string, { value: Value; loc: Span }>;
  readonly rest: readonly ArgValue[]; // variadic positional arguments
}

/** Binds arguments to the builtin's parameters (TFC104 for counts, TFC105 for names). */
function bindArgs(b: Checker, fn: Builtin, args: readonly ArgValue[], loc: Span): Bound | undefined {
  const values = new Map<string, { value: Value; loc: Span }>();
  const rest: ArgValue[] = [];
  const positional = args.filter((a) => a.name === undefined);
  const params = fn.variadic === true ? fn.params.slice(1) : fn.params;
  if (fn.variadic === true) {
    rest.push(...positional);
  } else {
    if (positional.length > params.length) {
      b.error('TFC104', loc, `${fn.name} takes at most ${params.length} argument(s), got ${positional.length}`);
      return undefined;
    }
    positional.forEach((a, i) => {
      const p = params[i];
      if (p !== undefined) values.set(p.name, { value: a.value, loc: a.loc });
    });
  }
  let ok = true;
  for (const a of args) {
    if (a.name === undefined) continue;
    const p = params.find((q) => q.name === a.name?.name);
    if (p === undefined || values.has(p.name)) {
      const near = closestName(a.name.name, params.map((q) => q.name));
      b.error(
        'TFC105',
        a.name.loc,
        p === undefined
          ? `${fn.name} has no parameter '${a.name.name}'${near !== undefined ? `; did you mean '${near}'?` : ''}`
          : `argument '${a.name.name}' of ${fn.name} is given twice`,
      );
      ok = false;
      continue;
    }
    values.set(p.name, { value: a.value, loc: a.loc });
  }
  if (!ok) return undefined;
  if (fn.variadic === true && rest.length === 0) {
    b.error('TFC104', loc, `${fn.name} needs at least one tensor`);
    return undefined;
  }
  for (const p of params) {
    if (values.has(p.name)) continue;
    if (p.default === undefined) {
      const required = params.filter((q) => q.default === undefined).length;
      b.error('TFC104', loc, `${fn.name} takes ${required} argument(s) or more, got ${positional.length} (missing '${p.name}')`);
      return undefined;
    }
    if (p.default === null) continue;
    const d = p.default;
    const v: Value = typeof d === 'number' ? num(d) : typeof d === 'string' ? { kind: 'str', value: d } : { kind: 'bool', value: d };
    values.set(p.name, { value: v, loc });
  }
  return { values, rest };
}

function normAxis(b: Checker, axis: number, rank: number, loc: Span, what: string): number | undefined {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) {
    b.error('TFC203', loc, `${what}: axis ${axis} is out of range for rank ${rank}`);
    return undefined;
  }
  return a;
}

export function lowerBuiltin(b: Checker, fn: Builtin, args: readonly ArgValue[], loc: Span): Value {
  const bound = bindArgs(b, fn, args, loc);
  if (bound === undefined) return poison;
  if ([...bound.values.values()].some((v) => v.value.kind === 'poison') || bound.rest.some((a) => a.value.kind === 'poison')) {
    return poison;
  }
  const arg = (name: string): { value: Value; loc: Span } | undefined => bound.values.get(name);
  const need = (name: string): { value: Value; loc: Span } => arg(name) ?? { value: poison, loc };

  /** A tensor argument; a scalar alone becomes a const of its natural dtype. */
  const tensor = (name: string): Value => {
    const a = need(name);
    if (a.value.kind === 'tensor' || a.value.kind === 'poison') return a.value;
    if (a.value.kind === 'num' || a.value.kind === 'bool') return b.defaultTensor(a.value, a.loc, `${fn.name}`);
    return b.error('TFC110', a.loc, `${fn.name} expects a tensor for '${name}', got ${describe(a.value)}`);
  };
  const int = (name: string): number | undefined => {
    const a = need(name);
    return b.compileTimeInt(a.value, a.loc, `'${name}' of ${fn.name}`);
  };
  const float = (name: string): number | undefined => {
    const a = need(name);
    if (a.value.kind === 'num') return a.value.value;
    if (a.value.kind !== 'poison') b.error('TFC110', a.loc, `'${name}' of ${fn.name} must be a number, got ${describe(a.value)}`);
    return undefined;
  };
  const node = (op: string, operands: readonly Value[], attrs: Attrs = {}): Value => b.addNode(op, operands, attrs, loc);

  switch (fn.lowering) {
    case 'tensors':
      return node(fn.op, fn.params.map((q) => tensor(q.name)));
    case 'unary': {
      const x = need('x');
      if (x.value.kind === 'num') return foldScalar(b, fn.op, [x.value], loc);
      return node(fn.op, [tensor('x')]);
    }
    case 'binary':
      return elementwise2(b, fn.op, need('a'), need('b'), loc);
    case 'max': {
      const second = arg('b');
      if (second !== undefined) {
        const axisArg = args.find((a) => a.name?.name === 'axis' || a.name?.name === 'keepdims');
        if (axisArg?.name !== undefined) return b.error('TFC105', axisArg.name.loc, `max(a, b) is elementwise and takes no '${axisArg.name.name}'; use max(x, axis=..) to reduce`);
        return elementwise2(b, fn.op, need('x'), second, loc);
      }
      return reduce(b, fn.reduceOp ?? 'max_reduce', tensor('x'), arg('axis') ?? { value: num(-1), loc }, need('keepdims'), loc, fn.name);
    }
    case 'reduce':
      return reduce(b, fn.op, tensor('x'), need('axis'), need('keepdims'), loc, fn.name);
    case 'where': {
      const c = need('cond');
      const x = need('a');
      const y = need('b');
      const cond = c.value.kind === 'tensor' ? c.value : b.scalarAsTensor(c.value, 'bool', c.loc, 'where condition');
      const dtype: DType =
        x.value.kind === 'tensor' ? x.value.type.dtype : y.value.kind === 'tensor' ? y.value.type.dtype : naturalDtype(x.value, y.value);
      return node('where', [cond, b.scalarAsTensor(x.value, dtype, x.loc, 'where'), b.scalarAsTensor(y.value, dtype, y.loc, 'where')]);
    }
    case 'gelu': {
      const a = need('approx');
      if (a.value.kind !== 'str') return b.error('TFC110', a.loc, `gelu approx must be "tanh" or "erf", got ${describe(a.value)}`);
      return node('gelu', [tensor('x')], { approx: attr.str(a.value.value) });
    }
    case 'cast': {
      const to = need('to');
      const d = to.value.kind === 'dtype' ? to.value.dtype : to.value.kind === 'str' && (dtypes as readonly string[]).includes(to.value.value) ? (to.value.value as DType) : undefined;
      if (d === undefined) return b.error('TFC110', to.loc, `cast needs a dtype (${dtypes.join(', ')}), got ${describe(to.value)}`);
      return node('cast', [tensor('x')], { to: attr.dtype(d) });
    }
    case 'softmax': {
      const x = tensor('x');
      const axis = int('axis');
      if (x.kind !== 'tensor' || axis === undefined) return poison;
      const a = normAxis(b, axis, x.type.shape.length, need('axis').loc, `softmax of ${printType(x.type)}`);
      return a === undefined ? poison : node('softmax', [x], { axis: attr.int(a) });
    }
    case 'layernorm': {
      const eps = float('eps');
      const x = tensor('x');
      return eps === undefined ? poison : node('layernorm', [x, tensor('gamma'), tensor('beta')], { eps: attr.float(eps) });
    }
    case 'rmsnorm': {
      const eps = float('eps');
      const x = tensor('x');
      return eps === undefined ? poison : node('rmsnorm', [x, tensor('gamma')], { eps: attr.float(eps) });
    }
    case 'transpose': {
      const x = tensor('x');
      if (x.kind !== 'tensor') return poison;
      const rank = x.type.shape.length;
      const hasA = arg('a') !== undefined;
      const hasB = arg('b') !== undefined;
      if (hasA !== hasB) return b.error('TFC104', loc, 'transpose takes 1 argument (swap the last two axes) or 3 (swap axes a and b)');
      if (!hasA && rank < 2) return b.error('TFC203', loc, `transpose needs rank >= 2, got ${printType(x.type)}`);
      const ia = hasA ? int('a') : rank - 2;
      const ib = hasB ? int('b') : rank - 1;
      if (ia === undefined || ib === undefined) return poison;
      const na = normAxis(b, ia, rank, hasA ? need('a').loc : loc, `transpose of ${printType(x.type)}`);
      const nb = normAxis(b, ib, rank, hasB ? need('b').loc : loc, `transpose of ${printType(x.type)}`);
      if (na === undefined || nb === undefined) return poison;
      const perm = Array.from({ length: rank }, (_, i) => (i === na ? nb : i === nb ? na : i));
      return node('permute', [x], { perm: attr.ints(perm) });
    }
    case 'permute': {
      const x = tensor('x');
      const p = need('perm');
      const ints = intList(b, p.value, p.loc, 'permute order');
      if (x.kind !== 'tensor' || ints === undefined) return poison;
      const rank = x.type.shape.length;
      // Negative axes count from the end; anything else invalid is the catalog's TFC210.
      const perm = ints.map((i) => (i < 0 && i >= -rank ? i + rank : i));
      return node('permute', [x], { perm: attr.ints(perm) });
    }
    case 'reshape':
      return reshape(b, tensor('x'), need('shape'), loc);
    case 'split':
      return split(b, tensor('x'), need('parts'), need('axis'), loc);
    case 'concat': {
      const xs = bound.rest.map((a) => (a.value.kind === 'tensor' ? a.value : b.error('TFC110', a.loc, `concat expects tensors, got ${describe(a.value)}`)));
      const axis = int('axis');
      const [first] = xs;
      if (first === undefined || first.kind !== 'tensor' || axis === undefined || xs.some((x) => x.kind !== 'tensor')) return poison;
      const a = normAxis(b, axis, first.type.shape.length, need('axis').loc, `concat of ${printType(first.type)}`);
      return a === undefined ? poison : node('concat', xs, { axis: attr.int(a) });
    }
    case 'slice': {
      const x = tensor('x');
      const s = need('start');
      const e = need('end');
      const start = b.toSignedDim(s.value, s.loc);
      const end = b.toSignedDim(e.value, e.loc);
      const axis = int('axis');
      if (x.kind !== 'tensor' || start === undefined || end === undefined || axis === undefined) return poison;
      const a = normAxis(b, axis, x.type.shape.length, need('axis').loc, `slice of ${printType(x.type)}`);
      return a === undefined ? poison : node('slice', [x], { axis: attr.int(a), start: attr.dim(start), end: attr.dim(end) });
    }
    case 'arange': {
      const first = need('a');
      const second = arg('b');
      const s = second === undefined ? dimConst(0) : b.toSignedDim(first.value, first.loc);
      const e = second === undefined ? b.toSignedDim(first.value, first.loc) : b.toSignedDim(second.value, second.loc);
      if (s === undefined || e === undefined) return poison;
      return node('arange', [], { start: attr.dim(s), end: attr.dim(e) });
    }
  }
}

function naturalDtype(a: Value, b: Value): DType {
  if (a.kind === 'bool' && b.kind === 'bool') return 'bool';
  if (a.kind === 'num' && b.kind === 'num' && a.isInt && b.isInt) return 'i32';
  return 'f32';
}

/** A call of an elementwise op on compile-time numbers, folded with the catalog's scalar function. */
function foldScalar(b: Checker, op: string, xs: readonly Extract<Value, { kind: 'num' }>[], loc: Span): Value {
  const def = getOp(op);
  if (def?.scalar === undefined) return b.error('TFC110', loc, `${op} cannot be applied to compile-time numbers`);
  const v = def.scalar(...xs.map((x) => x.value));
  // Ops that keep integers integral: max, min, abs, neg, relu.
  const keepsInt = op === 'max' || op === 'min' || op === 'abs' || op === 'neg' || op === 'relu';
  return num(v, keepsInt && xs.every((x) => x.isInt));
}

function elementwise2(b: Checker, op: string, x: { value: Value; loc: Span }, y: { value: Value; loc: Span }, loc: Span): Value {
  if (x.value.kind === 'num' && y.value.kind === 'num') return foldScalar(b, op, [x.value, y.value], loc);
  const dtype: DType = x.value.kind === 'tensor' ? x.value.type.dtype : y.value.kind === 'tensor' ? y.value.type.dtype : naturalDtype(x.value, y.value);
  const a = b.scalarAsTensor(x.value, dtype, x.loc, op);
  const c = b.scalarAsTensor(y.value, dtype, y.loc, op);
  return b.addNode(op, [a, c], {}, loc);
}

function intList(b: Checker, v: Value, loc: Span, what: string): number[] | undefined {
  const items = v.kind === 'list' ? v.items : [v];
  const out: number[] = [];
  for (const i of items) {
    const n = b.compileTimeInt(i, loc, `each entry of ${what}`);
    if (n === undefined) return undefined;
    out.push(n);
  }
  return out;
}

function reduce(
  b: Checker,
  op: string,
  x: Value,
  axisArg: { value: Value; loc: Span },
  keepdimsArg: { value: Value; loc: Span },
  loc: Span,
  name: string,
): Value {
  const axes = intList(b, axisArg.value, axisArg.loc, `the axes of ${name}`);
  if (keepdimsArg.value.kind !== 'bool') {
    return b.error('TFC110', keepdimsArg.loc, `keepdims of ${name} must be true or false, got ${describe(keepdimsArg.value)}`);
  }
  if (x.kind !== 'tensor' || axes === undefined) return poison;
  const rank = x.type.shape.length;
  const norm: number[] = [];
  for (const a of axes) {
    const n = normAxis(b, a, rank, axisArg.loc, `${name} of ${printType(x.type)}`);
    if (n === undefined) return poison;
    if (norm.includes(n)) return b.error('TFC203', axisArg.loc, `${name}: axis ${a} is given twice`);
    norm.push(n);
  }
  norm.sort((p, q) => p - q);
  return b.addNode(op, [x], { axes: attr.ints(norm), keepdims: attr.bool(keepdimsArg.value.value) }, loc);
}

function reshape(b: Checker, x: Value, shapeArg: { value: Value; loc: Span }, loc: Span): Value {
  const v = shapeArg.value;
  if (v.kind !== 'list') return b.error('TFC110', shapeArg.loc, `reshape needs a list of dims [d1, d2, ...], got ${describe(v)}`);
  const dims: (Dim | undefined)[] = [];
  let inferAt = -1;
  for (const [i, item] of v.items.entries()) {
    if (item.kind === 'num' && item.isInt && item.value === -1) {
      if (inferAt >= 0) return b.error('TFC205', shapeArg.loc, 'reshape can infer one -1, not two');
      inferAt = i;
      dims.push(undefined);
      continue;
    }
    const d = b.toDim(item, shapeArg.loc);
    if (d === undefined) return poison;
    dims.push(d);
  }
  if (x.kind !== 'tensor') return poison;
  if (inferAt >= 0) {
    const total = x.type.shape.reduce((acc, d) => dimMul(acc, d), dimConst(1));
    const known = dims.reduce<Dim>((acc, d) => (d === undefined ? acc : dimMul(acc, d)), dimConst(1));
    const q = dimDiv(total, known);
    if (q === undefined) {
      return b.error('TFC205', loc, `cannot reshape ${printType(x.type)} to [${dims.map((d) => (d === undefined ? '-1' : printDim(d, true))).join(',')}]: ${printDim(total)} elements do not divide by ${printDim(known)}`);
    }
    dims[inferAt] = q;
  }
  return b.addNode('reshape', [x], { shape: attr.dims(dims.filter((d): d is Dim => d !== undefined)) }, loc);
}

function split(b: Checker, x: Value, partsArg: { value: Value; loc: Span }, axisArg: { value: Value; loc: Span }, loc: Span): Value {
  const axisN = b.compileTimeInt(axisArg.value, axisArg.loc, 'the axis of split');
  if (x.kind !== 'tensor' || axisN === undefined) return poison;
  const axis = normAxis(b, axisN, x.type.shape.length, axisArg.loc, `split of ${printType(x.type)}`);
  if (axis === undefined) return poison;
  const size = x.type.shape[axis];
  if (size === undefined) return poison;
  const parts = partsArg.value;
  let sizes: Dim[];
  if (parts.kind === 'list') {
    sizes = [];
    for (const item of parts.items) {
      const d = b.toDim(item, partsArg.loc);
      if (d === undefined) return poison;
      sizes.push(d);
    }
    const sum = sizes.reduce((acc, d) => dimAdd(acc, d), dimConst(0));
    if (!dimEquals(sum, size)) {
      return b.error('TFC209', partsArg.loc, `split sizes add up to ${printDim(sum)}, but axis ${axis} of ${printType(x.type)} is ${printDim(size)}`);
    }
  } else {
    const n = b.compileTimeInt(parts, partsArg.loc, 'the number of split parts');
    if (n === undefined) return poison;
    if (n < 1) return b.error('TFC209', partsArg.loc, `split needs at least 1 part, got ${n}`);
    const each = dimDiv(size, dimConst(n));
    if (each === undefined) {
      return b.error('TFC209', partsArg.loc, `cannot split axis ${axis} of ${printType(x.type)} (size ${printDim(size)}) into ${n} equal parts`);
    }
    sizes = Array.from({ length: n }, () => each);
  }
  const out: Value[] = [];
  let start = dimConst(0);
  for (const s of sizes) {
    const end = dimAdd(start, s);
    out.push(b.addNode('slice', [x], { axis: attr.int(axis), start: attr.dim(start), end: attr.dim(end) }, loc));
    start = end;
  }
  return { kind: 'tuple', items: out };
}
