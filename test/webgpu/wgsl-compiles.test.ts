// Every kernel the plain lowering prints is accepted by Dawn/Tint (createShaderModule reports no
// errors and a compute pipeline can be created). Runs on Mesa lavapipe in CI; skips with a message
// when no adapter is available.
import { describe, expect, it } from 'vitest';
import { compilePlan } from '../../src/compile/plan.js';
import { lavapipeLimits, webgpuDefaultLimits } from '../../src/kernel/schedule/schedule.js';
import { everyOpIr, graphOf } from '../unit/kernel/helpers.js';
import { dawnCompiler } from './dawn.js';

const dawn = dawnCompiler();

describe('WGSL accepted by Dawn', () => {
  for (const target of [lavapipeLimits, webgpuDefaultLimits]) {
    it(`compiles every kernel of a graph touching every op (${target.name})`, async (ctx) => {
      if (dawn.device === undefined) {
        console.warn(`skipping: ${dawn.whyNot}`);
        ctx.skip();
        return;
      }
      const plan = compilePlan(graphOf(everyOpIr), { target });
      // Every kernel is compiled: one that needs a feature the device lacks fails here, naming
      // it (CI's lavapipe has subgroups and shader-f16), instead of being left out quietly.
      const lacking = plan.kernels.flatMap((k) => k.features.filter((f) => !dawn.device?.features.has(f)).map((f) => `${k.name} needs ${f}`));
      expect(lacking, 'run on an adapter with these features (lavapipe has them)').toEqual([]);
      const errors: string[] = [];
      for (const k of plan.kernels) errors.push(...(await dawn.errors(k.name, k.source.wgsl)));
      expect(errors).toEqual([]);
      expect(plan.kernels.length).toBeGreaterThan(20);
    });
  }
});
