// Reductions over a sorted list of non-negative axes: sum, max_reduce, mean, logsumexp.
// An empty reduction gives sum 0, max -inf (i32: -2^31), mean NaN (0/0) and logsumexp -inf.
import { type Dim, dimConst, dimMul } from '../base/dim.js';
import { boolAttr, intsAttr, type Attrs, type ScalarExpr } from '../graph/ir.js';
import { i32, idx } from '../graph/lambda.js';
import { type DType, type TensorType, isFloat, printType } from '../graph/types.js';
import { coerce, makeTensor, numel, stridesOf, unravel, type Tensor64 } from '../base/tensor.js';
import { type GradBuilder, type OpDef, type OpError, type InterpContext, type VjpRule, defineOp } from './define.js';
import { numelDim, opError } from './elementwise.js';

function axesOf(attrs: Attrs): readonly number[] | undefined {
  const a = attrs['axes'];
  return a !== undefined && a.kind === 'ints' ? a.value : undefined;
}

function keepdimsOf(attrs: Attrs): boolean {
  const k = attrs['keepdims'];
  return k !== undefined && k.kind === 'bool' && k.value;
}

/** Checks axes (in range, sorted, distinct) and gives the reduced shape. */
export function reduceShape(op: string, x: TensorType, axes: readonly number[], keepdims: boolean): readonly Dim[] | OpError {
  for (let i = 0; i < axes.length; i++) {
    const a = axes[i] ?? -1;
    if (!Number.isInteger(a) || a < 0 || a >= x.shape.length) {
      return opError('TFC203', `${op} axis ${a} is out of range for ${printType(x)} (rank ${x.shape.length})`);
    }
    if (i > 0 && a <= (axes[i - 1] ?? -1)) {
      return opError('TFC203', `${op} axes [${axes.join(',')}] must be sorted and distinct`);
    }
  }
  const out: Dim[] = [];
  x.shape.forEach((d, i) => {
    if (!axes.includes(i)) out.push(d);
    else if (keepdims) out.push(dimConst(1));
  });
  return out;
}

type Kind = 'sum' | 'max' | 'mean' | 'logsumexp';

/** The output position of an input multi-index: the reduced axes dropped, the others at `keptStrides`. */
function keptOffset(idx: readonly number[], axes: readonly number[], keptStrides: readonly number[]): number {
  let o = 0;
  let k = 0;
  idx.forEach((v, i) => {
    if (!axes.includes(i)) o += v * (keptStrides[k++] ?? 0);
  });
  return o;
}

function interpReduce(kind: Kind, x: Tensor64, axes: readonly number[], dtype: DType, outShape: readonly number[]): Tensor64 {
  if (kind === 'logsumexp') return logSumExp(x, axes, dtype, outShape);
  // Output position of each input element: drop (or zero) the reduced axes.
  const keptShape = x.shape.filter((_, i) => !axes.includes(i));
  const keptStrides = stridesOf(keptShape);
  const nOut = numel(keptShape);
  const init = kind === 'max' ? (dtype === 'i32' ? -2147483648 : -Infinity) : 0;
  const acc = new Float64Array(nOut).fill(init);
  // keptOffset(unravel(f)) for f = 0, 1, ... kept up to date while the index steps in row-major
  // order (no array per element: this loop is the float64 references' hot spot).
  const shape = x.shape;
  const rank = shape.length;
  const outStride = new Array<number>(rank).fill(0);
  for (let i = 0, k = 0; i < rank; i++) if (!axes.includes(i)) outStride[i] = keptStrides[k++] ?? 0;
  const idx = new Array<number>(rank).fill(0);
  let o = 0;
  for (let f = 0; f < x.data.length; f++) {
    const v = x.data[f] ?? NaN;
    const prev = acc[o] ?? 0;
    // max: NaN propagates (as torch.amax does).
    acc[o] = kind === 'max' ? (Number.isNaN(v) || Number.isNaN(prev) ? NaN : Math.max(prev, v)) : prev + v;
    for (let a = rank - 1; a >= 0; a--) {
      const at = idx[a] ?? 0;
      const stride = outStride[a] ?? 0;
      if (at + 1 < (shape[a] ?? 1)) {
        idx[a] = at + 1;
        o += stride;
        break;
      }
      o -= at * stride;
      idx[a] = 0;
    }
  }
  const count = axes.reduce((n, a) => n * (x.shape[a] ?? 1), 1);
  const out = makeTensor(dtype, outShape);
  for (let o = 0; o < nOut; o++) {
    const v = acc[o] ?? NaN;
    out.data[o] = coerce(dtype, kind === 'mean' ? v / count : dtype === 'i32' && kind === 'sum' ? v | 0 : v);
  }
  return out;
}

/**
 * log(sum(exp(x))) over `axes`, naively in float64: per output, the max m of its elements, then
 * m + log(sum exp(x - m)). A row of only -inf (every key masked) and an empty row give -inf, never
 * NaN; a +inf element gives +inf; NaN propagates.
 */
function logSumExp(x: Tensor64, axes: readonly number[], dtype: DType, outShape: readonly number[]): Tensor64 {
  const keptShape = x.shape.filter((_, i) => !axes.includes(i));
  const keptStrides = stridesOf(keptShape);
  const rows: number[][] = Array.from({ length: numel(keptShape) }, () => []);
  for (let f = 0; f < x.data.length; f++) {
    const o = keptOffset(unravel(f, x.shape), axes, keptStrides);
    rows[o]?.push(x.data[f] ?? NaN);
  }
  const out = makeTensor(dtype, outShape);
  rows.forEach((row, o) => {
    let m = -Infinity;
    for (const v of row) m = Number.isNaN(v) || Number.isNaN(m) ? NaN : Math.max(m, v);
    if (Number.isNaN(m) || m === -Infinity || m === Infinity) {
      out.data[o] = m;
      return;
    }
    let sum = 0;
    for (const v of row) sum += Math.exp(v - m);
    out.data[o] = coerce(dtype, m + Math.log(sum));
  });
  return out;
}

/**
 * `v` (the reduced shape, with or without the kept 1s) read at every element of `shape`: a grid
 * whose reads skip the reduced axes (or read index 0 of a kept 1).
 */
function spread(g: GradBuilder, v: number, axes: readonly number[], keepdims: boolean, shape: readonly Dim[]): number {
  const indices: ScalarExpr[] = [];
  shape.forEach((_, i) => {
    if (!axes.includes(i)) indices.push(idx(i));
    else if (keepdims) indices.push(i32(0));
  });
  const body: ScalarExpr = { kind: 'read', operand: 0, indices, dtype: g.type(v).dtype };
  return g.node('grid', [v], { shape: { kind: 'dims', value: shape }, body: { kind: 'lambda', params: shape.map((_, i) => `i${i}`), body } });
}

/** `v` of the reduced shape reshaped to keep the reduced axes as 1s (broadcasts against the operand). */
function kept(g: GradBuilder, v: number, axes: readonly number[], keepdims: boolean, shape: readonly Dim[]): number {
  if (keepdims) return v;
  return g.node('reshape', [v], { shape: { kind: 'dims', value: shape.map((d, i) => (axes.includes(i) ? dimConst(1) : d)) } });
}

/**
 * sum: the cotangent spread over the reduced axes; mean: divided by their size; max: to the
 * maximal elements, split evenly on ties (as torch.amax); logsumexp: times softmax = exp(x - y).
 */
function reduceVjp(kind: Kind): VjpRule {
  return (g, a) => {
    const [x] = a.x;
    if (x === undefined || a.needs[0] !== true) return [undefined];
    const axes = intsAttr(a.node, 'axes');
    const keepdims = boolAttr(a.node, 'keepdims');
    const t = g.type(x);
    switch (kind) {
      case 'sum':
        return [spread(g, a.dy, axes, keepdims, t.shape)];
      case 'mean': {
        const n = g.dimValue(axes.reduce((acc, i) => dimMul(acc, t.shape[i] ?? dimConst(1)), dimConst(1)), t.dtype);
        return [spread(g, g.op('div', a.dy, n), axes, keepdims, t.shape)];
      }
      case 'max': {
        const hit = g.op('eq', x, kept(g, a.y, axes, keepdims, t.shape));
        const count = g.node('sum', [g.cast(hit, t.dtype)], { axes: { kind: 'ints', value: axes }, keepdims: { kind: 'bool', value: true } });
        const share = g.op('div', kept(g, a.dy, axes, keepdims, t.shape), count);
        return [g.op('where', hit, share, g.lit(a.dy, 0))];
      }
      case 'logsumexp': {
        const p = g.op('exp', g.op('sub', x, kept(g, a.y, axes, keepdims, t.shape)));
        return [g.op('mul', kept(g, a.dy, axes, keepdims, t.shape), p)];
      }
    }
  };
}

function reduceOp(name: string, kind: Kind, doc: string): OpDef {
  return defineOp({
    name,
    family: 'reduce',
    arity: 1,
    attrs: { axes: 'ints', keepdims: 'bool' },
    doc,
    infer: (operands, attrs) => {
      const [x] = operands;
      if (x === undefined || operands.length !== 1) return opError('TFC104', `${name} takes 1 operand, got ${operands.length}`);
      const floatOnly = kind === 'mean' || kind === 'logsumexp';
      if (floatOnly ? !isFloat(x.dtype) : x.dtype === 'bool' || x.dtype === 'i8') {
        return opError('TFC207', `${name} needs a ${floatOnly ? 'floating-point' : 'float or i32'} operand, got ${printType(x)}`);
      }
      const axes = axesOf(attrs);
      if (axes === undefined) return opError('TFC203', `${name} needs an 'axes' list`);
      const shape = reduceShape(name, x, axes, keepdimsOf(attrs));
      if (!Array.isArray(shape)) return shape as OpError;
      return { dtype: x.dtype, shape };
    },
    interp: (operands: readonly Tensor64[], ctx: InterpContext) => {
      const [x] = operands;
      if (x === undefined) throw new Error(`internal: ${name} without operand`);
      return interpReduce(kind, x, intsAttr(ctx.node, 'axes'), ctx.node.type.dtype, ctx.shape);
    },
    vjp: reduceVjp(kind),
    // One add or compare per input element (mean's divide per output not counted); logsumexp:
    // compare (max), subtract, exp, add per element (its log per output not counted).
    flops: (operands: readonly TensorType[]) => dimMul(dimConst(kind === 'logsumexp' ? 4 : 1), numelDim(operands[0]?.shape ?? [])),
    lowering: 'unfused',
  });
}

export const reduceOps: readonly OpDef[] = [
  reduceOp('sum', 'sum', 'sum over `axes` (sorted, non-negative); `keepdims` keeps them as size 1; empty sum is 0'),
  reduceOp('max_reduce', 'max', 'maximum over `axes`; NaN propagates; empty max is -inf (i32: -2^31)'),
  reduceOp('mean', 'mean', 'arithmetic mean over `axes` (float only); empty mean is NaN'),
  reduceOp('logsumexp', 'logsumexp', 'log(sum(exp(x))) over `axes` (float only), as max + log(sum exp(x - max)); a row of only -inf (or an empty one) gives -inf, never NaN'),
];
