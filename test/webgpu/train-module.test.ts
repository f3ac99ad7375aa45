// The generated module's training step (`tfc compile --train`: createTrainer) on lavapipe, for
// examples/charlm from its committed weights: each step's loss equals the same step through `tfc
// train`'s own path (B and T bound, AdamW constants in the graph, the Trainer's WebGPU backend;
// test/helpers/train-module.ts) within 1e-5, the trained weights agree, the loss on the text goes
// down, and `copyTo` hands the weights to the forward model (its logits then equal a model loaded
// from the trained weights, and differ from before). Bad batches are refused before any dispatch.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeSafetensors } from '../../src/io/safetensors.js';
import { textBatches } from '../../src/runtime/fine-tune.js';
import type { AcquiredDevice, CreateModelOptions, HostTensor, LoadedModel, LoadedTrainer, RunOutput, TrainBatch, TrainerCreateOptions, TrainerWeights, TrainStepInfo, WeightSource } from '../../src/runtime/index.js';
import { charIds, charlmTrainModule, charlmWeights, fineTuneText, lrOf, referenceRun, repo, weightsRelErr } from '../helpers/train-module.js';
import { testDevice } from './helpers.js';

interface GeneratedModel {
  readonly runtime: LoadedModel;
  forward(inputs: Readonly<Record<string, unknown>>): Promise<Readonly<Record<string, RunOutput>>>;
  dispose(): void;
}
interface GeneratedTrainer {
  readonly runtime: LoadedTrainer;
  readonly steps: number;
  step(batch: TrainBatch, options?: { lr?: number }): Promise<TrainStepInfo>;
  weights(): Promise<Map<string, HostTensor>>;
  copyTo(model: GeneratedModel): Promise<void>;
  dispose(): void;
}
interface GeneratedModule {
  createModel(device: AcquiredDevice, weights: WeightSource, options?: CreateModelOptions): Promise<GeneratedModel>;
  createTrainer(device: AcquiredDevice, weights: TrainerWeights, options?: TrainerCreateOptions): Promise<GeneratedTrainer>;
}

// Written into the repo (out/ is ignored) so that vite resolves its relative runtime import.
const dir = join(repo, `out/test-train-module-${process.pid}`);
let gen: GeneratedModule;
beforeAll(async () => {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'model.ts'), await charlmTrainModule(relative(dir, join(repo, 'src/runtime/index.js'))));
  gen = (await import(/* @vite-ignore */ join(dir, 'model.ts'))) as GeneratedModule;
}, 300_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const schedule = { steps: 6, peak: 3e-3, warmup: 2 };

describe('generated createTrainer (charlm) on WebGPU', () => {
  it('gives tfc train\'s losses and weights, lowers the loss, and copyTo moves the weights into the model', { timeout: 1_500_000 }, async () => {
    const dev = await testDevice();
    const ids = charIds(fineTuneText);
    const batches = textBatches(ids, { steps: schedule.steps, batch: 4, seq: 32, seed: 3 });
    const ref = await referenceRun(dev, batches, batches.map((_, i) => lrOf(schedule, i)));

    const phases: string[] = [];
    const trainer = await gen.createTrainer(dev, charlmWeights, { lr: (s) => lrOf(schedule, s), onProgress: (p) => phases.push(p.phase), warmUp: false });
    expect(phases[0]).toBe('download');
    expect(phases.at(-1)).toBe('ready');
    const losses: number[] = [];
    for (const b of batches) {
      const r = await trainer.step(b);
      losses.push(r.loss);
      expect(r.step).toBe(losses.length);
      expect(r.lr).toBe(lrOf(schedule, losses.length - 1));
      expect(r.tokens).toBe(4 * 32);
    }
    console.log(`createTrainer losses ${losses.map((l) => l.toFixed(6)).join(' ')}; tfc train path ${ref.losses.map((l) => l.toFixed(6)).join(' ')}`);
    expect(losses.length).toBe(ref.losses.length);
    losses.forEach((l, i) => expect(Math.abs(l - (ref.losses[i] ?? NaN)), `step ${i + 1}`).toBeLessThan(1e-5));
    const trained = await trainer.weights();
    const wErr = weightsRelErr(trained, ref.weights);
    console.log(`trained weights vs the tfc train path: max rel error ${wErr.toExponential(2)}`);
    expect(wErr).toBeLessThan(1e-4);

    // The loss on the first batch, before and after training (lr 0: the weights stay, only the moments move).
    const after = await trainer.step(batches[0] as TrainBatch, { lr: 0 });
    console.log(`loss on the first batch: ${losses[0]?.toFixed(4)} before training, ${after.loss.toFixed(4)} after ${schedule.steps} steps`);
    expect(after.loss).toBeLessThan((losses[0] ?? 0) / 2);

    // copyTo: the forward model generates with the trained weights from its next run.
    const model = await gen.createModel(dev, charlmWeights, { warmUp: false });
    const prompt = charIds('the cat ');
    const before = (await model.forward({ tokens: prompt }))['logits']?.data ?? new Float32Array();
    await trainer.copyTo(model);
    const moved = (await model.forward({ tokens: prompt }))['logits']?.data ?? new Float32Array();
    const now = await trainer.weights();
    const file = writeSafetensors(new Map([...now].map(([n, t]) => [n, { dtype: 'f32' as const, shape: [...t.shape], data: Float64Array.from(t.data) }])), 'f32');
    const fresh = await gen.createModel(dev, file, { warmUp: false });
    const expected = (await fresh.forward({ tokens: prompt }))['logits']?.data ?? new Float32Array();
    expect(moved.length).toBe(expected.length);
    expect(Array.from(moved)).toEqual(Array.from(expected));
    const change = Math.max(...Array.from(moved, (v, i) => Math.abs(v - (before[i] ?? 0))));
    expect(change).toBeGreaterThan(1e-2);
    fresh.dispose();
    model.dispose();
    trainer.dispose();
  });

  it('refuses bad batches and options before any dispatch', { timeout: 300_000 }, async () => {
    const dev = await testDevice();
    const trainer = await gen.createTrainer(dev, charlmWeights, { warmUp: false });
    await expect(trainer.step({ tokens: [1, 2, 3], targets: [2, 3] })).rejects.toThrow(/'targets' is \[1,2\], 'tokens' is \[1,3\]: one target per token/);
    await expect(trainer.step({ tokens: [1, 2, 96], targets: [2, 3, 4] })).rejects.toThrow(/input 'tokens' element 2 is 96: token ids must be integers in \[0, 96\)/);
    await expect(trainer.step({ tokens: new Array(129).fill(1), targets: new Array(129).fill(1) })).rejects.toThrow(/129 tokens: more than the context of 128 positions/);
    await expect(trainer.step({ tokens: [1, 2], targets: [2, 3] }, { lr: NaN })).rejects.toThrow(/learning rate NaN/);
    expect(trainer.steps).toBe(0);
    trainer.dispose();
    await expect(gen.createTrainer(dev, new Map([['model.norm.weight', { shape: [64], data: new Float32Array(64) }]]), { warmUp: false })).rejects.toThrow(/the weights lack 20 tensor\(s\) the training step of charlm needs: /);
  });
});
