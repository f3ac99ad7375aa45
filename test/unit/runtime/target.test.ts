// targetLimitsOf: the lowering sees what the device can really run. Our workgroups are 1-D, so a
// device that allows 1024 invocations but a workgroup X size of 256 must give the lowering 256
// (else the long-prompt attention kernel, workgroup_size(1024), fails at pipeline creation).
import { describe, expect, it } from 'vitest';
import type { AcquiredDevice } from '../../../src/runtime/device.js';
import { targetLimitsOf } from '../../../src/runtime/target.js';

function fakeDevice(invocations: number, sizeX: number, description = 'llvmpipe (LLVM 15.0.6, 256 bits)'): AcquiredDevice {
  const limits = {
    maxComputeWorkgroupStorageSize: 32768,
    maxComputeInvocationsPerWorkgroup: invocations,
    maxComputeWorkgroupSizeX: sizeX,
    maxComputeWorkgroupsPerDimension: 65535,
  } as unknown as GPUSupportedLimits;
  return {
    device: {} as GPUDevice,
    adapterInfo: { description, vendor: 'mesa', device: '', architecture: '', subgroupMinSize: 8, subgroupMaxSize: 8 },
    features: new Set(['subgroups', 'shader-f16']),
    limits,
    gpu: {} as GPU,
    host: 'node',
    lost: new Promise(() => undefined),
  } as unknown as AcquiredDevice;
}

describe('targetLimitsOf', () => {
  it('bounds invocations per workgroup by the workgroup X size', () => {
    expect(targetLimitsOf(fakeDevice(1024, 256)).maxInvocationsPerWorkgroup).toBe(256);
    expect(targetLimitsOf(fakeDevice(256, 1024)).maxInvocationsPerWorkgroup).toBe(256);
    expect(targetLimitsOf(fakeDevice(1024, 1024)).maxInvocationsPerWorkgroup).toBe(1024);
  });
  it('reads CPU adapters and subgroups', () => {
    const t = targetLimitsOf(fakeDevice(1024, 1024));
    expect(t.isCpu).toBe(true);
    expect(t.subgroupSize).toBe(8);
    expect(targetLimitsOf(fakeDevice(1024, 1024, 'NVIDIA GeForce')).isCpu).toBe(false);
  });
});
