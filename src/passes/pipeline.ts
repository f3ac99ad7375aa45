// The compiler's pass order, one flat array per target (STYLE.md "One pass interface, one flat
// pipeline per target"). The graph passes are shared; targets will differ only in the schedule
// passes that come after lowering.
import { eliminateCommonSubexpressions } from './eliminate-common-subexpressions.js';
import { eliminateDeadCode } from './eliminate-dead-code.js';
import { foldConstants } from './fold-constants.js';
import { fuseAttention } from './fuse-attention.js';
import { fuseAttentionLoads } from './fuse-attention-loads.js';
import { fuseCacheWrite } from './fuse-cache-write.js';
import { fuseElementwise } from './fuse-elementwise.js';
import { fuseEpilogue } from './fuse-epilogue.js';
import { fuseNorm } from './fuse-norm.js';
import { fuseReduce } from './fuse-reduce.js';
import { foldViews } from './fold-views.js';
import { rematerializeActivations } from './rematerialize.js';
import type { GraphPass, Target } from './pass.js';
import { packWeights } from './pack-weights.js';
import { simplifyMovement } from './simplify-movement.js';
import { splitLargeWeights } from './split-large-weights.js';
import { widenAttentionScores } from './widen-attention-scores.js';

/** Graph-level cleanups every target runs, in this order. */
export const graphPasses: readonly GraphPass[] = [foldConstants, simplifyMovement, eliminateCommonSubexpressions, eliminateDeadCode];

/**
 * Neighbour fusion for the kernel targets, after the cleanups (and after attention fusion):
 * elementwise chains first, so a whole bias+activation+residual chain lands in one epilogue;
 * then the chains a sum/max reads and the map of its result into one fused_reduce;
 * then a fused_map read only as attention's q (RoPE) into the attention's Q load, and a KV
 * cache's present into the attention's K/V load and its second results; then norms
 * into matmul prologues, and last movement chains into index-mapped views.
 * The interpreter never fuses: it stays the op-by-op reference.
 */
export const neighbourFusionPasses: readonly GraphPass[] = [fuseElementwise, fuseReduce, fuseAttentionLoads, fuseCacheWrite, fuseEpilogue, fuseNorm, foldViews];

export const pipelines: Readonly<Record<Target, readonly GraphPass[]>> = {
  interp: [...graphPasses],
  // split-large-weights before fusion: it rewrites plain gather/matmul users (no-op without a
  // binding limit). pack-weights, the first fusion pass, after it: it leaves row chunks alone and
  // packs only what fits one binding (so the `ir` stage, the passes before the first fusion pass,
  // is what --no-fuse runs). widen-attention-scores after fuse-attention: it sees only unfused
  // attention (--no-fuse keeps it).
  webgpu: [...graphPasses, splitLargeWeights, packWeights, fuseAttention, widenAttentionScores, ...neighbourFusionPasses],
  cuda: [...graphPasses, splitLargeWeights, packWeights, fuseAttention, widenAttentionScores, ...neighbourFusionPasses],
};

/** Names of the passes `--no-fuse` removes (horizontal, attention and neighbour fusion). */
export const fusionPassNames: ReadonlySet<string> = new Set([packWeights.name, 'fuse-attention', ...neighbourFusionPasses.map((p) => p.name)]);

/** A target's pipeline without the fusion passes (the `--no-fuse` baseline). */
export function unfusedPipeline(target: Target): readonly GraphPass[] {
  return pipelines[target].filter((p) => !fusionPassNames.has(p.name));
}

/** Every pass name across all targets, in first-seen order (for --help and --dump-after checks). */
export const allPassNames: readonly string[] = [...new Set(Object.values(pipelines).flatMap((ps) => ps.map((p) => p.name)))];

/**
 * A training step's passes: the target's pipeline (without the fusion passes for `--no-fuse`),
 * then, unless `recompute` is false, rematerialize: cheap activations (norms, elementwise) are
 * recomputed right before the backward reads them instead of staying alive from the forward on
 * (src/passes/rematerialize.ts; the memory plan reuses their buffers in between).
 */
export function trainingPipeline(target: Exclude<Target, 'interp'>, opts: { readonly fuse: boolean; readonly recompute: boolean }): readonly GraphPass[] {
  // pack-weights never: the optimizer and the trainer's copyTo address weights by name.
  const base = (opts.fuse ? pipelines[target] : unfusedPipeline(target)).filter((p) => p !== packWeights);
  return opts.recompute ? [...base, rematerializeActivations] : base;
}
