// The page's "fine-tune on this text" section (index.html #finetune): the text is tokenized with
// the checkpoint's tokenizer, cut into windows as `tfc train` draws them (textBatches: seeded
// offsets, next-token targets), and each step runs the generated module's training step on the GPU
// (createTrainer, from `tfc compile --train`: weights and AdamW moments stay there). Progress shows
// step, loss and tokens/s; at the end the trained weights go into the loaded model (copyTo), so the
// generate form uses them. A module compiled without --train has no createTrainer: the section
// says so and stays disabled.
import { learningRate, openCheckpoint, textBatches, type AcquiredDevice, type CheckpointReader, type HostTensor, type LoadProgress, type TextTokenizer, type TrainBatch, type TrainerCreateOptions, type TrainerWeights, type TrainStepInfo } from 'tfc/runtime';
import { $, field } from './ui.js';

/** Windows per step and tokens per window (the legend in index.html says the same). */
export const batchSize = 4;
export const windowLength = 32;
export const seed = 0;

/** What the page's generated module offers when it was compiled with --train. */
export interface CompiledTrainer<M> {
  readonly steps: number;
  step(batch: TrainBatch, options?: { readonly lr?: number }): Promise<TrainStepInfo>;
  weights(): Promise<Map<string, HostTensor>>;
  copyTo(model: M): Promise<void>;
  dispose(): void;
}
export type CreateTrainer<M> = (device: AcquiredDevice, weights: TrainerWeights, options?: TrainerCreateOptions) => Promise<CompiledTrainer<M>>;

export interface FineTuneTarget<M> {
  readonly model: M;
  readonly tokenizer: TextTokenizer;
  /** The folder the model came from: the trainer reads its weights again from there. */
  readonly read: CheckpointReader;
}

export interface FineTuneResult {
  readonly ids: number;
  readonly steps: readonly TrainStepInfo[];
  /** Optimizer steps of this trainer so far (earlier runs on the same folder included). */
  readonly total: number;
  /** The trained weights, read back when asked (the e2e test's `logits=1` report). */
  readonly weights?: ReadonlyMap<string, HostTensor>;
}

const textArea = (): HTMLTextAreaElement => $<HTMLTextAreaElement>('ft-text');

export function ftStatus(text: string): void {
  $('ft-status').textContent = text;
}

function showTrainerProgress(p: LoadProgress): void {
  if (p.phase === 'compile' || p.phase === 'warmup') ftStatus(`compiling the training step: ${p.phase === 'compile' ? 'pipelines created' : 'pipelines warmed up'} ${p.done} / ${p.total}`);
}

/** One trainer per loaded folder: later runs continue from its weights and moments. */
export class FineTuner<M> {
  private trainer: CompiledTrainer<M> | undefined;

  constructor(
    private readonly device: AcquiredDevice,
    private readonly create: CreateTrainer<M>,
  ) {}

  /** Forget the trainer (a new folder was loaded). */
  reset(): void {
    this.trainer?.dispose();
    this.trainer = undefined;
  }

  /** Trains `steps` steps on the textarea's text at peak learning rate `lr`, then hands the weights to `t.model`. */
  async run(t: FineTuneTarget<M>, steps: number, lr: number, readBack = false): Promise<FineTuneResult> {
    if (!(Number.isInteger(steps) && steps >= 1)) throw new Error(`steps must be a whole number >= 1 (got ${field('ft-steps').value})`);
    if (!(lr > 0 && Number.isFinite(lr))) throw new Error(`the learning rate must be a positive number (got ${field('ft-lr').value})`);
    const ids = t.tokenizer.encode(textArea().value);
    if (ids.length < windowLength + 2) throw new Error(`the text is ${ids.length} tokens; fine-tuning needs at least ${windowLength + 2} (windows of ${windowLength})`);
    const batches = textBatches(ids, { steps, batch: batchSize, seq: windowLength, seed });
    if (this.trainer === undefined) {
      ftStatus('reading the weights for the trainer…');
      const checkpoint = await openCheckpoint(t.read);
      this.trainer = await this.create(this.device, checkpoint, { onProgress: showTrainerProgress });
    }
    const trainer = this.trainer;
    const warmup = Math.max(1, Math.round(steps / 10));
    const done: TrainStepInfo[] = [];
    const start = performance.now();
    for (const [i, b] of batches.entries()) {
      const r = await trainer.step(b, { lr: learningRate(i, steps, lr, warmup) });
      if (!Number.isFinite(r.loss)) throw new Error(`the loss is ${r.loss} at step ${i + 1}: lower the learning rate`);
      done.push(r);
      const secs = (performance.now() - start) / 1000;
      ftStatus(`step ${i + 1}/${steps}  loss ${r.loss.toFixed(4)}  ${Math.round(((i + 1) * batchSize * windowLength) / secs)} tokens/s`);
      $<HTMLProgressElement>('ft-bar').value = (i + 1) / steps;
    }
    await trainer.copyTo(t.model);
    const first = done[0]?.loss ?? NaN;
    const last = done[done.length - 1]?.loss ?? NaN;
    ftStatus(`fine-tuned ${steps} steps on ${ids.length} tokens: loss ${first.toFixed(4)} -> ${last.toFixed(4)}; Generate now uses the fine-tuned weights`);
    return { ids: ids.length, steps: done, total: trainer.steps, ...(readBack ? { weights: await trainer.weights() } : {}) };
  }
}
