// fused_attention's backward as catalog ops (made by its vjp, src/ops/attention-vjp.ts; never
// written by users): `fused_attention_grad` gives dQ, its second results `fused_attention_grad_k`
// and `fused_attention_grad_v` give dK and dV (GQA/MQA: summed over the query heads of each KV
// head). One kernel computes all three (src/kernel/attention/backward.ts); docs/autodiff.md
// "Fused attention backward".
//
//   %40 = fused_attention_grad %q, %k, %v, %o, %lse, %do {mask=(b, h, q, k) => le(k, q),
//           scale=0.25} : f32[B,4,T,16]                                              dQ
//   %41 = fused_attention_grad_k %40 : f32[B,2,T,16]                                   dK
//   %42 = fused_attention_grad_v %40 : f32[B,2,T,16]                                   dV
//
// The math (FlashAttention-2's backward, Dao 2023), per query row i and key j of a head:
//   s = scale * q_i.k_j, z = score(s) (or s), z = -inf where the mask is false,
//   P = exp(z - lse_i) (0 where z = -inf or lse_i = -inf), dP = dO_i.v_j,
//   D_i = dO_i.o_i - dlse_i, dZ = P (dP - D_i), dS = dZ * dscore(s) (or dZ),
//   dQ_i = scale sum_j dS k_j, dK_j = scale sum_i dS q_i, dV_j = sum_i P dO_i.
// A table the score lambda reads with a gradient (`table_grads`, a learned bias): per read site
// of it (attention-vjp.ts tableSites), dTable[site's element at (b, h, i, j)] += dZ * d score /
// d read, summed over every (b, h, i, j): the result `fused_attention_grad_t {operand=t}`.
// The float64 rule below is that, naive on purpose: the reference the kernel is tested against.
import { type Dim, dimAdd, dimConst, dimMul } from '../base/dim.js';
import { InternalError } from '../diag/diagnostic.js';
import type { Attr, Attrs, Node } from '../graph/ir.js';
import { type TensorType, isFloat, printType, shapeEquals } from '../graph/types.js';
import { makeTensor, type Tensor64 } from '../base/tensor.js';
import { type InterpContext, type OpDef, type OpError, defineOp } from './define.js';
import { numelDim, opError } from './elementwise.js';
import { attentionScores, evalLambda, inferAttention, scoreAsRead } from './attention.js';
import { attentionGradExtrasStart, shiftReads, tableGradOperands, tableSites } from './attention-vjp.js';
import { countApplies } from './source.js';
import { defineSecondResult } from './second-result.js';

function lambdaOf(attrs: Attrs, key: string): Extract<Attr, { kind: 'lambda' }> | undefined {
  const a = attrs[key];
  return a !== undefined && a.kind === 'lambda' ? a : undefined;
}

/** The attributes with the lambdas' reads moved back to operand 3 (extras right after q, k, v, as in the forward). */
function forwardAttrs(attrs: Attrs): Record<string, Attr> {
  const by = attentionGradExtrasStart(attrs) - 3;
  const out: Record<string, Attr> = {};
  for (const [key, a] of Object.entries(attrs)) if (key !== 'lse_cotangent' && key !== 'table_grads') out[key] = a.kind === 'lambda' ? { ...a, body: shiftReads(a.body, 3 + by, -by) } : a;
  return out;
}

function inferGrad(operands: readonly TensorType[], attrs: Attrs): TensorType | OpError {
  const start = attentionGradExtrasStart(attrs);
  const [q, k, v, o, lse, dO, dlse] = operands;
  if (q === undefined || k === undefined || v === undefined || o === undefined || lse === undefined || dO === undefined || operands.length < start) {
    return opError('TFC104', `fused_attention_grad takes q, k, v, o, lse, dO${start > 6 ? ', dLSE' : ''} and the tensors its lambdas read, got ${operands.length} operands`);
  }
  const { dscore, ...fwd } = forwardAttrs(attrs);
  const extras = operands.slice(start);
  // The forward's checks, once with the score lambda and once with its derivative in its place.
  for (const a of dscore === undefined ? [fwd] : [fwd, { ...fwd, score: dscore }]) {
    const t = inferAttention([q, k, v, ...extras], a);
    if ('code' in t) return t;
    if (!shapeEquals(t.shape, o.shape) || t.dtype !== o.dtype) return opError('TFC201', `fused_attention_grad: o ${printType(o)} is not the attention's output ${printType(t)}`);
  }
  if (dscore !== undefined && fwd['score'] === undefined) return opError('TFC216', `fused_attention_grad has 'dscore' without 'score'`);
  for (const t of tableGradOperands(attrs)) {
    const x = operands[t];
    if (t < start || x === undefined || !isFloat(x.dtype)) return opError('TFC216', `fused_attention_grad: table_grads names operand ${t}, not a float tensor its lambdas read`);
  }
  if (!shapeEquals(dO.shape, o.shape) || dO.dtype !== o.dtype) return opError('TFC201', `fused_attention_grad: dO ${printType(dO)} differs from o ${printType(o)}`);
  for (const [name, t] of [['lse', lse], ['dLSE', dlse]] as const) {
    if (t === undefined || (name === 'dLSE' && start === 6)) continue;
    if (!isFloat(t.dtype) || !shapeEquals(t.shape, o.shape.slice(0, 3))) return opError('TFC201', `fused_attention_grad: ${name} ${printType(t)} is not [B,Hq,T] of o ${printType(o)}`);
  }
  return q;
}

interface Grads {
  readonly dq: Tensor64;
  readonly dk: Tensor64;
  readonly dv: Tensor64;
  /** The tables' gradients, by operand index (`table_grads`). */
  readonly dt: ReadonlyMap<number, Tensor64>;
}

/** The float64 backward of a fused_attention_grad node `n` on its operands (see the file header). */
function interpGrad(operands: readonly Tensor64[], n: Node, ctx: InterpContext): Grads {
  const [q, k, v, o, lse, dO] = operands;
  if (q === undefined || k === undefined || v === undefined || o === undefined || lse === undefined || dO === undefined) throw new InternalError('fused_attention_grad needs q, k, v, o, lse, dO');
  const dlse = attentionGradExtrasStart(n.attrs) > 6 ? operands[6] : undefined;
  const [nb, hq, nt, dk] = q.shape as [number, number, number, number];
  const [, hkv, ns] = k.shape as [number, number, number, number];
  const dv = v.shape[3] ?? 0;
  const group = hq / hkv;
  const scale = (n.attrs['scale'] as { value: number } | undefined)?.value ?? NaN;
  const { raw, final } = attentionScores(q, k, operands, n, ctx);
  const dscoreL = lambdaOf(n.attrs, 'dscore');
  const shape = [nb, hq, nt, ns];
  const dscore = dscoreL === undefined ? undefined : evalLambda(dscoreL.params, scoreAsRead(dscoreL.body, operands.length), [...operands, raw], { ...ctx, node: n }, shape);
  const dq = makeTensor(q.dtype, q.shape);
  const dkT = makeTensor(k.dtype, k.shape);
  const dvT = makeTensor(v.dtype, v.shape);
  const at = (t: Tensor64, i: number): number => t.data[i] ?? NaN;
  // Each table read site: its element's flat offset and its adjoint, per score element.
  const dt = new Map(tableGradOperands(n.attrs).map((t) => [t, makeTensor(operands[t]?.dtype ?? 'f32', operands[t]?.shape ?? [])]));
  const scoreL = lambdaOf(n.attrs, 'score');
  const params = scoreL?.params ?? ['b', 'h', 'q', 'k'];
  const sites = tableSites(scoreL?.body, [...dt.keys()]).map((site) => {
    const table = operands[site.operand];
    const out = dt.get(site.operand);
    if (table === undefined || out === undefined) throw new InternalError(`fused_attention_grad: table operand ${site.operand} missing`);
    const idx = site.indices.map((e) => evalLambda(params, e, operands, { ...ctx, node: n }, shape));
    const adjoint = evalLambda(params, scoreAsRead(site.adjoint, operands.length), [...operands, raw], { ...ctx, node: n }, shape);
    return { table, out, idx, adjoint };
  });
  for (let b = 0; b < nb; b++)
    for (let h = 0; h < hq; h++) {
      const kh = Math.floor(h / group);
      for (let i = 0; i < nt; i++) {
        const row = (b * hq + h) * nt + i;
        const l = at(lse, row);
        let D = 0;
        for (let e = 0; e < dv; e++) D += at(dO, row * dv + e) * at(o, row * dv + e);
        if (dlse !== undefined) D -= at(dlse, row);
        for (let j = 0; j < ns; j++) {
          const z = at(final, row * ns + j);
          const p = z === -Infinity || l === -Infinity ? 0 : Math.exp(z - l);
          if (p === 0) continue;
          const kv = (b * hkv + kh) * ns + j;
          let dp = 0;
          for (let e = 0; e < dv; e++) dp += at(dO, row * dv + e) * at(v, kv * dv + e);
          const dz = p * (dp - D);
          const ds = dz * (dscore === undefined ? 1 : at(dscore, row * ns + j));
          const el = row * ns + j;
          for (const st of sites) {
            let flat = 0;
            st.idx.forEach((ix, d) => {
              flat = flat * (st.table.shape[d] ?? 1) + at(ix, el);
            });
            st.out.data[flat] = at(st.out, flat) + dz * at(st.adjoint, el);
          }
          for (let e = 0; e < dv; e++) dvT.data[kv * dv + e] = at(dvT, kv * dv + e) + p * at(dO, row * dv + e);
          for (let d = 0; d < dk; d++) {
            dq.data[row * dk + d] = at(dq, row * dk + d) + scale * ds * at(k, kv * dk + d);
            dkT.data[kv * dk + d] = at(dkT, kv * dk + d) + scale * ds * at(q, row * dk + d);
          }
        }
      }
    }
  return { dq, dk: dkT, dv: dvT, dt };
}

// The three results read one computation: the interpreter calls each rule with the producer's
// operands (the same tensors), so the last result is kept per dO tensor, valid only for the same
// node and the very same operand tensors (a caller may rerun the node with dO unchanged and q, k
// or v perturbed: finite differences do).
const lastGrads = new WeakMap<Tensor64, { readonly node: Node; readonly operands: readonly Tensor64[]; readonly grads: Grads }>();

function gradsOf(operands: readonly Tensor64[], n: Node, ctx: InterpContext): Grads {
  const dO = operands[5];
  if (dO === undefined) throw new InternalError('fused_attention_grad needs dO');
  const hit = lastGrads.get(dO);
  if (hit !== undefined && hit.node === n && hit.operands.length === operands.length && hit.operands.every((t, i) => t === operands[i])) return hit.grads;
  const grads = interpGrad(operands, n, { ...ctx, node: n });
  lastGrads.set(dO, { node: n, operands: [...operands], grads });
  return grads;
}

/** fused_attention_grad_t: the gradient of the table at the producer's operand `operand` (a learned score-mod table), typed by its declaration. */
const tableResult: OpDef = defineSecondResult({
  name: 'fused_attention_grad_t',
  resultOf: 'fused_attention_grad',
  attrs: { operand: 'int' },
  doc: "the gradient of the table at operand `operand` of its operand, a fused_attention_grad (a tensor its score lambda reads, listed in its `table_grads`): the sum over every (b, h, q, k) of the score's cotangent times the score lambda's derivative in that read; its type is declared (the table's); written by the backward kernel (per-workgroup partial sums) and a small reduce kernel",
  needs: () => 'float',
  accepts: (declared) => isFloat(declared.dtype),
  noGrad: 'a result of the fused attention backward (second derivatives are not supported)',
  value: (operands, producer, ctx) => {
    const t = (ctx.node.attrs['operand'] as { value: number } | undefined)?.value ?? -1;
    const r = gradsOf(operands, producer, ctx).dt.get(t);
    if (r === undefined) throw new InternalError(`fused_attention_grad_t: operand ${t} is not in its producer's table_grads`);
    return r;
  },
});

/** A second result of fused_attention_grad: typed by its declaration (K's or V's type), checked against the producer's dtype. */
function secondResult(name: string, which: 'dK' | 'dV', index: 'dk' | 'dv'): OpDef {
  return defineSecondResult({
    name,
    resultOf: 'fused_attention_grad',
    doc: `the ${which} result of its operand, a fused_attention_grad: the cotangent of the attention's ${which === 'dK' ? 'k' : 'v'} [B,Hkv,S,${which === 'dK' ? 'dk' : 'dv'}], summed over the query heads of each KV head; its type is declared (the producer's operands give it); written by the backward kernel itself`,
    needs: (g) => `rank-4 ${g.dtype}`,
    accepts: (declared, g) => declared.shape.length === 4 && declared.dtype === g.dtype,
    noGrad: 'a result of the fused attention backward (second derivatives are not supported)',
    value: (operands, producer, ctx) => gradsOf(operands, producer, ctx)[index],
  });
}

export const attentionGradOps: readonly OpDef[] = [
  defineOp({
    name: 'fused_attention_grad',
    family: 'fused',
    arity: 'variadic',
    attrs: { scale: 'float' },
    optionalAttrs: { mask: 'lambda', score: 'lambda', dscore: 'lambda', lse_cotangent: 'bool', table_grads: 'ints' },
    doc:
      "fused_attention's backward: dQ [B,Hq,T,dk] from q, k, v, the forward output o, its log-sum-exp lse [B,Hq,T], dO (and, with `lse_cotangent`, the LSE's cotangent [B,Hq,T]), then the tensors the lambdas read; `mask` and `score` as the forward's (reads shifted past these operands), `dscore` the score lambda's derivative in score(); dK and dV are its second results fused_attention_grad_k / _v; `table_grads` lists the operands (tables the score lambda reads) whose gradients are its second results fused_attention_grad_t",
    infer: (operands, attrs) => inferGrad(operands, attrs),
    interp: (operands, ctx) => gradsOf(operands, ctx.node, ctx).dq,
    noGrad: 'the fused attention backward (second derivatives are not supported)',
    // Per score element: s (2 dk), dP (2 dv), dV (2 dv), dK and dQ (4 dk), P and dS (5), the
    // lambdas' applies (score, dscore, mask), 2 per learned table read.
    flops: (operands, _result, attrs) => {
      const [q, k, v] = operands;
      if (q === undefined || k === undefined || v === undefined) return dimConst(0);
      const [b, hq, t, dk] = q.shape as [Dim, Dim, Dim, Dim];
      const s = k.shape[2] ?? dimConst(0);
      const dv = v.shape[3] ?? dimConst(0);
      const lambdas = ['score', 'dscore', 'mask'].reduce((n, key) => n + countApplies(lambdaOf(attrs, key)?.body ?? { kind: 'const', value: 0, dtype: 'f32' }), 0);
      // A learned table's read sites: dZ times the read's adjoint, added (2 each, the adjoint's applies aside).
      const tables = 2 * tableSites(lambdaOf(attrs, 'score')?.body, tableGradOperands(attrs)).length;
      const perScore = dimAdd(dimAdd(dimMul(dimConst(6), dk), dimMul(dimConst(4), dv)), dimConst(5 + lambdas + tables));
      return dimMul(numelDim([b, hq, t, s]), perScore);
    },
    lowering: 'fused-only',
  }),
  secondResult('fused_attention_grad_k', 'dK', 'dk'),
  secondResult('fused_attention_grad_v', 'dV', 'dv'),
  tableResult,
];
