/// <reference types="@webgpu/types" preserve="true" />
// The runtime behind generated host modules (codegen/host: `out/model.ts`): weights from a
// safetensors ArrayBuffer, a file path (Node) or a fetch Response (streamed, with progress), input
// validation before any dispatch, `forward`, and for decoders with a KV cache `generate` (prefill,
// then one-token decode steps whose cache stays on the GPU: present.* is fed back as past.*).
import { evalSize, type Plan, weightSources } from '../kernel/plan/plan.js';
import type { DType } from '../graph/types.js';
import type { AcquiredDevice } from './device.js';
import { f16FromBits, bf16FromBits } from './convert.js';
import { RuntimeError } from './errors.js';
import { createSession, type DeviceTensor, type HostTensor, type RunOutput, type Session } from './session.js';
import { type Checkpoint, checkConfig } from './checkpoint.js';
import { checkTokens, generateTokens, type GenerateOptions, type GenerateResult, type ModelSpec } from './generate.js';

// Generation (sampling, token checks, the decode loop) is target independent: src/runtime/generate.ts.
export { checkTokens, sampleToken, seededRandom } from './generate.js';
export type { GenerateOptions, GenerateResult, ModelSpec, StopReason } from './generate.js';

export interface LoadProgress {
  /**
   * download: weight bytes read; compile: pipelines created; warmup: pipelines dispatched once
   * (drivers such as lavapipe compile there); upload: weight tensors on the GPU; ready: done.
   */
  readonly phase: 'download' | 'compile' | 'warmup' | 'upload' | 'ready';
  /** Bytes (download), pipelines (compile, warmup) or tensors (upload) done so far, of `total`. */
  readonly done: number;
  readonly total: number;
}

export interface CreateModelOptions {
  readonly onProgress?: (p: LoadProgress) => void;
  /**
   * Dispatch every pipeline once while loading (default true), so that the first token does not
   * wait for the driver's compiles; false leaves them to the first run.
   */
  readonly warmUp?: boolean;
}

/** A safetensors file: its bytes, a path (Node only) or a fetch Response (streamed). */
export type WeightSource = ArrayBuffer | Uint8Array | string | Response;

/** Inputs of `forward`: token ids as a flat list ([1, T]) or any tensor by name. */
export type ForwardInputs = Readonly<Record<string, HostTensor | DeviceTensor | ArrayLike<number> | BigInt64Array>>;

/**
 * Token ids given as int64 (what Python tokenizers and ONNX pipelines hand over) become i32 after a
 * range check: an id outside i32 is refused (TFC309), never wrapped.
 */
export function int32Ids(ids: ArrayLike<number> | BigInt64Array, what: string): ArrayLike<number> {
  if (!(ids instanceof BigInt64Array)) return ids;
  const out = new Int32Array(ids.length);
  for (let i = 0; i < ids.length; i++) {
    const v = ids[i] ?? 0n;
    if (v < -2147483648n || v > 2147483647n) throw new RuntimeError('input', `${what} element ${i} is ${v}: an int64 token id must fit in i32 (and be below the vocab)`, 'TFC309');
    out[i] = Number(v);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// safetensors (the format: 8-byte little-endian header length, JSON header, raw data)

const fileDtypes: Readonly<Record<string, { bytes: number; dtype: DType }>> = {
  F32: { bytes: 4, dtype: 'f32' },
  F16: { bytes: 2, dtype: 'f16' },
  BF16: { bytes: 2, dtype: 'bf16' },
  I32: { bytes: 4, dtype: 'i32' },
  I8: { bytes: 1, dtype: 'i8' },
};

/** Parses a safetensors file into host tensors (f16/bf16 widened to f32 values). */
export function parseSafetensors(bytes: Uint8Array): Map<string, HostTensor> {
  const bad = (why: string): RuntimeError => new RuntimeError('weight', `the weights are not a valid safetensors file: ${why}`, 'TFC301');
  if (bytes.byteLength < 8) throw bad(`${bytes.byteLength} bytes is shorter than the 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = Number(view.getBigUint64(0, true));
  if (8 + headerLen > bytes.byteLength) throw bad(`header length ${headerLen} runs past the end of the file (${bytes.byteLength} bytes)`);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLen)));
  } catch (e) {
    throw bad(`the header is not JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  if (typeof header !== 'object' || header === null) throw bad('the header is not a JSON object');
  const base = 8 + headerLen;
  const out = new Map<string, HostTensor>();
  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') continue;
    const e = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const ft = typeof e.dtype === 'string' ? fileDtypes[e.dtype] : undefined;
    if (ft === undefined) throw bad(`tensor '${name}' has dtype ${String(e.dtype)} (supported: ${Object.keys(fileDtypes).join(', ')})`);
    const shape = e.shape;
    const offs = e.data_offsets;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) throw bad(`tensor '${name}' has a bad shape`);
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((d) => Number.isInteger(d) && d >= 0)) throw bad(`tensor '${name}' has bad data_offsets`);
    const [start, end] = offs as [number, number];
    const n = (shape as number[]).reduce((a, b) => a * b, 1);
    if (end - start !== n * ft.bytes || base + end > bytes.byteLength) {
      throw bad(`tensor '${name}' data [${start}, ${end}) does not hold ${n} ${e.dtype as string} values within the file`);
    }
    // A copy (aligned, independent of the file). Not `bytes.slice`: on a Node Buffer it is a view.
    const raw = new Uint8Array(bytes.subarray(base + start, base + end));
    let data: Float32Array | Int32Array;
    if (ft.dtype === 'f32') data = new Float32Array(raw.buffer, 0, n);
    else if (ft.dtype === 'i32') data = new Int32Array(raw.buffer, 0, n);
    else if (ft.dtype === 'i8') data = Int32Array.from(new Int8Array(raw.buffer, 0, n));
    else {
      const bits = new Uint16Array(raw.buffer, 0, n);
      data = new Float32Array(n);
      for (let i = 0; i < n; i++) data[i] = ft.dtype === 'f16' ? f16FromBits(bits[i] ?? 0) : bf16FromBits(bits[i] ?? 0);
    }
    out.set(name, { dtype: ft.dtype === 'i32' || ft.dtype === 'i8' ? ft.dtype : 'f32', shape: shape as number[], data });
  }
  return out;
}

/** Reads a weight source to bytes, reporting download progress. */
export async function readWeightSource(src: WeightSource, onProgress?: (p: LoadProgress) => void): Promise<Uint8Array> {
  if (src instanceof Uint8Array) return src;
  if (src instanceof ArrayBuffer) return new Uint8Array(src);
  if (typeof src === 'string') {
    // Node only; the specifier is a variable so that browser bundles never pull `node:fs` in.
    const specifier = 'node:fs/promises';
    const fs = (await import(/* @vite-ignore */ specifier)) as { readFile(p: string): Promise<Uint8Array> };
    let bytes: Uint8Array;
    try {
      bytes = await fs.readFile(src);
    } catch (e) {
      throw new RuntimeError('weight', `cannot read weights file ${src}: ${e instanceof Error ? e.message : String(e)}`, 'TFC301');
    }
    onProgress?.({ phase: 'download', done: bytes.byteLength, total: bytes.byteLength });
    return bytes;
  }
  if (!src.ok) throw new RuntimeError('weight', `fetching the weights failed: HTTP ${src.status} ${src.statusText} (${src.url})`, 'TFC301');
  const total = Number(src.headers.get('content-length') ?? 0);
  if (src.body === null) return new Uint8Array(await src.arrayBuffer());
  const reader = src.body.getReader();
  const chunks: Uint8Array[] = [];
  let done = 0;
  for (;;) {
    const r = await reader.read();
    if (r.done) break;
    chunks.push(r.value);
    done += r.value.byteLength;
    onProgress?.({ phase: 'download', done, total: Math.max(total, done) });
  }
  const bytes = new Uint8Array(done);
  let at = 0;
  for (const c of chunks) {
    bytes.set(c, at);
    at += c.byteLength;
  }
  return bytes;
}

/**
 * Reads and parses every file (the shards of a checkpoint; none for a model without weights) into
 * one map; a tensor in two files is an error. Download progress counts the bytes of all files.
 */
export async function readWeights(sources: readonly WeightSource[], onProgress?: (p: LoadProgress) => void): Promise<Map<string, HostTensor>> {
  const out = new Map<string, HostTensor>();
  let before = 0;
  for (const [i, src] of sources.entries()) {
    const bytes = await readWeightSource(src, onProgress === undefined ? undefined : (p) => onProgress({ ...p, done: before + p.done, total: before + p.total }));
    before += bytes.byteLength;
    for (const [name, t] of parseSafetensors(bytes)) {
      if (out.has(name)) throw new RuntimeError('weight', `tensor '${name}' is in two weight files (file ${i + 1} of ${sources.length} again)`, 'TFC301');
      out.set(name, t);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The model object

export interface LoadedModel {
  readonly spec: ModelSpec;
  readonly session: Session;
  forward(inputs: ForwardInputs): Promise<ReadonlyMap<string, RunOutput>>;
  generate(prompt: ArrayLike<number> | BigInt64Array, opts?: GenerateOptions): Promise<GenerateResult>;
  dispose(): void;
}

export function isCheckpoint(w: WeightSource | readonly WeightSource[] | Checkpoint): w is Checkpoint {
  return typeof w === 'object' && w !== null && !Array.isArray(w) && 'where' in w && 'weights' in w && !(w instanceof Uint8Array) && !(w instanceof ArrayBuffer);
}

function isTensorLike(v: HostTensor | DeviceTensor | ArrayLike<number>): v is HostTensor | DeviceTensor {
  return typeof v === 'object' && v !== null && 'shape' in v && ('data' in v || 'buffer' in v);
}

/** Builds the model: compiles the kernels, loads and uploads the weights (with progress). */
export async function createLoadedModel(
  device: GPUDevice | AcquiredDevice,
  plan: Plan,
  spec: ModelSpec,
  weights: WeightSource | readonly WeightSource[] | Checkpoint,
  opts: CreateModelOptions = {},
): Promise<LoadedModel> {
  const progress = opts.onProgress;
  // A checkpoint folder (openCheckpoint): its config.json must agree with what was compiled in.
  if (isCheckpoint(weights) && spec.config !== undefined) checkConfig(weights, spec.config, spec.name);
  const sources = isCheckpoint(weights) ? weights.weights : Array.isArray(weights) ? weights : [weights as WeightSource];
  const tensors = await readWeights(sources, progress);
  progress?.({ phase: 'compile', done: 0, total: plan.kernels.length });
  const ranges = spec.tokens !== undefined && spec.vocab !== undefined ? { [spec.tokens]: { min: 0, maxExclusive: spec.vocab } } : undefined;
  const onPipeline = (done: number, total: number): void => progress?.({ phase: 'compile', done, total });
  const session = await createSession(device, plan, ranges !== undefined ? { inputRanges: ranges, onPipeline } : { onPipeline });
  if (opts.warmUp !== false) {
    try {
      await session.warmUp((done, total) => progress?.({ phase: 'warmup', done, total }));
    } catch (e) {
      session.dispose();
      throw e;
    }
  }

  // Every weight is checked before anything is uploaded; then one tensor at a time (progress).
  const needed = [...new Set(plan.buffers.filter((b) => b.kind === 'weight').flatMap((b) => weightSources(b).map((w) => w.name)))];
  const missing = needed.filter((n) => !tensors.has(n));
  if (missing.length > 0) {
    session.dispose();
    throw new RuntimeError(
      'weight',
      `the weights lack ${missing.length} tensor(s) model ${spec.name} needs: ${missing.slice(0, 6).join(', ')}${missing.length > 6 ? ', ...' : ''}`,
      'TFC302',
    );
  }
  try {
    session.loadWeights(new Map()); // validates nothing, but fails early on a disposed session
    const shapes = new Map(plan.buffers.filter((b) => b.kind === 'weight').flatMap((b) => weightSources(b).map((w) => [w.name, w.shape] as const)));
    for (const n of needed) {
      const t = tensors.get(n);
      const want = shapes.get(n) ?? [];
      if (t !== undefined && (t.shape.length !== want.length || t.shape.some((d, i) => d !== want[i]))) {
        throw new RuntimeError('weight', `weight '${n}' has shape [${t.shape.join(',')}], model ${spec.name} needs [${want.join(',')}]`, 'TFC303');
      }
    }
    needed.forEach((n, i) => {
      const t = tensors.get(n);
      if (t !== undefined) session.loadWeights(new Map([[n, t]]));
      progress?.({ phase: 'upload', done: i + 1, total: needed.length });
    });
  } catch (e) {
    session.dispose();
    throw e;
  }
  progress?.({ phase: 'ready', done: 1, total: 1 });

  const pastBuffers = new Map(plan.buffers.filter((b) => b.kind === 'input').map((b) => [b.name ?? '', b]));

  /** Zero-length cache inputs (P = 0) for a batch of `batch`. */
  function emptyCache(batch: number, dims: Map<string, number>): Map<string, HostTensor> {
    const out = new Map<string, HostTensor>();
    for (const c of spec.cache) {
      const b = pastBuffers.get(c.past);
      if (b === undefined) continue;
      const env = new Map(dims);
      if (spec.pastDim !== undefined) env.set(spec.pastDim, 0);
      const shape = b.shape.map((e, axis) => (axis === 0 ? batch : evalSize(e, env)));
      out.set(c.past, { dtype: b.dtype, shape, data: new Float32Array(0) });
    }
    return out;
  }

  function tokensTensor(v: HostTensor | DeviceTensor | ArrayLike<number> | BigInt64Array): HostTensor {
    if (!(v instanceof BigInt64Array) && isTensorLike(v)) {
      if ('buffer' in v) throw new RuntimeError('input', `input '${spec.tokens ?? 'tokens'}' must be host values, not a device tensor`, 'TFC303');
      return v;
    }
    return { dtype: 'i32', shape: [1, v.length], data: int32Ids(v, `input '${spec.tokens ?? 'tokens'}'`) };
  }

  let disposed = false;
  const alive = (): void => {
    if (disposed) throw new RuntimeError('device', `model ${spec.name} is disposed`);
  };

  async function forward(inputs: ForwardInputs): Promise<ReadonlyMap<string, RunOutput>> {
    alive();
    const map = new Map<string, HostTensor | DeviceTensor>();
    for (const [k, v] of Object.entries(inputs)) {
      if (k === spec.tokens) map.set(k, tokensTensor(v));
      else if (!(v instanceof BigInt64Array) && isTensorLike(v)) map.set(k, v);
      else throw new RuntimeError('input', `input '${k}' needs { shape, data }`, 'TFC303');
    }
    const tok = spec.tokens !== undefined ? map.get(spec.tokens) : undefined;
    if (tok !== undefined && !('buffer' in tok)) {
      const given = spec.cache.map((c) => map.get(c.past)).find((t) => t !== undefined);
      const pastAxis = given === undefined ? -1 : 2;
      checkTokens(spec, tok, given === undefined ? 0 : (given.shape[pastAxis] ?? 0));
      if (given === undefined) for (const [k, v] of emptyCache(tok.shape[0] ?? 1, new Map())) map.set(k, v);
    }
    const r = await session.run(map);
    return r.outputs;
  }

  async function generate(given: ArrayLike<number> | BigInt64Array, gopts: GenerateOptions = {}): Promise<GenerateResult> {
    const prompt = int32Ids(given, 'the prompt');
    alive();
    // generateTokens checks that tokens and logits exist before the stepper runs.
    const tokensName = spec.tokens ?? '';
    const logitsName = spec.logits ?? '';
    const keep = spec.cache.map((c) => c.present);
    let cache = new Map<string, DeviceTensor>();
    const freeCache = (): void => {
      for (const t of cache.values()) t.buffer.destroy();
      cache = new Map();
    };
    const lastRow = (o: RunOutput | undefined): Float32Array => {
      if (o === undefined || !(o.data instanceof Float32Array)) throw new RuntimeError('plan', `output '${logitsName}' is missing`);
      const vocab = o.shape[o.shape.length - 1] ?? 0;
      return o.data.subarray(o.data.length - vocab);
    };
    // present.* stay on the GPU (keepOnDevice) and are bound as the next run's past.*.
    const run = async (inputs: Map<string, HostTensor | DeviceTensor>): Promise<Float32Array> => {
      const r = await session.run(inputs, { keepOnDevice: keep });
      const next = new Map(spec.cache.map((c) => [c.past, r.deviceOutputs.get(c.present)]).filter((e): e is [string, DeviceTensor] => e[1] !== undefined));
      // The run has completed (its logits were read back), so the old cache is free, except a
      // buffer written in place (a scatter into past.*), which is the new cache too.
      const reused = new Set([...next.values()].map((t) => t.buffer));
      for (const t of cache.values()) if (!reused.has(t.buffer)) t.buffer.destroy();
      cache = next;
      return lastRow(r.outputs.get(logitsName));
    };
    const tokens = (ids: ArrayLike<number>): HostTensor => ({ dtype: 'i32', shape: [1, ids.length], data: ids });
    if (spec.cache.length === 0) {
      // No KV cache: each step runs the whole sequence so far (a one-token run would see no context).
      const sequence: number[] = [];
      return generateTokens(spec, {
        prefill: (ids) => (sequence.push(...ids), run(new Map([[tokensName, tokens(ids)]]))),
        step: (token) => (sequence.push(token), run(new Map([[tokensName, tokens(sequence)]]))),
        release: freeCache,
      }, prompt, gopts);
    }
    return generateTokens(spec, {
      prefill: (ids) => run(new Map<string, HostTensor | DeviceTensor>([[tokensName, tokens(ids)], ...emptyCache(1, new Map())])),
      step: (token) => run(new Map<string, HostTensor | DeviceTensor>([[tokensName, tokens([token])], ...cache])),
      release: freeCache,
    }, prompt, gopts);
  }

  return {
    spec,
    session,
    forward,
    generate,
    dispose(): void {
      if (disposed) return;
      disposed = true;
      session.dispose();
    },
  };
}

