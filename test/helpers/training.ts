// The training loss-and-gradient graph of an example at a small config, as `tfc train` builds it
// (src/cli/train.ts trainingForward + trainingGraphs without AdamW): the cleanup passes' graph
// with B, T symbolic and P = 0, only `logits` kept, empty cache concats dropped, attention fused
// before grad when asked (src/train/fuse-forward.ts), cross-entropy, gradients of every weight.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { gradGraph } from '../../src/autodiff/grad.js';
import { withCrossEntropyLoss } from '../../src/autodiff/loss.js';
import { withTrainingLoss } from '../../src/autodiff/fused-loss.js';
import { checkSource } from '../../src/check/check-source.js';
import { randomInputs, randomWeights } from '../../src/cli/random.js';
import type { Diagnostic } from '../../src/diag/diagnostic.js';
import type { Graph } from '../../src/graph/ir.js';
import { removeDeadNodes } from '../../src/graph/rewrite.js';
import { neededTensors } from '../../src/io/check-tensors.js';
import { runPipeline } from '../../src/passes/driver.js';
import { createPassContext } from '../../src/passes/pass.js';
import { graphPasses } from '../../src/passes/pipeline.js';
import { fuseForwardAttention } from '../../src/train/fuse-forward.js';
import { dropEmptyConcats } from '../../src/train/step.js';
import { type Tensor64, makeTensor } from '../../src/base/tensor.js';
import { repoRoot, smallOverrides } from './examples.js';

/** `loss` and `grad.<weight>` outputs of `file` at its small config (examples.ts), B and T symbolic. */
export function trainingLossGrad(file: string, fuseAttention: boolean, overrides: Record<string, number> = smallOverrides(file)): Graph {
  const text = readFileSync(join(repoRoot, file), 'utf8');
  const probe = checkSource(text, file, new Map(Object.entries(overrides)));
  const r = probe.graph?.dims.includes('P') === true ? checkSource(text, file, new Map(Object.entries({ ...overrides, P: 0 }))) : probe;
  const errors: Diagnostic[] = [...r.diagnostics.filter((d) => d.severity === 'error')];
  if (r.graph === undefined) throw new Error(`${file}: ${errors.map((d) => d.message).join('; ')}`);
  const ctx = createPassContext({ target: 'webgpu', verify: true });
  const ir = runPipeline(r.graph, graphPasses, ctx);
  const logits = ir.outputs.filter((o) => o.name === 'logits');
  const fwd0 = dropEmptyConcats(removeDeadNodes({ ...ir, outputs: logits }, () => false));
  const fwd = fuseAttention ? fuseForwardAttention(fwd0, ctx) : fwd0;
  const withLoss = withCrossEntropyLoss(fwd, {}, (d) => errors.push(d));
  const g = withLoss === undefined ? undefined : gradGraph(withLoss, { output: 'loss' }, (d) => errors.push(d));
  expect(errors.map((d) => d.message)).toEqual([]);
  if (g === undefined) throw new Error(`${file}: no backward graph`);
  return g.graph;
}

/** Seeded weights and inputs for a training graph at `dims`: random weights, inputs as `tfc random-inputs`, `targets` below `vocab`. */
export function trainingFeeds(g: Graph, dims: ReadonlyMap<string, number>, seed: number, vocab: number): { weights: Map<string, Tensor64>; inputs: Map<string, Tensor64> } {
  const ds: Diagnostic[] = [];
  const needed = neededTensors(g);
  const weights = randomWeights(needed, seed, dims, ds);
  const inputs = randomInputs(g, needed, seed + 1, dims, ds);
  expect(ds).toEqual([]);
  const targets = inputs.get('targets');
  if (targets === undefined) throw new Error('a training graph has targets');
  inputs.set('targets', makeTensor('i32', targets.shape, targets.data.map((_, i) => (i * 7 + seed * 3) % vocab)));
  return { weights, inputs };
}

/**
 * As trainingLossGrad, with B and T bound to `dims` (as `tfc train` binds them: the fused loss
 * chunks a constant row count) and the training loss of `tfc train`: fused_cross_entropy when
 * `fuseLoss` (src/autodiff/fused-loss.ts), else the catalog-op cross-entropy.
 */
export function fusedTrainingGrad(file: string, config: Record<string, number>, dims: Record<string, number>, fuseLoss: boolean, fuseAttention = false): Graph {
  const text = readFileSync(join(repoRoot, file), 'utf8');
  const probe = checkSource(text, file, new Map(Object.entries(config)));
  const withP = probe.graph?.dims.includes('P') === true ? { P: 0 } : {};
  const r = checkSource(text, file, new Map(Object.entries({ ...config, ...dims, ...withP })));
  const errors: Diagnostic[] = [...r.diagnostics.filter((d) => d.severity === 'error')];
  if (r.graph === undefined) throw new Error(`${file}: ${errors.map((d) => d.message).join('; ')}`);
  const ctx = createPassContext({ target: 'webgpu', verify: true });
  const ir = runPipeline(r.graph, graphPasses, ctx);
  const fwd0 = dropEmptyConcats(removeDeadNodes({ ...ir, outputs: ir.outputs.filter((o) => o.name === 'logits') }, () => false));
  const fwd = fuseAttention ? fuseForwardAttention(fwd0, ctx) : fwd0;
  const withLoss = withTrainingLoss(fwd, fuseLoss, (d) => errors.push(d));
  const g = withLoss === undefined ? undefined : gradGraph(withLoss, { output: 'loss' }, (d) => errors.push(d));
  expect(errors.map((d) => d.message)).toEqual([]);
  if (g === undefined) throw new Error(`${file}: no backward graph`);
  return g.graph;
}
