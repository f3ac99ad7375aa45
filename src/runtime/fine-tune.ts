/// <reference types="@webgpu/types" preserve="true" />
// The runtime behind a generated module's `createTrainer` (`tfc compile --train`): the
// training-step plan (src/train/graphs.ts: forward, cross-entropy, backward and AdamW in one
// graph, B and T symbolic) in a Session, driven by the Trainer (train.ts) with the WebGPU backend,
// so weights and AdamW moments stay on the GPU between steps. A step uploads its windows and a
// few scalars (learning rate, bias corrections, the optimizer's hyperparameters) and reads back
// the loss and the gradient norm. `copyTo` hands the trained weights to the forward model
// (`createModel`'s), so a page generates with them without reloading.
import { type AdamWOptions, defaultAdamW } from '../train/adamw.js';
import { batchOffsets, windows } from '../train/data.js';
import { type Plan, weightSources } from '../kernel/plan/plan.js';
import type { AcquiredDevice } from './device.js';
import { RuntimeError } from './errors.js';
import { type Checkpoint, type CompiledConfig, checkConfig } from './checkpoint.js';
import { checkTokens } from './generate.js';
import { type LoadedModel, type LoadProgress, type WeightSource, int32Ids, isCheckpoint, readWeights } from './host.js';
import { createSession, type HostTensor, type Session } from './session.js';
import { Trainer, webgpuTrainBackend } from './train.js';

/** What the runtime needs to know about a training-step plan (the generated module's `trainSpec`). */
export interface TrainSpec {
  readonly name: string;
  /** The i32 [B, T] inputs: token ids and their next-token targets. */
  readonly tokens: string;
  readonly targets: string;
  readonly vocab?: number;
  /** Most positions a window may hold (the forward model's context). */
  readonly context?: number;
  readonly config?: CompiledConfig;
}

export interface TrainerCreateOptions {
  /**
   * Learning rate: a number, or a function of the optimizer step (0, 1, ...); default 1e-3. A
   * step's own `lr` wins.
   */
  readonly lr?: number | ((step: number) => number);
  /** AdamW's betas, eps, decoupled weight decay and global-norm clip (defaults: torch's AdamW, weight decay 0.01, clip 1). */
  readonly adam?: Partial<AdamWOptions>;
  readonly onProgress?: (p: LoadProgress) => void;
  /** Dispatch every pipeline once while creating (default true), as createModel does. */
  readonly warmUp?: boolean;
}

/** One batch of windows: token ids and targets, flat lists (one window, [1, T]) or [B, T] tensors. */
export interface TrainBatch {
  readonly tokens: ArrayLike<number> | HostTensor;
  readonly targets: ArrayLike<number> | HostTensor;
}

export interface TrainStepInfo {
  /** Optimizer steps taken, this one included. */
  readonly step: number;
  readonly loss: number;
  /** The global gradient norm before clipping. */
  readonly gradNorm: number;
  readonly lr: number;
  /** Tokens (B * T) this step trained on. */
  readonly tokens: number;
}

export interface LoadedTrainer {
  readonly spec: TrainSpec;
  readonly session: Session;
  /** Optimizer steps taken so far. */
  readonly steps: number;
  step(batch: TrainBatch, opts?: { readonly lr?: number }): Promise<TrainStepInfo>;
  /** The trained weights, read back to the host (f32). */
  weights(): Promise<Map<string, HostTensor>>;
  /** Uploads the trained weights into a forward model (on the same device or another). */
  copyTo(model: Pick<LoadedModel, 'session'>): Promise<void>;
  dispose(): void;
}

/** Weights as a source createModel takes, or tensors already on the host (a trainer's `weights()`). */
export type TrainerWeights = WeightSource | readonly WeightSource[] | Checkpoint | ReadonlyMap<string, HostTensor>;

function rows(v: ArrayLike<number> | HostTensor, what: string): HostTensor {
  if (typeof v === 'object' && v !== null && 'shape' in v && 'data' in v) return { dtype: 'i32', shape: v.shape, data: v.data };
  return { dtype: 'i32', shape: [1, v.length], data: int32Ids(v, what) };
}

/** Creates the step's session (with progress), uploads the weights and starts AdamW at step 0. */
export async function createLoadedTrainer(device: GPUDevice | AcquiredDevice, plan: Plan, spec: TrainSpec, weights: TrainerWeights, opts: TrainerCreateOptions = {}): Promise<LoadedTrainer> {
  const progress = opts.onProgress;
  let tensors: ReadonlyMap<string, HostTensor>;
  if (weights instanceof Map) tensors = weights;
  else {
    const w = weights as WeightSource | readonly WeightSource[] | Checkpoint;
    if (isCheckpoint(w) && spec.config !== undefined) checkConfig(w, spec.config, spec.name);
    tensors = await readWeights(isCheckpoint(w) ? w.weights : Array.isArray(w) ? w : [w as WeightSource], progress);
  }
  const gpu: GPUDevice = 'device' in device && !('createBuffer' in device) ? device.device : (device as GPUDevice);
  const ranges = spec.vocab === undefined ? undefined : { [spec.tokens]: { min: 0, maxExclusive: spec.vocab }, [spec.targets]: { min: 0, maxExclusive: spec.vocab } };
  const onPipeline = (done: number, total: number): void => progress?.({ phase: 'compile', done, total });
  const session = await createSession(device, plan, ranges !== undefined ? { inputRanges: ranges, onPipeline } : { onPipeline });
  let trainer: Trainer;
  try {
    if (opts.warmUp !== false) await session.warmUp((done, total) => progress?.({ phase: 'warmup', done, total }));
    // Weights the step does not train (none for charlm) stay weights of the plan.
    const frozen = [...new Set(plan.buffers.filter((b) => b.kind === 'weight').flatMap((b) => weightSources(b).map((w) => w.name)))];
    const backend = webgpuTrainBackend(gpu, session);
    const trained = backend.stateNames.filter((n) => !n.startsWith('adam.') && !n.startsWith('accum.'));
    const missing = [...frozen, ...trained].filter((n) => !tensors.has(n));
    if (missing.length > 0) throw new RuntimeError('weight', `the weights lack ${missing.length} tensor(s) the training step of ${spec.name} needs: ${missing.slice(0, 6).join(', ')}`, 'TFC302');
    session.loadWeights(new Map(frozen.map((n) => [n, tensors.get(n) as HostTensor])));
    const adam: AdamWOptions = { ...defaultAdamW, ...opts.adam };
    // The Trainer checks that every trained weight has a value; shapes are checked here first.
    const inputShape = new Map(plan.buffers.filter((b) => b.kind === 'input').map((b) => [b.name ?? '', b.shape]));
    for (const n of trained) {
      const t = tensors.get(n);
      const want = inputShape.get(n) ?? [];
      if (t === undefined) continue;
      if (t.shape.length !== want.length || want.some((e, i) => e.kind === 'const' && e.value !== t.shape[i])) {
        throw new RuntimeError('weight', `weight '${n}' has shape [${t.shape.join(',')}], the training step of ${spec.name} needs ${want.length} axes of [${want.map((e) => (e.kind === 'const' ? e.value : '?')).join(',')}]`, 'TFC303');
      }
    }
    trainer = new Trainer(backend, new Map(trained.map((n) => [n, { ...(tensors.get(n) as HostTensor), dtype: 'f32' as const }])), { adam });
    progress?.({ phase: 'ready', done: 1, total: 1 });
  } catch (e) {
    session.dispose();
    throw e;
  }
  const schedule = opts.lr ?? 1e-3;
  let disposed = false;
  const alive = (): void => {
    if (disposed) throw new RuntimeError('device', `the trainer of ${spec.name} is disposed`);
  };
  const tokenSpec = { name: spec.name, tokens: spec.tokens, cache: [], ...(spec.vocab !== undefined ? { vocab: spec.vocab } : {}), ...(spec.context !== undefined ? { context: spec.context } : {}) };

  return {
    spec,
    session,
    get steps() {
      return trainer.steps;
    },
    async step(batch, sopts = {}) {
      alive();
      const tokens = rows(batch.tokens, `input '${spec.tokens}'`);
      const targets = rows(batch.targets, `input '${spec.targets}'`);
      checkTokens(tokenSpec, tokens, 0);
      checkTokens({ ...tokenSpec, tokens: spec.targets }, targets, 0);
      if (tokens.shape[0] !== targets.shape[0] || tokens.shape[1] !== targets.shape[1]) {
        throw new RuntimeError('input', `'${spec.targets}' is [${targets.shape.join(',')}], '${spec.tokens}' is [${tokens.shape.join(',')}]: one target per token`, 'TFC303');
      }
      const lr = sopts.lr ?? (typeof schedule === 'number' ? schedule : schedule(trainer.steps));
      if (!(lr >= 0) || !Number.isFinite(lr)) throw new RuntimeError('input', `learning rate ${lr} is not a finite number >= 0`, 'TFC303');
      const r = await trainer.step(
        new Map([
          [spec.tokens, tokens],
          [spec.targets, targets],
        ]),
        lr,
      );
      return { step: trainer.steps, loss: r.loss, gradNorm: r.gradNorm, lr, tokens: tokens.data.length };
    },
    weights() {
      alive();
      return trainer.weights();
    },
    async copyTo(model) {
      alive();
      model.session.loadWeights(await trainer.weights());
    },
    dispose() {
      if (disposed) return;
      disposed = true;
      trainer.dispose();
      session.dispose();
    },
  };
}

/**
 * `steps` batches of `batch` windows of `seq` token ids from `ids`, each with its next-token
 * targets, at the offsets `tfc train` draws (src/train/data.ts batchOffsets with `seed`, default 0):
 * the same text and seed give the same batches in a page and in Node.
 */
export function textBatches(ids: ArrayLike<number>, o: { readonly steps: number; readonly batch: number; readonly seq: number; readonly seed?: number }): TrainBatch[] {
  const all = Int32Array.from(ids);
  if (all.length < o.seq + 2) throw new RuntimeError('input', `the text is ${all.length} tokens: windows of ${o.seq} need at least ${o.seq + 2}`, 'TFC303');
  return batchOffsets(o.seed ?? 0, o.steps, o.batch, all.length, o.seq).map((offs) => {
    const w = windows(all, offs, o.seq);
    return { tokens: { dtype: 'i32', shape: [o.batch, o.seq], data: w.tokens }, targets: { dtype: 'i32', shape: [o.batch, o.seq], data: w.targets } };
  });
}
