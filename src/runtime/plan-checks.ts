/// <reference types="@webgpu/types" preserve="true" />
// What the session checks against the plan and the device before any GPU work: the plan's own
// consistency, features and workgroup limits (once, at createSession), and each buffer's binding
// size and each grid at a run's dims. Messages name the buffer or kernel and the fix.
import { evalCondition, evalSize, type Plan, type PlanBuffer, type PlanKernel, type SizeExpr } from '../kernel/plan/plan.js';
import { printSize } from '../kernel/plan/to-size.js';
import { paddedBytes, storageBytes } from './convert.js';
import { mib, RuntimeError } from './errors.js';

export function describeBuffer(b: PlanBuffer): string {
  return b.name !== undefined ? `${b.kind} '${b.name}'` : `${b.kind} buffer ${b.id}`;
}

export function printDims(dims: ReadonlyMap<string, number>): string {
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

export function closest(name: string, candidates: readonly string[]): string {
  const hit = candidates.find((c) => c.toLowerCase() === name.toLowerCase());
  return hit !== undefined ? ` (did you mean '${hit}'?)` : candidates.length > 0 ? ` (expected: ${candidates.join(', ')})` : '';
}

/** Checks the plan's internal consistency and the device's features and workgroup limits. */
export function validatePlan(plan: Plan, features: ReadonlySet<string>, limits: GPUSupportedLimits): Map<string, PlanKernel> {
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
    // A pipeline binding more storage buffers than the device allows fails at creation with a
    // WebGPU validation error that does not name the kernel; WebGPU guarantees 8, adapters often
    // offer more (acquireDevice raises the limit to the adapter's).
    if (k.slots.length > limits.maxStorageBuffersPerShaderStage) {
      throw new RuntimeError(
        'limit',
        `kernel ${k.name} binds ${k.slots.length} storage buffers; this device allows ${limits.maxStorageBuffersPerShaderStage} per shader stage ` +
          `(WebGPU guarantees 8): compile for this device's limits or run on an adapter that offers more`,
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

export function checkBindingLimit(plan: Plan, b: PlanBuffer, bytes: number, limits: GPUSupportedLimits, dims: ReadonlyMap<string, number>): void {
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

/** Buffers whose size is fixed (weights, and any other constant-size buffer) are checked at createSession. */
export function checkFixedBuffers(plan: Plan, limits: GPUSupportedLimits): void {
  for (const b of plan.buffers) {
    const n = constSize(b.elements);
    if (n !== undefined) checkBindingLimit(plan, b, paddedBytes(b.dtype, n), limits, new Map());
    if (b.kind === 'weight' && (n === undefined || b.shape.some((d) => constSize(d) === undefined))) {
      throw new RuntimeError('plan', `plan ${plan.model}: weight '${b.name ?? b.id}' has a shape that depends on dims`);
    }
  }
}

/** Each buffer's elements and bytes at a run's dims (binding limit checked), and each step's grid (checked where it runs). */
export function sizeRun(
  plan: Plan,
  kernels: ReadonlyMap<string, PlanKernel>,
  dims: ReadonlyMap<string, number>,
  limits: GPUSupportedLimits,
): { sizes: Map<number, { elements: number; bytes: number }>; grids: [number, number, number][] } {
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
  return { sizes, grids };
}
