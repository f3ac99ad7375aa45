/// <reference types="@webgpu/types" preserve="true" />
// Recording a run's forward pass: every plan step as a dispatch in one command encoder (one
// compute pass, or one pass per step when timestamps are asked for), with bind groups kept
// across runs while a step's buffers, sizes and uniform buffer stay the same.
import { evalCondition, type Plan, type PlanKernel } from '../kernel/plan/plan.js';
import { RuntimeError } from './errors.js';
import type { BuiltKernel } from './pipelines.js';
import type { Held } from './session-buffers.js';

/** Per step: the resources of its bind group and the group, kept while they do not change. */
export class BindGroupCache {
  private readonly groups = new Map<number, { readonly resources: readonly (GPUBuffer | number)[]; readonly group: GPUBindGroup }>();

  /** The step's bind group, reused when its resources are the ones cached; `fresh` says it was created. */
  get(device: GPUDevice, step: number, label: string, layout: GPUBindGroupLayout, entries: GPUBindGroupEntry[]): { group: GPUBindGroup; fresh: boolean } {
    const resources = entries.flatMap((e) => {
      const r = e.resource as GPUBufferBinding;
      return [r.buffer, r.size ?? 0];
    });
    const cached = this.groups.get(step);
    if (cached !== undefined && cached.resources.length === resources.length && cached.resources.every((x, j) => x === resources[j])) {
      return { group: cached.group, fresh: false };
    }
    const group = device.createBindGroup({ label, layout, entries });
    this.groups.set(step, { resources, group });
    return { group, fresh: true };
  }

  clear(): void {
    this.groups.clear();
  }
}

export interface DispatchInputs {
  readonly device: GPUDevice;
  readonly plan: Plan;
  readonly kernels: ReadonlyMap<string, PlanKernel>;
  readonly built: ReadonlyMap<string, BuiltKernel>;
  readonly bindGroups: BindGroupCache;
  readonly grids: readonly (readonly [number, number, number])[];
  readonly gpuOf: ReadonlyMap<number, GPUBuffer>;
  readonly sizes: ReadonlyMap<number, { readonly bytes: number }>;
  readonly uniforms: ReadonlyMap<string, Held | undefined>;
  readonly dims: ReadonlyMap<string, number>;
  /** Timestamp queries around each step (the device has `timestamp-query`). */
  readonly timing: boolean;
}

export interface RecordedPass {
  readonly encoder: GPUCommandEncoder;
  readonly querySet: GPUQuerySet | undefined;
  /** Steps dispatched (a step whose `when` is false or whose grid is empty is not). */
  readonly dispatches: number;
  readonly bindGroupsCreated: number;
  readonly bindGroupsReused: number;
}

/** Step 4 of a run: encodes the whole forward pass in one command buffer. */
export function recordDispatches(r: DispatchInputs): RecordedPass {
  const { device, plan } = r;
  const encoder = device.createCommandEncoder({ label: `${plan.model} forward` });
  const querySet = r.timing ? device.createQuerySet({ type: 'timestamp', count: 2 * plan.steps.length }) : undefined;
  let pass = querySet === undefined ? encoder.beginComputePass({ label: plan.model }) : undefined;
  let dispatches = 0;
  let bindGroupsCreated = 0;
  let bindGroupsReused = 0;
  plan.steps.forEach((step, i) => {
    const k = r.kernels.get(step.kernel);
    const bk = r.built.get(step.kernel);
    const g = r.grids[i];
    if (k === undefined || bk === undefined || g === undefined) throw new RuntimeError('plan', `step ${i}: kernel ${step.kernel} not built`);
    // A step whose `when` is false for these dims (the other path of a symbolic dim: prefill's
    // kernels in a decode step) or whose grid is empty is not dispatched and gets no bind group
    // (creating one costs CPU time and would be rebuilt whenever its buffers change); with
    // timestamps its pass stays, empty, so timestamp indices keep matching steps.
    const isActive = (step.when === undefined || evalCondition(step.when, r.dims)) && g[0] > 0 && g[1] > 0 && g[2] > 0;
    const p =
      querySet !== undefined
        ? encoder.beginComputePass({
            label: `${k.name} step ${i}`,
            timestampWrites: { querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 },
          })
        : pass;
    if (p === undefined) throw new RuntimeError('plan', 'no compute pass');
    if (isActive) {
      const entries: GPUBindGroupEntry[] = step.bindings.map((bd) => {
        const buffer = r.gpuOf.get(bd.buffer);
        if (buffer === undefined) throw new RuntimeError('plan', `step ${i}: buffer ${bd.buffer} has no GPU buffer`);
        return { binding: bd.binding, resource: { buffer, offset: 0, size: r.sizes.get(bd.buffer)?.bytes ?? 4 } };
      });
      const u = r.uniforms.get(k.name);
      if (u !== undefined) entries.push({ binding: k.uniformBinding, resource: { buffer: u.buffer, offset: 0, size: u.capacity } });
      const { group: bindGroup, fresh } = r.bindGroups.get(device, i, `${k.name} step ${i}`, bk.layout, entries);
      if (fresh) bindGroupsCreated++;
      else bindGroupsReused++;
      p.setPipeline(bk.pipeline);
      p.setBindGroup(0, bindGroup);
      p.dispatchWorkgroups(g[0], g[1], g[2]);
      dispatches++;
    }
    if (querySet !== undefined) p.end();
  });
  pass?.end();
  pass = undefined;
  return { encoder, querySet, dispatches, bindGroupsCreated, bindGroupsReused };
}
