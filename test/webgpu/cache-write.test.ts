// The KV cache written by the attention kernel itself (src/passes/fuse-cache-write.ts,
// kernel/attention/present.ts): gpt2-kv.tfx prefills 70 tokens (the prefill path: the cache
// write is a map kernel guarded by T > decodeMaxT) then decodes 3 steps (T = 1: the split-K
// kernel's partitions write present, no K/V write kernel), each step fed the previous step's
// present, on WebGPU against the float64 interpreter of the unfused graph fed its own cache:
// logits and every present within 1e-4. 70 keys span several partitions on both plans (64-key
// tiles on lavapipe, 32 under the default limits), so more than one partition writes. The
// schedule switch (writesCache false: the map kernel on every path) gives the same numbers. A
// sliding window of 5 (the mask edited in) lets block sparsity skip the early key tiles: their
// partitions still write their cache rows.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Tensor64 } from '../../src/base/tensor.js';
import { checkSource } from '../../src/check/check-source.js';
import { randomWeights } from '../../src/cli/random.js';
import { compilePlan } from '../../src/compile/plan.js';
import type { Diagnostic } from '../../src/diag/diagnostic.js';
import { interpret } from '../../src/interp/interpret.js';
import { neededTensors } from '../../src/io/check-tensors.js';
import { chooseAttentionSchedule } from '../../src/kernel/attention/schedule.js';
import { dispatchedSteps } from '../../src/kernel/plan/plan.js';
import { type TargetLimits, chooseSchedule, webgpuDefaultLimits } from '../../src/kernel/schedule/schedule.js';
import { runPipeline } from '../../src/passes/driver.js';
import { createPassContext } from '../../src/passes/pass.js';
import { pipelines } from '../../src/passes/pipeline.js';
import type { AcquiredDevice } from '../../src/runtime/device.js';
import { type HostTensor, createSession } from '../../src/runtime/session.js';
import { targetLimitsOf } from '../../src/runtime/target.js';
import { relError } from '../helpers/tensors.js';
import { testDevice } from './helpers.js';

const FILE = 'examples/variants/gpt2-kv.tfx';
const config = { vocab: 64, ctx: 128, d: 32, heads: 2, layers: 2 };
const PROMPT = 70;
const STEPS = 3;

let dev: AcquiredDevice;
beforeAll(async () => {
  dev = await testDevice();
});
afterAll(() => dev.device.destroy());

const causal = readFileSync(FILE, 'utf8');
// At P = 70..73 a window of 5 sees keys 66..73: the first key tile (64 keys on lavapipe, two of 32
// under the default limits) is skipped by every query of the decode step.
const WINDOW = 5;
const windowed = causal.replace('causal = grid[T, P + T](qi, ki) => ki <= qi + P', `causal = grid[T, P + T](qi, ki) => ki <= qi + P && qi + P - ki < ${WINDOW}`);

/** The checked model (float64 reference), its fused graph and seeded weights. */
function model(text: string) {
  const r = checkSource(text, FILE, new Map(Object.entries(config)));
  if (r.graph === undefined) throw new Error(r.diagnostics.map((d) => d.message).join('; '));
  const ds: Diagnostic[] = [];
  const weights = randomWeights(neededTensors(r.graph), 5, new Map(), ds);
  expect(ds).toEqual([]);
  return { source: r.graph, fused: runPipeline(r.graph, pipelines.webgpu, createPassContext({ target: 'webgpu' })), weights };
}

const tokens = (n: number, seed: number): Tensor64 => ({ dtype: 'i32', shape: [1, n], data: Float64Array.from({ length: n }, (_, i) => (i * 37 + seed * 11) % config.vocab) });

describe('gpt2-kv decode with the cache written by the attention kernel (WebGPU vs float64)', () => {
  it('the fused graph has the K/V writes as attention results and no present fused_map; the window edit took', () => {
    const { fused } = model(causal);
    expect(fused.nodes.filter((n) => n.op === 'fused_attention_k')).toHaveLength(config.layers);
    expect(fused.nodes.filter((n) => n.op === 'fused_attention_v')).toHaveLength(config.layers);
    for (const o of fused.outputs.filter((x) => x.name.startsWith('present.'))) expect(fused.nodes[o.value]?.op).toMatch(/^fused_attention_[kv]$/);
    expect(windowed).not.toBe(causal);
  });

  const cases: readonly [string, string, () => TargetLimits, boolean][] = [
    ['causal, device limits (lavapipe)', causal, () => targetLimitsOf(dev), true],
    ['causal, --limits default', causal, () => webgpuDefaultLimits, true],
    ['causal, device limits, writesCache false', causal, () => targetLimitsOf(dev), false],
    [`window ${WINDOW}, device limits (lavapipe)`, windowed, () => targetLimitsOf(dev), true],
    [`window ${WINDOW}, --limits default`, windowed, () => webgpuDefaultLimits, true],
  ];
  it.each(cases)('%s: prefill then 3 decode steps match the interpreter (1e-4)', { timeout: 300_000 }, async (_name, text, limitsOf, writes) => {
    const { source, fused, weights } = model(text);
    const limits = limitsOf();
    const attention = { ...chooseAttentionSchedule(limits, 16, 16), writesCache: writes };
    const plan = compilePlan(fused, { target: limits, schedule: { ...chooseSchedule(limits), attention } });
    // At T = 1 the attention's kernels are its split and combine (writes) or those plus one map
    // kernel per cache and layer (the switch off; layers share kernels, so names repeat).
    const decode = dispatchedSteps(plan, new Map([['B', 1], ['T', 1], ['P', PROMPT]])).map((s) => s.kernel).filter((k) => k.startsWith('attention_'));
    expect(decode.filter((k) => k.includes('fused_map'))).toHaveLength(writes ? 0 : 2 * config.layers);
    const s = await createSession(dev, plan);
    try {
      s.loadWeights(weights);
      const empty: Tensor64 = { dtype: 'f32', shape: [1, config.heads, 0, 16], data: new Float64Array(0) };
      const names = Array.from({ length: config.layers }, (_, l) => [`past.${l}.key`, `past.${l}.value`]).flat();
      let pastGpu = new Map<string, HostTensor>(names.map((n) => [n, empty]));
      let pastRef = new Map<string, Tensor64>(names.map((n) => [n, empty]));
      for (let step = 0; step <= STEPS; step++) {
        const tok = tokens(step === 0 ? PROMPT : 1, step);
        const got = (await s.run(new Map<string, HostTensor>([['tokens', tok], ...pastGpu]))).outputs;
        const want = interpret(source, { inputs: new Map([['tokens', tok], ...pastRef]), weights }).outputs;
        for (const [name, w] of want) {
          const g = got.get(name);
          expect(g?.shape, `step ${step} ${name}`).toEqual(w.shape);
          expect(relError(g?.data ?? [], w), `step ${step} ${name}`).toBeLessThanOrEqual(1e-4);
        }
        const next = (o: ReadonlyMap<string, unknown>): [string, string][] => [...o.keys()].filter((n) => n.startsWith('present.')).map((n) => [`past.${n.slice('present.'.length)}`, n]);
        pastGpu = new Map(next(got).map(([p, n]) => [p, got.get(n) as HostTensor]));
        pastRef = new Map(next(want).map(([p, n]) => [p, want.get(n) as Tensor64]));
      }
    } finally {
      s.dispose();
    }
  });
});
