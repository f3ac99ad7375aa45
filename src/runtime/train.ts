// Runs a training-step plan (src/train/step.ts: forward, loss, backward and the AdamW update in
// one graph whose weights and optimizer moments are inputs and outputs of the same names) step
// after step. The Trainer keeps the state and feeds each step's outputs to the next; a backend
// runs one step: WebGPU keeps the state on the GPU (keepOnDevice: a step uploads its batch and
// three scalars and reads back the loss and the gradient norm), a host backend (the CUDA
// emulator, the float64 interpreter: src/cli/train.ts) keeps it in host arrays.
import { adamNames, type AdamWOptions, defaultAdamW } from '../train/adamw.js';
import type { DeviceTensor, HostTensor, Session } from './session.js';
import { RuntimeError } from './errors.js';

export interface TrainStepResult {
  readonly loss: number;
  /** The global gradient norm before clipping. */
  readonly gradNorm: number;
}

/** Runs one step: `state` names are returned as state values, the rest as host numbers. */
export interface TrainBackend<S> {
  /** Names of the step's inputs that are also its outputs (weights and moments). */
  readonly stateNames: readonly string[];
  /** The step takes AdamW's hyperparameters as inputs (src/train/adamw.ts `hyperInputs`). */
  readonly hyperInputs?: boolean;
  run(inputs: ReadonlyMap<string, HostTensor | S>, state: readonly string[]): Promise<{ state: Map<string, S>; host: Map<string, ArrayLike<number>> }>;
  /** A state value as host numbers (for checkpoints). */
  read(s: HostTensor | S): Promise<ArrayLike<number>>;
  /** Frees a state value no step needs any more. */
  release(s: HostTensor | S): void;
}

export interface TrainerOptions {
  readonly adam?: AdamWOptions;
  /** The loss output's name (default 'loss'). */
  readonly lossOutput?: string;
}

export class Trainer<S = DeviceTensor> {
  private readonly state = new Map<string, HostTensor | S>();
  private readonly shapes = new Map<string, readonly number[]>();
  private readonly weightNames: readonly string[];
  private readonly adam: AdamWOptions;
  private readonly lossOutput: string;
  /** The plan accumulates gradients (src/train/adamw.ts `accumulate`): `step` takes `apply`. */
  readonly accumulating: boolean;
  private t = 0;

  /** `weights`: the initial value of every trained weight; the moments start at zero. */
  constructor(
    private readonly backend: TrainBackend<S>,
    weights: ReadonlyMap<string, HostTensor>,
    opts: TrainerOptions = {},
  ) {
    this.adam = opts.adam ?? defaultAdamW;
    this.lossOutput = opts.lossOutput ?? 'loss';
    const trained = backend.stateNames.filter((n) => !n.startsWith('adam.') && !n.startsWith('accum.'));
    this.accumulating = backend.stateNames.some((n) => n.startsWith('accum.'));
    for (const n of trained) {
      const w = weights.get(n);
      if (w === undefined) throw new RuntimeError('weight', `no initial value for the trained weight '${n}'`);
      this.state.set(n, w);
      this.shapes.set(n, w.shape);
      const zeros: HostTensor = { dtype: 'f32', shape: w.shape, data: new Float32Array(w.data.length) };
      this.state.set(adamNames.m(n), zeros);
      this.state.set(adamNames.v(n), zeros);
      if (this.accumulating) this.state.set(adamNames.accum(n), zeros);
    }
    const missing = backend.stateNames.filter((n) => !this.state.has(n));
    if (missing.length > 0) throw new RuntimeError('plan', `training-step state without a weight: ${missing.join(', ')}`);
    this.weightNames = trained;
  }

  /** Optimizer steps taken so far (applied updates). */
  get steps(): number {
    return this.t;
  }

  /**
   * One step on `batch` (the model's inputs and the targets) at learning rate `lr`. With
   * gradient accumulation, a micro-batch: its gradient is added up, and the weights change only
   * when `apply` is true, by the mean gradient of the last `micro` micro-batches.
   */
  async step(batch: ReadonlyMap<string, HostTensor>, lr: number, acc: { readonly apply: boolean; readonly micro: number } = { apply: true, micro: 1 }): Promise<TrainStepResult> {
    if (!this.accumulating && !(acc.apply && acc.micro === 1)) throw new RuntimeError('plan', 'this training step was compiled without gradient accumulation');
    const t = this.t + 1; // the optimizer step an applying micro-batch makes
    if (acc.apply) this.t++;
    const scalar = (v: number): HostTensor => ({ dtype: 'f32', shape: [], data: [v] });
    const inputs = new Map<string, HostTensor | S>([...batch, ...this.state]);
    inputs.set(adamNames.lr, scalar(lr));
    inputs.set(adamNames.bc1, scalar(1 - this.adam.beta1 ** t));
    inputs.set(adamNames.bc2, scalar(1 - this.adam.beta2 ** t));
    if (this.backend.hyperInputs === true) for (const [key, name] of Object.entries(adamNames.hyper)) inputs.set(name, scalar(this.adam[key as keyof typeof adamNames.hyper]));
    if (this.accumulating) {
      inputs.set(adamNames.apply, scalar(acc.apply ? 1 : 0));
      inputs.set(adamNames.accumScale, scalar(1 / acc.micro));
    }
    const r = await this.backend.run(inputs, [...this.state.keys()]);
    for (const [name, old] of this.state) {
      const next = r.state.get(name);
      if (next === undefined) throw new RuntimeError('plan', `the training step did not return '${name}'`);
      this.backend.release(old);
      this.state.set(name, next);
    }
    const loss = r.host.get(this.lossOutput)?.[0];
    if (loss === undefined) throw new RuntimeError('plan', `the training step returned no '${this.lossOutput}'`);
    return { loss, gradNorm: r.host.get(adamNames.gradNorm)?.[0] ?? NaN };
  }

  /** The current weights on the host. */
  async weights(): Promise<Map<string, HostTensor>> {
    const out = new Map<string, HostTensor>();
    for (const n of this.weightNames) {
      const s = this.state.get(n);
      if (s !== undefined) out.set(n, { dtype: 'f32', shape: this.shapes.get(n) ?? [], data: await this.backend.read(s) });
    }
    return out;
  }

  dispose(): void {
    for (const s of this.state.values()) this.backend.release(s);
    this.state.clear();
  }
}

/** Whether a training-step plan takes AdamW's hyperparameters as inputs. */
export function planHyperInputs(plan: Session['plan']): boolean {
  return plan.buffers.some((b) => b.kind === 'input' && b.name === adamNames.hyper.beta1);
}

/** Training-step state names of a plan: inputs that are outputs too. */
export function planStateNames(plan: Session['plan']): string[] {
  const outputs = new Set(plan.outputs.map((o) => o.name));
  return plan.buffers.filter((b) => b.kind === 'input' && b.name !== undefined && outputs.has(b.name)).map((b) => b.name ?? '');
}

// WebGPU flag values (spec constants; Node has the globals only after `webgpu` is loaded).
const mapRead = 0x1;
const copyDst = 0x8;
const mapModeRead = 0x1;

/** The WebGPU backend: the state stays on the GPU between steps. */
export function webgpuTrainBackend(device: GPUDevice, session: Session): TrainBackend<DeviceTensor> {
  const isDevice = (s: HostTensor | DeviceTensor): s is DeviceTensor => 'buffer' in s;
  return {
    stateNames: planStateNames(session.plan),
    hyperInputs: planHyperInputs(session.plan),
    async run(inputs, state) {
      const r = await session.run(inputs, { keepOnDevice: state });
      return { state: new Map(r.deviceOutputs), host: new Map([...r.outputs].map(([n, o]) => [n, o.data])) };
    },
    async read(s) {
      if (!isDevice(s)) return s.data;
      if (s.dtype !== 'f32') throw new RuntimeError('plan', `trained weights are f32; '${s.dtype}' cannot be read back here`);
      const n = s.shape.reduce((a, b) => a * b, 1);
      const read = device.createBuffer({ size: Math.max(4, n * 4), usage: mapRead | copyDst });
      const enc = device.createCommandEncoder();
      enc.copyBufferToBuffer(s.buffer, 0, read, 0, n * 4);
      device.queue.submit([enc.finish()]);
      await read.mapAsync(mapModeRead);
      const data = new Float32Array(read.getMappedRange().slice(0));
      read.unmap();
      read.destroy();
      return data;
    },
    release(s) {
      if (isDevice(s)) s.buffer.destroy();
    },
  };
}
