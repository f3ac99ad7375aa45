// The fused attention op made by src/passes/fuse-attention.ts (never written by users), and
// `score`, the scaled score inside its `score` lambda. The contract is in docs/passes.md "Fused
// attention"; the kernel lowering (src/kernel/attention/attention.ts) codes against it.
//
//   %9 = fused_attention %q, %k, %v, %slope {mask=(b, h, q, k) => le(k, q), scale=0.125,
//          score=(b, h, q, k) => add(score(), read(3, h))} : f32[B,Hq,T,dv]
//
// The float64 rule below is naive on purpose (scores, score lambda, mask, softmax, @ v, one
// step at a time): it is the reference the kernels are tested against.
import { type Dim, dimAdd, dimConst, dimConstValue, dimDiv, dimEquals, dimEval, dimMul, printDim } from '../base/dim.js';
import { InternalError } from '../diag/diagnostic.js';
import type { Attr, Attrs, Node, ScalarExpr } from '../graph/ir.js';
import { type DType, type TensorType, isFloat, printType } from '../graph/types.js';
import { makeTensor, type Tensor64 } from '../base/tensor.js';
import { type InterpContext, type OpDef, type OpError, defineOp } from './define.js';
import { numelDim, opError } from './elementwise.js';
import { softmaxRow } from './norm.js';
import { placeholderOp } from './fused.js';
import { checkGridBody, countApplies, scalarExprDtype, sourceOps } from './source.js';
import { foldScalarExpr, idx, mapScalarExpr, someScalarExpr } from '../graph/lambda.js';
import { attentionVjp } from './attention-vjp.js';
import { defineSecondResult } from './second-result.js';

/** The lambda parameters the fusion pass writes: batch, query head, query row, key column. */
export const attentionParams: readonly string[] = ['b', 'h', 'q', 'k'];

/** `score()`: the scaled score q·k * scale at the lambda's (b, h, q, k), f32. */
export const scoreExpr: ScalarExpr = { kind: 'apply', op: 'score', args: [], dtype: 'f32' };

export function isScoreExpr(e: ScalarExpr): boolean {
  return e.kind === 'apply' && e.op === 'score' && e.args.length === 0;
}

/** Whether `e` uses `score()` anywhere. */
export function usesScore(e: ScalarExpr): boolean {
  return someScalarExpr(e, isScoreExpr);
}

/** `score()` replaced by `read(operand, b, h, q, k)`: the lambda becomes an ordinary grid body. */
export function scoreAsRead(e: ScalarExpr, operand: number): ScalarExpr {
  return mapScalarExpr(e, (x) => (isScoreExpr(x) ? { kind: 'read', operand, indices: [0, 1, 2, 3].map(idx), dtype: 'f32' } : undefined));
}

/** Reads of operands below `first` (q, k, v), or undefined when there are none. */
function readsBelow(e: ScalarExpr, first: number): number | undefined {
  return foldScalarExpr<number | undefined>(e, (x, inner) => (x.kind === 'read' && x.operand < first ? x.operand : inner.find((r) => r !== undefined)));
}


/** Q, K or V: the attention inputs a load lambda may compute (fuse-attention-loads). */
export type AttentionInput = 'q' | 'k' | 'v';

/**
 * Per input, its operand, the lambda computing it at load (RoPE on q/k; a paged cache's K/V read
 * through its page table) with its parameters (batch, head: the KV head for k and v, row, element)
 * and the attribute holding its shape.
 */
export const attentionLoads: Readonly<Record<AttentionInput, { readonly operand: 0 | 1 | 2; readonly load: 'qload' | 'kload' | 'vload'; readonly shape: 'qshape' | 'kshape' | 'vshape'; readonly params: readonly string[] }>> = {
  q: { operand: 0, load: 'qload', shape: 'qshape', params: ['b', 'h', 't', 'd'] },
  k: { operand: 1, load: 'kload', shape: 'kshape', params: ['b', 'h', 's', 'd'] },
  v: { operand: 2, load: 'vload', shape: 'vshape', params: ['b', 'h', 's', 'd'] },
};

/**
 * The type of Q, K or V as the attention sees it: its operand's, or with its load lambda the
 * load's shape attribute and the lambda's dtype (the operand is then only a tensor the lambda
 * reads). Undefined when the lambda comes without a valid shape.
 */
export function attentionInputType(which: AttentionInput, t: TensorType, attrs: Attrs): TensorType | undefined {
  const { load, shape } = attentionLoads[which];
  const l = attrs[load];
  if (l === undefined) return t;
  const sh = attrs[shape];
  if (l.kind !== 'lambda' || sh === undefined || sh.kind !== 'dims') return undefined;
  return { dtype: scalarExprDtype(l.body), shape: sh.value };
}

function lambdaOf(attrs: Attrs, key: string): Extract<Attr, { kind: 'lambda' }> | undefined {
  const a = attrs[key];
  return a !== undefined && a.kind === 'lambda' ? a : undefined;
}

/** KV heads divide query heads: Hq = g * Hkv for a positive integer (or, symbolically, a monomial) g. */
function groupOf(hq: Dim, hkv: Dim): Dim | undefined {
  if (dimEquals(hq, hkv)) return dimConst(1);
  const g = dimDiv(hq, hkv);
  if (g === undefined) return undefined;
  const c = dimConstValue(g);
  return c === undefined || c >= 1 ? g : undefined;
}

/** A load lambda (qload, kload, vload) with its shape: a lambda over its 4 parameters that may read any operand; gives the input's type. */
function inferLoad(operands: readonly TensorType[], attrs: Attrs, which: AttentionInput): TensorType | OpError | undefined {
  const { load: lk, shape: sk, params } = attentionLoads[which];
  const ql = attrs[lk];
  const qs = attrs[sk];
  if (ql === undefined && qs === undefined) return undefined;
  if (ql === undefined || ql.kind !== 'lambda' || qs === undefined || qs.kind !== 'dims') return opError('TFC216', `fused_attention's '${lk}' is a lambda and comes with '${sk}' dims`);
  if (ql.params.length !== 4 || qs.value.length !== 4) return opError('TFC216', `fused_attention's '${lk}' takes (${params.join(', ')}) over a rank-4 '${sk}'`);
  const err = checkGridBody(ql.body, 4, operands);
  if (err !== undefined) return opError(err.code, `fused_attention '${lk}': ${err.message}`);
  return { dtype: scalarExprDtype(ql.body), shape: qs.value };
}

export function inferAttention(operands0: readonly TensorType[], attrs: Attrs): TensorType | OpError {
  const q0 = operands0[0];
  const k0 = operands0[1];
  const qt = inferLoad(operands0, attrs, 'q');
  if (qt !== undefined && 'code' in qt) return qt;
  const kt = inferLoad(operands0, attrs, 'k');
  if (kt !== undefined && 'code' in kt) return kt;
  const vt = inferLoad(operands0, attrs, 'v');
  if (vt !== undefined && 'code' in vt) return vt;
  const v0 = operands0[2];
  // With `qload` (`kload`, `vload`), Q (K, V) is the lambda's value over `qshape` (`kshape`,
  // `vshape`); operand 0 (1, 2) is only a tensor it reads.
  const operands = q0 === undefined || k0 === undefined || v0 === undefined ? operands0 : [qt ?? q0, kt ?? k0, vt ?? v0, ...operands0.slice(3)];
  const [q, k, v] = operands;
  if (q === undefined || k === undefined || v === undefined) return opError('TFC104', `fused_attention takes q, k, v and the tensors its lambdas read, got ${operands.length} operands`);
  const all = `fused_attention of q ${printType(q)}, k ${printType(k)}, v ${printType(v)}`;
  for (const [name, t] of [['q', q], ['k', k], ['v', v]] as const) {
    if (t.shape.length !== 4) return opError('TFC203', `${all}: ${name} must have rank 4 [batch, heads, seq, head_dim]`);
    if (!isFloat(t.dtype)) return opError('TFC207', `${all}: ${name} must be floating-point`);
  }
  if (k.dtype !== q.dtype || v.dtype !== q.dtype) return opError('TFC202', `${all}: dtypes differ`);
  const [bq, hq, , dk] = q.shape as [Dim, Dim, Dim, Dim];
  const [bk, hk, sk, dk2] = k.shape as [Dim, Dim, Dim, Dim];
  const [bv, hv, sv, dv] = v.shape as [Dim, Dim, Dim, Dim];
  const tq = q.shape[2] as Dim;
  if (!dimEquals(bq, bk) || !dimEquals(bq, bv)) return opError('TFC201', `${all}: batch dims ${printDim(bq, true)}, ${printDim(bk, true)}, ${printDim(bv, true)} differ`);
  if (!dimEquals(dk, dk2)) return opError('TFC204', `${all}: q and k head widths ${printDim(dk, true)} and ${printDim(dk2, true)} differ`);
  if (!dimEquals(hk, hv)) return opError('TFC201', `${all}: k has ${printDim(hk, true)} heads but v has ${printDim(hv, true)}`);
  if (!dimEquals(sk, sv)) return opError('TFC201', `${all}: k has ${printDim(sk, true)} keys but v has ${printDim(sv, true)}`);
  if (groupOf(hq, hk) === undefined) return opError('TFC201', `${all}: ${printDim(hq, true)} query heads are not a multiple of ${printDim(hk, true)} KV heads`);
  const scale = attrs['scale'];
  if (scale === undefined || scale.kind !== 'float') return opError('TFC216', `fused_attention needs a float 'scale'`);
  // The lambdas: over (b, h, q, k) of the score tensor [B, Hq, T, S]; they read the extras only.
  const scoreSpace: TensorType = { dtype: 'f32', shape: [bq, hq, tq, sk] };
  const withScores = [...operands, scoreSpace];
  for (const key of ['mask', 'score'] as const) {
    const a = attrs[key];
    if (a === undefined) continue;
    if (a.kind !== 'lambda') return opError('TFC216', `fused_attention '${key}' must be a lambda`);
    if (a.params.length !== 4) return opError('TFC216', `fused_attention '${key}' takes (b, h, q, k), got ${a.params.length} parameter(s)`);
    const below = readsBelow(a.body, 3);
    if (below !== undefined) return opError('TFC216', `fused_attention '${key}' reads operand ${below}; lambdas read only the extra operands (3 and up)`);
    if (key === 'mask' && usesScore(a.body)) return opError('TFC216', `fused_attention 'mask' uses score(); a predicate on the score belongs in 'score'`);
    const body = key === 'score' ? scoreAsRead(a.body, operands.length) : a.body;
    const err = checkGridBody(body, 4, withScores);
    if (err !== undefined) return opError(err.code, `fused_attention '${key}': ${err.message}`);
    const want = key === 'mask' ? 'bool' : 'f32';
    if (scalarExprDtype(body) !== want) return opError('TFC216', `fused_attention '${key}' gives ${scalarExprDtype(body)}, not ${want}`);
  }
  return { dtype: q.dtype, shape: [bq, hq, tq, dv] };
}

const gridOp = sourceOps.find((o) => o.name === 'grid');

/** A lambda over `shape` evaluated by grid's float64 rule (operands as the lambda reads them). */
export function evalLambda(params: readonly string[], body: ScalarExpr, operands: readonly Tensor64[], ctx: Parameters<OpDef['interp']>[1], shape: readonly number[]): Tensor64 {
  if (gridOp === undefined) throw new InternalError('fused_attention needs the grid op');
  const dtype = scalarExprDtype(body);
  const shapeDims = shape.map((d) => dimConst(d));
  const attrs: Attrs = { shape: { kind: 'dims', value: shapeDims }, body: { kind: 'lambda', params, body } };
  const node = { ...ctx.node, op: 'grid', attrs, type: { dtype, shape: shapeDims } };
  return gridOp.interp(operands, { node, dims: ctx.dims, shape });
}

/**
 * Steps 1-3 of the attention (naive on purpose): the scaled scores `raw` = q·k * scale
 * [B, Hq, T, S] (query head h uses KV head h / (Hq / Hkv)) and the `final` scores the softmax
 * sees (the `score` lambda applied, -inf where the `mask` is false). `lambdaOperands` are the
 * tensors the node's lambdas read by operand index (a fused_attention's operands with Q, K, V as
 * loaded; fused_attention_grad's operands).
 */
export function attentionScores(q: Tensor64, k: Tensor64, lambdaOperands: readonly Tensor64[], n: Node, ctx: InterpContext): { raw: Tensor64; final: Tensor64 } {
  const lctx = { ...ctx, node: n };
  const [nb, hq, nt, dk] = q.shape as [number, number, number, number];
  const [, hkv, ns] = k.shape as [number, number, number, number];
  const group = hq / hkv;
  // Flat offsets hoisted out of the inner loops (the float64 reference of tests and `tfc tune`
  // at T = 1000 spent most of its time indexing); each sum still adds in the same order.
  const qd = q.data;
  const kd = k.data;
  const scale = (n.attrs['scale'] as { value: number } | undefined)?.value ?? NaN;
  // 1. scaled scores [B, Hq, T, S]
  const scoreShape = [nb, hq, nt, ns];
  const raw = makeTensor('f32', scoreShape);
  for (let b = 0; b < nb; b++)
    for (let h = 0; h < hq; h++) {
      const kh = Math.floor(h / group);
      for (let i = 0; i < nt; i++) {
        const qRow = ((b * hq + h) * nt + i) * dk;
        for (let j = 0; j < ns; j++) {
          const kRow = ((b * hkv + kh) * ns + j) * dk;
          let dot = 0;
          for (let d = 0; d < dk; d++) dot += (qd[qRow + d] ?? NaN) * (kd[kRow + d] ?? NaN);
          raw.data[((b * hq + h) * nt + i) * ns + j] = dot * scale;
        }
      }
    }
  // 2. the score lambda, with score() reading the scores as an extra operand
  const scoreLambda = lambdaOf(n.attrs, 'score');
  const scored = scoreLambda === undefined ? raw : evalLambda(scoreLambda.params, scoreAsRead(scoreLambda.body, lambdaOperands.length), [...lambdaOperands, raw], lctx, scoreShape);
  // 3. the mask: masked scores are -inf
  const maskLambda = lambdaOf(n.attrs, 'mask');
  if (maskLambda === undefined) return { raw, final: scored };
  const mask = evalLambda(maskLambda.params, maskLambda.body, lambdaOperands, lctx, scoreShape);
  const final = makeTensor('f32', scoreShape, Array.from(scored.data, (x, j) => (mask.data[j] === 0 ? -Infinity : x)));
  return { raw, final };
}

/**
 * The float64 attention of a fused_attention node `n` (its attrs) on its operands: the output
 * [B, Hq, T, dv] and, per row, the log-sum-exp of the final scores (-inf for a fully masked row).
 */
/**
 * Q, K or V of fused_attention `n` as it loads them: with `qload` / `kload` / `vload` the lambda
 * evaluated over its shape first (the naive order: the inputs, then attention), from the original
 * operands; else the operand itself.
 */
function loadedInput(operands0: readonly Tensor64[], n: Node, ctx: InterpContext, which: AttentionInput): Tensor64 | undefined {
  const { operand, load: lk, shape: sk } = attentionLoads[which];
  const ql = lambdaOf(n.attrs, lk);
  const qs = n.attrs[sk];
  if (ql === undefined) return operands0[operand];
  if (qs === undefined || qs.kind !== 'dims') throw new InternalError(`fused_attention ${lk} without ${sk}`);
  const shape = qs.value.map((d) => {
    const x = dimEval(d, ctx.dims);
    if (x === undefined) throw new InternalError(`fused_attention ${sk} dim ${printDim(d)} has no value`);
    return x;
  });
  return evalLambda(ql.params, ql.body, operands0, { ...ctx, node: n }, shape);
}

function interpAttention(operands0: readonly Tensor64[], n: Node, ctx: InterpContext, outDtype: DType): { out: Tensor64; lse: Tensor64 } {
  const [qIn, kIn, vIn] = (['q', 'k', 'v'] as const).map((which) => loadedInput(operands0, n, ctx, which));
  if (qIn === undefined || kIn === undefined || vIn === undefined) throw new InternalError('fused_attention needs q, k, v');
  const operands = [qIn, kIn, vIn, ...operands0.slice(3)];
  const [q, k, v] = operands;
  if (q === undefined || k === undefined || v === undefined) throw new InternalError('fused_attention needs q, k, v');
  const [nb, hq, nt] = q.shape as [number, number, number, number];
  const [, hkv, ns] = k.shape as [number, number, number, number];
  const dv = v.shape[3] ?? 0;
  const group = hq / hkv;
  const vd = v.data;
  const { final } = attentionScores(q, k, operands, n, ctx);
  // 4. softmax over k (a fully masked row gives zeros), then @ v; the row's log-sum-exp
  const out = makeTensor(outDtype, [nb, hq, nt, dv]);
  const lse = makeTensor(outDtype, [nb, hq, nt]);
  for (let b = 0; b < nb; b++)
    for (let h = 0; h < hq; h++) {
      const kh = Math.floor(h / group);
      for (let i = 0; i < nt; i++) {
        const base = ((b * hq + h) * nt + i) * ns;
        const row = Array.from({ length: ns }, (_, j) => final.data[base + j] ?? NaN);
        const p = softmaxRow(row);
        for (let e = 0; e < dv; e++) {
          let acc = 0;
          const vCol = (b * hkv + kh) * ns * dv + e;
          for (let j = 0; j < ns; j++) acc += (p[j] ?? NaN) * (vd[vCol + j * dv] ?? NaN);
          out.data[((b * hq + h) * nt + i) * dv + e] = acc;
        }
        const m = row.reduce((a, x) => Math.max(a, x), -Infinity);
        lse.data[(b * hq + h) * nt + i] = m === -Infinity ? -Infinity : m + Math.log(row.reduce((a, x) => a + Math.exp(x - m), 0));
      }
    }
  return { out, lse };
}

/**
 * `fused_attention_k` / `_v`: K or V as the attention loads it, a second result the attention
 * kernel writes (src/passes/fuse-cache-write.ts: a KV cache's `present = concat(past, new)`
 * computed in the attention's kload / vload and written by the kernel, no copy kernel).
 */
function loadedResult(which: 'k' | 'v'): OpDef {
  const name = `fused_attention_${which}`;
  const { load, shape } = attentionLoads[which];
  return defineSecondResult({
    name,
    resultOf: 'fused_attention',
    doc: `the ${which.toUpperCase()} its operand, a fused_attention, loads: its \`${load}\` evaluated over \`${shape}\` (or its operand ${attentionLoads[which].operand}), [B,Hkv,S,d${which === 'k' ? 'k' : 'v'}]; its type is declared; written by the attention kernel itself (a KV cache's present)`,
    needs: () => 'rank-4 float',
    accepts: (declared) => declared.shape.length === 4 && isFloat(declared.dtype),
    noGrad: 'a second result of fused_attention made by fusion after differentiation',
    value: (operands, producer, ctx) => {
      const t = loadedInput(operands, producer, ctx, which);
      if (t === undefined) throw new InternalError(`${name}: its fused_attention lacks ${which}`);
      return t.dtype === ctx.node.type.dtype ? t : makeTensor(ctx.node.type.dtype, t.shape, t.data);
    },
  });
}

export const attentionOps: readonly OpDef[] = [
  defineOp({
    name: 'fused_attention',
    family: 'fused',
    arity: 'variadic',
    attrs: { scale: 'float' },
    optionalAttrs: { mask: 'lambda', score: 'lambda', qload: 'lambda', qshape: 'dims', kload: 'lambda', kshape: 'dims', vload: 'lambda', vshape: 'dims' },
    doc:
      'softmax over k of (mask ? score(q·k * scale) : -inf) @ v; q [B,Hq,T,dk], k [B,Hkv,S,dk], v [B,Hkv,S,dv], then the tensors the lambdas read; query head h uses KV head h / (Hq/Hkv); `score` and `mask` are lambdas over (b, h, q, k), `score()` the scaled score; a fully masked row gives 0; with `qload` (a lambda over (b, h, t, d) reading any operand) and `qshape`, Q is computed at load (RoPE) and operand 0 is only read by it; likewise `kload` (over (b, h, s, d), h the KV head) and `kshape` for K and operand 1, and `vload` / `vshape` for V and operand 2 (a paged cache read through its page table)',
    infer: (operands, attrs) => inferAttention(operands, attrs),
    interp: (operands, ctx) => interpAttention(operands, ctx.node, ctx, ctx.node.type.dtype).out,
    // FlashAttention-2's backward as one op, fused_attention_grad (src/ops/attention-vjp.ts).
    vjp: attentionVjp,
    // Per score element: 2*dk (q·k), 1 (scale), the score and mask lambdas' applies, 5
    // (softmax: max, subtract, exp, sum, divide), 2*dv (@ v).
    flops: (operands, _result, attrs) => {
      const [q0, k0, v0] = operands;
      const q = q0 === undefined ? undefined : attentionInputType('q', q0, attrs);
      const k = k0 === undefined ? undefined : attentionInputType('k', k0, attrs);
      const v = v0 === undefined ? undefined : attentionInputType('v', v0, attrs);
      if (q === undefined || k === undefined || v === undefined) return dimConst(0);
      const [b, hq, t, dk] = q.shape as [Dim, Dim, Dim, Dim];
      const s = k.shape[2] ?? dimConst(0);
      const dv = v.shape[3] ?? dimConst(0);
      const score = lambdaOf(attrs, 'score');
      const mask = lambdaOf(attrs, 'mask');
      const lambdas = (score === undefined ? 0 : countApplies(score.body)) + (mask === undefined ? 0 : countApplies(mask.body));
      const perScore = dimAdd(dimMul(dimConst(2), dimAdd(dk, dv)), dimConst(6 + lambdas));
      // qload's applies once per Q element (the kernel computes Q once per query tile).
      const qload = lambdaOf(attrs, 'qload');
      const perQ = qload === undefined ? dimConst(0) : dimMul(numelDim(q.shape), dimConst(countApplies(qload.body)));
      // kload's applies once per K element: the work of the rope(k) kernel it replaces. The
      // kernel recomputes K for every workgroup that loads a key tile (per query tile and head
      // group); that schedule-dependent recompute is counted in its Traffic.flops, not here.
      const kload = lambdaOf(attrs, 'kload');
      const perK = kload === undefined || k === undefined ? dimConst(0) : dimMul(numelDim(k.shape), dimConst(countApplies(kload.body)));
      const vload = lambdaOf(attrs, 'vload');
      const perV = vload === undefined ? dimConst(0) : dimMul(numelDim(v.shape), dimConst(countApplies(vload.body)));
      return dimAdd(dimAdd(dimAdd(dimMul(numelDim([b, hq, t, s]), perScore), perQ), perK), perV);
    },
    lowering: 'fused-only',
  }),
  defineOp({
    name: 'fused_attention_lse',
    family: 'fused',
    arity: 1,
    attrs: {},
    resultOf: 'fused_attention',
    doc:
      'the second result of its operand, a fused_attention [B,Hq,T,dv]: per row, log(sum over k of exp(final score)), the natural log-sum-exp of the scaled, modified, masked scores the softmax sees, [B,Hq,T]; a fully masked row gives -inf; written by the attention kernel itself',
    infer: (operands) => {
      const [a] = operands;
      if (a === undefined || operands.length !== 1) return opError('TFC104', `fused_attention_lse takes 1 operand (a fused_attention), got ${operands.length}`);
      if (a.shape.length !== 4 || !isFloat(a.dtype)) return opError('TFC203', `fused_attention_lse needs a float [B,Hq,T,dv] fused_attention, got ${printType(a)}`);
      return { dtype: a.dtype, shape: a.shape.slice(0, 3) };
    },
    noGrad: 'a second result of fused_attention: grad gives its cotangent to the fused_attention\'s vjp (VjpArgs.results)',
    // The rule gets the producer's operands (OpDef.resultOf) and reads its attributes.
    interp: (operands, ctx) => {
      if (ctx.producer === undefined) throw new InternalError('fused_attention_lse is interpreted with its fused_attention');
      return interpAttention(operands, ctx.producer, ctx, ctx.node.type.dtype).lse;
    },
    // The row's max and sum are the attention's (counted there); log and add per row.
    flops: (_operands, result) => dimMul(dimConst(2), numelDim(result.shape)),
    lowering: 'fused-only',
  }),
  loadedResult('k'),
  loadedResult('v'),
  placeholderOp('score', "a fused_attention 'score' lambda", 'the scaled score q·k * scale at (b, h, q, k), f32'),
];
