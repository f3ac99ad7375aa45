// Source ops: graph inputs and weights (fed at run time), scalar constants, `arange` positions and
// `grid`, a tensor defined per element by a lambda over its indices (FlexAttention-style masks).
import { type Dim, dimConst, dimConstValue, dimEval, dimMul, dimSub, printDim } from '../base/dim.js';
import { InternalError } from '../diag/diagnostic.js';
import { type Attrs, type Node, type ScalarExpr, dimAttr, dimsAttr, floatAttr, lambdaAttr, strAttr } from '../graph/ir.js';
import { type DType, type TensorType, printType } from '../graph/types.js';
import { coerce, makeTensor, ravel, type Tensor64 } from '../base/tensor.js';
import { InterpError } from './errors.js';
import { type InterpContext, type OpDef, type OpError, defineOp } from './define.js';
import { numelDim, opError, scalarFunction } from './elementwise.js';
import { registry } from './registry.js';
import { lambdaVjp } from './lambda-grad.js';
import { foldScalarExpr, scalarExprDtype } from '../graph/lambda.js';

export { scalarExprDtype } from '../graph/lambda.js';

const zeroFlops = (): Dim => dimConst(0);

function declaredOrBug(op: string, declared: TensorType | undefined): TensorType {
  if (declared === undefined) throw new InternalError(`${op} needs its declared type to infer`);
  return declared;
}

function fed(op: 'input' | 'weight', ctx: InterpContext): Tensor64 {
  const name = strAttr(ctx.node, 'name');
  const t = ctx.feed?.(op, name);
  if (t === undefined) throw new InterpError('TFC302', `${op} tensor "${name}" is missing`, ctx.node.loc);
  return t;
}

function sourceOfNamed(op: 'input' | 'weight', doc: string): OpDef {
  return defineOp({
    name: op,
    family: 'source',
    arity: 0,
    attrs: { name: 'str' },
    ...(op === 'weight' ? { optionalAttrs: { rows: 'ints', total_rows: 'int' } as const } : {}),
    doc,
    infer: (_operands, attrs, declared) => {
      const n = attrs['name'];
      if (n === undefined || n.kind !== 'str') return opError('TFC110', `${op} needs a string attribute 'name'`);
      const t = declaredOrBug(op, declared);
      const range = rowRangeOfAttrs(attrs);
      if (range === 'bad') return opError('TFC110', `${op} 'rows' needs [start, end] with 0 <= start < end <= 'total_rows', both attributes or neither`);
      if (range !== undefined) {
        const first = t.shape[0];
        if (first === undefined || dimConstValue(first) !== range.end - range.start) {
          return opError('TFC212', `${op} rows [${range.start}, ${range.end}) declared ${printType(t)}: axis 0 must be ${range.end - range.start}`);
        }
      }
      return t;
    },
    interp: (_operands, ctx) => {
      const t = fed(op, ctx);
      const range = rowRangeOfAttrs(ctx.node.attrs);
      if (range === undefined || range === 'bad') return t;
      // A row chunk (split-large-weights): rows [start, end) of the fed table.
      const row = t.shape.slice(1).reduce((a, b) => a * b, 1);
      return { dtype: t.dtype, shape: [range.end - range.start, ...t.shape.slice(1)], data: t.data.slice(range.start * row, range.end * row) };
    },
    flops: zeroFlops,
    lowering: 'none',
  });
}

/** A weight's row range (`rows=[start, end]` of `total_rows`), set by split-large-weights. */
export interface RowRange {
  readonly start: number;
  readonly end: number;
  readonly total: number;
}

function rowRangeOfAttrs(attrs: Attrs): RowRange | 'bad' | undefined {
  const rows = attrs['rows'];
  const total = attrs['total_rows'];
  if (rows === undefined && total === undefined) return undefined;
  if (rows?.kind !== 'ints' || total?.kind !== 'int' || rows.value.length !== 2) return 'bad';
  const [start = -1, end = -1] = rows.value;
  if (!(Number.isInteger(start) && Number.isInteger(end) && start >= 0 && start < end && end <= total.value)) return 'bad';
  return { start, end, total: total.value };
}

/** The row range of a `weight` node that is a chunk of a larger safetensors tensor, or undefined. */
export function weightRowRange(n: Node): RowRange | undefined {
  if (n.op !== 'weight') return undefined;
  const r = rowRangeOfAttrs(n.attrs);
  return r === 'bad' ? undefined : r;
}

/** The shape of the tensor fed for `n`: its declared shape, with axis 0 the full table for a row chunk. */
export function fedShape(n: Node): readonly Dim[] {
  const r = weightRowRange(n);
  return r === undefined ? n.type.shape : [dimConst(r.total), ...n.type.shape.slice(1)];
}

// ---------------------------------------------------------------------------------------------
// grid lambdas

/** An elementwise op by name (registry.ts: the catalog, with any registered op). */
const elementwiseByName = (name: string): OpDef | undefined => {
  const op = registry.get(name);
  return op?.family === 'elementwise' ? op : undefined;
};

/** Attributes of a lambda `apply`: its own (gelu's approx), and any dtype-valued one (cast's `to`) is the result dtype. */
function applyAttrs(op: OpDef, dtype: DType, own: Attrs = {}): Attrs {
  const out: Record<string, Attrs[string]> = { ...own };
  for (const [k, kind] of Object.entries(op.attrs)) if (kind === 'dtype') out[k] = { kind: 'dtype', value: dtype };
  return out;
}

/** Checks a grid body against the grid's rank and operands; the first problem found, or undefined. */
export function checkGridBody(e: ScalarExpr, rank: number, operands: readonly TensorType[]): OpError | undefined {
  const bad = (msg: string): OpError => opError('TFC216', `grid body: ${msg}`);
  switch (e.kind) {
    case 'index':
      return Number.isInteger(e.axis) && e.axis >= 0 && e.axis < rank ? undefined : bad(`index ${e.axis} out of range for rank ${rank}`);
    case 'dim':
    case 'const':
      return undefined;
    case 'read': {
      const t = operands[e.operand];
      if (t === undefined) return bad(`reads operand ${e.operand} of ${operands.length}`);
      if (e.indices.length !== t.shape.length) return bad(`reads ${printType(t)} with ${e.indices.length} indices`);
      if (e.dtype !== t.dtype) return bad(`read of ${printType(t)} typed ${e.dtype}`);
      for (const i of e.indices) {
        const err = checkGridBody(i, rank, operands);
        if (err !== undefined) return err;
        if (scalarExprDtype(i) !== 'i32') return bad(`index into ${printType(t)} is ${scalarExprDtype(i)}, not i32`);
      }
      return undefined;
    }
    case 'apply': {
      const op = elementwiseByName(e.op);
      if (op === undefined || op.arity !== e.args.length) return bad(`'${e.op}' with ${e.args.length} argument(s) is not an elementwise op`);
      for (const a of e.args) {
        const err = checkGridBody(a, rank, operands);
        if (err !== undefined) return err;
      }
      const r = op.infer(e.args.map((a) => ({ dtype: scalarExprDtype(a), shape: [] })), applyAttrs(op, e.dtype, e.attrs));
      if ('code' in r) return bad(r.message);
      if (r.dtype !== e.dtype) return bad(`${e.op} gives ${r.dtype}, typed ${e.dtype}`);
      return undefined;
    }
  }
}

/**
 * Elementwise applies in a lambda body: its FLOPs per element. Zero-argument applies (`acc()` in a
 * fused_matmul epilogue, `score()` in a fused_attention score) name a value the fused op already
 * computed and cost nothing; grid bodies never contain them.
 */
export function countApplies(e: ScalarExpr): number {
  return foldScalarExpr<number>(e, (x, inner) => (x.kind === 'apply' && x.args.length > 0 ? 1 : 0) + inner.reduce((n, c) => n + c, 0));
}

type Compiled = (idx: readonly number[]) => number;

/** Turns a lambda body into a closure over the grid index (evaluated at every element). */
function compileExpr(e: ScalarExpr, operands: readonly Tensor64[], ctx: InterpContext): Compiled {
  switch (e.kind) {
    case 'index': {
      const axis = e.axis;
      return (idx) => idx[axis] ?? NaN;
    }
    case 'dim': {
      const v = dimEval(e.dim, ctx.dims);
      if (v === undefined) throw new InterpError('TFC306', `grid body uses ${printDim(e.dim)}, which has no value`, ctx.node.loc);
      return () => v;
    }
    case 'const': {
      const v = coerce(e.dtype, e.value);
      return () => v;
    }
    case 'read': {
      const t = operands[e.operand];
      if (t === undefined) throw new InternalError(`grid reads missing operand ${e.operand}`);
      const subs = e.indices.map((i) => compileExpr(i, operands, ctx));
      const outside = (at: readonly number[]): InterpError => new InterpError('TFC309', `grid body reads [${at.join(',')}] outside a tensor of shape [${t.shape.join(',')}]`, ctx.node.loc);
      if (subs.length !== t.shape.length) {
        return (idx) => {
          const at = subs.map((s) => s(idx));
          if (at.some((v, i) => !(Number.isInteger(v) && v >= 0 && v < (t.shape[i] ?? 0)))) throw outside(at);
          return t.data[ravel(at, t.shape)] ?? NaN;
        };
      }
      // The interpreter's inner loop (backward grids run it per element of [T x pool slots]):
      // one index buffer per read, the offset computed while the indices are checked.
      const at = new Array<number>(subs.length).fill(0);
      const shape = t.shape;
      const data = t.data;
      return (idx) => {
        let off = 0;
        let ok = true;
        let k = 0;
        for (const s of subs) {
          const v = s(idx);
          const d = shape[k] ?? 0;
          at[k++] = v;
          if (!(Number.isInteger(v) && v >= 0 && v < d)) ok = false;
          off = off * d + v;
        }
        if (!ok) throw outside(at);
        return data[off] ?? NaN;
      };
    }
    case 'apply': {
      const op = elementwiseByName(e.op);
      const firstArg = e.args[0];
      if (op === undefined || firstArg === undefined) throw new InternalError(`grid applies unknown op '${e.op}'`);
      const fn = scalarFunction(op, { operand: scalarExprDtype(firstArg), result: e.dtype, attrs: applyAttrs(op, e.dtype, e.attrs) });
      if (fn === undefined) throw new InternalError(`op '${e.op}' has no scalar function`);
      const args = e.args.map((a) => compileExpr(a, operands, ctx));
      const dtype = e.dtype;
      const [c, x, y] = args;
      // `where` evaluates only the chosen branch: a concat written as a lambda (fuse-elementwise)
      // reads each operand only inside its own range, and the other branch's read is out of range.
      if (e.op === 'where' && c !== undefined && x !== undefined && y !== undefined) return (idx) => coerce(dtype, c(idx) !== 0 ? x(idx) : y(idx));
      // Arities 1-3 without an argument array per element (same order of evaluation).
      if (args.length === 1 && c !== undefined) return (idx) => coerce(dtype, fn(c(idx)));
      if (args.length === 2 && c !== undefined && x !== undefined) return (idx) => coerce(dtype, fn(c(idx), x(idx)));
      if (args.length === 3 && c !== undefined && x !== undefined && y !== undefined) return (idx) => coerce(dtype, fn(c(idx), x(idx), y(idx)));
      return (idx) => coerce(dtype, fn(...args.map((a) => a(idx))));
    }
  }
}

// ---------------------------------------------------------------------------------------------

export const sourceOps: readonly OpDef[] = [
  sourceOfNamed('input', 'a model input, fed at run time under `name`; its symbolic dims are bound from the fed shape'),
  sourceOfNamed('weight', 'a weight, read from the safetensors file under `name`; with `rows=[start, end]` and `total_rows` (split-large-weights), only rows [start, end) of that [total_rows, ...] tensor'),
  defineOp({
    name: 'const',
    family: 'source',
    arity: 0,
    attrs: { value: 'float' },
    doc: 'a scalar constant of the result dtype (`value` may be inf or -inf)',
    infer: (_operands, attrs, declared) => {
      const v = attrs['value'];
      if (v === undefined || v.kind !== 'float') return opError('TFC110', `const needs a float attribute 'value'`);
      const t = declaredOrBug('const', declared);
      if (t.shape.length !== 0) return opError('TFC212', `const is a scalar, declared ${printType(t)}`);
      return { dtype: t.dtype, shape: [] };
    },
    interp: (_operands, ctx) => makeTensor(ctx.node.type.dtype, [], [floatAttr(ctx.node, 'value')]),
    flops: zeroFlops,
    lowering: 'none',
  }),
  defineOp({
    name: 'arange',
    family: 'source',
    arity: 0,
    attrs: { start: 'dim', end: 'dim' },
    doc: 'i32[end - start] holding start, start+1, ..., end-1',
    infer: (_operands, attrs) => {
      const s = attrs['start'];
      const e = attrs['end'];
      if (s === undefined || s.kind !== 'dim' || e === undefined || e.kind !== 'dim') {
        return opError('TFC206', `arange needs dims 'start' and 'end'`);
      }
      const len = dimSub(e.value, s.value);
      const c = dimConstValue(len);
      if (c !== undefined && c < 0) return opError('TFC206', `arange(${printDim(s.value)}, ${printDim(e.value)}) has negative length ${c}`);
      return { dtype: 'i32', shape: [len] };
    },
    interp: (_operands, ctx) => {
      const start = dimEval(dimAttr(ctx.node, 'start'), ctx.dims);
      if (start === undefined) throw new InterpError('TFC306', 'arange start has no value', ctx.node.loc);
      const n = ctx.shape[0] ?? 0;
      return makeTensor('i32', [n], Array.from({ length: n }, (_, i) => start + i));
    },
    flops: zeroFlops,
    lowering: 'unfused',
  }),
  defineOp({
    name: 'grid',
    family: 'source',
    arity: 'variadic',
    attrs: { shape: 'dims', body: 'lambda' },
    doc: 'tensor of `shape` whose element at (i, j, ...) is the lambda `body`; operands are the tensors the body reads',
    infer: (operands, attrs) => {
      const s = attrs['shape'];
      const body = attrs['body'];
      if (s === undefined || s.kind !== 'dims' || body === undefined || body.kind !== 'lambda') {
        return opError('TFC216', `grid needs 'shape' dims and a 'body' lambda`);
      }
      if (body.params.length !== s.value.length) {
        return opError('TFC216', `grid of rank ${s.value.length} has a lambda of ${body.params.length} indices`);
      }
      for (const d of s.value) {
        const c = dimConstValue(d);
        if (c !== undefined && c < 0) return opError('TFC206', `grid dimension ${c} is negative`);
      }
      const err = checkGridBody(body.body, s.value.length, operands);
      if (err !== undefined) return err;
      return { dtype: scalarExprDtype(body.body), shape: s.value };
    },
    interp: (operands, ctx) => {
      const body = lambdaAttr(ctx.node, 'body').body;
      const f = compileExpr(body, operands, ctx);
      const dtype = ctx.node.type.dtype;
      const shape = ctx.shape;
      const out = makeTensor(dtype, shape);
      // Row-major order, as unravel(i) gives it, with one index array stepped like an odometer.
      const idx = new Array<number>(shape.length).fill(0);
      for (let i = 0; i < out.data.length; i++) {
        out.data[i] = coerce(dtype, f(idx));
        for (let a = shape.length - 1; a >= 0; a--) {
          const next = (idx[a] ?? 0) + 1;
          if (next < (shape[a] ?? 1)) {
            idx[a] = next;
            break;
          }
          idx[a] = 0;
        }
      }
      return out;
    },
    // Reverse mode through the body (each apply by its catalog entry), reads transposed.
    vjp: (g, a) => {
      const l = lambdaAttr(a.node, 'body');
      return lambdaVjp(g, a, l.params, l.body, dimsAttr(a.node, 'shape'));
    },
    // One operation per `apply` in the body, per element.
    flops: (_operands, result, attrs) => {
      const body = attrs['body'];
      const n = body !== undefined && body.kind === 'lambda' ? countApplies(body.body) : 0;
      return dimMul(dimConst(n), numelDim(result.shape));
    },
    lowering: 'unfused',
  }),
];
