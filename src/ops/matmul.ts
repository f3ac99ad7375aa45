// Batched matrix multiply: [..., M, K] @ [..., K, N] -> [..., M, N], batch dims broadcast as in
// numpy. Both operands need rank >= 2 (a vector is written as a [1, K] or [K, 1] matrix).
import { dimConst, dimMul, dimEquals } from '../base/dim.js';
import { printDim } from '../base/dim.js';
import { type TensorType, isFloat, printType, shapeEquals } from '../graph/types.js';
import { makeTensor, numel, broadcastShapes, stridesOf, unravel } from '../base/tensor.js';
import { type GradBuilder, type OpDef, type OpError, type VjpArgs, defineOp } from './define.js';
import { broadcastDims, numelDim, opError } from './elementwise.js';

export function inferMatmul(a: TensorType, b: TensorType): TensorType | OpError {
  const what = `cannot matmul ${printType(a)} by ${printType(b)}`;
  if (a.dtype !== b.dtype) return opError('TFC202', `${what}: dtypes ${a.dtype} and ${b.dtype} differ`);
  if (!isFloat(a.dtype)) return opError('TFC207', `${what}: matmul needs floating-point operands`);
  if (a.shape.length < 2 || b.shape.length < 2) return opError('TFC204', `${what}: both operands need rank >= 2`);
  const m = a.shape[a.shape.length - 2] ?? dimConst(1);
  const k = a.shape[a.shape.length - 1] ?? dimConst(1);
  const k2 = b.shape[b.shape.length - 2] ?? dimConst(1);
  const n = b.shape[b.shape.length - 1] ?? dimConst(1);
  if (!dimEquals(k, k2)) return opError('TFC204', `${what}: inner dims ${printDim(k, true)} and ${printDim(k2, true)} differ`);
  const batch = broadcastDims(a.shape.slice(0, -2), b.shape.slice(0, -2));
  if (batch === undefined) return opError('TFC201', `${what}: batch dims cannot be broadcast`);
  return { dtype: a.dtype, shape: [...batch, m, n] };
}

/** `x` with its last two axes swapped. */
function swapLast(g: GradBuilder, x: number): number {
  const r = g.type(x).shape.length;
  const perm = Array.from({ length: r }, (_, i) => (i === r - 2 ? r - 1 : i === r - 1 ? r - 2 : i));
  return g.node('permute', [x], { perm: { kind: 'ints', value: perm } });
}

/**
 * dA = dY @ B^T and dB = A^T @ dY, each summed over the batch axes its operand was broadcast
 * along. A shared rank-2 B (a weight under [B, T, K] activations) gets A^T @ dY over the flattened
 * rows, one [K, rows] @ [rows, N] product instead of a batch of them summed afterwards.
 */
function matmulVjp(g: GradBuilder, a: VjpArgs): (number | undefined)[] {
  const [x, w] = a.x;
  if (x === undefined || w === undefined) throw new Error('internal: matmul needs 2 operands');
  const xt = g.type(x);
  const wt = g.type(w);
  const dyt = g.type(a.dy);
  const dx = a.needs[0] === true ? g.unbroadcast(g.node('matmul', [a.dy, swapLast(g, w)]), xt.shape) : undefined;
  let dw: number | undefined;
  if (a.needs[1] === true) {
    const lead = xt.shape.slice(0, -2);
    if (wt.shape.length === 2 && lead.length > 0 && shapeEquals(lead, dyt.shape.slice(0, -2))) {
      const rows = numelDim(xt.shape.slice(0, -1));
      const k = xt.shape[xt.shape.length - 1] ?? dimConst(1);
      const n = dyt.shape[dyt.shape.length - 1] ?? dimConst(1);
      const x2 = g.node('reshape', [x], { shape: { kind: 'dims', value: [rows, k] } });
      const dy2 = g.node('reshape', [a.dy], { shape: { kind: 'dims', value: [rows, n] } });
      dw = g.node('matmul', [swapLast(g, x2), dy2]);
    } else dw = g.unbroadcast(g.node('matmul', [swapLast(g, x), a.dy]), wt.shape);
  }
  return [dx, dw];
}

export const matmulOps: readonly OpDef[] = [
  defineOp({
    name: 'matmul',
    family: 'matmul',
    arity: 2,
    attrs: {},
    doc: '[..., M, K] @ [..., K, N] -> [..., M, N]; batch dims broadcast; rank >= 2; float64 accumulation in the interpreter',
    infer: (operands) => {
      const [a, b] = operands;
      if (a === undefined || b === undefined || operands.length !== 2) {
        return opError('TFC104', `matmul takes 2 operands, got ${operands.length}`);
      }
      return inferMatmul(a, b);
    },
    interp: (operands, ctx) => {
      const [a, b] = operands;
      if (a === undefined || b === undefined) throw new Error('internal: matmul needs 2 operands');
      const ra = a.shape.length;
      const rb = b.shape.length;
      const m = a.shape[ra - 2] ?? 0;
      const k = a.shape[ra - 1] ?? 0;
      const n = b.shape[rb - 1] ?? 0;
      const aBatch = a.shape.slice(0, -2);
      const bBatch = b.shape.slice(0, -2);
      const batch = broadcastShapes(aBatch, bBatch);
      if (batch === undefined) throw new Error('internal: matmul batch dims do not broadcast');
      const out = makeTensor(ctx.node.type.dtype, ctx.shape);
      // Offset of a matrix in a batched operand for a broadcast batch index.
      const matrixOffset = (shape: readonly number[], idx: readonly number[], matrixSize: number): number => {
        const strides = stridesOf(shape);
        const lead = idx.length - shape.length;
        let off = 0;
        shape.forEach((d, i) => {
          off += d === 1 ? 0 : (idx[lead + i] ?? 0) * (strides[i] ?? 0);
        });
        return off * matrixSize;
      };
      const nBatch = numel(batch);
      for (let bi = 0; bi < nBatch; bi++) {
        const idx = unravel(bi, batch);
        const aOff = matrixOffset(aBatch, idx, m * k);
        const bOff = matrixOffset(bBatch, idx, k * n);
        const oOff = bi * m * n;
        // i-p-j order: B's rows are read contiguously (the i-j-p order walked B's columns, ~10x
        // slower for GPT-2 small's shapes). Each output still sums its K products in p order from
        // 0, so the float64 results are bit-identical to the dot-product order.
        // (Indices are in range by the shapes: the `as number` casts cost nothing at run time,
        // where `?? NaN` in the inner loop halved the speed.)
        const ad = a.data;
        const bd = b.data;
        const acc = new Float64Array(n);
        for (let i = 0; i < m; i++) {
          acc.fill(0);
          for (let p = 0; p < k; p++) {
            const x = ad[aOff + i * k + p] as number;
            const brow = bOff + p * n;
            for (let j = 0; j < n; j++) acc[j] = (acc[j] as number) + x * (bd[brow + j] as number);
          }
          out.data.set(acc, oOff + i * n);
        }
      }
      return out;
    },
    vjp: (g, a) => matmulVjp(g, a),
    // 2*M*N*K per matrix, times the broadcast batch size: 2 * K * (elements of the result).
    flops: (operands, result) => {
      const a = operands[0];
      const k = a?.shape[a.shape.length - 1] ?? dimConst(0);
      return dimMul(dimConst(2), dimMul(k, numelDim(result.shape)));
    },
    lowering: 'unfused',
  }),
];
