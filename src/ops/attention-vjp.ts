// The vjp of fused_attention (src/ops/attention.ts): FlashAttention-2's backward as one graph
// op, `fused_attention_grad` (src/ops/attention-grad.ts), whose result is dQ and whose second
// results `fused_attention_grad_k` / `fused_attention_grad_v` are dK and dV. It reads q, k, v,
// the forward output o, the forward's log-sum-exp (a `fused_attention_lse` of the forward node:
// the forward kernel writes it, so P = exp(z - lse) is recomputed, never stored) and dO; when the
// forward's own LSE output has a cotangent (attention sinks) that comes next. The mask and score
// lambdas ride along (their reads shifted past those operands), with `dscore`, the score lambda's
// derivative d score / d score() built here symbolically (src/ops/lambda-grad.ts). A float
// tensor the score lambda reads that carries a gradient (a learned bias table) gets it as one
// more second result, `fused_attention_grad_t {operand=i}` (attr `table_grads` lists them; the
// sites come from the score lambda itself by `tableSites`).
// Nodes are built by op name, so this file imports neither attention.ts nor attention-grad.ts.
import type { Attrs, ScalarExpr } from '../graph/ir.js';
import { idx, mapScalarExpr } from '../graph/lambda.js';
import type { VjpRule } from './define.js';
import { LambdaGradError, type ReadAdjoint, lambdaDiff, readAdjoints } from './lambda-grad.js';

/** q, k, v, o, lse, dO: the operands every fused_attention_grad has before the optional LSE cotangent and the extras. */
export const ATTENTION_GRAD_FIXED = 6;

/** Where fused_attention_grad's extras (the tensors its lambdas read) start: after dLSE when `lse_cotangent`. */
export function attentionGradExtrasStart(attrs: Attrs): number {
  const c = attrs['lse_cotangent'];
  return ATTENTION_GRAD_FIXED + (c !== undefined && c.kind === 'bool' && c.value ? 1 : 0);
}

const isScore = (e: ScalarExpr): boolean => e.kind === 'apply' && e.op === 'score' && e.args.length === 0;
const SCORE: ScalarExpr = { kind: 'apply', op: 'score', args: [], dtype: 'f32' };

/** `e` with every read of an operand >= `from` moved `by` operands up (the grad op's extras sit after its fixed operands). */
export function shiftReads(e: ScalarExpr, from: number, by: number): ScalarExpr {
  return mapScalarExpr(e, (x, rec) => (x.kind === 'read' && x.operand >= from ? { ...x, operand: x.operand + by, indices: x.indices.map(rec) } : undefined));
}

/**
 * d body / d score() of a score lambda, as a lambda body over (b, h, q, k) in the same terms
 * (`score()` where the derivative needs the scaled score): reverse mode with score() as a read of
 * a placeholder operand, the adjoints of its occurrences added. A body without score() gives 0.
 */
export function scoreDerivative(body: ScalarExpr): ScalarExpr {
  const X = -1; // a placeholder operand: no real read has it
  const asRead = mapScalarExpr(body, (x) => (isScore(x) ? { kind: 'read', operand: X, indices: [0, 1, 2, 3].map(idx), dtype: 'f32' } : undefined));
  const sites = readAdjoints(asRead, { kind: 'const', value: 1, dtype: 'f32' }, (k) => k === X);
  const sum = sites.map((s) => s.adjoint).reduce<ScalarExpr | undefined>((acc, a) => (acc === undefined ? a : lambdaDiff.op('add', acc, a)), undefined);
  const d = sum ?? { kind: 'const', value: 0, dtype: 'f32' };
  return mapScalarExpr(d, (x) => (x.kind === 'read' && x.operand === X ? SCORE : undefined));
}

/**
 * The reads of the tables `operands` (by fused_attention_grad operand index) in a score lambda
 * body, each with its adjoint d body / d read (an expression over (b, h, q, k) where score() is
 * the scaled score): dTable[read's element] += dZ * adjoint over every (b, h, q, k), dZ the
 * cotangent of the score lambda's value (P (dP - D)). Throws LambdaGradError (TFC316) where a
 * read sits under an op without a derivative rule.
 */
export function tableSites(score: ScalarExpr | undefined, operands: readonly number[]): ReadAdjoint[] {
  if (score === undefined || operands.length === 0) return [];
  return readAdjoints(score, { kind: 'const', value: 1, dtype: 'f32' }, (k) => operands.includes(k));
}

/** fused_attention_grad's `table_grads` attr: the operands whose gradient it gives as `fused_attention_grad_t` results. */
export function tableGradOperands(attrs: Attrs): readonly number[] {
  const a = attrs['table_grads'];
  return a !== undefined && a.kind === 'ints' ? a.value : [];
}

export const attentionVjp: VjpRule = (g, a) => {
  const n = a.node;
  for (const load of ['qload', 'kload', 'vload']) {
    // Made by fuse-attention-loads, which runs after grad in every pipeline.
    if (n.attrs[load] !== undefined) throw new LambdaGradError('fused_attention', `fused_attention with '${load}' has no vjp (differentiate before fuse-attention-loads)`);
  }
  const [q, k, v, ...extras] = a.x;
  if (q === undefined || k === undefined || v === undefined) throw new LambdaGradError('fused_attention', 'fused_attention without q, k, v');
  const lse = g.node('fused_attention_lse', [a.y]);
  const dlse = a.results?.get('fused_attention_lse');
  const fixed = [q, k, v, a.y, lse, a.dy, ...(dlse !== undefined ? [dlse] : [])];
  const by = fixed.length - 3;
  const attrs: Record<string, Attrs[string]> = { scale: n.attrs['scale'] ?? { kind: 'float', value: NaN } };
  const mask = n.attrs['mask'];
  if (mask !== undefined && mask.kind === 'lambda') attrs['mask'] = { ...mask, body: shiftReads(mask.body, 3, by) };
  const score = n.attrs['score'];
  if (score !== undefined && score.kind === 'lambda') {
    attrs['score'] = { ...score, body: shiftReads(score.body, 3, by) };
    attrs['dscore'] = { ...score, body: shiftReads(scoreDerivative(score.body), 3, by) };
  }
  if (dlse !== undefined) attrs['lse_cotangent'] = { kind: 'bool', value: true };
  // Tables with a gradient (a learned bias): their operand indices in the grad op.
  const tables = extras.flatMap((_, i) => (a.needs[3 + i] === true ? [fixed.length + i] : []));
  if (tables.length > 0) {
    const body = attrs['score'];
    tableSites(body !== undefined && body.kind === 'lambda' ? body.body : undefined, tables); // TFC316 now, not at lowering
    attrs['table_grads'] = { kind: 'ints', value: tables };
  }
  const dq = g.node('fused_attention_grad', [...fixed, ...extras], attrs);
  const dk = a.needs[1] === true ? g.node('fused_attention_grad_k', [dq], {}, g.type(k)) : undefined;
  const dv = a.needs[2] === true ? g.node('fused_attention_grad_v', [dq], {}, g.type(v)) : undefined;
  const dt = extras.map((x, i) => (a.needs[3 + i] === true ? g.node('fused_attention_grad_t', [dq], { operand: { kind: 'int', value: fixed.length + i } }, g.type(x)) : undefined));
  return [a.needs[0] === true ? dq : undefined, dk, dv, ...dt];
};
