// The training loss appended to a model graph: cross-entropy of logits [..., V] against integer
// targets [...] (a new input), averaged over every token:
//   loss = mean(logsumexp(logits, -1) - sum(where(onehot(targets), logits, 0), -1))
// built from catalog ops only, so `grad` differentiates it like the model (logsumexp's vjp is
// softmax, the picked logit's is the one-hot). Issue 17 item 3's fused cross-entropy replaces it.
import { type Diagnostic, diag } from '../diag/diagnostic.js';
import type { Attrs, Graph, ScalarExpr } from '../graph/ir.js';
import { idx } from '../graph/lambda.js';
import { GraphBuilder } from '../graph/rewrite.js';
import { isFloat, printType } from '../graph/types.js';
import { NodeGradBuilder } from './builder.js';

export interface LossOptions {
  /** The output holding the logits (default `logits`). */
  readonly logits?: string;
  /** The new i32 input of target ids (default `targets`). */
  readonly targets?: string;
  /** The new scalar output (default `loss`). */
  readonly loss?: string;
}

/**
 * `g` with a `targets` input of the logits' leading shape and a scalar `loss` output (the graph's
 * other outputs stay); undefined after reporting why the logits output does not fit (TFC317).
 */
export function withCrossEntropyLoss(g: Graph, opts: LossOptions, report: (d: Diagnostic) => void): Graph | undefined {
  const logitsName = opts.logits ?? 'logits';
  const out = g.outputs.find((o) => o.name === logitsName);
  const logits = out === undefined ? undefined : g.nodes[out.value];
  if (out === undefined || logits === undefined) {
    const at = g.outputs[0]?.loc ?? g.nodes[0]?.loc ?? { file: '<graph>', line: 1, col: 1, endLine: 1, endCol: 1 };
    report(diag('TFC317', at, `no output '${logitsName}' to put a cross-entropy loss on (outputs: ${g.outputs.map((o) => o.name).join(', ')})`));
    return undefined;
  }
  const t = logits.type;
  if (!isFloat(t.dtype) || t.shape.length < 1) {
    report(diag('TFC317', out.loc, `cross-entropy needs float logits [..., vocab], '${logitsName}' is ${printType(t)}`));
    return undefined;
  }
  const b = new GraphBuilder();
  for (const n of g.nodes) b.copy(n, n.operands);
  const gb = new NodeGradBuilder(b, out.loc);
  const r = t.shape.length;
  const lead = t.shape.slice(0, -1);
  const targets = b.add({ op: 'input', operands: [], attrs: { name: { kind: 'str', value: opts.targets ?? 'targets' } }, type: { dtype: 'i32', shape: lead }, loc: out.loc });
  const last: Attrs = { axes: { kind: 'ints', value: [r - 1] }, keepdims: { kind: 'bool', value: false } };
  const lse = gb.node('logsumexp', [out.value], last);
  // onehot[..., v] = targets[...] == v: the target's logit is the sum of the logits it selects.
  const hit: ScalarExpr = { kind: 'apply', op: 'eq', args: [{ kind: 'read', operand: 0, indices: lead.map((_, i) => idx(i)), dtype: 'i32' }, idx(r - 1)], dtype: 'bool' };
  const onehot = gb.node('grid', [targets], { shape: { kind: 'dims', value: t.shape }, body: { kind: 'lambda', params: t.shape.map((_, i) => `i${i}`), body: hit } });
  const picked = gb.node('sum', [gb.op('where', onehot, out.value, gb.constant(0, t.dtype))], last);
  const perToken = gb.op('sub', lse, picked);
  const all: Attrs = { axes: { kind: 'ints', value: lead.map((_, i) => i) }, keepdims: { kind: 'bool', value: false } };
  const loss = lead.length === 0 ? perToken : gb.node('mean', [perToken], all);
  return b.finish(g, [...g.outputs, { name: opts.loss ?? 'loss', value: loss, loc: out.loc }]);
}
