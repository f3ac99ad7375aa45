// The lowering's view of a WebGPU device (src/kernel/schedule/schedule.ts TargetLimits) read from the
// device the runtime acquired, so `tfc run --target webgpu` compiles for the adapter it runs on.
import type { TargetLimits } from '../kernel/schedule/schedule.js';
import type { AcquiredDevice } from './device.js';

export function targetLimitsOf(acquired: AcquiredDevice): TargetLimits {
  const l = acquired.limits;
  const hasSubgroups = acquired.features.has('subgroups');
  return {
    name: `webgpu:${acquired.adapterInfo.description || acquired.adapterInfo.vendor || 'adapter'}`,
    maxWorkgroupStorageBytes: l.maxComputeWorkgroupStorageSize,
    // Our workgroups are 1-D (workgroup_size(N, 1, 1)), so N is bounded by both limits.
    maxInvocationsPerWorkgroup: Math.min(l.maxComputeInvocationsPerWorkgroup, l.maxComputeWorkgroupSizeX),
    maxWorkgroupsPerDim: l.maxComputeWorkgroupsPerDimension,
    // The smallest size the adapter may pick: reductions must be correct for any size it uses.
    subgroupSize: hasSubgroups ? acquired.adapterInfo.subgroupMinSize : 0,
    hasF16: acquired.features.has('shader-f16'),
    // A CPU adapter (Mesa lavapipe = llvmpipe, SwiftShader): schedules read operands directly.
    isCpu: /llvmpipe|lavapipe|swiftshader/i.test(`${acquired.adapterInfo.description} ${acquired.adapterInfo.device} ${acquired.adapterInfo.architecture}`),
  };
}
