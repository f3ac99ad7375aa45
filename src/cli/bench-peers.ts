/// <reference types="@webgpu/types" />
// The systems `tfc bench` races, each behind one Runner interface: tfc (a compiled Plan on the
// runtime, GPU time from timestamp queries), ONNX Runtime Web's WebGPU EP and TensorFlow.js's
// WebGPU backend. Peers run in this process on the same Dawn adapter through a navigator.gpu shim.
import v8 from 'node:v8';
import type * as OrtTypes from 'onnxruntime-web';
import type { Plan } from '../kernel/plan/plan.js';
import { acquireDevice, type AcquiredDevice } from '../runtime/device.js';
import { createSession, type HostTensor, type Session, type StepTiming } from '../runtime/session.js';

/** One forward pass of a system: the output values (row-major, f32) and its GPU time if known. */
export interface RunSample {
  readonly out: Float32Array;
  readonly gpuMs?: number;
  /** Per-kernel GPU time of this run (tfc only). */
  readonly steps?: readonly StepTiming[];
}

export interface Runner {
  readonly system: string;
  /** Where `gpuMs` comes from, or 'wall' when the system gives none. */
  readonly timeSource: 'timestamp-query' | 'ort-profiling' | 'tfjs-kernelMs' | 'wall';
  /** Kernels (dispatches) one run launches, when the system says. */
  kernels?: number | undefined;
  run(): Promise<RunSample>;
  dispose(): void;
}

// ---------------------------------------------------------------------------------------------
// The shared WebGPU object and the navigator.gpu shim for the peers.

let device: Promise<AcquiredDevice> | undefined;

/** tfc's device (the runtime's acquisition: Dawn in Node, lavapipe on CI). */
export function benchDevice(): Promise<AcquiredDevice> {
  device ??= acquireDevice();
  return device;
}

/** Copies a SharedArrayBuffer-backed write into a plain buffer: Dawn for Node rejects SAB views. */
function plainCopy(data: BufferSource | SharedArrayBuffer, dataOffset: number | undefined, size: number | undefined): Uint8Array {
  const isView = ArrayBuffer.isView(data);
  const el = isView ? ((data as unknown as { BYTES_PER_ELEMENT?: number }).BYTES_PER_ELEMENT ?? 1) : 1;
  const buf = isView ? (data as ArrayBufferView).buffer : (data as ArrayBuffer);
  const base = isView ? (data as ArrayBufferView).byteOffset : 0;
  const total = isView ? (data as ArrayBufferView).byteLength : (data as ArrayBuffer).byteLength;
  const start = (dataOffset ?? 0) * el;
  const n = size === undefined ? total - start : size * el;
  const copy = new Uint8Array(n);
  copy.set(new Uint8Array(buf, base + start, n));
  return copy;
}

function shimDevice(dev: GPUDevice): GPUDevice {
  const q = dev.queue;
  const write = q.writeBuffer.bind(q);
  const patched = (buffer: GPUBuffer, offset: number, data: BufferSource | SharedArrayBuffer, dataOffset?: number, size?: number): undefined => {
    const buf = ArrayBuffer.isView(data) ? data.buffer : data;
    if (typeof SharedArrayBuffer !== 'undefined' && buf instanceof SharedArrayBuffer) {
      write(buffer, offset, plainCopy(data, dataOffset, size) as Uint8Array<ArrayBuffer>);
    } else if (dataOffset === undefined) write(buffer, offset, data as BufferSource);
    else write(buffer, offset, data as BufferSource, dataOffset, size);
    return undefined;
  };
  Object.defineProperty(q, 'writeBuffer', { value: patched, configurable: true });
  return dev;
}

let shimInstalled = false;

/**
 * Makes `navigator.gpu` the Dawn GPU object the runtime uses (ORT and TF.js look there), with
 * devices whose `queue.writeBuffer` accepts SharedArrayBuffer-backed data (ORT's wasm heap).
 */
export async function installNavigatorGpu(): Promise<void> {
  if (shimInstalled) return;
  const dev = await benchDevice();
  const gpu = dev.gpu;
  const shim = {
    requestAdapter: async (o?: GPURequestAdapterOptions): Promise<GPUAdapter | null> => {
      const a = await gpu.requestAdapter(o);
      if (a === null) return null;
      return new Proxy(a, {
        get(target, key) {
          if (key === 'requestDevice') return async (d?: GPUDeviceDescriptor) => shimDevice(await target.requestDevice(d));
          const v: unknown = Reflect.get(target, key);
          return typeof v === 'function' ? (v as (...args: unknown[]) => unknown).bind(target) : v;
        },
      });
    },
    getPreferredCanvasFormat: (): GPUTextureFormat => 'rgba8unorm',
    wgslLanguageFeatures: gpu.wgslLanguageFeatures,
  };
  const g = globalThis as { navigator?: unknown };
  Object.defineProperty(g, 'navigator', { value: { gpu: shim, userAgent: 'node', hardwareConcurrency: 2, language: 'en' }, configurable: true, writable: true });
  shimInstalled = true;
}

// ---------------------------------------------------------------------------------------------
// tfc

export interface TfcRunnerOptions {
  readonly system: string;
  readonly plan: Plan;
  readonly weights: ReadonlyMap<string, HostTensor>;
  readonly inputs: ReadonlyMap<string, HostTensor>;
  readonly output: string;
  readonly inputRanges?: Readonly<Record<string, { readonly min: number; readonly maxExclusive: number }>>;
}

export async function tfcRunner(o: TfcRunnerOptions): Promise<Runner> {
  const dev = await benchDevice();
  const session: Session = await createSession(dev, o.plan, o.inputRanges !== undefined ? { inputRanges: o.inputRanges } : {});
  session.loadWeights(o.weights);
  const hasTiming = dev.features.has('timestamp-query');
  return {
    system: o.system,
    timeSource: hasTiming ? 'timestamp-query' : 'wall',
    kernels: o.plan.steps.length,
    async run(): Promise<RunSample> {
      const r = await session.run(o.inputs, { timing: hasTiming });
      const out = r.outputs.get(o.output);
      if (out === undefined) throw new Error(`tfc: no output ${o.output}`);
      const data = out.data instanceof Float32Array ? out.data : Float32Array.from(out.data);
      if (r.timing === undefined) return { out: data };
      const ns = r.timing.reduce((a, t) => a + t.ns, 0);
      return { out: data, gpuMs: ns / 1e6, steps: r.timing };
    },
    dispose: () => session.dispose(),
  };
}

/**
 * A peer system's package: optional peer dependencies of the tfc package (not installed with it),
 * so a missing one is a one-line note in the table naming what to install.
 */
async function optionalPeer<T>(name: string, load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (e) {
    if ((e as { code?: string }).code === 'ERR_MODULE_NOT_FOUND') throw new Error(`not installed (npm install ${name})`);
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// ONNX Runtime Web (WebGPU execution provider)

type Ort = typeof OrtTypes;
let ortModule: Promise<Ort> | undefined;
let ortProfile: { kernels: number; ns: number } = { kernels: 0, ns: 0 };

async function loadOrt(): Promise<Ort> {
  // ORT's wasm crashes V8's optimizing tier in Node 20; Liftoff alone runs it (the flag only
  // changes how wasm is compiled, so tfc's own timings are unaffected).
  v8.setFlagsFromString('--liftoff-only');
  await installNavigatorGpu();
  const ort = (await optionalPeer('onnxruntime-web', () => import('onnxruntime-web/webgpu'))) as unknown as Ort;
  ort.env.logLevel = 'error';
  ort.env.webgpu.profiling = {
    mode: 'default',
    ondata: (d) => {
      ortProfile.kernels++;
      ortProfile.ns += Number(d.endTime) - Number(d.startTime);
    },
  };
  return ort;
}

export interface OrtFeed {
  readonly name: string;
  readonly type: 'float32' | 'float16' | 'int64';
  readonly dims: readonly number[];
  readonly data: Float32Array | Uint16Array | BigInt64Array;
}

export async function ortRunner(system: string, model: Uint8Array, feeds: readonly OrtFeed[], output: string, toHost: (o: Float32Array) => Float32Array = (o) => o): Promise<Runner> {
  ortModule ??= loadOrt();
  const ort = await ortModule;
  const session = await ort.InferenceSession.create(model, { executionProviders: ['webgpu'], graphOptimizationLevel: 'all' });
  const tensors: Record<string, OrtTypes.Tensor> = {};
  for (const f of feeds) tensors[f.name] = new ort.Tensor(f.type, f.data, f.dims);
  const runner: Runner = {
    system,
    timeSource: 'ort-profiling',
    async run(): Promise<RunSample> {
      ortProfile = { kernels: 0, ns: 0 };
      const r = await session.run(tensors);
      const o = r[output];
      if (o === undefined) throw new Error(`ort: no output ${output}`);
      const raw = await o.getData();
      const data = raw instanceof Float32Array ? raw : raw instanceof Uint16Array ? halfToFloat(raw) : Float32Array.from(raw as ArrayLike<number>);
      o.dispose();
      if (ortProfile.kernels > 0) runner.kernels = ortProfile.kernels;
      // No kernel reported: the profiler gave nothing (or every node fell back to the CPU EP).
      return ortProfile.kernels > 0 ? { out: toHost(data), gpuMs: ortProfile.ns / 1e6 } : { out: toHost(data) };
    },
    dispose: () => void session.release(),
  };
  return runner;
}

// ---------------------------------------------------------------------------------------------
// TensorFlow.js (WebGPU backend)

type Tf = typeof import('@tensorflow/tfjs-core');
let tfModule: Promise<Tf> | undefined;

async function loadTf(): Promise<Tf> {
  await installNavigatorGpu();
  const tf = await optionalPeer('@tensorflow/tfjs-core', () => import('@tensorflow/tfjs-core'));
  await optionalPeer('@tensorflow/tfjs-backend-webgpu', () => import('@tensorflow/tfjs-backend-webgpu'));
  const ok = await tf.setBackend('webgpu');
  if (!ok) throw new Error('tfjs: the webgpu backend did not initialize');
  await tf.ready();
  return tf;
}

export interface TfInput {
  readonly shape: readonly number[];
  readonly data: Float32Array;
  readonly dtype: 'float32' | 'float16';
}

/**
 * `build` receives the tfjs module and the input tensors and returns the output tensor; it runs
 * inside tf.tidy. Timing: tf.time's kernelMs (timestamp queries) when the backend gives it.
 */
export async function tfjsRunner(
  system: string,
  inputs: readonly TfInput[],
  build: (tf: Tf, xs: readonly import('@tensorflow/tfjs-core').Tensor[]) => import('@tensorflow/tfjs-core').Tensor,
): Promise<Runner> {
  tfModule ??= loadTf();
  const tf = await tfModule;
  const xs = inputs.map((i) => tf.tensor(i.data, [...i.shape], 'float32'));
  const xin = inputs[0]?.dtype === 'float16' ? xs.map((x) => tf.cast(x, 'float32')) : xs;
  let kernels: number | undefined;
  return {
    system,
    timeSource: 'tfjs-kernelMs',
    get kernels() {
      return kernels;
    },
    async run(): Promise<RunSample> {
      let out: import('@tensorflow/tfjs-core').Tensor | undefined;
      const info = await tf.time(() => {
        out = tf.tidy(() => build(tf, xin));
      });
      if (out === undefined) throw new Error('tfjs: no output');
      const data = (await out.data()) as Float32Array;
      out.dispose();
      const k = info.kernelMs;
      if (kernels === undefined) {
        const p = await tf.profile(() => tf.tidy(() => build(tf, xin)).dispose()).catch(() => undefined);
        if (p !== undefined) kernels = p.kernels.length;
      }
      return typeof k === 'number' && k > 0 ? { out: Float32Array.from(data), gpuMs: k } : { out: Float32Array.from(data) };
    },
    dispose: () => {
      for (const x of xs) x.dispose();
    },
  };
}

function halfToFloat(h: Uint16Array): Float32Array {
  const out = new Float32Array(h.length);
  for (let i = 0; i < h.length; i++) {
    const x = h[i] ?? 0;
    const s = x & 0x8000 ? -1 : 1;
    const e = (x >> 10) & 0x1f;
    const m = x & 0x3ff;
    out[i] = e === 0 ? s * m * 2 ** -24 : e === 31 ? (m !== 0 ? NaN : s * Infinity) : s * (1 + m / 1024) * 2 ** (e - 15);
  }
  return out;
}
