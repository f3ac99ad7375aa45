/// <reference types="@webgpu/types" preserve="true" />
// The GPU memory a session holds across runs: weights (uploaded once, by name and row range),
// input/output buffers (kept while they fit), temp slots shared by liveness (memory.ts) and one
// uniform buffer of dims per kernel. A run asks for its buffers here; dispose frees them all.
import type { Plan, PlanBuffer, PlanKernel } from '../kernel/plan/plan.js';
import { encodeValues, paddedBytes, storageBytes } from './convert.js';
import { RuntimeError } from './errors.js';
import { usage } from './gpu-flags.js';
import { TempPlacer, type TempRequest } from './memory.js';
import { describeBuffer } from './plan-checks.js';
import type { WeightUpload } from './session-inputs.js';
import { weightKey } from './session-inputs.js';

/** A GPU buffer kept across runs; `capacity` is its size in bytes. */
export interface Held {
  buffer: GPUBuffer;
  capacity: number;
}

/** The buffers of one run, by plan buffer id, with what they add up to. */
export interface RunBuffers {
  readonly gpuOf: ReadonlyMap<number, GPUBuffer>;
  readonly ioBytes: number;
  /** Temp slots this run uses, after liveness-based reuse. */
  readonly tempBytes: number;
  readonly temps: readonly TempRequest[];
  /** Slots no temp used this run: destroy once this run's work is submitted. */
  readonly unusedSlots: readonly Held[];
}

export class SessionBuffers {
  private readonly weightBuffers = new Map<string, Held>(); // by weight key (name, row range)
  private readonly packedParts = new Map<string, Set<string>>(); // packed weight key -> parts written
  private readonly ioBuffers = new Map<number, Held>(); // by plan buffer id
  private tempSlots: Held[] = [];
  private readonly placer = new TempPlacer();
  private readonly uniformBuffers = new Map<string, Held>(); // by kernel name

  constructor(private readonly device: GPUDevice) {}

  /** Uploads checked weights (replacing earlier ones); returns the names loaded, once each. */
  uploadWeights(uploads: readonly WeightUpload[]): string[] {
    const loaded: string[] = [];
    for (const u of uploads) {
      if (u.part !== undefined) {
        this.uploadPart(u, u.part);
        if (!loaded.includes(u.name)) loaded.push(u.name);
        continue;
      }
      const bytes = encodeValues(u.dtype, u.data);
      this.weightBuffers.get(u.key)?.buffer.destroy();
      const buffer = this.device.createBuffer({ label: `weight ${u.key}`, size: bytes.byteLength, usage: usage.STORAGE | usage.COPY_DST | usage.COPY_SRC });
      this.device.queue.writeBuffer(buffer, 0, bytes);
      this.weightBuffers.set(u.key, { buffer, capacity: bytes.byteLength });
      if (!loaded.includes(u.name)) loaded.push(u.name);
    }
    return loaded;
  }

  /**
   * A part of a packed weight (pack-weights) goes to its rows of the one buffer, so the parts may
   * arrive in separate loads (tfc/runtime loads one tensor at a time). Each part is a multiple of
   * 4 bytes (the pass checks), as writeBuffer needs.
   */
  private uploadPart(u: WeightUpload, part: NonNullable<WeightUpload['part']>): void {
    const size = paddedBytes(u.dtype, part.elements);
    let held = this.weightBuffers.get(u.key);
    if (held === undefined) {
      held = { buffer: this.device.createBuffer({ label: `weight ${u.key}`, size, usage: usage.STORAGE | usage.COPY_DST | usage.COPY_SRC }), capacity: size };
      this.weightBuffers.set(u.key, held);
      this.packedParts.set(u.key, new Set());
    }
    const bytes = encodeValues(u.dtype, u.data);
    const per = storageBytes(u.dtype);
    this.device.queue.writeBuffer(held.buffer, part.offset * per, bytes, 0, u.data.length * per);
    this.packedParts.get(u.key)?.add(u.name);
  }

  hasWeight(b: PlanBuffer): boolean {
    if (b.parts !== undefined) return (this.packedParts.get(weightKey(b))?.size ?? 0) === b.parts.length;
    return this.weightBuffers.has(weightKey(b));
  }

  weightBytes(): number {
    let n = 0;
    for (const h of this.weightBuffers.values()) n += h.capacity;
    return n;
  }

  /**
   * Step 2 of a run: weights are resident; inputs/outputs per id (inputs given as device tensors
   * use their own buffer); temps share slots by liveness, reusing the slots of earlier runs.
   */
  place(plan: Plan, sizes: ReadonlyMap<number, { readonly bytes: number }>, onDevice: ReadonlyMap<number, GPUBuffer>): RunBuffers {
    const gpuOf = new Map<number, GPUBuffer>();
    let ioBytes = 0;
    for (const b of plan.buffers) {
      if (b.kind === 'weight') {
        const h = this.weightBuffers.get(weightKey(b));
        if (h !== undefined) gpuOf.set(b.id, h.buffer);
      } else if (b.kind === 'input' && onDevice.has(b.id)) {
        const buffer = onDevice.get(b.id);
        if (buffer !== undefined) gpuOf.set(b.id, buffer);
      } else if (b.kind === 'input' || b.kind === 'output') {
        const h = this.holdIo(b, sizes.get(b.id)?.bytes ?? 4);
        ioBytes += h.capacity;
        gpuOf.set(b.id, h.buffer);
      }
    }
    const temps: TempRequest[] = plan.buffers
      .filter((b) => b.kind === 'temp')
      .map((b) => ({ id: b.id, bytes: sizes.get(b.id)?.bytes ?? 4, firstUse: b.firstUse, lastUse: b.lastUse }));
    const assignment = this.placer.place(
      temps,
      this.tempSlots.map((s) => s.capacity),
    );
    const slots: Held[] = assignment.slotBytes.map(
      (cap, i) =>
        this.tempSlots[i] ?? {
          buffer: this.device.createBuffer({ label: `temp slot ${i}`, size: cap, usage: usage.STORAGE | usage.COPY_SRC }),
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
    this.tempSlots = slots.filter((_, i) => assignment.usedSlots.has(i));
    return { gpuOf, ioBytes, tempBytes, temps, unusedSlots };
  }

  /** Step 3: input uploads and each kernel's dims (queue writes are ordered before the run's submit). */
  upload(
    gpuOf: ReadonlyMap<number, GPUBuffer>,
    inputBytes: ReadonlyMap<number, ArrayBuffer>,
    kernels: Iterable<PlanKernel>,
    dims: ReadonlyMap<string, number>,
  ): { uniforms: Map<string, Held | undefined>; uniformBytes: number } {
    for (const [id, bytes] of inputBytes) {
      const buf = gpuOf.get(id);
      if (buf !== undefined && bytes.byteLength > 0) this.device.queue.writeBuffer(buf, 0, bytes);
    }
    const uniforms = new Map<string, Held | undefined>();
    for (const k of kernels) uniforms.set(k.name, this.uniformsFor(k, dims));
    let uniformBytes = 0;
    for (const h of uniforms.values()) uniformBytes += h?.capacity ?? 0;
    return { uniforms, uniformBytes };
  }

  /**
   * Gives up the input/output buffer of plan buffer `id` (an uploaded input written in place and
   * kept on the device: the caller owns it now); the next run makes a fresh one.
   */
  handOver(id: number): void {
    this.ioBuffers.delete(id);
  }

  /** Frees every buffer the session holds. */
  dispose(): void {
    for (const h of [...this.weightBuffers.values(), ...this.ioBuffers.values(), ...this.tempSlots, ...this.uniformBuffers.values()]) h.buffer.destroy();
    this.weightBuffers.clear();
    this.packedParts.clear();
    this.ioBuffers.clear();
    this.uniformBuffers.clear();
    this.tempSlots = [];
  }

  private holdIo(b: PlanBuffer, bytes: number): Held {
    const h = this.ioBuffers.get(b.id);
    // Keep a buffer that fits unless it is more than twice too large.
    if (h !== undefined && h.capacity >= bytes && h.capacity <= 2 * bytes) return h;
    h?.buffer.destroy();
    const fresh: Held = {
      buffer: this.device.createBuffer({ label: describeBuffer(b), size: bytes, usage: usage.STORAGE | usage.COPY_SRC | usage.COPY_DST }),
      capacity: bytes,
    };
    this.ioBuffers.set(b.id, fresh);
    return fresh;
  }

  private uniformsFor(k: PlanKernel, dims: ReadonlyMap<string, number>): Held | undefined {
    if (k.uniforms.length === 0) return undefined;
    const values = new Uint32Array(Math.max(4, Math.ceil(k.uniforms.length / 4) * 4));
    k.uniforms.forEach((name, i) => {
      const v = dims.get(name);
      if (v === undefined) throw new RuntimeError('plan', `kernel ${k.name} reads uniform ${name}, which is not a dim of the plan`);
      values[i] = v;
    });
    let h = this.uniformBuffers.get(k.name);
    if (h === undefined || h.capacity < values.byteLength) {
      h?.buffer.destroy();
      h = {
        buffer: this.device.createBuffer({ label: `${k.name} dims`, size: values.byteLength, usage: usage.UNIFORM | usage.COPY_DST }),
        capacity: values.byteLength,
      };
      this.uniformBuffers.set(k.name, h);
    }
    this.device.queue.writeBuffer(h.buffer, 0, values);
    return h;
  }
}
