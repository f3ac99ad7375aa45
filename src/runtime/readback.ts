/// <reference types="@webgpu/types" preserve="true" />
// Getting a run's results out: copies of the outputs (into mappable staging buffers, or into
// buffers the caller keeps on the device) and of the timestamps, recorded in the run's command
// buffer (step 5); after the submit, mapping and decoding them (step 6).
import { evalSize, type Plan, type PlanBuffer } from '../kernel/plan/plan.js';
import { decodeValues, storageBytes } from './convert.js';
import { RuntimeError } from './errors.js';
import { mapModeRead, usage } from './gpu-flags.js';
import type { DeviceTensor, RunOutput, StepTiming } from './session-types.js';

export interface PendingReadback {
  readonly staging: readonly { name: string; b: PlanBuffer; buffer: GPUBuffer; elements: number }[];
  /** The outputs named in `keepOnDevice`; the caller owns their buffers. */
  readonly deviceOutputs: Map<string, DeviceTensor>;
  /** Kept outputs that are the caller's own input buffers (written in place): never destroyed here. */
  readonly callerOwned: ReadonlySet<GPUBuffer>;
  readonly timingRead: GPUBuffer | undefined;
  /** Destroys the staging, timestamp and query buffers (not the kept outputs). */
  readonly release: () => void;
}

/**
 * Step 5: readback copies in the same command buffer; kept outputs are copied into buffers the
 * caller owns (a copy, so the session's own buffers are never aliased by a later run's input).
 * An output written in place into an input's buffer (scatter: a paged KV cache) is not copied: a
 * device tensor given as that input IS the kept output (`onDevice`), and an uploaded input's
 * buffer is handed to the caller (`handOver`: the session makes a fresh one next run).
 */
export function recordReadback(
  device: GPUDevice,
  plan: Plan,
  encoder: GPUCommandEncoder,
  querySet: GPUQuerySet | undefined,
  gpuOf: ReadonlyMap<number, GPUBuffer>,
  sizes: ReadonlyMap<number, { readonly elements: number; readonly bytes: number }>,
  dims: ReadonlyMap<string, number>,
  keep: ReadonlySet<string>,
  onDevice: ReadonlyMap<number, GPUBuffer>,
  handOver: (id: number) => void,
): PendingReadback {
  const staging: { name: string; b: PlanBuffer; buffer: GPUBuffer; elements: number }[] = [];
  const deviceOutputs = new Map<string, DeviceTensor>();
  const callerOwned = new Set<GPUBuffer>();
  for (const o of plan.outputs) {
    const b = plan.buffers.find((x) => x.id === o.buffer);
    const src = gpuOf.get(o.buffer);
    const size = sizes.get(o.buffer);
    if (b === undefined || src === undefined || size === undefined) throw new RuntimeError('plan', `output ${o.name} has no buffer`);
    const used = Math.ceil((size.elements * storageBytes(b.dtype)) / 4) * 4;
    if (keep.has(o.name) && b.kind === 'input') {
      const given = onDevice.get(b.id);
      if (given === undefined) handOver(b.id);
      else callerOwned.add(given);
      deviceOutputs.set(o.name, { dtype: b.dtype, shape: b.shape.map((e) => evalSize(e, dims)), buffer: src });
      continue;
    }
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
  const release = (): void => {
    for (const s of staging) s.buffer.destroy();
    timingRead?.destroy();
    resolve?.destroy();
    querySet?.destroy();
  };
  return { staging, deviceOutputs, callerOwned, timingRead, release };
}

/** Step 6: maps the staging buffers (after the submit) and decodes outputs and step times. */
export async function readBack(
  plan: Plan,
  r: PendingReadback,
  dims: ReadonlyMap<string, number>,
  unlessLost: <T>(p: Promise<T>) => Promise<T>,
): Promise<{ outputs: Map<string, RunOutput>; timing: StepTiming[] | undefined }> {
  const { staging, timingRead } = r;
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
  return { outputs, timing };
}
