/// <reference types="@webgpu/types" preserve="true" />
// The WebGPU runtime's public types (session.ts re-exports them): what a caller passes to a
// Session (host or device tensors, options) and what a run returns (outputs, memory, timing).
import type { DType } from '../graph/types.js';
import type { Plan } from '../kernel/plan/plan.js';

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

export function isDeviceTensor(t: HostTensor | DeviceTensor): t is DeviceTensor {
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
  /**
   * The outputs named in `keepOnDevice`; the caller owns (and destroys) their buffers. An output
   * written in place into an input (scatter) is that input's buffer: the device tensor the caller
   * passed, so an old cache must not be destroyed when it is also the new one.
   */
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
