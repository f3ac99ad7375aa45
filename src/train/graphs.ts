// The graphs of a training run, from a model's forward graph after the cleanup passes (`--emit
// ir`, with P = 0 bound when the model has a KV cache): the loss alone (validation) and the whole
// training step (src/train/step.ts). `tfc train` (src/cli/train.ts, B and T bound to --batch and
// --seq) and `tfc compile --train` (src/compile/train.ts, B and T left symbolic: one plan for any
// batch of windows) both build them here.
import { type GradResult, gradGraph, gradientNodes } from '../autodiff/grad.js';
import { withTrainingLoss } from '../autodiff/fused-loss.js';
import type { Diagnostic } from '../diag/diagnostic.js';
import type { Graph } from '../graph/ir.js';
import { removeDeadNodes } from '../graph/rewrite.js';
import { createPassContext } from '../passes/pass.js';
import type { AdamWOptions } from './adamw.js';
import { fuseForwardAttention } from './fuse-forward.js';
import { dropEmptyConcats, trainStepGraph } from './step.js';

/** The graphs of a training run: the loss alone (validation) and the whole step. */
export interface TrainingGraphs {
  readonly evalGraph: Graph;
  readonly stepGraph: Graph;
  /** Trained weight name -> its gradient's node in `grads.graph`. */
  readonly gradOf: ReadonlyMap<string, number>;
  readonly grads: GradResult;
}

export interface TrainingGraphOptions {
  /** Fuse attention before grad (the kernel targets' training step): one fused backward per attention. */
  readonly fuseAttention?: boolean;
  /**
   * The LM head and its cross-entropy as one fused_cross_entropy (default true; src/autodiff/fused-loss.ts:
   * the [rows, vocab] logits are never materialized whole); the catalog-op loss where the head
   * does not match or the row count is symbolic.
   */
  readonly fuseLoss?: boolean;
  /** Gradient accumulation compiled into the step (src/train/adamw.ts `accumulate`). */
  readonly accumulate?: boolean;
  /** The optimizer's betas, eps, weight decay and clip as scalar inputs (src/train/adamw.ts `hyperInputs`). */
  readonly hyperInputs?: boolean;
  readonly adam?: AdamWOptions;
}

/**
 * The forward graph a training step differentiates: only the `logits` output (a KV cache's outputs
 * and their inputs go), and concatenations with an empty cache reduced to their other operand.
 * Undefined when the graph has no `logits` output.
 */
export function trainingForwardOf(ir: Graph): Graph | undefined {
  const logits = ir.outputs.find((o) => o.name === 'logits');
  if (logits === undefined) return undefined;
  return dropEmptyConcats(removeDeadNodes({ ...ir, outputs: [logits] }, () => false));
}

/**
 * Cross-entropy on the forward graph's logits, its gradients w.r.t. every float weight, and the
 * AdamW step. Undefined after reporting errors (a model without i32 tokens, say) to `report`.
 */
export function buildTrainingGraphs(fwd0: Graph, opts: TrainingGraphOptions, report: (d: Diagnostic) => void): TrainingGraphs | undefined {
  const fwd = opts.fuseAttention === true ? fuseForwardAttention(fwd0, createPassContext({ target: 'webgpu' })) : fwd0;
  const lossGraph = withTrainingLoss(fwd, opts.fuseLoss !== false, report);
  if (lossGraph === undefined) return undefined;
  const evalGraph = removeDeadNodes({ ...lossGraph, outputs: lossGraph.outputs.filter((x) => x.name === 'loss') }, () => false);
  const grads = gradGraph(evalGraph, { output: 'loss' }, report);
  if (grads === undefined) return undefined;
  const weightNames = new Set(grads.gradients.filter((g) => g.kind === 'weight').map((g) => g.of));
  const gradOf = new Map([...gradientNodes(grads)].filter(([n]) => weightNames.has(n)));
  const stepGraph = trainStepGraph(grads.graph, gradOf, {
    ...(opts.adam !== undefined ? { adam: opts.adam } : {}),
    accumulate: opts.accumulate === true,
    hyperInputs: opts.hyperInputs === true,
  });
  return { evalGraph, stepGraph, gradOf, grads };
}
