// The training loss as one fused_cross_entropy (src/ops/cross-entropy.ts) where the model's logits
// are an LM head: `logits = h @ W` (W [d, V]), `h @ transpose(w)` (w [V, d], tied GPT-2 style:
// the op reads w as stored) or either plus a bias [V]. The head's matmul (and bias add) and the
// logits output go: nothing of size rows x V is a graph value any more, and the kernels compute
// the loss and its gradients chunk by chunk (src/kernel/lower/cross-entropy.ts). Same loss as
// withCrossEntropyLoss (loss.ts): mean over every token of lse - the target's logit.
import type { Graph, Node } from '../graph/ir.js';
import { intsAttr } from '../graph/ir.js';
import { GraphBuilder, removeDeadNodes } from '../graph/rewrite.js';
import { dimEquals } from '../base/dim.js';
import { concreteShape, isFloat, shapeEquals } from '../graph/types.js';
import type { Diagnostic } from '../diag/diagnostic.js';
import { type LossOptions, withCrossEntropyLoss } from './loss.js';

/** The LM head under a logits node: h, the weight as the op reads it, its layout and the bias. */
export interface LmHead {
  readonly h: Node;
  readonly w: Node;
  readonly transposed: boolean;
  readonly bias?: Node;
}

/**
 * `logits` as an LM head the fused loss takes, or undefined: a matmul of h [..., d] (rows
 * folded) by a rank-2 [d, V] value, that value a `permute [1,0]` of a [V, d] one or not, an
 * optional `add` of a bias [V]; the row count must be constant (the kernels chunk it at compile time).
 */
export function lmHeadOf(g: Graph, logits: Node): LmHead | undefined {
  const node = (id: number | undefined): Node | undefined => (id === undefined ? undefined : g.nodes[id]);
  let mm = logits;
  let bias: Node | undefined;
  if (logits.op === 'add') {
    const [a, b] = logits.operands.map(node);
    const isBias = (x: Node | undefined): boolean => x !== undefined && x.type.shape.length === 1 && x.type.dtype === logits.type.dtype;
    const [m, c] = a?.op === 'matmul' && isBias(b) ? [a, b] : b?.op === 'matmul' && isBias(a) ? [b, a] : [undefined, undefined];
    if (m === undefined || c === undefined || !shapeEquals(m.type.shape, logits.type.shape)) return undefined;
    mm = m;
    bias = c;
  }
  if (mm.op !== 'matmul' || !isFloat(mm.type.dtype)) return undefined;
  const [h, b] = mm.operands.map(node);
  if (h === undefined || b === undefined || b.type.shape.length !== 2 || h.type.shape.length !== mm.type.shape.length) return undefined;
  const V = mm.type.shape[mm.type.shape.length - 1];
  if (V === undefined || (bias !== undefined && !dimEquals(bias.type.shape[0] ?? V, V))) return undefined;
  // The row count must be a constant: the lead dims evaluate with no dim bound.
  if (concreteShape(h.type.shape.slice(0, -1), new Map()) === undefined) return undefined;
  const src = node(b.operands[0]);
  const transposed = b.op === 'permute' && src !== undefined && src.type.shape.length === 2 && intsAttr(b, 'perm').join(',') === '1,0';
  return { h, w: transposed && src !== undefined ? src : b, transposed, ...(bias !== undefined ? { bias } : {}) };
}

/**
 * `g` with an i32 `targets` input and a scalar `loss` = fused_cross_entropy of the LM head under
 * the logits output, which is dropped (with everything only it needed); undefined where the
 * logits are no LM head lmHeadOf takes (the caller keeps the unfused withCrossEntropyLoss).
 */
export function withFusedCrossEntropyLoss(g: Graph, opts: LossOptions = {}): Graph | undefined {
  const logitsName = opts.logits ?? 'logits';
  const out = g.outputs.find((o) => o.name === logitsName);
  const logits = out === undefined ? undefined : g.nodes[out.value];
  if (out === undefined || logits === undefined) return undefined;
  const head = lmHeadOf(g, logits);
  if (head === undefined) return undefined;
  const b = new GraphBuilder();
  for (const n of g.nodes) b.copy(n, n.operands);
  const lead = head.h.type.shape.slice(0, -1);
  const targets = b.add({ op: 'input', operands: [], attrs: { name: { kind: 'str', value: opts.targets ?? 'targets' } }, type: { dtype: 'i32', shape: lead }, loc: out.loc });
  const operands = [head.h.id, head.w.id, targets, ...(head.bias !== undefined ? [head.bias.id] : [])];
  const loss = b.add({
    op: 'fused_cross_entropy',
    operands,
    attrs: { transpose_w: { kind: 'bool', value: head.transposed } },
    type: { dtype: logits.type.dtype, shape: [] },
    loc: out.loc,
    ...(logits.scope !== undefined ? { scope: logits.scope } : {}),
  });
  const outputs = [...g.outputs.filter((o) => o !== out), { name: opts.loss ?? 'loss', value: loss, loc: out.loc }];
  return removeDeadNodes(b.finish(g, outputs));
}

/**
 * The training loss `tfc train`, `tfc bench train` and `tfc compile --grad` put on a forward
 * graph: the fused one where `fused` and the logits are an LM head (withFusedCrossEntropyLoss),
 * else the catalog-op cross-entropy (withCrossEntropyLoss, which reports a missing logits output).
 */
export function withTrainingLoss(g: Graph, fused: boolean, report: (d: Diagnostic) => void): Graph | undefined {
  return (fused ? withFusedCrossEntropyLoss(g) : undefined) ?? withCrossEntropyLoss(g, {}, report);
}
