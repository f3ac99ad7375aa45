// The fused cross-entropy loss (issue 17 item 3): an LM head and its mean cross-entropy in one op,
// so the [rows, vocab] logits are never a graph value. Made by the training-loss builder
// (src/autodiff/fused-loss.ts), never written by users:
//
//   %90 = fused_cross_entropy %h, %wte, %targets {transpose_w=true} : f32[]      the mean loss
//   %95 = fused_cross_entropy_dh %90 : f32[B,T,d]          d loss / d h    (made by the vjp)
//   %96 = fused_cross_entropy_dw %90 : f32[vocab,d]        d loss / d w
//   %97 = fused_cross_entropy_db %90 : f32[vocab]          d loss / d bias (with a bias operand)
//
// Operands: h [..., d] (the rows, N = product of the leading dims), w ([d, V], or [V, d] with
// `transpose_w`: a tied `h @ transpose(wte)` head reads wte as it is stored), the i32 targets
// [...] (h's leading dims), then optionally a bias [V]. Per row: z = h w (+ bias),
// lse = log sum exp z, loss_r = lse - z[target] (a target outside [0, V) picks nothing, as the
// unfused one-hot); the result is mean_r loss_r. The gradients of that mean are second results:
// g = (softmax(z) - onehot(target)) / N, dh = g w^T, dw = h^T g (w's layout), db = sum_r g. The
// kernels compute them in the same pass over the logits (Liger-kernel style: per chunk of rows,
// the logits tile, one row kernel for lse, loss and g written over the tile, then the dh and dw
// products: src/kernel/lower/cross-entropy.ts), so the vjp only scales them by the cotangent.
// The float64 rule below is that, naive on purpose.
import { type Dim, dimAdd, dimConst, dimMul } from '../base/dim.js';
import { InternalError } from '../diag/diagnostic.js';
import type { Node } from '../graph/ir.js';
import { type TensorType, isFloat, printType, shapeEquals } from '../graph/types.js';
import { dimEquals } from '../base/dim.js';
import { makeTensor, type Tensor64 } from '../base/tensor.js';
import { type OpDef, type VjpRule, defineOp } from './define.js';
import { numelDim, opError } from './elementwise.js';
import { defineSecondResult } from './second-result.js';

/** Whether the node reads w as [V, d] (`transpose_w`). */
export function crossEntropyTransposed(n: Pick<Node, 'attrs'>): boolean {
  const a = n.attrs['transpose_w'];
  return a !== undefined && a.kind === 'bool' && a.value;
}

/** d, V and the leading (row) dims of a fused_cross_entropy's operand types; an error message when they do not fit. */
export function crossEntropyDims(operands: readonly TensorType[], transposed: boolean): { readonly d: Dim; readonly V: Dim; readonly lead: readonly Dim[] } | string {
  const [h, w, targets, bias] = operands;
  if (h === undefined || w === undefined || targets === undefined || operands.length > 4) return `fused_cross_entropy takes h, w, targets and an optional bias, got ${operands.length} operands`;
  if (!isFloat(h.dtype) || w.dtype !== h.dtype) return `fused_cross_entropy needs float h and w of one dtype, got ${printType(h)} and ${printType(w)}`;
  if (h.shape.length < 2 || w.shape.length !== 2) return `fused_cross_entropy needs h [..., d] and a rank-2 w, got ${printType(h)} and ${printType(w)}`;
  const d = h.shape[h.shape.length - 1] ?? dimConst(1);
  const [w0, w1] = w.shape as [Dim, Dim];
  const [wd, V] = transposed ? [w1, w0] : [w0, w1];
  if (!dimEquals(wd, d)) return `fused_cross_entropy: w ${printType(w)}${transposed ? ' (transposed)' : ''} does not take h's width of ${printType(h)}`;
  const lead = h.shape.slice(0, -1);
  if (targets.dtype !== 'i32' || !shapeEquals(targets.shape, lead)) return `fused_cross_entropy: targets ${printType(targets)} must be i32 of h's leading shape`;
  if (bias !== undefined && (bias.dtype !== h.dtype || bias.shape.length !== 1 || !dimEquals(bias.shape[0] ?? dimConst(1), V))) return `fused_cross_entropy: bias ${printType(bias)} is not [vocab] of w`;
  return { d, V, lead };
}

interface Grads {
  readonly loss: number;
  readonly dh: Tensor64;
  readonly dw: Tensor64;
  readonly db: Tensor64;
}

/** The float64 loss and gradients (see the file header). */
function interpCrossEntropy(operands: readonly Tensor64[], n: Node): Grads {
  const [h, w, targets, bias] = operands;
  if (h === undefined || w === undefined || targets === undefined) throw new InternalError('fused_cross_entropy needs h, w, targets');
  const transposed = crossEntropyTransposed(n);
  const d = h.shape[h.shape.length - 1] ?? 0;
  const V = (transposed ? w.shape[0] : w.shape[1]) ?? 0;
  const N = targets.data.length;
  // w(k, j): the weight between feature k and vocabulary entry j, in either layout.
  const wAt = transposed ? (k: number, j: number): number => w.data[j * d + k] ?? NaN : (k: number, j: number): number => w.data[k * V + j] ?? NaN;
  const dh = makeTensor(h.dtype, h.shape);
  const dw = makeTensor(w.dtype, w.shape);
  const db = makeTensor(h.dtype, [V]);
  const z = new Float64Array(V);
  let total = 0;
  for (let r = 0; r < N; r++) {
    let m = -Infinity;
    for (let j = 0; j < V; j++) {
      let s = bias === undefined ? 0 : (bias.data[j] ?? NaN);
      for (let k = 0; k < d; k++) s += (h.data[r * d + k] ?? NaN) * wAt(k, j);
      z[j] = s;
      m = Math.max(m, s);
    }
    let sum = 0;
    for (let j = 0; j < V; j++) sum += Math.exp((z[j] ?? NaN) - m);
    const lse = m + Math.log(sum);
    const t = targets.data[r] ?? -1;
    const hit = t >= 0 && t < V;
    total += lse - (hit ? (z[t] ?? NaN) : 0);
    for (let j = 0; j < V; j++) {
      const g = (Math.exp((z[j] ?? NaN) - lse) - (j === t ? 1 : 0)) / N;
      db.data[j] = (db.data[j] ?? 0) + g;
      for (let k = 0; k < d; k++) {
        dh.data[r * d + k] = (dh.data[r * d + k] ?? 0) + g * wAt(k, j);
        const at = transposed ? j * d + k : k * V + j;
        dw.data[at] = (dw.data[at] ?? 0) + g * (h.data[r * d + k] ?? NaN);
      }
    }
  }
  return { loss: N === 0 ? NaN : total / N, dh, dw, db };
}

// The loss and its three gradient results read one computation: the interpreter calls each rule
// with the producer's operands (the same tensors), so the last result is kept per h tensor, for
// the same node and the very same operand tensors (finite differences change w under one h).
const last = new WeakMap<Tensor64, { readonly node: Node; readonly operands: readonly Tensor64[]; readonly grads: Grads }>();

function gradsOf(operands: readonly Tensor64[], n: Node): Grads {
  const h = operands[0];
  if (h === undefined) throw new InternalError('fused_cross_entropy needs h');
  const hit = last.get(h);
  if (hit !== undefined && hit.node === n && hit.operands.length === operands.length && hit.operands.every((t, i) => t === operands[i])) return hit.grads;
  const grads = interpCrossEntropy(operands, n);
  last.set(h, { node: n, operands: [...operands], grads });
  return grads;
}

/** The vjp: the gradients were computed with the loss (second results), scaled by its cotangent here. */
const crossEntropyVjp: VjpRule = (g, a) => {
  const [h, w, , bias] = a.x;
  if (h === undefined || w === undefined) throw new InternalError('fused_cross_entropy needs h and w');
  const scaled = (op: string, like: number): number => g.op('mul', a.dy, g.node(op, [a.y], {}, g.type(like)));
  return [
    a.needs[0] === true ? scaled('fused_cross_entropy_dh', h) : undefined,
    a.needs[1] === true ? scaled('fused_cross_entropy_dw', w) : undefined,
    undefined,
    ...(bias === undefined ? [] : [a.needs[3] === true ? scaled('fused_cross_entropy_db', bias) : undefined]),
  ];
};

/** A gradient result of fused_cross_entropy: typed by its declaration (the producer's operand it is the gradient of). */
function gradResult(name: string, of: 'h' | 'w' | 'bias', index: 'dh' | 'dw' | 'db'): OpDef {
  return defineSecondResult({
    name,
    resultOf: 'fused_cross_entropy',
    doc: `the gradient of its operand's (a fused_cross_entropy) mean loss w.r.t. its ${of} operand, computed in the same kernels as the loss (logits never materialized whole); its type is declared (${of}'s type)`,
    needs: (p) => p.dtype,
    accepts: (declared, p) => declared.dtype === p.dtype,
    noGrad: 'a gradient result of the fused cross-entropy (second derivatives are not supported)',
    value: (operands, producer) => gradsOf(operands, producer)[index],
  });
}

export const crossEntropyOps: readonly OpDef[] = [
  defineOp({
    name: 'fused_cross_entropy',
    family: 'fused',
    arity: 'variadic',
    attrs: { transpose_w: 'bool' },
    doc: 'mean cross-entropy of the LM head h @ w (+ bias) against i32 targets: operands h [..., d], w [d, V] (or [V, d] with `transpose_w`), targets [...], optional bias [V]; a scalar. Its gradients are the second results fused_cross_entropy_dh / _dw / _db (computed with the loss, chunk by chunk of rows: the [rows, V] logits are never materialized whole)',
    infer: (operands, attrs) => {
      const t = attrs['transpose_w'];
      const r = crossEntropyDims(operands, t !== undefined && t.kind === 'bool' && t.value);
      if (typeof r === 'string') return opError('TFC201', r);
      return { dtype: operands[0]?.dtype ?? 'f32', shape: [] };
    },
    interp: (operands, ctx) => makeTensor(ctx.node.type.dtype, [], [gradsOf(operands, ctx.node).loss]),
    vjp: crossEntropyVjp,
    // Per row and vocabulary entry: the logit (2d), lse, loss and gradient (~6), dh and dw (4d).
    flops: (operands, _result, attrs) => {
      const t = attrs['transpose_w'];
      const r = crossEntropyDims(operands, t !== undefined && t.kind === 'bool' && t.value);
      if (typeof r === 'string') return dimConst(0);
      return dimMul(dimMul(numelDim(r.lead), r.V), dimAdd(dimMul(dimConst(6), r.d), dimConst(6)));
    },
    lowering: 'unfused',
  }),
  gradResult('fused_cross_entropy_dh', 'h', 'dh'),
  gradResult('fused_cross_entropy_dw', 'w', 'dw'),
  gradResult('fused_cross_entropy_db', 'bias', 'db'),
];
