/// <reference types="@webgpu/types" preserve="true" />
// The WebGPU runtime: runs a compiled Plan (src/kernel/plan/plan.ts) on a device. Pipelines are built
// once per kernel source and cached per device (changing T never rebuilds them: dims are
// uniforms), weights are uploaded once, each run validates its inputs before any dispatch, places
// temps with liveness-based reuse (memory.ts), encodes the whole forward pass in one command
// buffer and reads the outputs back. The same code runs in Node (Dawn) and in a browser.
import { evalCondition, evalSize, type Plan, type PlanBuffer, type PlanKernel, type SizeExpr, weightSourceShape } from '../kernel/plan/plan.js';
import { isFloat, type DType } from '../graph/types.js';
import type { AcquiredDevice } from './device.js';
import { checkValues, decodeValues, encodeValues, overflowOf, paddedBytes, storageBytes } from './convert.js';
import { assignTemps, type TempRequest } from './memory.js';
import { mib, RuntimeError } from './errors.js';

// WebGPU flag values (spec constants), spelled here so the runtime does not depend on the
// GPUBufferUsage/GPUShaderStage globals, which Node only has after `webgpu` is loaded.
const usage = { MAP_READ: 0x1, COPY_SRC: 0x4, COPY_DST: 0x8, UNIFORM: 0x40, STORAGE: 0x80, QUERY_RESOLVE: 0x200 } as const;
const stageCompute = 0x4;
const mapModeRead = 0x1;

/** A host tensor: row-major values with a shape. `Tensor64` (src/ops/define.ts) is one. */
export interface HostTensor {
  /** When given, must match the plan's dtype (floats may convert between f32/f16/bf16). */
  readonly dtype?: DType;
  readonly shape: readonly number[];
  readonly data: ArrayLike<number>;
}

export type TensorMap = ReadonlyMap<string, HostTensor> | Readonly<Record<string, HostTensor>>;

/**
 * A tensor that stays on the GPU: an output kept with `RunOptions.keepOnDevice`, passed back as an
 * input of a later run without a readback (a decoder's KV cache: `present.*` becomes `past.*`).
 * Whoever holds it owns the buffer and calls `buffer.destroy()` once no run needs it.
 */
export interface DeviceTensor {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly buffer: GPUBuffer;
}

/** Run inputs: host values, or device tensors from an earlier run of a session on the same device. */
export type InputMap = ReadonlyMap<string, HostTensor | DeviceTensor> | Readonly<Record<string, HostTensor | DeviceTensor>>;

function isDeviceTensor(t: HostTensor | DeviceTensor): t is DeviceTensor {
  return 'buffer' in t;
}

export interface SessionOptions {
  /**
   * Allowed values per input name, checked before any dispatch: token ids need
   * `{ min: 0, maxExclusive: vocab }` (a gather past the table reads garbage on a GPU).
   */
  readonly inputRanges?: Readonly<Record<string, { readonly min: number; readonly maxExclusive: number }>>;
  /** Called as each pipeline is created (or found in the device's cache): `done` of `total` distinct pipelines. */
  readonly onPipeline?: (done: number, total: number) => void;
}

export interface RunOptions {
  /** Values for dims no input shape binds (or to check those it does). */
  readonly dims?: ReadonlyMap<string, number> | Readonly<Record<string, number>>;
  /** Per-step GPU time from timestamp queries (one compute pass per step); needs `timestamp-query`. */
  readonly timing?: boolean;
  /** Outputs to leave on the GPU (returned in `RunResult.deviceOutputs`, not read back). */
  readonly keepOnDevice?: readonly string[];
}

export interface RunOutput {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  /** f32/f16/bf16 as Float32Array; i32, i8 and bool (0/1) as Int32Array. */
  readonly data: Float32Array | Int32Array;
}

export interface MemoryReport {
  readonly weightBytes: number;
  /** Input and output buffers held for this run. */
  readonly ioBytes: number;
  /** Temp buffers this run used after liveness-based reuse. */
  readonly tempBytes: number;
  /** What temps would need with one buffer each. */
  readonly tempBytesWithoutReuse: number;
  readonly uniformBytes: number;
  /** Everything the session holds on the GPU during this run. */
  readonly peakBytes: number;
}

export interface StepTiming {
  readonly step: number;
  readonly kernel: string;
  readonly ns: number;
}

export interface RunResult {
  readonly outputs: ReadonlyMap<string, RunOutput>;
  readonly dims: ReadonlyMap<string, number>;
  readonly memory: MemoryReport;
  /** Present when `timing` was asked for and the device has timestamp queries. */
  readonly timing?: readonly StepTiming[];
  /** The outputs named in `keepOnDevice`; the caller owns (and destroys) their buffers. */
  readonly deviceOutputs: ReadonlyMap<string, DeviceTensor>;
  /** E.g. why timing is missing. */
  readonly warnings: readonly string[];
}

export interface SessionStats {
  /** Pipelines this session had to create (not found in the device's cache). */
  readonly pipelinesCreated: number;
  /** Pipelines found already built in the device's cache. */
  readonly pipelinesReused: number;
  readonly runs: number;
  /** Steps dispatched by the last run (steps with an empty grid are skipped). */
  readonly lastDispatches: number;
  /**
   * Bind groups the last run created, and reused from the run before (a step whose buffers,
   * sizes and uniform buffer are unchanged keeps its bind group: decode steps at the same dims).
   */
  readonly lastBindGroupsCreated: number;
  readonly lastBindGroupsReused: number;
}

export interface Session {
  readonly plan: Plan;
  readonly stats: SessionStats;
  /** Uploads weights by safetensors name; call again to replace them. Returns names the plan does not use. */
  loadWeights(weights: TensorMap): { readonly loaded: readonly string[]; readonly unused: readonly string[] };
  run(inputs: InputMap, opts?: RunOptions): Promise<RunResult>;
  /**
   * Dispatches every pipeline once (one workgroup on small scratch buffers, dims = 1) and waits
   * for each, so that drivers that compile at first dispatch (lavapipe) do it now, not inside the
   * first `run`. `onProgress(done, total)` after each pipeline; pipelines warmed up before on this
   * device (by any session) count as done at once. Touches no buffer of the session.
   */
  warmUp(onProgress?: (done: number, total: number) => void): Promise<void>;
  /** Frees the session's buffers (pipelines stay cached on the device). */
  dispose(): void;
}

// ---------------------------------------------------------------------------------------------
// Pipeline cache, per device: keyed by entry point, layout and WGSL source.

interface BuiltKernel {
  readonly pipeline: GPUComputePipeline;
  readonly layout: GPUBindGroupLayout;
}

interface DeviceCache {
  readonly pipelines: Map<string, Promise<BuiltKernel>>;
  /** Pipelines already dispatched once by `warmUp`. */
  readonly warm: WeakSet<GPUComputePipeline>;
  created: number;
}

const deviceCaches = new WeakMap<GPUDevice, DeviceCache>();

function cacheFor(device: GPUDevice): DeviceCache {
  let c = deviceCaches.get(device);
  if (c === undefined) {
    c = { pipelines: new Map(), warm: new WeakSet(), created: 0 };
    deviceCaches.set(device, c);
  }
  return c;
}

/** Pipelines ever created on this device by the runtime (a test asserts it stays put when T changes). */
export function pipelineCreations(device: GPUDevice): number {
  return deviceCaches.get(device)?.created ?? 0;
}

function layoutEntries(k: PlanKernel): GPUBindGroupLayoutEntry[] {
  const entries: GPUBindGroupLayoutEntry[] = k.slots.map((s) => ({
    binding: s.binding,
    visibility: stageCompute,
    buffer: { type: s.access === 'read' ? 'read-only-storage' : 'storage' },
  }));
  if (k.uniforms.length > 0) {
    entries.push({ binding: k.uniformBinding, visibility: stageCompute, buffer: { type: 'uniform' } });
  }
  return entries.sort((a, b) => a.binding - b.binding);
}

/**
 * The device cache's key: entry point, layout and the WGSL without its whole-line comments. The
 * header comments name the kernel and its source location, so the same kernel compiled from two
 * models (GPT-2 and its variants share most kernels) would otherwise be compiled again; lavapipe
 * and SwiftShader spend most of a model's load in these compiles.
 */
export function pipelineKey(k: PlanKernel): string {
  const layout = layoutEntries(k)
    .map((e) => `${e.binding}:${e.buffer?.type ?? ''}`)
    .join(',');
  const code = k.source.wgsl
    .split('\n')
    .filter((l) => !l.trimStart().startsWith('//'))
    .join('\n');
  return `${k.entryPoint}\n${layout}\n${code}`;
}

async function buildKernel(device: GPUDevice, k: PlanKernel): Promise<BuiltKernel> {
  const layout = device.createBindGroupLayout({ label: k.name, entries: layoutEntries(k) });
  const module = device.createShaderModule({ label: k.name, code: k.source.wgsl });
  try {
    const pipeline = await device.createComputePipelineAsync({
      label: k.name,
      layout: device.createPipelineLayout({ label: k.name, bindGroupLayouts: [layout] }),
      compute: { module, entryPoint: k.entryPoint },
    });
    return { pipeline, layout };
  } catch (e) {
    const info = await module.getCompilationInfo();
    const msgs = info.messages
      .filter((m) => m.type === 'error')
      .map((m) => `  ${k.name}.wgsl:${m.lineNum}:${m.linePos}: ${m.message}`);
    throw new RuntimeError(
      'plan',
      `kernel ${k.name} (from ${k.locs.join(', ') || 'unknown location'}) was rejected by the WebGPU shader compiler: ` +
        `${e instanceof Error ? e.message : String(e)}${msgs.length > 0 ? `\n${msgs.join('\n')}` : ''}`,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers

function entriesOf<T>(m: ReadonlyMap<string, T> | Readonly<Record<string, T>>): [string, T][] {
  return m instanceof Map ? [...(m as ReadonlyMap<string, T>).entries()] : Object.entries(m as Record<string, T>);
}

function describeBuffer(b: PlanBuffer): string {
  return b.name !== undefined ? `${b.kind} '${b.name}'` : `${b.kind} buffer ${b.id}`;
}

function printSize(e: SizeExpr): string {
  switch (e.kind) {
    case 'const':
      return String(e.value);
    case 'dim':
      return e.name;
    case 'add':
      return `(${e.args.map(printSize).join(' + ')})`;
    case 'mul':
      return e.args.map(printSize).join('*');
    case 'ceildiv':
      return `ceil(${printSize(e.num)} / ${e.den})`;
    case 'max':
      return `max(${e.args.map(printSize).join(', ')})`;
  }
}

function printDims(dims: ReadonlyMap<string, number>): string {
  return [...dims.entries()].map(([k, v]) => `${k}=${v}`).join(', ');
}

/** Value of a size formula that references no dims, or undefined when it does. */
function constSize(e: SizeExpr): number | undefined {
  try {
    return evalSize(e, new Map());
  } catch {
    return undefined;
  }
}

/** Weight buffers are keyed by name, plus the row range for a chunk of a split weight. */
function weightKey(b: PlanBuffer): string {
  return b.rows === undefined ? (b.name ?? '') : `${b.name ?? ''}[rows ${b.rows.start}:${b.rows.end}]`;
}

/** Elements [from, to) of `data`: a view for typed arrays, a copy otherwise. */
function rowsOf(data: ArrayLike<number>, from: number, to: number): ArrayLike<number> {
  if (ArrayBuffer.isView(data) && 'subarray' in data && typeof data.subarray === 'function') {
    return (data as unknown as { subarray(a: number, b: number): ArrayLike<number> }).subarray(from, to);
  }
  return Array.prototype.slice.call(data, from, to) as number[];
}

function product(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function closest(name: string, candidates: readonly string[]): string {
  const hit = candidates.find((c) => c.toLowerCase() === name.toLowerCase());
  return hit !== undefined ? ` (did you mean '${hit}'?)` : candidates.length > 0 ? ` (expected: ${candidates.join(', ')})` : '';
}

/** Checks the plan's internal consistency and the device's features and workgroup limits. */
function validatePlan(plan: Plan, features: ReadonlySet<string>, limits: GPUSupportedLimits): Map<string, PlanKernel> {
  const kernels = new Map<string, PlanKernel>();
  for (const k of plan.kernels) {
    if (kernels.has(k.name)) throw new RuntimeError('plan', `plan ${plan.model}: kernel ${k.name} is defined twice`);
    kernels.set(k.name, k);
    const missing = k.features.filter((f) => !features.has(f));
    if (missing.length > 0) {
      throw new RuntimeError(
        'feature',
        `kernel ${k.name} needs WebGPU feature(s) ${missing.join(', ')}, which this adapter does not offer` +
          (missing.includes('shader-f16') ? '; compile the model for f32 instead (without --dtype f16; --dtype bf16 is stored as f32 on WebGPU and needs no shader-f16)' : ''),
      );
    }
    const [x, y, z] = k.workgroupSize;
    const invocations = x * y * z;
    if (
      invocations > limits.maxComputeInvocationsPerWorkgroup ||
      x > limits.maxComputeWorkgroupSizeX ||
      y > limits.maxComputeWorkgroupSizeY ||
      z > limits.maxComputeWorkgroupSizeZ
    ) {
      throw new RuntimeError(
        'limit',
        `kernel ${k.name} uses workgroup size ${x}x${y}x${z} (${invocations} invocations); this device allows ` +
          `${limits.maxComputeInvocationsPerWorkgroup} invocations and ${limits.maxComputeWorkgroupSizeX}x` +
          `${limits.maxComputeWorkgroupSizeY}x${limits.maxComputeWorkgroupSizeZ}`,
      );
    }
  }
  const ids = new Set<number>();
  for (const b of plan.buffers) {
    if (ids.has(b.id)) throw new RuntimeError('plan', `plan ${plan.model}: buffer id ${b.id} is used twice`);
    ids.add(b.id);
    if ((b.kind === 'input' || b.kind === 'weight') && b.name === undefined) {
      throw new RuntimeError('plan', `plan ${plan.model}: ${b.kind} buffer ${b.id} has no name`);
    }
  }
  plan.steps.forEach((s, i) => {
    const k = kernels.get(s.kernel);
    if (k === undefined) throw new RuntimeError('plan', `plan ${plan.model}: step ${i} launches unknown kernel ${s.kernel}`);
    const slots = new Map(k.slots.map((sl) => [sl.binding, sl]));
    if (s.bindings.length !== slots.size) {
      throw new RuntimeError('plan', `plan ${plan.model}: step ${i} binds ${s.bindings.length} buffers, kernel ${k.name} has ${slots.size} slots`);
    }
    for (const b of s.bindings) {
      const sl = slots.get(b.binding);
      if (sl === undefined || sl.access !== b.access) {
        throw new RuntimeError('plan', `plan ${plan.model}: step ${i} binding ${b.binding} does not match a ${b.access} slot of kernel ${k.name}`);
      }
      if (!ids.has(b.buffer)) throw new RuntimeError('plan', `plan ${plan.model}: step ${i} binds unknown buffer ${b.buffer}`);
    }
  });
  for (const o of plan.outputs) {
    if (!ids.has(o.buffer)) throw new RuntimeError('plan', `plan ${plan.model}: output ${o.name} reads unknown buffer ${o.buffer}`);
  }
  return kernels;
}

/** Where a buffer comes from, for limit messages: the first kernel that writes it and its source lines. */
function bufferOrigin(plan: Plan, b: PlanBuffer): string {
  if (b.kind === 'input' || b.kind === 'weight') return '';
  const step = plan.steps.find((s) => s.bindings.some((x) => x.buffer === b.id && x.access === 'read_write'));
  if (step === undefined) return '';
  return `, written by kernel ${step.kernel}${step.locs.length > 0 ? ` (${step.locs.slice(0, 2).join(', ')})` : ''}`;
}

function checkBindingLimit(plan: Plan, b: PlanBuffer, bytes: number, limits: GPUSupportedLimits, dims: ReadonlyMap<string, number>): void {
  const cap = Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize);
  if (bytes > cap) {
    const at = dims.size > 0 ? ` at ${printDims(dims)}` : '';
    const shape = `${b.dtype}[${b.shape.map(printSize).join(', ')}]`;
    const fix =
      b.kind === 'weight'
        ? 'compile with the webgpu pipeline (split-large-weights splits weights used by gather/matmul) or a smaller config (--set)'
        : dims.size > 0
          ? 'use smaller dims (a shorter input or batch) or smaller config values (--set)'
          : 'use smaller config values (--set)';
    throw new RuntimeError(
      'limit',
      `${describeBuffer(b)} ${shape}${bufferOrigin(plan, b)} needs ${printSize(b.elements)} x ${storageBytes(b.dtype)} = ${bytes} bytes ` +
        `(${mib(bytes)})${at}, above this device's storage binding limit of ${cap} bytes (${mib(cap)}, maxStorageBufferBindingSize); ${fix}`,
      'TFC402',
    );
  }
}

// ---------------------------------------------------------------------------------------------
// The session

/** A GPU buffer kept across runs; `bytes` is what the current run binds of it. */
interface Held {
  buffer: GPUBuffer;
  capacity: number;
}

export async function createSession(dev: GPUDevice | AcquiredDevice, plan: Plan, opts: SessionOptions = {}): Promise<Session> {
  const device: GPUDevice = 'device' in dev && !('createBuffer' in dev) ? dev.device : (dev as GPUDevice);
  const features = new Set<string>([...device.features]);
  const limits = device.limits;
  const kernels = validatePlan(plan, features, limits);

  // Buffers whose size is fixed (weights, and any other constant-size buffer) are checked now.
  for (const b of plan.buffers) {
    const n = constSize(b.elements);
    if (n !== undefined) checkBindingLimit(plan, b, paddedBytes(b.dtype, n), limits, new Map());
    if (b.kind === 'weight' && (n === undefined || b.shape.some((d) => constSize(d) === undefined))) {
      throw new RuntimeError('plan', `plan ${plan.model}: weight '${b.name ?? b.id}' has a shape that depends on dims`);
    }
  }

  let lostInfo: GPUDeviceLostInfo | undefined;
  const lost = device.lost.then((info) => {
    lostInfo = info;
    return info;
  });
  const lostError = (info: GPUDeviceLostInfo): RuntimeError =>
    new RuntimeError('device', `the WebGPU device was lost (${info.reason}): ${info.message}`);
  /** Waits for `p` unless the device is lost first (a lost device never resolves mapAsync on some hosts). */
  const unlessLost = <T>(p: Promise<T>): Promise<T> =>
    Promise.race([
      p,
      lost.then((info): never => {
        throw lostError(info);
      }),
    ]);

  // Pipelines, once per distinct kernel (deduplicated by source in the device cache).
  const cache = cacheFor(device);
  const built = new Map<string, BuiltKernel>();
  let pipelinesCreated = 0;
  let pipelinesReused = 0;
  let pipelinesReady = 0;
  await Promise.all(
    [...kernels.values()].map(async (k) => {
      const key = pipelineKey(k);
      let p = cache.pipelines.get(key);
      if (p === undefined) {
        p = buildKernel(device, k);
        cache.pipelines.set(key, p);
        cache.created++;
        pipelinesCreated++;
        p.catch(() => cache.pipelines.delete(key));
      } else {
        pipelinesReused++;
      }
      built.set(k.name, await unlessLost(p));
      opts.onPipeline?.(++pipelinesReady, kernels.size);
    }),
  );

  const weightBuffers = new Map<string, Held>(); // by weight name
  const ioBuffers = new Map<number, Held>(); // by plan buffer id
  let tempSlots: Held[] = [];
  const uniformBuffers = new Map<string, Held>(); // by kernel name
  let runs = 0;
  let lastDispatches = 0;
  let lastBindGroupsCreated = 0;
  let lastBindGroupsReused = 0;
  // Per step: the resources of its bind group and the group, kept while they do not change.
  const bindGroups = new Map<number, { readonly resources: readonly (GPUBuffer | number)[]; readonly group: GPUBindGroup }>();
  let disposed = false;

  const planInputs = plan.buffers.filter((b) => b.kind === 'input');
  const planWeights = plan.buffers.filter((b) => b.kind === 'weight');
  const weightNames = [...new Set(planWeights.map((b) => b.name ?? ''))];

  function loadWeights(weights: TensorMap): { loaded: string[]; unused: string[] } {
    if (disposed) throw new RuntimeError('device', 'session is disposed');
    const given = new Map(entriesOf(weights));
    const loaded: string[] = [];
    // Validate everything before uploading anything.
    const uploads: { name: string; key: string; dtype: DType; data: ArrayLike<number> }[] = [];
    const seen = new Set<string>();
    for (const b of planWeights) {
      const name = b.name ?? '';
      const t = given.get(name);
      if (t === undefined || seen.has(weightKey(b))) continue;
      seen.add(weightKey(b));
      const shape = weightSourceShape(b); // a row chunk is checked against the whole tensor
      if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
        throw new RuntimeError('weight', `weight '${name}' has shape [${t.shape.join(',')}], the model needs [${shape.join(',')}]`, 'TFC303');
      }
      if (t.data.length !== product(shape)) {
        throw new RuntimeError('weight', `weight '${name}' has ${t.data.length} values for shape [${shape.join(',')}]`, 'TFC303');
      }
      if (t.dtype !== undefined && t.dtype !== b.dtype && !(isFloat(t.dtype) && isFloat(b.dtype))) {
        throw new RuntimeError('weight', `weight '${name}' is ${t.dtype}, the model needs ${b.dtype}`, 'TFC303');
      }
      const bad = checkValues(b.dtype, t.data);
      if (bad !== undefined) throw new RuntimeError('weight', `weight '${name}': ${bad}`, 'TFC303');
      const over = t.dtype === b.dtype ? undefined : overflowOf(b.dtype, t.data);
      if (over !== undefined) throw new RuntimeError('weight', `weight '${name}' (${t.dtype ?? 'float'} data for ${b.dtype}): ${over}`, 'TFC315');
      // A row chunk takes a view of its rows (subarray: no copy of the whole table).
      const row = product(shape.slice(1));
      const data = b.rows === undefined ? t.data : rowsOf(t.data, b.rows.start * row, b.rows.end * row);
      uploads.push({ name, key: weightKey(b), dtype: b.dtype, data });
    }
    for (const u of uploads) {
      const bytes = encodeValues(u.dtype, u.data);
      weightBuffers.get(u.key)?.buffer.destroy();
      const buffer = device.createBuffer({ label: `weight ${u.key}`, size: bytes.byteLength, usage: usage.STORAGE | usage.COPY_DST | usage.COPY_SRC });
      device.queue.writeBuffer(buffer, 0, bytes);
      weightBuffers.set(u.key, { buffer, capacity: bytes.byteLength });
      if (!loaded.includes(u.name)) loaded.push(u.name);
    }
    const unused = [...given.keys()].filter((n) => !weightNames.includes(n));
    return { loaded, unused };
  }

  /** Binds dims from input shapes and validates the inputs; returns dims and encoded input bytes. */
  function prepareInputs(
    inputs: InputMap,
    runOpts: RunOptions,
  ): { dims: Map<string, number>; bytes: Map<number, ArrayBuffer>; onDevice: Map<number, GPUBuffer> } {
    const given = new Map(entriesOf(inputs));
    const inputNames = planInputs.map((b) => b.name ?? '');
    for (const name of given.keys()) {
      if (!inputNames.includes(name)) {
        throw new RuntimeError('input', `'${name}' is not an input of model ${plan.model}${closest(name, inputNames)}`, 'TFC302');
      }
    }
    const dims = new Map<string, number>();
    const boundBy = new Map<string, string>();
    for (const [k, v] of runOpts.dims === undefined ? [] : entriesOf(runOpts.dims)) {
      if (!Number.isInteger(v) || v < 0) throw new RuntimeError('input', `dim ${k} = ${v} is not a non-negative integer`, 'TFC306');
      dims.set(k, v);
      boundBy.set(k, 'the dims option');
    }
    for (const b of planInputs) {
      const name = b.name ?? '';
      const t = given.get(name);
      if (t === undefined) {
        throw new RuntimeError('input', `input '${name}' is missing (model ${plan.model} needs ${inputNames.join(', ')})`, 'TFC302');
      }
      if (t.shape.length !== b.shape.length) {
        throw new RuntimeError(
          'input',
          `input '${name}' has rank ${t.shape.length} (shape [${t.shape.join(',')}]), the model needs ${b.dtype}[${b.shape.map(printSize).join(',')}]`,
          'TFC303',
        );
      }
      b.shape.forEach((e, axis) => {
        if (e.kind !== 'dim') return;
        const v = t.shape[axis] ?? 0;
        const prev = dims.get(e.name);
        if (prev === undefined) {
          dims.set(e.name, v);
          boundBy.set(e.name, `input '${name}' axis ${axis}`);
        } else if (prev !== v) {
          throw new RuntimeError(
            'input',
            `inputs disagree about dim ${e.name}: ${boundBy.get(e.name) ?? ''} says ${prev}, input '${name}' axis ${axis} says ${v}`,
            'TFC307',
          );
        }
      });
    }
    for (const d of plan.dims) {
      if (!dims.has(d)) {
        throw new RuntimeError('input', `dim ${d} has no value: no input shape binds it; pass it in the dims option`, 'TFC306');
      }
    }
    const bytes = new Map<number, ArrayBuffer>();
    const onDevice = new Map<number, GPUBuffer>();
    for (const b of planInputs) {
      const name = b.name ?? '';
      const t = given.get(name);
      if (t === undefined) continue;
      const want = b.shape.map((e) => evalSize(e, dims));
      if (t.shape.some((d, i) => d !== want[i])) {
        throw new RuntimeError(
          'input',
          `input '${name}' has shape [${t.shape.join(',')}], the model needs [${want.join(',')}] (${b.dtype}[${b.shape.map(printSize).join(',')}] at ${printDims(dims)})`,
          'TFC303',
        );
      }
      if (isDeviceTensor(t)) {
        const need = paddedBytes(b.dtype, product(want));
        if (t.dtype !== b.dtype) throw new RuntimeError('input', `input '${name}' is a ${t.dtype} device tensor, the model needs ${b.dtype}`, 'TFC303');
        if (t.buffer.size < need) {
          throw new RuntimeError('input', `input '${name}' is a device buffer of ${t.buffer.size} bytes, shape [${want.join(',')}] needs ${need}`, 'TFC303');
        }
        onDevice.set(b.id, t.buffer);
        continue;
      }
      if (t.data.length !== product(want)) {
        throw new RuntimeError('input', `input '${name}' has ${t.data.length} values for shape [${want.join(',')}]`, 'TFC303');
      }
      if (t.dtype !== undefined && t.dtype !== b.dtype && !(isFloat(t.dtype) && isFloat(b.dtype))) {
        throw new RuntimeError('input', `input '${name}' is ${t.dtype}, the model needs ${b.dtype}`, 'TFC303');
      }
      const bad = checkValues(b.dtype, t.data);
      if (bad !== undefined) throw new RuntimeError('input', `input '${name}' (${b.dtype}): ${bad}`, 'TFC303');
      const over = t.dtype === b.dtype ? undefined : overflowOf(b.dtype, t.data);
      if (over !== undefined) throw new RuntimeError('input', `input '${name}' (${t.dtype ?? 'float'} data for ${b.dtype}): ${over}`, 'TFC315');
      const range = opts.inputRanges?.[name];
      if (range !== undefined) {
        for (let i = 0; i < t.data.length; i++) {
          const v = t.data[i] ?? 0;
          if (!(v >= range.min && v < range.maxExclusive)) {
            throw new RuntimeError(
              'input',
              `input '${name}' element ${i} is ${v}, outside [${range.min}, ${range.maxExclusive})`,
              'TFC309',
            );
          }
        }
      }
      bytes.set(b.id, encodeValues(b.dtype, t.data));
    }
    return { dims, bytes, onDevice };
  }

  function holdIo(b: PlanBuffer, bytes: number): Held {
    const h = ioBuffers.get(b.id);
    // Keep a buffer that fits unless it is more than twice too large.
    if (h !== undefined && h.capacity >= bytes && h.capacity <= 2 * bytes) return h;
    h?.buffer.destroy();
    const fresh: Held = {
      buffer: device.createBuffer({ label: describeBuffer(b), size: bytes, usage: usage.STORAGE | usage.COPY_SRC | usage.COPY_DST }),
      capacity: bytes,
    };
    ioBuffers.set(b.id, fresh);
    return fresh;
  }

  function uniformsFor(k: PlanKernel, dims: ReadonlyMap<string, number>): Held | undefined {
    if (k.uniforms.length === 0) return undefined;
    const values = new Uint32Array(Math.max(4, Math.ceil(k.uniforms.length / 4) * 4));
    k.uniforms.forEach((name, i) => {
      const v = dims.get(name);
      if (v === undefined) throw new RuntimeError('plan', `kernel ${k.name} reads uniform ${name}, which is not a dim of the plan`);
      values[i] = v;
    });
    let h = uniformBuffers.get(k.name);
    if (h === undefined || h.capacity < values.byteLength) {
      h?.buffer.destroy();
      h = {
        buffer: device.createBuffer({ label: `${k.name} dims`, size: values.byteLength, usage: usage.UNIFORM | usage.COPY_DST }),
        capacity: values.byteLength,
      };
      uniformBuffers.set(k.name, h);
    }
    device.queue.writeBuffer(h.buffer, 0, values);
    return h;
  }

  async function run(inputs: InputMap, runOpts: RunOptions = {}): Promise<RunResult> {
    if (disposed) throw new RuntimeError('device', 'session is disposed');
    if (lostInfo !== undefined) throw lostError(lostInfo);
    const warnings: string[] = [];

    // 1. Everything that can be wrong is checked before any GPU work.
    const missingWeights = [...new Set(planWeights.filter((b) => !weightBuffers.has(weightKey(b))).map((b) => b.name ?? ''))];
    if (missingWeights.length > 0) {
      throw new RuntimeError(
        'weight',
        `weight(s) not loaded: ${missingWeights.slice(0, 8).join(', ')}${missingWeights.length > 8 ? `, and ${missingWeights.length - 8} more` : ''}`,
        'TFC302',
      );
    }
    const { dims, bytes: inputBytes, onDevice } = prepareInputs(inputs, runOpts);
    const keep = new Set(runOpts.keepOnDevice ?? []);
    for (const name of keep) {
      if (!plan.outputs.some((o) => o.name === name)) {
        throw new RuntimeError('input', `keepOnDevice: '${name}' is not an output of model ${plan.model}${closest(name, plan.outputs.map((o) => o.name))}`);
      }
    }
    const sizes = new Map<number, { elements: number; bytes: number }>();
    for (const b of plan.buffers) {
      const elements = evalSize(b.elements, dims);
      const bytes = paddedBytes(b.dtype, elements);
      checkBindingLimit(plan, b, bytes, limits, dims);
      sizes.set(b.id, { elements, bytes });
    }
    const grids = plan.steps.map((s) => {
      const k = kernels.get(s.kernel);
      if (k === undefined) throw new RuntimeError('plan', `unknown kernel ${s.kernel}`);
      const g = k.grid.map((e) => evalSize(e, dims)) as [number, number, number];
      const isActive = s.when === undefined || evalCondition(s.when, dims);
      if (isActive && g.some((n) => n > limits.maxComputeWorkgroupsPerDimension)) {
        throw new RuntimeError(
          'limit',
          `kernel ${k.name} needs a grid of ${g.join('x')} workgroups at ${printDims(dims)}; ` +
            `this device allows ${limits.maxComputeWorkgroupsPerDimension} per dimension`,
        );
      }
      return g;
    });
    const wantTiming = runOpts.timing === true && features.has('timestamp-query') && plan.steps.length > 0;
    if (runOpts.timing === true && !features.has('timestamp-query')) {
      warnings.push('timing was requested but this device has no timestamp-query feature');
    }

    // 2. Buffers: weights are resident; inputs/outputs per id; temps share slots by liveness.
    const gpuOf = new Map<number, GPUBuffer>();
    let ioBytes = 0;
    for (const b of plan.buffers) {
      if (b.kind === 'weight') {
        const h = weightBuffers.get(weightKey(b));
        if (h !== undefined) gpuOf.set(b.id, h.buffer);
      } else if (b.kind === 'input' && onDevice.has(b.id)) {
        const buffer = onDevice.get(b.id);
        if (buffer !== undefined) gpuOf.set(b.id, buffer);
      } else if (b.kind === 'input' || b.kind === 'output') {
        const h = holdIo(b, sizes.get(b.id)?.bytes ?? 4);
        ioBytes += h.capacity;
        gpuOf.set(b.id, h.buffer);
      }
    }
    const temps: TempRequest[] = plan.buffers
      .filter((b) => b.kind === 'temp')
      .map((b) => ({ id: b.id, bytes: sizes.get(b.id)?.bytes ?? 4, firstUse: b.firstUse, lastUse: b.lastUse }));
    const assignment = assignTemps(
      temps,
      tempSlots.map((s) => s.capacity),
    );
    const slots: Held[] = assignment.slotBytes.map(
      (cap, i) =>
        tempSlots[i] ?? {
          buffer: device.createBuffer({ label: `temp slot ${i}`, size: cap, usage: usage.STORAGE | usage.COPY_SRC }),
          capacity: cap,
        },
    );
    let tempBytes = 0;
    for (const i of assignment.usedSlots) tempBytes += slots[i]?.capacity ?? 0;
    for (const t of temps) {
      const s = slots[assignment.slotOf.get(t.id) ?? -1];
      if (s !== undefined) gpuOf.set(t.id, s.buffer);
    }
    // Slots no temp used this run are freed (after this run's work completes: destroy is deferred).
    const unusedSlots = slots.filter((_, i) => !assignment.usedSlots.has(i));
    tempSlots = slots.filter((_, i) => assignment.usedSlots.has(i));

    // 3. Uploads and uniforms (queue writes are ordered before the submit below).
    for (const [id, bytes] of inputBytes) {
      const buf = gpuOf.get(id);
      if (buf !== undefined && bytes.byteLength > 0) device.queue.writeBuffer(buf, 0, bytes);
    }
    const uniforms = new Map<string, Held | undefined>();
    for (const k of kernels.values()) uniforms.set(k.name, uniformsFor(k, dims));
    let uniformBytes = 0;
    for (const h of uniforms.values()) uniformBytes += h?.capacity ?? 0;

    // 4. Encode the whole forward pass in one command buffer.
    device.pushErrorScope('out-of-memory');
    device.pushErrorScope('validation');
    const encoder = device.createCommandEncoder({ label: `${plan.model} forward` });
    const querySet = wantTiming ? device.createQuerySet({ type: 'timestamp', count: 2 * plan.steps.length }) : undefined;
    let pass = querySet === undefined ? encoder.beginComputePass({ label: plan.model }) : undefined;
    let dispatches = 0;
    let bindGroupsCreated = 0;
    let bindGroupsReused = 0;
    plan.steps.forEach((step, i) => {
      const k = kernels.get(step.kernel);
      const bk = built.get(step.kernel);
      const g = grids[i];
      if (k === undefined || bk === undefined || g === undefined) throw new RuntimeError('plan', `step ${i}: kernel ${step.kernel} not built`);
      const entries: GPUBindGroupEntry[] = step.bindings.map((bd) => {
        const buffer = gpuOf.get(bd.buffer);
        if (buffer === undefined) throw new RuntimeError('plan', `step ${i}: buffer ${bd.buffer} has no GPU buffer`);
        return { binding: bd.binding, resource: { buffer, offset: 0, size: sizes.get(bd.buffer)?.bytes ?? 4 } };
      });
      const u = uniforms.get(k.name);
      if (u !== undefined) entries.push({ binding: k.uniformBinding, resource: { buffer: u.buffer, offset: 0, size: u.capacity } });
      const resources = entries.flatMap((e) => {
        const r = e.resource as GPUBufferBinding;
        return [r.buffer, r.size ?? 0];
      });
      const cached = bindGroups.get(i);
      let bindGroup: GPUBindGroup;
      if (cached !== undefined && cached.resources.length === resources.length && cached.resources.every((x, j) => x === resources[j])) {
        bindGroup = cached.group;
        bindGroupsReused++;
      } else {
        bindGroup = device.createBindGroup({ label: `${k.name} step ${i}`, layout: bk.layout, entries });
        bindGroups.set(i, { resources, group: bindGroup });
        bindGroupsCreated++;
      }
      const p =
        querySet !== undefined
          ? encoder.beginComputePass({
              label: `${k.name} step ${i}`,
              timestampWrites: { querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 },
            })
          : pass;
      if (p === undefined) throw new RuntimeError('plan', 'no compute pass');
      p.setPipeline(bk.pipeline);
      p.setBindGroup(0, bindGroup);
      // A step whose `when` is false for these dims is not dispatched (its pass stays, empty, so
      // timestamp indices keep matching steps).
      const isActive = step.when === undefined || evalCondition(step.when, dims);
      if (isActive && g[0] > 0 && g[1] > 0 && g[2] > 0) {
        p.dispatchWorkgroups(g[0], g[1], g[2]);
        dispatches++;
      }
      if (querySet !== undefined) p.end();
    });
    pass?.end();
    pass = undefined;

    // 5. Readback copies in the same command buffer; kept outputs are copied into buffers the
    // caller owns (a copy, so the session's own buffers are never aliased by a later run's input).
    const staging: { name: string; b: PlanBuffer; buffer: GPUBuffer; elements: number }[] = [];
    const deviceOutputs = new Map<string, DeviceTensor>();
    for (const o of plan.outputs) {
      const b = plan.buffers.find((x) => x.id === o.buffer);
      const src = gpuOf.get(o.buffer);
      const size = sizes.get(o.buffer);
      if (b === undefined || src === undefined || size === undefined) throw new RuntimeError('plan', `output ${o.name} has no buffer`);
      const used = Math.ceil((size.elements * storageBytes(b.dtype)) / 4) * 4;
      if (keep.has(o.name)) {
        const buffer = device.createBuffer({ label: `kept ${o.name}`, size: size.bytes, usage: usage.STORAGE | usage.COPY_SRC | usage.COPY_DST });
        if (used > 0) encoder.copyBufferToBuffer(src, 0, buffer, 0, used);
        deviceOutputs.set(o.name, { dtype: b.dtype, shape: b.shape.map((e) => evalSize(e, dims)), buffer });
        continue;
      }
      const buffer = device.createBuffer({ label: `readback ${o.name}`, size: size.bytes, usage: usage.MAP_READ | usage.COPY_DST });
      if (used > 0) encoder.copyBufferToBuffer(src, 0, buffer, 0, used);
      staging.push({ name: o.name, b, buffer, elements: size.elements });
    }
    let timingRead: GPUBuffer | undefined;
    let resolve: GPUBuffer | undefined;
    if (querySet !== undefined) {
      const qBytes = 16 * plan.steps.length;
      resolve = device.createBuffer({ label: 'timestamps', size: qBytes, usage: usage.QUERY_RESOLVE | usage.COPY_SRC });
      timingRead = device.createBuffer({ label: 'timestamps readback', size: qBytes, usage: usage.MAP_READ | usage.COPY_DST });
      encoder.resolveQuerySet(querySet, 0, 2 * plan.steps.length, resolve, 0);
      encoder.copyBufferToBuffer(resolve, 0, timingRead, 0, qBytes);
    }
    device.queue.submit([encoder.finish()]);
    const validation = await unlessLost(device.popErrorScope());
    const oom = await unlessLost(device.popErrorScope());
    const cleanup = (): void => {
      for (const s of staging) s.buffer.destroy();
      timingRead?.destroy();
      resolve?.destroy();
      querySet?.destroy();
      for (const s of unusedSlots) s.buffer.destroy();
    };
    if (validation !== null || oom !== null) {
      cleanup();
      for (const t of deviceOutputs.values()) t.buffer.destroy();
      const e = validation ?? oom;
      throw new RuntimeError('device', `WebGPU rejected the forward pass of ${plan.model}: ${e?.message ?? ''}`);
    }

    // 6. Read back.
    try {
      await unlessLost(Promise.all([...staging.map((s) => s.buffer.mapAsync(mapModeRead)), ...(timingRead ? [timingRead.mapAsync(mapModeRead)] : [])]));
      const outputs = new Map<string, RunOutput>();
      for (const s of staging) {
        const data = decodeValues(s.b.dtype, s.buffer.getMappedRange(), s.elements);
        s.buffer.unmap();
        outputs.set(s.name, { name: s.name, dtype: s.b.dtype, shape: s.b.shape.map((e) => evalSize(e, dims)), data });
      }
      let timing: StepTiming[] | undefined;
      if (timingRead !== undefined) {
        const t = new BigUint64Array(timingRead.getMappedRange().slice(0));
        timingRead.unmap();
        timing = plan.steps.map((s, i) => ({
          step: i,
          kernel: s.kernel,
          ns: Number((t[2 * i + 1] ?? 0n) - (t[2 * i] ?? 0n)),
        }));
      }
      runs++;
      lastDispatches = dispatches;
      lastBindGroupsCreated = bindGroupsCreated;
      lastBindGroupsReused = bindGroupsReused;
      let weightBytes = 0;
      for (const h of weightBuffers.values()) weightBytes += h.capacity;
      let tempBytesWithoutReuse = 0;
      for (const t of temps) tempBytesWithoutReuse += t.bytes;
      const memory: MemoryReport = {
        weightBytes,
        ioBytes,
        tempBytes,
        tempBytesWithoutReuse,
        uniformBytes,
        peakBytes: weightBytes + ioBytes + tempBytes + uniformBytes,
      };
      const result: RunResult =
        timing !== undefined ? { outputs, dims, memory, timing, deviceOutputs, warnings } : { outputs, dims, memory, deviceOutputs, warnings };
      return result;
    } finally {
      cleanup();
    }
  }

  async function warmUp(onProgress?: (done: number, total: number) => void): Promise<void> {
    if (disposed) throw new RuntimeError('device', 'session is disposed');
    // One entry per distinct pipeline (kernels of equal source share one in the device cache).
    const distinct = new Map<GPUComputePipeline, { k: PlanKernel; bk: BuiltKernel }>();
    for (const k of kernels.values()) {
      const bk = built.get(k.name);
      if (bk !== undefined && !distinct.has(bk.pipeline)) distinct.set(bk.pipeline, { k, bk });
    }
    const total = distinct.size;
    const cold = [...distinct.values()].filter((e) => !cache.warm.has(e.bk.pipeline));
    let done = total - cold.length;
    onProgress?.(done, total);
    if (cold.length === 0) return;
    // Scratch buffers, one per binding slot so that no buffer is bound twice in one dispatch; every
    // kernel declares runtime-sized arrays of at most vec4 (16 B per element), and robustness
    // clamps the reads and writes of a one-workgroup dispatch to them.
    const scratchBytes = 256;
    const slots = Math.max(...cold.map((e) => e.k.slots.length));
    const scratch = Array.from({ length: slots }, (_, i) =>
      device.createBuffer({ label: `warm-up scratch ${i}`, size: scratchBytes, usage: usage.STORAGE }),
    );
    // dims = 1 everywhere: loops bounded by dims run once, and no grid or `when` is evaluated.
    const dims = device.createBuffer({ label: 'warm-up dims', size: scratchBytes, usage: usage.UNIFORM | usage.COPY_DST });
    device.queue.writeBuffer(dims, 0, new Uint32Array(scratchBytes / 4).fill(1));
    try {
      for (const { k, bk } of cold) {
        device.pushErrorScope('validation');
        const entries: GPUBindGroupEntry[] = k.slots.map((sl, i) => ({ binding: sl.binding, resource: { buffer: scratch[i] ?? dims } })); // scratch[i] exists: i < slots
        if (k.uniforms.length > 0) entries.push({ binding: k.uniformBinding, resource: { buffer: dims } });
        const encoder = device.createCommandEncoder({ label: `${k.name} warm-up` });
        const pass = encoder.beginComputePass({ label: `${k.name} warm-up` });
        pass.setPipeline(bk.pipeline);
        pass.setBindGroup(0, device.createBindGroup({ label: `${k.name} warm-up`, layout: bk.layout, entries }));
        pass.dispatchWorkgroups(1, 1, 1);
        pass.end();
        device.queue.submit([encoder.finish()]);
        const err = await unlessLost(device.popErrorScope());
        if (err !== null) throw new RuntimeError('device', `WebGPU rejected the warm-up dispatch of kernel ${k.name}: ${err.message}`);
        // Waiting per pipeline makes the progress true: the driver compiles while this runs.
        await unlessLost(device.queue.onSubmittedWorkDone());
        cache.warm.add(bk.pipeline);
        onProgress?.(++done, total);
      }
    } finally {
      for (const b of scratch) b.destroy();
      dims.destroy();
    }
  }

  function dispose(): void {
    if (disposed) return;
    disposed = true;
    for (const h of [...weightBuffers.values(), ...ioBuffers.values(), ...tempSlots, ...uniformBuffers.values()]) h.buffer.destroy();
    weightBuffers.clear();
    ioBuffers.clear();
    uniformBuffers.clear();
    bindGroups.clear();
    tempSlots = [];
  }

  return {
    plan,
    get stats(): SessionStats {
      return { pipelinesCreated, pipelinesReused, runs, lastDispatches, lastBindGroupsCreated, lastBindGroupsReused };
    },
    loadWeights,
    run,
    warmUp,
    dispose,
  };
}
