// Row-wise ops: softmax over one axis, layernorm and rmsnorm over the last axis.
// A softmax row whose maximum is -inf (fully masked) gives zeros, as the fused kernels do.
import { dimConst, dimMul, dimEquals } from '../base/dim.js';
import { intAttr, floatAttr } from '../graph/ir.js';
import { type TensorType, isFloat, printType } from '../graph/types.js';
import { makeTensor, stridesOf, type Tensor64 } from '../base/tensor.js';
import { type OpDef, type OpError, defineOp } from './define.js';
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
    // square+sum 2, scale 2 per element.
    flops: (_operands, result) => dimMul(dimConst(4), numelDim(result.shape)),
    lowering: 'unfused',
  }),
];
