// A decode step on the device dispatches what the plan says (dispatchedSteps at T = 1, the counts
// test/unit/kernel/decode-dispatches.test.ts pins), in one command buffer, and reuses every bind
// group except those that bind the cache: with the cache kept on the GPU (as generate does), each
// step's present K/V are new buffers, so the steps reading past or present (the attention split
// of each layer, which writes the cache itself; int8: the K/V and scale writes too) get new groups and the rest
// (weights, temps, uniforms) are reused.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { checkSource } from '../../src/check/check-source.js';
import { benchPlan, repoRoot } from '../../src/cli/bench.js';
import { randomWeights } from '../../src/cli/random.js';
import { neededTensors } from '../../src/io/check-tensors.js';
import { dispatchedSteps } from '../../src/kernel/plan/plan.js';
import type { AcquiredDevice } from '../../src/runtime/device.js';
import { type DeviceTensor, type HostTensor, createSession } from '../../src/runtime/session.js';
import { targetLimitsOf } from '../../src/runtime/target.js';
import { testDevice } from './helpers.js';

let dev: AcquiredDevice;
beforeAll(async () => {
  dev = await testDevice();
}, 240_000);

const set = { layers: 2, d: 64, heads: 2, vocab: 128, ctx: 64 };

describe('decode step dispatches on the device', () => {
  // [file, cache tensors per layer, groups created per layer and step]
  for (const [file, kinds, perLayer] of [
    ['gpt2-kv.tfx', ['key', 'value'], 1],
    ['gpt2-kv-int8.tfx', ['key', 'key_scale', 'value', 'value_scale'], 5],
  ] as const) {
    it(`${file}: lastDispatches equals the plan's decode steps; only the cache's bind groups are made anew`, { timeout: 600_000 }, async () => {
      const path = join(repoRoot, 'examples', 'variants', file);
      const text = readFileSync(path, 'utf8');
      const plan = benchPlan(text, path, new Map(Object.entries(set)), true, targetLimitsOf(dev));
      const s = await createSession(dev, plan);
      try {
        const checked = checkSource(text, path, new Map(Object.entries(set)));
        if (checked.graph === undefined) throw new Error('no graph');
        s.loadWeights(randomWeights(neededTensors(checked.graph), 5, new Map(), []));
        const names = Array.from({ length: set.layers }, (_, l) => kinds.map((k) => `${l}.${k}`)).flat();
        const dh = set.d / set.heads;
        let cache = new Map<string, HostTensor | DeviceTensor>(
          names.map((n) => [`past.${n}`, { dtype: n.endsWith('scale') ? 'f32' : file.includes('int8') ? 'i8' : 'f32', shape: [1, set.heads, 0, n.endsWith('scale') ? 1 : dh], data: [] }]),
        );
        let tokens = [3, 1, 4, 1, 5];
        const steps: { dispatches: number; created: number; reused: number }[] = [];
        for (let i = 0; i < 4; i++) {
          const r = await s.run(new Map([['tokens', { dtype: 'i32', shape: [1, tokens.length], data: tokens }], ...cache]), { keepOnDevice: names.map((n) => `present.${n}`) });
          for (const t of cache.values()) if ('buffer' in t) t.buffer.destroy();
          cache = new Map(names.map((n) => [`past.${n}`, r.deviceOutputs.get(`present.${n}`) as DeviceTensor]));
          expect(r.outputs.get('logits')?.data.every(Number.isFinite)).toBe(true);
          steps.push({ dispatches: s.stats.lastDispatches, created: s.stats.lastBindGroupsCreated, reused: s.stats.lastBindGroupsReused });
          tokens = [(i * 7) % set.vocab];
        }
        for (const t of cache.values()) if ('buffer' in t) t.buffer.destroy();
        const decode = dispatchedSteps(plan, new Map([['B', 1], ['T', 1], ['P', 6]])).length;
        // The prompt's run dispatches the prefill path; every decode step the decode path, and
        // only its steps get a bind group.
        expect(steps[0]?.dispatches).toBe(dispatchedSteps(plan, new Map([['B', 1], ['T', 5], ['P', 0]])).length);
        for (const st of steps.slice(1)) expect(st.dispatches).toBe(decode);
        // The first decode step makes its groups; from the second on only the cache's are new.
        for (const st of steps.slice(2)) expect(st).toEqual({ dispatches: decode, created: perLayer * set.layers, reused: decode - perLayer * set.layers });
      } finally {
        s.dispose();
      }
    });
  }
});
