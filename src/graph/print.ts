// The graph IR text form (`--emit ir`, `--dump-after`): a deterministic printer whose output
// parseGraph (parse.ts) reads back exactly. Sits after graph building; every pass dump uses it.
//
// Syntax (one construct per line; `//` starts a comment that runs to the end of the line):
//   graph NAME(B, T) {                     NAME bare when an identifier, else a JSON string
//     %N = op %a, %b {k=v, ...} : TYPE  loc(LOC) from(LOC, ...)
//     output "logits" = %N  loc(LOC)
//   }
// - SSA values are numbered %0, %1, ... in print order; operands refer to earlier values.
// - TYPE is `dtype[d1,d2]` (printType; scalars `f32[]`), dims compact (`P+T`, `B*T`, `2*T-1`).
// - Attributes are sorted by key; `{}` is omitted when there are none. Each kind has its own
//   spelling, so a value's kind is readable without the catalog:
//     int    3  -1                       float  1.0  1e-05  -inf  inf  nan  -0.0  (always has
//                                               `.`, `e`, or is inf/nan; shortest round-trip digits)
//     str    "JSON-escaped"              bool   true  false
//     ints   [0,2,1,3]                   dtype  f16 (bare)
//     dim    dim(P+T)                    dims   dims[B,T,12,64]
//     lambda (q, k) => le(k, add(q, dim(S-T)))
// - Lambda bodies (ScalarExpr): a parameter name is the grid index of that axis; `dim(D)` a
//   dimension value; `read(N, i, j)` reads element (i, j) of the node's N-th operand;
//   `op(a, b)` applies a catalog elementwise op. Constants: `3` is i32, `0.5` / `-inf` / `1.0`
//   are f32, `true` / `false` are bool; any other dtype or value is written `f16(0.5)`.
//   A `read` or `op` whose dtype differs from the default is written `read:f16(...)`,
//   `cast:f16(x)`: the default for `read` is the operand's dtype, for an op the dtype the
//   catalog's `infer` gives for scalar arguments. So ordinary bodies print without dtypes and
//   the text still determines every dtype.
// - LOC is `file:line:col`, then ` to :endCol` (same line) or ` to endLine:endCol` when the span
//   is longer than one character; the file is bare when it matches [A-Za-z0-9_./+@-]+ and
//   otherwise a JSON string. `from(...)` lists the spans a rewritten node replaced.
//   `locs: false` hides loc and from (parseGraph then locates nodes at their IR text line).
import { printDim } from '../base/dim.js';
import type { Span } from '../diag/span.js';
import { getOp } from '../ops/catalog.js';
import { isOpError } from '../ops/define.js';
import type { Attr, Attrs, Graph, Node, ScalarExpr } from './ir.js';
import { type DType, type TensorType, printType } from './types.js';

export interface PrintOptions {
  /** Print `loc(...)` and `from(...)` (default true). */
  readonly locs?: boolean;
}

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;
const BARE_FILE = /^[A-Za-z0-9_./+@-]+$/;

export function printGraph(g: Graph, opts: PrintOptions = {}): string {
  const locs = opts.locs ?? true;
  // SSA numbering in print order; a valid graph has id === position, so this is the identity.
  const pos = new Map<number, number>();
  g.nodes.forEach((n, i) => {
    if (!pos.has(n.id)) pos.set(n.id, i);
  });
  const ref = (id: number): string => `%${pos.get(id) ?? id}`;
  const lines: string[] = [];
  lines.push(`graph ${printName(g.name)}(${g.dims.join(', ')}) {`);
  g.nodes.forEach((n, i) => {
    let s = `  %${i} = ${n.op}`;
    if (n.operands.length > 0) s += ` ${n.operands.map(ref).join(', ')}`;
    const attrs = printAttrs(n.attrs, operandTypes(g, n, pos));
    if (attrs !== '') s += ` ${attrs}`;
    s += ` : ${printType(n.type)}`;
    if (locs) {
      s += `  loc(${printSpan(n.loc)})`;
      if (n.from !== undefined) s += ` from(${n.from.map(printSpan).join(', ')})`;
    }
    lines.push(s);
  });
  for (const o of g.outputs) {
    let s = `  output ${JSON.stringify(o.name)} = ${ref(o.value)}`;
    if (locs) s += `  loc(${printSpan(o.loc)})`;
    lines.push(s);
  }
  lines.push('}');
  return lines.join('\n') + '\n';
}

function operandTypes(g: Graph, n: Node, pos: ReadonlyMap<number, number>): readonly (TensorType | undefined)[] {
  return n.operands.map((id) => {
    const p = pos.get(id);
    return p === undefined ? undefined : g.nodes[p]?.type;
  });
}

export function printName(name: string): string {
  return IDENT.test(name) ? name : JSON.stringify(name);
}

/** `{k=v, ...}` sorted by key, or '' when there are no attributes. */
export function printAttrs(attrs: Attrs, operandTypes: readonly (TensorType | undefined)[] = []): string {
  const keys = Object.keys(attrs).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  if (keys.length === 0) return '';
  const parts: string[] = [];
  for (const k of keys) {
    const a = attrs[k];
    if (a !== undefined) parts.push(`${k}=${printAttr(a, operandTypes)}`);
  }
  return `{${parts.join(', ')}}`;
}

export function printAttr(a: Attr, operandTypes: readonly (TensorType | undefined)[] = []): string {
  switch (a.kind) {
    case 'int':
      return String(a.value);
    case 'float':
      return printFloat(a.value);
    case 'str':
      return JSON.stringify(a.value);
    case 'bool':
      return a.value ? 'true' : 'false';
    case 'ints':
      return `[${a.value.join(',')}]`;
    case 'dtype':
      return a.value;
    case 'dim':
      return `dim(${printDim(a.value, true)})`;
    case 'dims':
      return `dims[${a.value.map((d) => printDim(d, true)).join(',')}]`;
    case 'lambda':
      return `(${a.params.join(', ')}) => ${printScalarExpr(a.body, a.params, operandTypes)}`;
    default:
      return assertNever(a);
  }
}

/** Shortest text that reads back as exactly `v`; always marked as a float (`.`, `e`, inf, nan). */
export function printFloat(v: number): string {
  if (Number.isNaN(v)) return 'nan';
  if (v === Infinity) return 'inf';
  if (v === -Infinity) return '-inf';
  if (Object.is(v, -0)) return '-0.0';
  const s = String(v);
  return /^-?\d+$/.test(s) ? `${s}.0` : s;
}

/** The dtype a ScalarExpr has when its text carries no dtype (see the file header). */
export function defaultScalarDType(
  e: { readonly kind: 'read'; readonly operand: number } | { readonly kind: 'apply'; readonly op: string; readonly args: readonly ScalarExpr[] },
  operandTypes: readonly (TensorType | undefined)[],
): DType | undefined {
  if (e.kind === 'read') return operandTypes[e.operand]?.dtype;
  const op = getOp(e.op);
  if (op === undefined) return undefined;
  const args: TensorType[] = e.args.map((x) => ({ dtype: scalarDType(x), shape: [] }));
  try {
    const t = op.infer(args, {});
    return isOpError(t) ? undefined : t.dtype;
  } catch {
    return undefined;
  }
}

export function scalarDType(e: ScalarExpr): DType {
  switch (e.kind) {
    case 'index':
    case 'dim':
      return 'i32';
    case 'const':
    case 'read':
    case 'apply':
      return e.dtype;
    default:
      return assertNever(e);
  }
}

export function printScalarExpr(e: ScalarExpr, params: readonly string[], operandTypes: readonly (TensorType | undefined)[] = []): string {
  const rec = (x: ScalarExpr): string => printScalarExpr(x, params, operandTypes);
  switch (e.kind) {
    case 'index': {
      const p = params[e.axis];
      return p === undefined ? `index(${e.axis})` : p;
    }
    case 'dim':
      return `dim(${printDim(e.dim, true)})`;
    case 'const':
      return printScalarConst(e.value, e.dtype);
    case 'read': {
      const dt = e.dtype === defaultScalarDType(e, operandTypes) ? '' : `:${e.dtype}`;
      return `read${dt}(${[String(e.operand), ...e.indices.map(rec)].join(', ')})`;
    }
    case 'apply': {
      const dt = e.dtype === defaultScalarDType(e, operandTypes) ? '' : `:${e.dtype}`;
      return `${e.op}${dt}${printAttrs(e.attrs ?? {}, operandTypes)}(${e.args.map(rec).join(', ')})`;
    }
    default:
      return assertNever(e);
  }
}

function printScalarConst(value: number, dtype: DType): string {
  if (dtype === 'i32' && /^-?\d+$/.test(String(value)) && !Object.is(value, -0)) return String(value);
  if (dtype === 'f32') return printFloat(value);
  if (dtype === 'bool' && (value === 0 || value === 1) && !Object.is(value, -0)) return value === 1 ? 'true' : 'false';
  return `${dtype}(${printFloat(value)})`;
}

/** `file:line:col`, with ` to :endCol` or ` to endLine:endCol` for longer spans. */
export function printSpan(s: Span): string {
  const file = BARE_FILE.test(s.file) ? s.file : JSON.stringify(s.file);
  let out = `${file}:${s.line}:${s.col}`;
  if (s.endLine !== s.line) out += ` to ${s.endLine}:${s.endCol}`;
  else if (s.endCol !== s.col) out += ` to :${s.endCol}`;
  return out;
}

function assertNever(x: never): never {
  throw new Error(`internal: unexpected ${JSON.stringify(x)}`);
}
