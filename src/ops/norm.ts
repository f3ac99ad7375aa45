// Row-wise ops: softmax over one axis, layernorm and rmsnorm over the last axis.
// A softmax row whose maximum is -inf (fully masked) gives zeros, as the fused kernels do.
import { dimConst, dimMul, dimEquals } from '../base/dim.js';
import { intAttr, floatAttr } from '../graph/ir.js';
import { type TensorType, isFloat, printType } from '../graph/types.js';
import { makeTensor, stridesOf, type Tensor64 } from '../base/tensor.js';
import { type GradBuilder, type OpDef, type OpError, type VjpRule, defineOp } from './define.js';
import { numelDim, opError } from './elementwise.js';

/** Visits each 1-D row along `axis`: calls f with the offsets of the row's elements. */
function forEachRow(shape: readonly number[], axis: number, f: (offsets: number[]) => void): void {
  const strides = stridesOf(shape);
  const len = shape[axis] ?? 1;
  const stride = strides[axis] ?? 1;
  const outer = shape.slice(0, axis).reduce((n, d) => n * d, 1);
  const inner = shape.slice(axis + 1).reduce((n, d) => n * d, 1);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * len * inner + i;
      f(Array.from({ length: len }, (_, j) => base + j * stride));
    }
  }
}

export function softmaxRow(xs: readonly number[]): number[] {
  const m = xs.reduce((a, x) => Math.max(a, x), -Infinity);
  if (m === -Infinity) return xs.map(() => 0); // fully masked row (or empty)
  const e = xs.map((x) => Math.exp(x - m));
  const s = e.reduce((a, x) => a + x, 0);
  return e.map((x) => x / s);
}

function inferRowNorm(name: string, operands: readonly TensorType[]): TensorType | OpError {
  const [x, ...params] = operands;
  if (x === undefined) return opError('TFC104', `${name} has no operands`);
  if (!isFloat(x.dtype)) return opError('TFC207', `${name} needs a floating-point operand, got ${printType(x)}`);
  const d = x.shape[x.shape.length - 1];
  if (d === undefined) return opError('TFC203', `${name} needs rank >= 1, got ${printType(x)}`);
  for (const p of params) {
    if (p.dtype !== x.dtype) return opError('TFC202', `${name} parameter ${printType(p)} and input ${printType(x)}: dtypes ${p.dtype} and ${x.dtype} differ`);
    const pd = p.shape[0];
    if (p.shape.length !== 1 || pd === undefined || !dimEquals(pd, d)) {
      return opError('TFC201', `${name} parameter ${printType(p)} does not match the last axis of ${printType(x)}`);
    }
  }
  return x;
}

function operandsOf(operands: readonly Tensor64[], n: number, name: string): Tensor64[] {
  if (operands.length !== n) throw new Error(`internal: ${name} needs ${n} operands`);
  return [...operands];
}

/** Mean over the last axis, kept as size 1. */
function rowMean(g: GradBuilder, v: number): number {
  const r = g.type(v).shape.length;
  return g.node('mean', [v], { axes: { kind: 'ints', value: [r - 1] }, keepdims: { kind: 'bool', value: true } });
}

/**
 * layernorm and rmsnorm: the row statistics are recomputed from x (the forward node saves only
 * its output), xhat = (x - mean) * rstd (rmsnorm: x * rstd); then dgamma = sum over rows of
 * dy * xhat, dbeta = sum of dy, and with dxhat = dy * gamma,
 * dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) (rmsnorm: without mean(dxhat)).
 */
function rowNormVjp(centered: boolean): VjpRule {
  return (g, a) => {
    const [x, gamma] = a.x;
    if (x === undefined || gamma === undefined) throw new Error('internal: a norm without operands');
    const eps = g.constant(floatAttr(a.node, 'eps'), g.type(x).dtype);
    const xc = centered ? g.op('sub', x, rowMean(g, x)) : x;
    const rstd = g.op('rsqrt', g.op('add', rowMean(g, g.op('mul', xc, xc)), eps));
    const xhat = g.op('mul', xc, rstd);
    const gshape = g.type(gamma).shape;
    let dx: number | undefined;
    if (a.needs[0] === true) {
      const dxhat = g.op('mul', a.dy, gamma);
      const proj = g.op('mul', xhat, rowMean(g, g.op('mul', dxhat, xhat)));
      const inner = centered ? g.op('sub', g.op('sub', dxhat, rowMean(g, dxhat)), proj) : g.op('sub', dxhat, proj);
      dx = g.op('mul', rstd, inner);
    }
    const dgamma = a.needs[1] === true ? g.unbroadcast(g.op('mul', a.dy, xhat), gshape) : undefined;
    const dbeta = centered && a.needs[2] === true ? g.unbroadcast(a.dy, gshape) : undefined;
    return centered ? [dx, dgamma, dbeta] : [dx, dgamma];
  };
}

export const normOps: readonly OpDef[] = [
  defineOp({
    name: 'softmax',
    family: 'norm',
    arity: 1,
    attrs: { axis: 'int' },
    doc: 'exp(x - max) / sum over `axis`; a row whose max is -inf (fully masked) gives zeros',
    infer: (operands, attrs) => {
      const [x] = operands;
      if (x === undefined || operands.length !== 1) return opError('TFC104', `softmax takes 1 operand, got ${operands.length}`);
      if (!isFloat(x.dtype)) return opError('TFC207', `softmax needs a floating-point operand, got ${printType(x)}`);
      const a = attrs['axis'];
      const axis = a !== undefined && a.kind === 'int' ? a.value : -1;
      if (axis < 0 || axis >= x.shape.length) return opError('TFC203', `softmax axis ${axis} is out of range for ${printType(x)}`);
      return x;
    },
    interp: (operands, ctx) => {
      const [x] = operandsOf(operands, 1, 'softmax');
      if (x === undefined) throw new Error('internal');
      const out = makeTensor(x.dtype, x.shape);
      forEachRow(x.shape, intAttr(ctx.node, 'axis'), (offs) => {
        const ys = softmaxRow(offs.map((o) => x.data[o] ?? NaN));
        offs.forEach((o, j) => (out.data[o] = ys[j] ?? NaN));
      });
      return out;
    },
    // dx = y * (dy - sum(dy * y)) along the axis.
    vjp: (g, a) => {
      if (a.needs[0] !== true) return [undefined];
      const s = g.node('sum', [g.op('mul', a.dy, a.y)], { axes: { kind: 'ints', value: [intAttr(a.node, 'axis')] }, keepdims: { kind: 'bool', value: true } });
      return [g.op('mul', a.y, g.op('sub', a.dy, s))];
    },
    // max, subtract, exp, sum, divide: about 5 per element.
    flops: (_operands, result) => dimMul(dimConst(5), numelDim(result.shape)),
    lowering: 'unfused',
  }),
  defineOp({
    name: 'layernorm',
    family: 'norm',
    arity: 3,
    attrs: { eps: 'float' },
    doc: '(x - mean) / sqrt(var + eps) * gamma + beta over the last axis; biased variance',
    infer: (operands) => (operands.length === 3 ? inferRowNorm('layernorm', operands) : opError('TFC104', `layernorm takes 3 operands, got ${operands.length}`)),
    interp: (operands, ctx) => {
      const [x, gamma, beta] = operandsOf(operands, 3, 'layernorm');
      if (x === undefined || gamma === undefined || beta === undefined) throw new Error('internal');
      const eps = floatAttr(ctx.node, 'eps');
      const out = makeTensor(x.dtype, x.shape);
      forEachRow(x.shape, x.shape.length - 1, (offs) => {
        const xs = offs.map((o) => x.data[o] ?? NaN);
        const mean = xs.reduce((a, v) => a + v, 0) / xs.length;
        const variance = xs.reduce((a, v) => a + (v - mean) * (v - mean), 0) / xs.length;
        const inv = 1 / Math.sqrt(variance + eps);
        offs.forEach((o, j) => {
          out.data[o] = ((xs[j] ?? NaN) - mean) * inv * (gamma.data[j] ?? NaN) + (beta.data[j] ?? NaN);
        });
      });
      return out;
    },
    vjp: rowNormVjp(true),
    // mean 1, variance 3, normalize 2, affine 2 per element.
    flops: (_operands, result) => dimMul(dimConst(8), numelDim(result.shape)),
    lowering: 'unfused',
  }),
  defineOp({
    name: 'rmsnorm',
    family: 'norm',
    arity: 2,
    attrs: { eps: 'float' },
    doc: 'x * rsqrt(mean(x^2) + eps) * gamma over the last axis',
    infer: (operands) => (operands.length === 2 ? inferRowNorm('rmsnorm', operands) : opError('TFC104', `rmsnorm takes 2 operands, got ${operands.length}`)),
    interp: (operands, ctx) => {
      const [x, gamma] = operandsOf(operands, 2, 'rmsnorm');
      if (x === undefined || gamma === undefined) throw new Error('internal');
      const eps = floatAttr(ctx.node, 'eps');
      const out = makeTensor(x.dtype, x.shape);
      forEachRow(x.shape, x.shape.length - 1, (offs) => {
        const xs = offs.map((o) => x.data[o] ?? NaN);
        const ms = xs.reduce((a, v) => a + v * v, 0) / xs.length;
        const inv = 1 / Math.sqrt(ms + eps);
        offs.forEach((o, j) => {
          out.data[o] = (xs[j] ?? NaN) * inv * (gamma.data[j] ?? NaN);
        });
      });
      return out;
    },
    vjp: rowNormVjp(false),
    // square+sum 2, scale 2 per element.
    flops: (_operands, result) => dimMul(dimConst(4), numelDim(result.shape)),
    lowering: 'unfused',
  }),
];
