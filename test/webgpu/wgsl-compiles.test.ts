// Every kernel the plain lowering prints is accepted by Dawn/Tint (createShaderModule reports no
// errors and a compute pipeline can be created). Runs on Mesa lavapipe in CI; skips with a message
// when no adapter is available.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compilePlan } from '../../src/kernel/compile-plan.js';
import { lavapipeLimits, webgpuDefaultLimits } from '../../src/kernel/schedule.js';
import { everyOpIr, graphOf } from '../unit/kernel/helpers.js';

process.env['XDG_RUNTIME_DIR'] ??= '/tmp';

let gpu: GPU | undefined; // keep the create([]) object alive or Node crashes at exit
let device: GPUDevice | undefined;
let whyNot = '';

beforeAll(async () => {
  try {
    const webgpu = await import('webgpu');
    Object.assign(globalThis, webgpu.globals);
    gpu = webgpu.create([]);
    const adapter = await gpu.requestAdapter();
    if (adapter === null) {
      whyNot = 'no WebGPU adapter';
      return;
    }
    const features: GPUFeatureName[] = (['shader-f16', 'subgroups'] as GPUFeatureName[]).filter((f) => adapter.features.has(f));
    device = await adapter.requestDevice({
      requiredFeatures: features,
      requiredLimits: {
        maxComputeWorkgroupStorageSize: Math.min(32768, adapter.limits.maxComputeWorkgroupStorageSize),
        maxComputeInvocationsPerWorkgroup: Math.min(1024, adapter.limits.maxComputeInvocationsPerWorkgroup),
      },
    });
  } catch (e) {
    whyNot = `WebGPU unavailable: ${String(e)}`;
  }
});

afterAll(() => {
  device?.destroy();
});

async function compile(name: string, code: string): Promise<string[]> {
  if (device === undefined) return [];
  device.pushErrorScope('validation');
  const module = device.createShaderModule({ code, label: name });
  const info = await module.getCompilationInfo();
  const messages = info.messages.filter((m) => m.type === 'error').map((m) => `${name}:${m.lineNum}:${m.linePos}: ${m.message}`);
  if (messages.length === 0) device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
  const err = await device.popErrorScope();
  if (err !== null) messages.push(`${name}: ${err.message}`);
  return messages;
}

describe('WGSL accepted by Dawn', () => {
  for (const target of [lavapipeLimits, webgpuDefaultLimits]) {
    it(`compiles every kernel of a graph touching every op (${target.name})`, async (ctx) => {
      if (device === undefined) {
        console.warn(`skipping: ${whyNot}`);
        ctx.skip();
        return;
      }
      const plan = compilePlan(graphOf(everyOpIr), { target });
      const errors: string[] = [];
      let compiled = 0;
      for (const k of plan.kernels) {
        const needs = k.features.filter((f) => !device?.features.has(f));
        if (needs.length > 0) {
          console.warn(`${k.name}: not compiled, the device lacks ${needs.join(', ')}`);
          continue;
        }
        errors.push(...(await compile(k.name, k.source.wgsl)));
        compiled++;
      }
      expect(errors).toEqual([]);
      expect(compiled).toBeGreaterThan(plan.kernels.length / 2);
    });
  }
});
