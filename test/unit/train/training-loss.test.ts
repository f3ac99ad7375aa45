// Which loss the training graphs get (src/cli/train.ts trainingGraphs, used by `tfc train` and
// `tfc bench train`): the fused cross-entropy by default, the catalog-op loss with fuseLoss: false
// (`--no-fuse`, bench train's `tfc --no-fuse` row); and no [N, V] value in the fused step graph.
import { describe, expect, it } from 'vitest';
import { trainingForward, trainingGraphs } from '../../../src/cli/train.js';
import { Reporter } from '../../../src/cli/report.js';

describe('trainingGraphs', () => {
  const rep = new Reporter(() => undefined);
  const fwd = trainingForward(rep, 'examples/charlm/charlm.tfx', 2, 8, new Map([['layers', 1], ['d', 32], ['ffn', 64]]));
  it('fuses the cross-entropy by default', () => {
    const { stepGraph, evalGraph } = trainingGraphs(rep, fwd, { fuseAttention: true });
    expect(stepGraph.nodes.filter((n) => n.op === 'fused_cross_entropy')).toHaveLength(1);
    expect(stepGraph.nodes.filter((n) => n.op.startsWith('fused_cross_entropy_')).map((n) => n.op).sort()).toEqual(['fused_cross_entropy_dh', 'fused_cross_entropy_dw']);
    expect(evalGraph.nodes.filter((n) => n.op === 'fused_cross_entropy')).toHaveLength(1);
    // No graph value of 2 x 8 x 96 (the logits) or 16 x 96 elements.
    const big = stepGraph.nodes.filter((n) => n.type.shape.reduce((a, d) => a * (d.terms[0]?.coef ?? 1), 1) === 16 * 96);
    expect(big.map((n) => n.op)).toEqual([]);
  });
  it('keeps the catalog-op loss with fuseLoss: false', () => {
    const { stepGraph } = trainingGraphs(rep, fwd, { fuseAttention: true, fuseLoss: false });
    expect(stepGraph.nodes.some((n) => n.op.startsWith('fused_cross_entropy'))).toBe(false);
    expect(stepGraph.nodes.some((n) => n.op === 'logsumexp')).toBe(true);
  });
});
