// Every catalog op compiled by compilePlan (src/compile/plan.ts) and run on WebGPU
// (lavapipe in CI), against the float64 interpreter, on awkward shapes (1, 7, 33, 129 and
// feature sizes that are not multiples of any tile). Each case is a tiny .tfx model.
import { beforeAll, describe, expect, it } from 'vitest';
import { type Graph, strAttr } from '../../src/graph/ir.js';
import { interpret } from '../../src/interp/interpret.js';
import type { Tensor64 } from '../../src/base/tensor.js';
import type { Plan } from '../../src/kernel/plan/plan.js';
import { compilePlan } from '../../src/compile/plan.js';
import { lavapipeLimits } from '../../src/kernel/schedule/schedule.js';
import { storageBytes as kernelStorageBytes } from '../../src/kernel/ir/storage.js';
import { dtypes } from '../../src/graph/types.js';
import type { AcquiredDevice } from '../../src/runtime/device.js';
import { storageBytes } from '../../src/runtime/convert.js';
import { createSession, pipelineCreations } from '../../src/runtime/session.js';
import { opCases } from '../helpers/op-cases.js';
import { declaredShape, relError, tensorFor, tfxGraph } from '../helpers/tensors.js';
import { testDevice } from './helpers.js';

let dev: AcquiredDevice;
beforeAll(async () => {
  dev = await testDevice();
});

function compile(g: Graph): Plan {
  return compilePlan(g, { target: lavapipeLimits });
}

const shapes: readonly (readonly [number, number])[] = [
  [1, 1],
  [1, 7],
  [2, 33],
  [1, 129],
];

it('stores each dtype with the element size the kernel lowering assumes', () => {
  for (const t of dtypes) expect([t, storageBytes(t)]).toEqual([t, kernelStorageBytes(t)]);
});

describe('catalog ops on WebGPU vs the float64 interpreter', () => {
  for (const c of opCases) {
    it(`${c.name}`, async () => {
      const graph = tfxGraph(c.src);
      const plan = compile(graph);
      const s = await createSession(dev, plan);
      try {
        let loaded = false;
        const created = pipelineCreations(dev.device);
        for (const [B, T] of shapes) {
          const dims = new Map([
            ['B', B],
            ['T', T],
          ]);
          const inputs = new Map<string, Tensor64>();
          const weights = new Map<string, Tensor64>();
          let seed = 17 + B * 1000 + T;
          for (const n of graph.nodes) {
            if (n.op !== 'input' && n.op !== 'weight') continue;
            const isWeight = n.op === 'weight';
            // Weights are loaded once, so their values must not depend on the shape case.
            const t = tensorFor(n.type.dtype, declaredShape(n, dims), isWeight ? 5 : seed++);
            (isWeight ? weights : inputs).set(strAttr(n, 'name'), t);
          }
          const ref = interpret(graph, { inputs, weights });
          if (!loaded) {
            s.loadWeights(weights);
            loaded = true;
          }
          const r = await s.run(inputs);
          for (const [name, want] of ref.outputs) {
            const got = r.outputs.get(name);
            expect(got?.shape, `${name} at B=${B}, T=${T}`).toEqual(want.shape);
            // f32 kernels vs float64: 1e-4 relative (see relError for the floor near zero).
            expect(relError(got?.data ?? [], want), `${name} at B=${B}, T=${T}`).toBeLessThan(1e-4);
          }
        }
        expect(pipelineCreations(dev.device), 'changing B and T rebuilt pipelines').toBe(created);
      } finally {
        s.dispose();
      }
    });
  }
});
