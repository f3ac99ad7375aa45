// Shared by the tests that only ask Dawn/Tint whether WGSL compiles: one device per test file,
// requested with shader-f16 and subgroups where the adapter has them; without an adapter the
// device stays undefined and `whyNot` says why, so each test decides whether to skip or warn.
import { afterAll, beforeAll } from 'vitest';

process.env['XDG_RUNTIME_DIR'] ??= '/tmp';

export interface DawnCompiler {
  /** The device, once beforeAll has run; undefined without WebGPU. */
  readonly device: GPUDevice | undefined;
  /** Why there is no device ('' when there is one). */
  readonly whyNot: string;
  /**
   * Compile errors for one kernel, as `name:line:col: message`, plus a validation error from
   * creating its compute pipeline (entry point `main`); [] when it compiles or there is no device.
   */
  errors(name: string, code: string): Promise<string[]>;
}

/** Registers beforeAll/afterAll hooks that open and destroy a Dawn device for this test file. */
export function dawnCompiler(): DawnCompiler {
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
          // as src/runtime/device.ts: the long-prompt attention kernel is workgroup_size(1024, 1, 1)
          maxComputeWorkgroupSizeX: Math.min(1024, adapter.limits.maxComputeWorkgroupSizeX),
        },
      });
    } catch (e) {
      whyNot = `WebGPU unavailable: ${String(e)}`;
    }
  });

  afterAll(() => {
    device?.destroy();
  });

  return {
    get device() {
      return device;
    },
    get whyNot() {
      return whyNot;
    },
    async errors(name, code) {
      if (device === undefined) return [];
      device.pushErrorScope('validation');
      const module = device.createShaderModule({ code, label: name });
      const info = await module.getCompilationInfo();
      const messages = info.messages.filter((m) => m.type === 'error').map((m) => `${name}:${m.lineNum}:${m.linePos}: ${m.message}`);
      if (messages.length === 0) device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
      const err = await device.popErrorScope();
      if (err !== null) messages.push(`${name}: ${err.message}`);
      return messages;
    },
  };
}
