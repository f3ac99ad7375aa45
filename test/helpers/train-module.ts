// Shared by the generated-trainer tests (test/webgpu/train-module.test.ts in Node,
// test/e2e/browser/finetune.test.ts in Chromium): charlm compiled as `tfc compile --train` does,
// the fine-tuning text and its batches, and the reference: the same steps through `tfc train`'s
// own path (src/cli/train.ts: B and T bound, the Trainer with the WebGPU backend, AdamW constants
// in the graph, the adapter's limits).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { trainingForward, trainingGraphs } from '../../src/cli/train.js';
import { Reporter } from '../../src/cli/report.js';
import { compileModel } from '../../src/compile/model.js';
import { lowerModel } from '../../src/compile/kernels.js';
import { compilePlan } from '../../src/compile/plan.js';
import { emitHostModule } from '../../codegen/host/emit.js';
import { webgpuDefaultLimits } from '../../src/kernel/schedule/schedule.js';
import { runPipeline } from '../../src/passes/driver.js';
import { createPassContext } from '../../src/passes/pass.js';
import { trainingPipeline } from '../../src/passes/pipeline.js';
import type { AcquiredDevice } from '../../src/runtime/device.js';
import { createSession, type HostTensor } from '../../src/runtime/session.js';
import { targetLimitsOf } from '../../src/runtime/target.js';
import { Trainer, webgpuTrainBackend } from '../../src/runtime/train.js';
import { parseSafetensors } from '../../src/runtime/host.js';
import { learningRate } from '../../src/train/data.js';
import type { TrainBatch } from '../../src/runtime/fine-tune.js';

export const repo = new URL('../../', import.meta.url).pathname;
export const charlmFile = 'examples/charlm/charlm.tfx';
export const charlmWeights = join(repo, 'examples/charlm/charlm.safetensors');

/** A text unlike charlm's license corpus: fine-tuning on it moves the loss and the greedy text. */
export const fineTuneText =
  'the cat sat on the mat. the dog sat on the log. the cat and the dog sat on the mat and the log. ' +
  'the cat saw the dog. the dog saw the cat. the cat sat. the dog sat. the mat, the log, the cat, the dog.\n';

/** charlm's character tokenizer (vocab.json: '\n', ' ', then printable ASCII). */
export function charIds(text: string): number[] {
  const chars = (JSON.parse(readFileSync(join(repo, 'examples/charlm/vocab.json'), 'utf8')) as { chars: string[] }).chars;
  return [...text].map((ch) => {
    const i = chars.indexOf(ch);
    if (i < 0) throw new Error(`charlm has no ${JSON.stringify(ch)}`);
    return i;
  });
}

/** model.ts of charlm with the training step, as `tfc compile examples/charlm/charlm.tfx --train -o DIR` writes it. */
export async function charlmTrainModule(runtimeImport?: string): Promise<string> {
  const c = compileModel({ file: charlmFile, text: readFileSync(join(repo, charlmFile), 'utf8') }, { verify: true });
  const k = lowerModel(c, { limits: webgpuDefaultLimits, train: true });
  const trainPlan = k.trainPlan;
  if (trainPlan === undefined) throw new Error('no training plan');
  return emitHostModule(k.plan, c.graph, { context: c.contextLength ?? 128, sourceName: 'charlm.tfx', trainPlan, ...(runtimeImport !== undefined ? { runtimeImport } : {}) });
}

export interface Schedule {
  readonly steps: number;
  readonly peak: number;
  readonly warmup: number;
}

/** The learning rate of step s (0-based), tfc train's schedule. */
export const lrOf = (s: Schedule, step: number): number => learningRate(step, s.steps, s.peak, s.warmup);

/**
 * The same steps through `tfc train`'s path: the step graph with B and T bound to the batches'
 * shape, compiled for the adapter's limits, the Trainer with the WebGPU backend, step i at
 * learning rate lrs[i]. Returns each step's loss and gradient norm and the weights after the last step.
 */
export async function referenceRun(dev: AcquiredDevice, batches: readonly TrainBatch[], lrs: readonly number[]): Promise<{ losses: number[]; gradNorms: number[]; weights: Map<string, HostTensor> }> {
  const first = batches[0]?.tokens as HostTensor;
  const [B, T] = first.shape as [number, number];
  const rep = new Reporter((t) => process.stderr.write(t));
  const fwd = trainingForward(rep, join(repo, charlmFile), B, T, new Map());
  const { stepGraph } = trainingGraphs(rep, fwd, { fuseAttention: true });
  const plan = compilePlan(runPipeline(stepGraph, trainingPipeline('webgpu', { fuse: true, recompute: true }), createPassContext({ target: 'webgpu' })), { target: targetLimitsOf(dev) });
  const session = await createSession(dev, plan);
  const init = parseSafetensors(readFileSync(charlmWeights));
  const trainer = new Trainer(webgpuTrainBackend(dev.device, session), init);
  const losses: number[] = [];
  const gradNorms: number[] = [];
  for (const [i, b] of batches.entries()) {
    const r = await trainer.step(
      new Map([
        ['tokens', b.tokens as HostTensor],
        ['targets', b.targets as HostTensor],
      ]),
      lrs[i] ?? NaN,
    );
    losses.push(r.loss);
    gradNorms.push(r.gradNorm);
  }
  const weights = await trainer.weights();
  trainer.dispose();
  session.dispose();
  return { losses, gradNorms, weights };
}

/** max |a - b| / max |b| over the tensors of `b`. */
export function weightsRelErr(a: ReadonlyMap<string, HostTensor>, b: ReadonlyMap<string, HostTensor>): number {
  let diff = 0;
  let scale = 0;
  for (const [n, t] of b) {
    const o = a.get(n);
    if (o === undefined || o.data.length !== t.data.length) return Infinity;
    for (let i = 0; i < t.data.length; i++) {
      diff = Math.max(diff, Math.abs((o.data[i] ?? NaN) - (t.data[i] ?? NaN)));
      scale = Math.max(scale, Math.abs(t.data[i] ?? 0));
    }
  }
  return diff / scale;
}
