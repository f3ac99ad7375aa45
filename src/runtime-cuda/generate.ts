// Text generation on CUDA (`tfc run --target cuda|cuda-emu --prompt`): the plan's launcher in serve
// mode (src/runtime-cuda/serve.ts) holds the weights and the KV cache on the device; each step sends
// only the new token ids and reads back only the logits. The decode loop and the sampling are the
// WebGPU path's (src/runtime/generate.ts generateTokens); only the stepper is CUDA's.
import { evalSize, type Plan } from '../kernel/plan/plan.js';
import { RuntimeError } from '../runtime/errors.js';
import { generateTokens, type GenerateOptions, type GenerateResult, type ModelSpec, type TokenStepper } from '../runtime/generate.js';
import { type LauncherMode, buildLauncher, detectNvidiaGpu } from './launcher.js';
import { LauncherServer, type ServeInput, type ServeResponse } from './serve.js';

/** Host<->device bytes of one request, from the launcher's counters. */
export interface StepTraffic {
  readonly kind: 'prefill' | 'decode';
  readonly h2dBytes: number;
  readonly d2hBytes: number;
  readonly ms: number;
}

export interface CudaLm {
  readonly spec: ModelSpec;
  /** Bytes the launcher uploaded once at start (the weights). */
  readonly weightBytes: number;
  /** One entry per request of every generate call so far. */
  readonly traffic: readonly StepTraffic[];
  readonly where: string;
  generate(prompt: ArrayLike<number>, opts?: GenerateOptions): Promise<GenerateResult>;
  close(): Promise<void>;
}

/**
 * Builds the launcher for `plan` (nvcc for a GPU, g++ + cuda_emu.h for the emulator), starts it in
 * serve mode on `weightsPath` and returns a model that generates with the cache on the device.
 * The model must have token ids, logits and KV-cache pairs (past.* inputs, present.* outputs).
 */
export async function openCudaLm(plan: Plan, spec: ModelSpec, weightsPath: string, mode: LauncherMode): Promise<CudaLm> {
  if (spec.tokens === undefined || spec.logits === undefined) {
    throw new RuntimeError('input', `model ${spec.name} has no token input and logits output to generate with`);
  }
  if (spec.cache.length === 0) {
    throw new RuntimeError(
      'input',
      `model ${spec.name} has no KV-cache outputs: --prompt on CUDA keeps the cache on the device between steps and needs outputs named like its inputs with 'present' for 'past' (present.{l}.key for past.{l}.key)`,
    );
  }
  const tokens = spec.tokens;
  const logits = spec.logits;
  const gpu = mode === 'nvcc' ? detectNvidiaGpu() : undefined;
  const exe = buildLauncher(plan, mode, gpu === undefined ? {} : { arch: gpu.arch });
  const server = await LauncherServer.start(exe, weightsPath);
  const keep = spec.cache.map((c) => c.present);
  const device = Object.fromEntries(spec.cache.map((c) => [c.past, c.present]));
  const traffic: StepTraffic[] = [];
  const tokensBuffer = plan.buffers.find((b) => b.kind === 'input' && b.name === tokens);

  /** Empty past tensors (P = 0) for a prefill of `length` tokens at batch 1. */
  function emptyCache(length: number): ServeInput[] {
    const env = new Map<string, number>();
    tokensBuffer?.shape.forEach((e, axis) => {
      if (e.kind === 'dim') env.set(e.name, axis === 0 ? 1 : length);
    });
    if (spec.pastDim !== undefined) env.set(spec.pastDim, 0);
    return spec.cache.map((c) => {
      const b = plan.buffers.find((x) => x.kind === 'input' && x.name === c.past);
      if (b === undefined) throw new Error(`internal: no input buffer ${c.past}`);
      let shape: number[];
      try {
        shape = b.shape.map((e) => evalSize(e, env));
      } catch {
        throw new RuntimeError('input', `cache input '${c.past}' of model ${spec.name} has a shape the token count and ${spec.pastDim ?? 'P'} = 0 do not fix`);
      }
      if (shape.reduce((a, x) => a * x, 1) !== 0) throw new RuntimeError('input', `cache input '${c.past}' of model ${spec.name} is not empty at ${spec.pastDim ?? 'P'} = 0`);
      return { name: c.past, dtype: b.dtype === 'i32' || b.dtype === 'i8' || b.dtype === 'bool' ? 'I32' : 'F32', shape, data: new Float32Array(0) };
    });
  }

  const lastRow = (r: ServeResponse): Float32Array => {
    const o = r.outputs.get(logits);
    if (o === undefined || !(o.data instanceof Float32Array)) throw new Error(`internal: the launcher sent no ${logits}`);
    const vocab = o.shape[o.shape.length - 1] ?? 0;
    return o.data.subarray(o.data.length - vocab);
  };

  const stepper: TokenStepper = {
    async prefill(ids) {
      const r = await server.request({
        ...(spec.pastDim !== undefined ? { dims: { [spec.pastDim]: 0 } } : {}),
        inputs: [{ name: tokens, dtype: 'I32', shape: [1, ids.length], data: ids }, ...emptyCache(ids.length)],
        keep,
        fetch: [logits],
      });
      traffic.push({ kind: 'prefill', h2dBytes: r.h2dBytes, d2hBytes: r.d2hBytes, ms: r.ms });
      return lastRow(r);
    },
    async step(token) {
      const r = await server.request({ inputs: [{ name: tokens, dtype: 'I32', shape: [1, 1], data: Int32Array.of(token) }], device, keep, fetch: [logits] });
      traffic.push({ kind: 'decode', h2dBytes: r.h2dBytes, d2hBytes: r.d2hBytes, ms: r.ms });
      return lastRow(r);
    },
    // The launcher frees the cache when the next prefill's own cache replaces it.
    release: () => undefined,
  };

  return {
    spec,
    weightBytes: server.weightBytes,
    traffic,
    where: mode === 'nvcc' ? `cuda (${gpu?.name ?? 'GPU'}, ${gpu?.arch ?? 'native'})` : 'cuda-emu (CPU emulator)',
    generate: (prompt, opts = {}) => generateTokens(spec, stepper, prompt, opts),
    async close() {
      const code = await server.close();
      if (code !== 0) server.kill();
    },
  };
}
