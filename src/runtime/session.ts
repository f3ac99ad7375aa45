/// <reference types="@webgpu/types" preserve="true" />
// The WebGPU runtime: runs a compiled Plan (src/kernel/plan/plan.ts) on a device. Pipelines are built
// once per kernel source and cached per device (changing T never rebuilds them: dims are
// uniforms), weights are uploaded once, each run validates its inputs before any dispatch, places
// temps with liveness-based reuse (memory.ts), encodes the whole forward pass in one command
// buffer and reads the outputs back. The same code runs in Node (Dawn) and in a browser.
// This file composes the parts: session-types.ts (the public types), plan-checks.ts (plan and
// limit checks), pipelines.ts (the per-device pipeline cache), session-inputs.ts (weights and
// inputs checked), session-buffers.ts (GPU memory held across runs), dispatch.ts (recording the
// forward pass, bind groups), readback.ts (outputs and timestamps), warm-up.ts (Session.warmUp).
import { type Plan, weightSources } from '../kernel/plan/plan.js';
import type { AcquiredDevice } from './device.js';
import { RuntimeError } from './errors.js';
import { BindGroupCache, recordDispatches } from './dispatch.js';
import { buildPipelines } from './pipelines.js';
import { checkFixedBuffers, closest, sizeRun, validatePlan } from './plan-checks.js';
import { readBack, recordReadback } from './readback.js';
import { SessionBuffers } from './session-buffers.js';
import { checkWeights, entriesOf, prepareInputs } from './session-inputs.js';
import type { InputMap, MemoryReport, RunOptions, RunResult, Session, SessionOptions, SessionStats, TensorMap } from './session-types.js';
import { warmUpPipelines } from './warm-up.js';

export type * from './session-types.js';
export { pipelineCreations, pipelineKey } from './pipelines.js';

export async function createSession(dev: GPUDevice | AcquiredDevice, plan: Plan, opts: SessionOptions = {}): Promise<Session> {
  const device: GPUDevice = 'device' in dev && !('createBuffer' in dev) ? dev.device : (dev as GPUDevice);
  const features = new Set<string>([...device.features]);
  const limits = device.limits;
  const kernels = validatePlan(plan, features, limits);
  checkFixedBuffers(plan, limits);

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
  const { cache, built, created: pipelinesCreated, reused: pipelinesReused } = await buildPipelines(device, kernels, unlessLost, opts.onPipeline);

  const buffers = new SessionBuffers(device);
  const bindGroups = new BindGroupCache();
  let runs = 0;
  let lastDispatches = 0;
  let lastBindGroupsCreated = 0;
  let lastBindGroupsReused = 0;
  let disposed = false;

  const planWeights = plan.buffers.filter((b) => b.kind === 'weight');
  const weightNames = [...new Set(planWeights.flatMap((b) => weightSources(b).map((w) => w.name)))];

  function loadWeights(weights: TensorMap): { loaded: string[]; unused: string[] } {
    if (disposed) throw new RuntimeError('device', 'session is disposed');
    const given = new Map(entriesOf(weights));
    // Validate everything before uploading anything.
    const loaded = buffers.uploadWeights(checkWeights(planWeights, given));
    const unused = [...given.keys()].filter((n) => !weightNames.includes(n));
    return { loaded, unused };
  }

  async function run(inputs: InputMap, runOpts: RunOptions = {}): Promise<RunResult> {
    if (disposed) throw new RuntimeError('device', 'session is disposed');
    if (lostInfo !== undefined) throw lostError(lostInfo);
    const warnings: string[] = [];

    // 1. Everything that can be wrong is checked before any GPU work.
    const missingWeights = [...new Set(planWeights.filter((b) => !buffers.hasWeight(b)).flatMap((b) => weightSources(b).map((w) => w.name)))];
    if (missingWeights.length > 0) {
      throw new RuntimeError(
        'weight',
        `weight(s) not loaded: ${missingWeights.slice(0, 8).join(', ')}${missingWeights.length > 8 ? `, and ${missingWeights.length - 8} more` : ''}`,
        'TFC302',
      );
    }
    const { dims, bytes: inputBytes, onDevice } = prepareInputs(plan, inputs, runOpts, opts.inputRanges);
    const keep = new Set(runOpts.keepOnDevice ?? []);
    for (const name of keep) {
      if (!plan.outputs.some((o) => o.name === name)) {
        throw new RuntimeError('input', `keepOnDevice: '${name}' is not an output of model ${plan.model}${closest(name, plan.outputs.map((o) => o.name))}`);
      }
    }
    const { sizes, grids } = sizeRun(plan, kernels, dims, limits);
    const wantTiming = runOpts.timing === true && features.has('timestamp-query') && plan.steps.length > 0;
    if (runOpts.timing === true && !features.has('timestamp-query')) {
      warnings.push('timing was requested but this device has no timestamp-query feature');
    }

    // 2. Buffers: weights are resident; inputs/outputs per id; temps share slots by liveness.
    const { gpuOf, ioBytes, tempBytes, temps, unusedSlots } = buffers.place(plan, sizes, onDevice);

    // 3. Uploads and uniforms (queue writes are ordered before the submit below).
    const { uniforms, uniformBytes } = buffers.upload(gpuOf, inputBytes, kernels.values(), dims);

    // 4. Encode the whole forward pass in one command buffer.
    device.pushErrorScope('out-of-memory');
    device.pushErrorScope('validation');
    const pass = recordDispatches({ device, plan, kernels, built, bindGroups, grids, gpuOf, sizes, uniforms, dims, timing: wantTiming });

    // 5. Readback copies in the same command buffer.
    const pending = recordReadback(device, plan, pass.encoder, pass.querySet, gpuOf, sizes, dims, keep, onDevice, (id) => buffers.handOver(id));
    device.queue.submit([pass.encoder.finish()]);
    const validation = await unlessLost(device.popErrorScope());
    const oom = await unlessLost(device.popErrorScope());
    const cleanup = (): void => {
      pending.release();
      for (const s of unusedSlots) s.buffer.destroy();
    };
    if (validation !== null || oom !== null) {
      cleanup();
      for (const t of pending.deviceOutputs.values()) if (!pending.callerOwned.has(t.buffer)) t.buffer.destroy();
      const e = validation ?? oom;
      throw new RuntimeError('device', `WebGPU rejected the forward pass of ${plan.model}: ${e?.message ?? ''}`);
    }

    // 6. Read back.
    try {
      const { outputs, timing } = await readBack(plan, pending, dims, unlessLost);
      runs++;
      lastDispatches = pass.dispatches;
      lastBindGroupsCreated = pass.bindGroupsCreated;
      lastBindGroupsReused = pass.bindGroupsReused;
      const weightBytes = buffers.weightBytes();
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
      const deviceOutputs = pending.deviceOutputs;
      const result: RunResult =
        timing !== undefined ? { outputs, dims, memory, timing, deviceOutputs, warnings } : { outputs, dims, memory, deviceOutputs, warnings };
      return result;
    } finally {
      cleanup();
    }
  }

  async function warmUp(onProgress?: (done: number, total: number) => void): Promise<void> {
    if (disposed) throw new RuntimeError('device', 'session is disposed');
    await warmUpPipelines(device, kernels, built, cache, unlessLost, onProgress);
  }

  function dispose(): void {
    if (disposed) return;
    disposed = true;
    buffers.dispose();
    bindGroups.clear();
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
