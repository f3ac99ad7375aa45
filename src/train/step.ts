// A training step as one graph: the model's loss, its gradients, and the AdamW update, with the
// weights turned into inputs (the step reads weights and moments and writes new ones under the
// same names, so a runner feeds each step's outputs to the next). The model's own outputs other
// than the loss are dropped: nothing reads logits or a KV cache during training.
import type { Graph, Node } from '../graph/ir.js';
import { attr, strAttr } from '../graph/ir.js';
import { removeDeadNodes, replaceAllUses } from '../graph/rewrite.js';
import { dimConstValue } from '../base/dim.js';
import { intAttr } from '../graph/ir.js';
import { type AdamWOptions, appendAdamW, adamNames, defaultAdamW } from './adamw.js';

/**
 * `lossGraph` has a scalar output `lossOutput`; `gradOf` maps each trained weight's name to the
 * node holding its gradient in `lossGraph`.
 */
export function trainStepGraph(lossGraph: Graph, gradOf: ReadonlyMap<string, number>, opts: { readonly adam?: AdamWOptions; readonly lossOutput?: string; readonly accumulate?: boolean; readonly hyperInputs?: boolean } = {}): Graph {
  const lossOutput = opts.lossOutput ?? 'loss';
  const loss = lossGraph.outputs.find((o) => o.name === lossOutput);
  if (loss === undefined) throw new Error(`trainStepGraph: ${lossGraph.name} has no output '${lossOutput}'`);
  if (lossGraph.nodes[loss.value]?.type.shape.length !== 0) throw new Error(`trainStepGraph: '${lossOutput}' is not a scalar`);
  const onlyLoss: Graph = { ...lossGraph, outputs: [loss] };
  const updated = appendAdamW(onlyLoss, gradOf, { ...(opts.adam ?? defaultAdamW), ...(opts.accumulate === true ? { accumulate: true } : {}), ...(opts.hyperInputs === true ? { hyperInputs: true } : {}) });
  const trained = new Set(gradOf.keys());
  // Weights become inputs of the same name; weights not trained stay weights.
  const nodes = updated.nodes.map((n): Node => (n.op === 'weight' && trained.has(strAttr(n, 'name')) ? { ...n, op: 'input', attrs: { name: attr.str(strAttr(n, 'name')) } } : n));
  return removeDeadNodes({ ...updated, nodes });
}

export { adamNames };

/**
 * Concatenations with operands that are empty along the axis reduced to their one non-empty
 * operand: a decoder's KV cache at P = 0 (training windows start with no cache), so the empty
 * cache inputs drop out of the training graph instead of becoming zero-size tensors to feed.
 */
export function dropEmptyConcats(g: Graph): Graph {
  let out = g;
  for (const n of g.nodes) {
    if (n.op !== 'concat') continue;
    const axis = intAttr(n, 'axis');
    const nonEmpty = n.operands.filter((o) => {
      const t = g.nodes[o]?.type;
      const d = t?.shape[axis < 0 ? t.shape.length + axis : axis];
      return d === undefined || dimConstValue(d) !== 0;
    });
    const only = nonEmpty[0];
    if (nonEmpty.length === 1 && only !== undefined && n.operands.length > 1) out = replaceAllUses(out, n.id, only);
  }
  return out === g ? g : removeDeadNodes(out, () => false);
}
