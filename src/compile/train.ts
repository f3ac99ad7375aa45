// `tfc compile --train`: the model's training step (src/train/graphs.ts: forward, cross-entropy,
// backward, AdamW) as a second plan beside the forward one, for the generated module's
// `createTrainer`. B and T stay symbolic (one plan for any batch of windows up to the context);
// a KV cache is empty (P = 0) and drops out; AdamW's hyperparameters are inputs
// (`hyperInputs`), so the module takes them as options. The step goes through tfc train's
// trainingPipeline (fused, or `--no-fuse`; with rematerialize), with attention fused before grad
// when it fuses.
import { DiagnosticSink, UserErrorsReported } from '../diag/diagnostic.js';
import type { Graph } from '../graph/ir.js';
import type { Plan } from '../kernel/plan/plan.js';
import type { Schedule, TargetLimits } from '../kernel/schedule/schedule.js';
import { runPipeline } from '../passes/driver.js';
import { createPassContext } from '../passes/pass.js';
import { trainingPipeline } from '../passes/pipeline.js';
import { buildTrainingGraphs, trainingForwardOf } from '../train/graphs.js';
import { type Compilation, compileModel } from './model.js';
import { compilePlan } from './plan.js';

/** Why `c` cannot get a training step (a sentence for a usage error), or undefined when it can. */
export function trainRefusal(c: Compilation): string | undefined {
  if (c.options.target !== undefined && c.options.target !== 'webgpu') return `--train compiles a WebGPU training step (not --target ${c.options.target})`;
  if (c.options.dtype !== undefined) return `--train trains f32 weights (not --dtype ${c.options.dtype})`;
  if (c.options.grad === true) return '--train and --grad: --train already holds the backward (its step plan)';
  if (!c.checked.outputs.some((o) => o.name === 'logits')) return `--train needs an output named 'logits' (outputs: ${c.checked.outputs.map((o) => o.name).join(', ')})`;
  return undefined;
}

/** The training-step graph of `c` after the pipeline (fused unless `c` is `--no-fuse`). */
export function trainStepGraphOf(c: Compilation): Graph {
  const why = trainRefusal(c);
  if (why !== undefined) throw new Error(`trainStepGraphOf: ${why}`);
  // The same source at P = 0 (a KV cache starts empty); its checker warnings were reported by `c`.
  const sink = new DiagnosticSink();
  const overrides = c.checked.dims.includes('P') ? new Map([...c.overrides, ['P', 0]]) : c.overrides;
  const noFuse = c.options.noFuse === true;
  const atP0 = compileModel(c.source, { overrides, target: 'webgpu', noFuse, diagnostics: sink, ...(c.options.verify !== undefined ? { verify: c.options.verify } : {}) });
  let ir: Graph;
  try {
    ir = atP0.ir;
  } catch (e) {
    if (e instanceof UserErrorsReported) throw new Error(`internal: the training forward at P = 0 failed: ${sink.items.map((d) => d.message).join('; ')}`);
    throw e;
  }
  const fwd = trainingForwardOf(ir);
  if (fwd === undefined) throw new Error('internal: no logits output at P = 0');
  const graphs = buildTrainingGraphs(fwd, { fuseAttention: !noFuse, hyperInputs: true }, (d) => sink.report(d));
  if (graphs === undefined) {
    for (const d of sink.items) c.options.diagnostics?.report(d);
    throw new UserErrorsReported();
  }
  // tfc train's step passes: cheap activations recomputed before the backward (rematerialize).
  const passes = trainingPipeline('webgpu', { fuse: !noFuse, recompute: true });
  return runPipeline(graphs.stepGraph, passes, createPassContext({ target: 'webgpu', ...(c.options.verify !== undefined ? { verify: c.options.verify } : {}) }));
}

/** The training-step plan for `limits` (the same limits and schedule as the forward plan). */
export function trainStepPlan(c: Compilation, limits: TargetLimits, schedule?: Schedule): Plan {
  return compilePlan(trainStepGraphOf(c), { target: limits, ...(schedule !== undefined ? { schedule } : {}), cuda: false });
}
