// validatePlan (src/runtime/plan-checks.ts) refuses a plan whose kernel binds more storage buffers
// than the device allows, naming the kernel, before any pipeline is created (WebGPU's own error
// would come from pipeline creation and not say which kernel).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { benchPlan, repoRoot } from '../../../src/cli/bench.js';
import { webgpuDefaultLimits } from '../../../src/kernel/schedule/schedule.js';
import { RuntimeError } from '../../../src/runtime/errors.js';
import { validatePlan } from '../../../src/runtime/plan-checks.js';

const limits = (storage: number): GPUSupportedLimits =>
  ({ maxStorageBuffersPerShaderStage: storage, maxComputeInvocationsPerWorkgroup: 1024, maxComputeWorkgroupSizeX: 1024, maxComputeWorkgroupSizeY: 1024, maxComputeWorkgroupSizeZ: 64 }) as GPUSupportedLimits;

describe('validatePlan: storage buffers per kernel', () => {
  const path = join(repoRoot, 'examples', 'variants', 'gpt2-kv.tfx');
  const plan = benchPlan(readFileSync(path, 'utf8'), path, new Map(Object.entries({ layers: 1, d: 32, heads: 2, vocab: 64, ctx: 32 })), true, webgpuDefaultLimits);
  const widest = plan.kernels.reduce((a, k) => (k.slots.length > a.slots.length ? k : a));

  it('accepts the plan where the device offers as many as its widest kernel binds', () => {
    expect(widest.slots.length).toBeGreaterThan(2);
    expect(() => validatePlan(plan, new Set(), limits(widest.slots.length))).not.toThrow();
  });

  it('refuses it with one fewer, naming the kernel and both counts', () => {
    let err: unknown;
    try {
      validatePlan(plan, new Set(), limits(widest.slots.length - 1));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(RuntimeError);
    const message = (err as Error).message;
    expect(message).toContain(`binds ${widest.slots.length} storage buffers`);
    expect(message).toContain(`allows ${widest.slots.length - 1} per shader stage`);
    expect(message).toMatch(/^kernel \S+ binds/);
  });
});
