// Lowering of `grid[D1, D2](i, j) => body` to a `grid` node whose lambda body is a ScalarExpr:
// index params become `index`, dims `dim`, compile-time numbers `const`, `t[i, j]` a `read` of
// an operand, operators and elementwise builtins `apply` of catalog ops. Literals are weakly
// typed (they take the other operand's dtype); an i32 meeting a float is converted with an
// explicit `apply cast` so that every apply has operands of one dtype.
import type { Expr } from '../../grammar/ast.js';
import { formatExpr } from '../../grammar/fmt.js';
import { warning } from '../diag/diagnostic.js';
import type { Span } from '../diag/span.js';
import type { Attrs, ScalarExpr } from '../graph/ir.js';
import { type DType, dtypes, isFloat, printType } from '../graph/types.js';
import { getOp } from '../ops/catalog.js';
import { isOpError } from '../ops/define.js';
import { getBuiltin } from '../ops/builtins.js';
import type { Dim } from '../base/dim.js';
import type { Checker, Scope } from './checker.js';
import { type Value, binaryOpNames, describe, poison } from './values.js';

type GridExpr = Extract<Expr, { kind: 'grid' }>;

/** A lowered body expression; `weak` marks an untyped literal (always a `const`). */
interface G {
  readonly e: ScalarExpr;
  readonly dtype: DType;
  readonly weak: boolean;
}

function mentions(e: Expr, names: ReadonlySet<string>): boolean {
  switch (e.kind) {
    case 'num':
    case 'str':
      return false;
    case 'name':
      return names.has(e.name);
    case 'unary':
      return mentions(e.operand, names);
    case 'binary':
      return mentions(e.left, names) || mentions(e.right, names);
    case 'call':
      return e.args.some((a) => mentions(a.value, names));
    case 'pipe':
      return mentions(e.value, names) || e.call.args.some((a) => mentions(a.value, names));
    case 'index':
      return mentions(e.target, names) || e.indices.some((i) => mentions(i, names));
    case 'list':
      return e.items.some((i) => mentions(i, names));
    case 'grid':
      return e.shape.some((s) => mentions(s, names)) || mentions(e.body, names);
  }
}

class GridLowering {
  readonly operands: Value[] = [];
  private readonly operandIndex = new Map<number, number>();

  constructor(
    private readonly b: Checker,
    private readonly sc: Scope,
    private readonly params: ReadonlyMap<string, number>,
  ) {}

  private fail(loc: Span, message: string): undefined {
    this.b.error('TFC216', loc, `grid body: ${message}`);
    return undefined;
  }

  private konst(value: number, dtype: DType, weak: boolean): G {
    return { e: { kind: 'const', value, dtype }, dtype, weak };
  }

  /** A compile-time value inside the body. */
  private fromValue(v: Value, loc: Span, what: string): G | undefined {
    switch (v.kind) {
      case 'num':
        return this.konst(v.value, v.isInt ? 'i32' : 'f32', true);
      case 'bool':
        return this.konst(v.value ? 1 : 0, 'bool', true);
      case 'dim':
        return { e: { kind: 'dim', dim: v.dim }, dtype: 'i32', weak: false };
      case 'tensor':
        if (v.type.shape.length === 0) return this.read(v, [], loc);
        return this.fail(loc, `the tensor ${what} (${printType(v.type)}) must be indexed to read one element, e.g. ${what}[i]`);
      case 'poison':
        return undefined;
      default:
        return this.fail(loc, `${what} is ${describe(v)}, not a scalar`);
    }
  }

  private read(t: Extract<Value, { kind: 'tensor' }>, indices: readonly G[], loc: Span): G | undefined {
    if (indices.length !== t.type.shape.length) {
      return this.fail(loc, `${printType(t.type)} is read with ${indices.length} ind${indices.length === 1 ? 'ex' : 'ices'}`);
    }
    const idx: ScalarExpr[] = [];
    for (const i of indices) {
      if (i.dtype !== 'i32') return this.fail(loc, `an index into ${printType(t.type)} must be an integer, got ${i.dtype}`);
      idx.push(i.e);
    }
    let k = this.operandIndex.get(t.id);
    if (k === undefined) {
      k = this.operands.length;
      this.operands.push(t);
      this.operandIndex.set(t.id, k);
    }
    return { e: { kind: 'read', operand: k, indices: idx, dtype: t.type.dtype }, dtype: t.type.dtype, weak: false };
  }

  private cast(g: G, dtype: DType): G {
    if (g.dtype === dtype) return g;
    if (g.e.kind === 'const') return this.konst(g.e.value, dtype, g.weak);
    return { e: { kind: 'apply', op: 'cast', args: [g.e], dtype }, dtype, weak: false };
  }

  /** Brings numeric operands to one dtype: literals adapt, i32 meeting a float converts. */
  private unify(xs: readonly G[], loc: Span, what: string): G[] | undefined {
    const strong = xs.filter((x) => !x.weak);
    const hasBool = xs.some((x) => x.dtype === 'bool');
    if (hasBool) {
      if (xs.every((x) => x.dtype === 'bool')) return [...xs];
      return this.fail(loc, `${what} mixes bool with numbers (${xs.map((x) => x.dtype).join(', ')})`);
    }
    const floats = xs.filter((x) => isFloat(x.dtype));
    const strongFloat = strong.find((x) => isFloat(x.dtype));
    let target: DType;
    if (strongFloat !== undefined) {
      target = strongFloat.dtype;
      if (strong.some((x) => isFloat(x.dtype) && x.dtype !== target)) {
        return this.fail(loc, `${what} mixes ${strong.map((x) => x.dtype).join(' and ')}`);
      }
    } else if (floats.length > 0) {
      target = 'f32';
    } else {
      target = 'i32';
    }
    const allWeak = strong.length === 0;
    return xs.map((x) => {
      const c = this.cast(x, target);
      return allWeak ? c : { ...c, weak: false };
    });
  }

  /** `apply op(args)` with the result dtype from the catalog; float-only ops convert i32 first. */
  private apply(op: string, args: readonly G[], loc: Span, to?: DType): G | undefined {
    const def = getOp(op);
    if (def === undefined || def.family !== 'elementwise') return this.fail(loc, `'${op}' is not an elementwise op`);
    const attrs: Attrs = to !== undefined ? { to: { kind: 'dtype', value: to } } : {};
    let xs = [...args];
    let t = def.infer(xs.map((x) => ({ dtype: x.dtype, shape: [] })), attrs);
    if (isOpError(t) && xs.some((x) => x.dtype === 'i32')) {
      xs = xs.map((x) => (x.dtype === 'i32' ? this.cast(x, 'f32') : x));
      t = def.infer(xs.map((x) => ({ dtype: x.dtype, shape: [] })), attrs);
    }
    if (isOpError(t)) return this.fail(loc, t.message);
    // Literals only: fold now (the catalog's float semantics; ints stay ints where they are ints).
    if (xs.every((x) => x.weak && x.e.kind === 'const') && def.scalar !== undefined) {
      const v = def.scalar(...xs.map((x) => (x.e.kind === 'const' ? x.e.value : NaN)));
      const dtype = t.dtype === 'i32' && !Number.isInteger(v) ? 'f32' : t.dtype;
      return this.konst(v, dtype, true);
    }
    return { e: { kind: 'apply', op, args: xs.map((x) => x.e), dtype: t.dtype }, dtype: t.dtype, weak: false };
  }

  expr(e: Expr): G | undefined {
    switch (e.kind) {
      case 'num':
        return this.konst(e.value, e.isInt ? 'i32' : 'f32', true);
      case 'name': {
        const axis = this.params.get(e.name);
        if (axis !== undefined) return { e: { kind: 'index', axis }, dtype: 'i32', weak: false };
        return this.fromValue(this.b.lookup(e.name, e.loc, this.sc), e.loc, `'${e.name}'`);
      }
      case 'unary': {
        const x = this.expr(e.operand);
        if (x === undefined) return undefined;
        if (e.op === '-') {
          if (x.dtype === 'bool') return this.fail(e.loc, `'-' of a bool`);
          return x.e.kind === 'const' ? this.konst(-x.e.value, x.dtype, x.weak) : this.apply('neg', [x], e.loc);
        }
        if (x.dtype !== 'bool') return this.fail(e.loc, `'!' needs a bool, got ${x.dtype}`);
        return this.apply('not', [x], e.loc);
      }
      case 'binary': {
        if (e.op === '@') return this.fail(e.loc, `'@' (matmul) is not an elementwise operation`);
        const l = this.expr(e.left);
        const r = this.expr(e.right);
        if (l === undefined || r === undefined) return undefined;
        const xs = this.unify([l, r], e.loc, `'${e.op}'`);
        if (xs === undefined) return undefined;
        if (e.op === '//') return this.floorDivide(xs, e);
        if (e.op === '/' && xs.every((x) => x.dtype === 'i32')) {
          // `/` divides as real numbers everywhere (it used to truncate here, silently: RoPE's
          // `-2 * i / dh` made every frequency 1). Where an index expression divides, say so.
          if (xs.some((x) => x.e.kind !== 'const')) {
            this.b.report(
              warning('TFC220', e.loc, `'${formatExpr(e)}' divides integers as real numbers (3 / 2 = 1.5), as '/' does everywhere; write '${formatExpr({ ...e, op: '//' })}' for integer division, or make an operand a float to say the real quotient is meant`),
            );
          }
          return this.apply('div', xs.map((x) => this.cast(x, 'f32')), e.loc);
        }
        return this.apply(binaryOpNames[e.op], xs, e.loc);
      }
      case 'call':
        return this.call(e.callee.name, e.args.map((a) => a.value), e.args.some((a) => a.name !== undefined), e.loc);
      case 'pipe':
        return this.call(e.call.callee.name, [e.value, ...e.call.args.map((a) => a.value)], e.call.args.some((a) => a.name !== undefined), e.loc);
      case 'index': {
        if (mentions(e.target, new Set(this.params.keys()))) return this.fail(e.loc, 'only a tensor can be indexed');
        const t = this.b.expr(e.target, this.sc);
        if (t.kind === 'family') {
          if (e.indices.some((i) => mentions(i, new Set(this.params.keys())))) {
            return this.fail(e.loc, `family members are selected by compile-time ints, not grid indices`);
          }
          return this.fromValue(this.b.expr(e, this.sc), e.loc, `'${t.fam.item.name.name}[..]'`);
        }
        if (t.kind === 'poison') return undefined;
        if (t.kind !== 'tensor') return this.fail(e.target.loc, `cannot index ${describe(t)}`);
        const idx: G[] = [];
        for (const i of e.indices) {
          const g = this.expr(i);
          if (g === undefined) return undefined;
          idx.push(g.weak && g.dtype === 'i32' ? { ...g, weak: false } : g);
        }
        return this.read(t, idx, e.loc);
      }
      case 'str':
      case 'list':
      case 'grid':
        return this.fail(e.loc, `a ${e.kind === 'str' ? 'string' : e.kind} cannot be used inside a grid body`);
    }
  }

  /** `a // b` on integers: floor division as div(a - a % b, b) (exact, so truncation is floor). */
  private floorDivide([a, b]: readonly G[], e: Extract<Expr, { kind: 'binary' }>): G | undefined {
    if (a === undefined || b === undefined) return undefined;
    if (a.dtype !== 'i32' || b.dtype !== 'i32') {
      this.b.error('TFC208', e.loc, `'//' divides integers (floor division), got ${a.dtype} // ${b.dtype}; use '/' to divide as real numbers`);
      return undefined;
    }
    const rest = this.apply('mod', [a, b], e.loc);
    const multiple = rest === undefined ? undefined : this.apply('sub', [a, rest], e.loc);
    return multiple === undefined ? undefined : this.apply('div', [multiple, b], e.loc);
  }

  private call(name: string, args: readonly Expr[], hasNamed: boolean, loc: Span): G | undefined {
    const bi = getBuiltin(name);
    const n = args.length;
    if (bi === undefined) {
      return this.fail(loc, `'${name}' cannot be called inside a grid body (only elementwise builtins can)`);
    }
    if (hasNamed) return this.fail(loc, `named arguments are not supported inside a grid body`);
    const lowered = (): (G | undefined)[] => args.map((a) => this.expr(a));
    const arity = (k: number): boolean => {
      if (n === k) return true;
      this.b.error('TFC104', loc, `${name} takes ${k} argument(s) here, got ${n}`);
      return false;
    };
    switch (bi.lowering) {
      case 'unary':
      case 'gelu': {
        if (!arity(1)) return undefined;
        const [x] = lowered();
        return x === undefined ? undefined : this.apply(bi.op, [x], loc);
      }
      case 'binary':
      case 'max': {
        if (!arity(2)) return undefined;
        const [x, y] = lowered();
        if (x === undefined || y === undefined) return undefined;
        const xs = this.unify([x, y], loc, name);
        return xs === undefined ? undefined : this.apply(bi.op, xs, loc);
      }
      case 'where': {
        if (!arity(3)) return undefined;
        const [c, x, y] = lowered();
        if (c === undefined || x === undefined || y === undefined) return undefined;
        if (c.dtype !== 'bool') return this.fail(loc, `the condition of where must be bool, got ${c.dtype}`);
        const xs = this.unify([x, y], loc, 'where');
        return xs === undefined ? undefined : this.apply('where', [c, ...xs], loc);
      }
      case 'cast': {
        if (!arity(2)) return undefined;
        const [xe, te] = args;
        if (xe === undefined || te === undefined) return undefined;
        const to = this.b.expr(te, this.sc);
        const d = to.kind === 'dtype' ? to.dtype : to.kind === 'str' && (dtypes as readonly string[]).includes(to.value) ? (to.value as DType) : undefined;
        if (d === undefined) return this.fail(te.loc, `cast needs a dtype, got ${describe(to)}`);
        const x = this.expr(xe);
        if (x === undefined) return undefined;
        if (x.e.kind === 'const') return this.konst(x.e.value, d, false);
        return this.apply('cast', [x], loc, d);
      }
      default:
        return this.fail(loc, `'${name}' is not elementwise and cannot be used inside a grid body`);
    }
  }
}

export function lowerGrid(b: Checker, e: GridExpr, sc: Scope): Value {
  const shape: Dim[] = [];
  let ok = true;
  for (const s of e.shape) {
    const d = b.toDim(b.expr(s, sc), s.loc);
    if (d === undefined) ok = false;
    else shape.push(d);
  }
  const params = new Map<string, number>();
  e.params.forEach((p, i) => {
    if (params.has(p.name)) {
      b.error('TFC102', p.loc, `grid index '${p.name}' is declared twice`);
      ok = false;
    }
    params.set(p.name, i);
  });
  if (e.params.length !== e.shape.length) {
    return b.error('TFC216', e.loc, `a grid of rank ${e.shape.length} needs ${e.shape.length} index name(s), got ${e.params.length}`);
  }
  const g = new GridLowering(b, sc, params);
  const body = g.expr(e.body);
  if (!ok || body === undefined) return poison;
  return b.addNode(
    'grid',
    g.operands,
    { shape: { kind: 'dims', value: shape }, body: { kind: 'lambda', params: e.params.map((p) => p.name), body: body.e } },
    e.loc,
  );
}
