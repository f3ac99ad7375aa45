// Every kernel the plain lowering prints is accepted by Dawn/Tint (createShaderModule reports no
// errors and a compute pipeline can be created). Runs on Mesa lavapipe in CI; skips with a message
// when no adapter is available.
import { describe, expect, it } from 'vitest';
import { compilePlan } from '../../src/compile/plan.js';
import { lavapipeLimits, webgpuDefaultLimits } from '../../src/kernel/schedule.js';
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
      const errors: string[] = [];
      let compiled = 0;
      for (const k of plan.kernels) {
        const needs = k.features.filter((f) => !dawn.device?.features.has(f));
        if (needs.length > 0) {
          console.warn(`${k.name}: not compiled, the device lacks ${needs.join(', ')}`);
          continue;
        }
        errors.push(...(await dawn.errors(k.name, k.source.wgsl)));
        compiled++;
      }
      expect(errors).toEqual([]);
      expect(compiled).toBeGreaterThan(plan.kernels.length / 2);
    });
  }
});
