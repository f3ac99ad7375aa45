// GQA/MQA in the fused attention kernel: a prefill workgroup, and a decode split-K workgroup (one
// cache partition), covers the G = Hq / Hkv query heads that share a KV head (its tile rows are
// (query row, head of the group) pairs), so K and V are read once per group. Llama's 5-D GQA view (examples/llama.tfx, G = 2) and multi-query attention
// (examples/variants/mqa.tfx, G = 4) run on WebGPU against the float64 interpreter, and the
// kernel's traffic formula reports K/V bytes = 1/G of one read per query head (a hand formula).
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkSource } from '../../src/check/check-source.js';
import { randomInputs, randomWeights } from '../../src/cli/random.js';
import type { Graph } from '../../src/graph/ir.js';
import { interpret } from '../../src/interp/interpret.js';
import { maxRelError } from '../../src/base/tensor.js';
import { neededTensors } from '../../src/io/check-tensors.js';
import { compilePlan } from '../../src/compile/plan.js';
import type { AttentionSchedule } from '../../src/kernel/attention/schedule.js';
import { evalSize, type Plan } from '../../src/kernel/plan/plan.js';
import { chooseSchedule, lavapipeLimits } from '../../src/kernel/schedule/schedule.js';
import { runPipeline } from '../../src/passes/driver.js';
import { createPassContext } from '../../src/passes/pass.js';
import { pipelines } from '../../src/passes/pipeline.js';
import type { AcquiredDevice } from '../../src/runtime/device.js';
import { createSession } from '../../src/runtime/session.js';
import { testDevice } from './helpers.js';

let dev: AcquiredDevice;
beforeAll(async () => {
  dev = await testDevice();
}, 240_000);
afterAll(() => dev.device.destroy());

// Schedules with staged K/V (read once per workgroup), written out: the hand traffic formulas
// below need their tile sizes, and the test must not follow a change of the defaults. (With
// `isDirect` each row group reads K/V itself, so grouping heads saves no requested bytes.)
const stagedTiles: AttentionSchedule = { tileRows: 32, tileCols: 32, lanes: 8, useSubgroups: true, splits: 32, decodeMaxT: 1, rowsPerThread: 8, shuffleP: true };
// The CPU's long-prompt schedule: 1024 rows (the G heads share them), Q in private arrays.
const longTiles: AttentionSchedule = { ...stagedTiles, tileRows: 1024, tileCols: 64, qInRegisters: true };
// Small tiles (8 rows = 4 query rows x 2 heads, or 2 x 4): several query and key tiles at T = 19.
const smallTiles: AttentionSchedule = { tileRows: 8, tileCols: 8, lanes: 8, useSubgroups: true, splits: 4, decodeMaxT: 1, rowsPerThread: 2, isDirect: true, shuffleP: true };

interface Model {
  readonly file: string;
  readonly config: ReadonlyMap<string, number>;
  readonly hq: number;
  readonly hkv: number;
  readonly dh: number;
  /** Run-time dims other than T (llama's KV cache length P). */
  readonly dims: Readonly<Record<string, number>>;
  /** The KV length S for a given T. */
  readonly S: (T: number) => number;
  /** Bytes read per Q element: 4 (f32), or Llama's RoPE at load: q[d], its rotate-half partner, cos, sin. */
  readonly qBytes: number;
}

const models: readonly Model[] = [
  { file: 'examples/llama.tfx', config: new Map([['layers', 1], ['d', 32], ['heads', 4], ['kv_heads', 2], ['vocab', 64], ['ffn', 48]]), hq: 4, hkv: 2, dh: 8, dims: { B: 1, P: 3 }, S: (T) => T + 3, qBytes: 16 },
  { file: 'examples/variants/mqa.tfx', config: new Map([['layers', 1], ['d', 32], ['heads', 4], ['vocab', 64], ['ctx', 64]]), hq: 4, hkv: 1, dh: 8, dims: { B: 2 }, S: (T) => T, qBytes: 4 },
];

function fusedGraph(m: Model): Graph {
  const r = checkSource(readFileSync(m.file, 'utf8'), m.file, m.config);
  if (r.graph === undefined) throw new Error(`${m.file} does not check`);
  return r.graph;
}

function compile(g: Graph, attention: AttentionSchedule | undefined, cacheWrite = true): Plan {
  // cacheWrite false leaves fuse-cache-write out: the attention then reads the cache's present
  // buffer (written by a kernel of its own) instead of past + the new row through a load lambda.
  const passes = cacheWrite ? pipelines.webgpu : pipelines.webgpu.filter((p) => p.name !== 'fuse-cache-write');
  const fused = runPipeline(g, passes, createPassContext({ target: 'webgpu', verify: true }));
  const n = fused.nodes.filter((x) => x.op === 'fused_attention');
  expect(n, 'one fused attention').toHaveLength(1);
  const base = chooseSchedule(lavapipeLimits);
  return compilePlan(fused, { target: lavapipeLimits, schedule: attention === undefined ? base : { ...base, attention } });
}

/** The attention steps (the matmuls have decode/prefill paths guarded by `when` as well). */
const attentionSteps = (plan: Plan): Plan['steps'] => plan.steps.filter((s) => s.kernel.includes('fused_attention'));

/** The prefill attention kernel: the step guarded by `T > 1` alone. */
function prefillKernel(plan: Plan): Plan['kernels'][number] {
  const step = attentionSteps(plan).find((s) => s.when?.op === '>' && s.when.value === 1 && s.when.and === undefined);
  const k = plan.kernels.find((x) => x.name === step?.kernel);
  if (k === undefined) throw new Error('no prefill attention step');
  return k;
}

describe('GQA/MQA: one workgroup per KV head group', () => {
  for (const m of models) {
    const G = m.hq / m.hkv;
    // longTiles: the long-prompt kernel (1024 rows, Q in registers; Llama's Q computed by RoPE at load).
    // At T = 1 the decode split kernel runs with each schedule: direct ones (lavapipe's, 8-row)
    // give a thread the group's heads as its rows (8-row: at most 2, so MQA splits G = 4 in 2 x 2),
    // staged and long-prompt ones a row group per head.
    for (const [label, schedule] of [['tiles chosen for lavapipe', undefined], ['8-row tiles', smallTiles], ['staged tiles', stagedTiles], ['long-prompt tiles', longTiles]] as const) {
      it(`${m.file} (G = ${G}, ${label}) matches the float64 interpreter at T = 19 and 1`, async () => {
        const g = fusedGraph(m);
        const s = await createSession(dev, compile(g, schedule));
        try {
          const needed = neededTensors(g);
          for (const T of [19, 1]) {
            const dims = new Map(Object.entries({ ...m.dims, T }));
            const weights = randomWeights(needed, 5, dims, []);
            const inputs = randomInputs(g, needed, 6 + T, dims, []);
            s.loadWeights(weights);
            const want = interpret(g, { inputs, weights }).outputs;
            const got = (await s.run(inputs)).outputs;
            for (const [name, w] of want) {
              const a = got.get(name);
              if (a === undefined) throw new Error(`missing ${name}`);
              // f32 kernels vs float64: 1e-4 relative (floor 1e-3 of the output's scale).
              const floor = 1e-3 * Math.max(1e-30, ...Array.from(w.data, Math.abs));
              expect(maxRelError({ dtype: 'f32', shape: a.shape, data: Float64Array.from(a.data) }, w, floor), `${name} at T=${T}`).toBeLessThan(1e-4);
            }
          }
        } finally {
          s.dispose();
        }
      }, 240_000);
    }

    it(`${m.file}: the prefill kernel reads K and V once per group of ${G} query heads`, () => {
      const k = prefillKernel(compile(fusedGraph(m), stagedTiles));
      const { dh } = m;
      const Br = stagedTiles.tileRows;
      for (const T of [32, 64, 19, 1000]) {
        const B = m.dims['B'] ?? 1;
        const S = m.S(T);
        const dims = new Map(Object.entries({ ...m.dims, T }));
        // Hand formula, f32: Q read once, K and V once per tile of Br query rows of the G heads
        // of a KV head (Br * G <= 128 rows fit lavapipe at dh = 8), O written once:
        //   read  = qBytes*B*Hq*T*dh + 4*B*Hkv*ceil(T/Br)*S*(dh + dh),  write = 4*B*Hq*T*dh
        const q = m.qBytes * B * m.hq * T * dh;
        const kv = 4 * B * m.hkv * Math.ceil(T / Br) * S * 2 * dh;
        expect(evalSize(k.bytesRead, dims), `T=${T}`).toBe(q + kv);
        expect(evalSize(k.bytesWritten, dims), `T=${T}`).toBe(4 * B * m.hq * T * dh);
        // 1/G of one K/V read per query head and query tile (the kernel before grouping).
        expect(kv * G).toBe(4 * B * m.hq * Math.ceil(T / Br) * S * 2 * dh);
      }
    });

    for (const [label, schedule] of [['tiles chosen for lavapipe (direct: the G heads are one thread\'s rows)', undefined], ['staged tiles (a row group per head)', stagedTiles]] as const) {
      it(`${m.file}: the decode split kernel reads K and V once per group of ${G} query heads (${label})`, () => {
        const plan = compile(fusedGraph(m), schedule, false);
        const step = attentionSteps(plan).find((x) => x.when?.op === '<=' && x.when.value === 1);
        const k = plan.kernels.find((x) => x.name === step?.kernel);
        if (k === undefined) throw new Error('no decode split step');
        const { dh } = m;
        // 32 partitions: stagedTiles' and lavapipe's chosen schedule's.
        const splits = 32;
        // Llama decodes against a cache of P keys (S = P + 1); MQA has no cache (S = T = 1).
        for (const P of 'P' in m.dims ? [0, 5, 100] : [0]) {
          const B = m.dims['B'] ?? 1;
          const Sx = P + 1;
          const dims = new Map(Object.entries({ ...m.dims, ...('P' in m.dims ? { P } : {}), T: 1 }));
          // Hand formula, f32, one query row: Q read once, K and V of the whole cache once per
          // KV head (one workgroup per partition x KV head x batch), partials written:
          //   read = qBytes*B*Hq*dh + 4*B*Hq*S*(dh + dh) / G,  write = 4*B*Hq*splits*(dh + 2)
          const perHead = 4 * B * m.hq * Sx * 2 * dh;
          expect(evalSize(k.bytesRead, dims), `P=${P}`).toBe(m.qBytes * B * m.hq * dh + perHead / G);
          expect(evalSize(k.bytesWritten, dims), `P=${P}`).toBe(4 * B * m.hq * splits * (dh + 2));
          // With fuse-cache-write (the default pipeline) the same kernel also writes the K cache's
          // present rows, once per KV head (Llama's V keeps its write kernel: binding budget).
          // Its reads are not checked here: the traffic model counts both branches of the K
          // load's lazy where (past row or RoPE of the new row) for every key, an overcount.
          if ('P' in m.dims) {
            const withWrite = compile(fusedGraph(m), schedule);
            const ws = attentionSteps(withWrite).find((x) => x.when?.op === '<=' && x.when.value === 1);
            const wk = withWrite.kernels.find((x) => x.name === ws?.kernel);
            if (wk === undefined) throw new Error('no decode split step with the cache write');
            expect(evalSize(wk.bytesWritten, dims), `P=${P}`).toBe(4 * B * m.hq * splits * (dh + 2) + 4 * B * m.hkv * Sx * dh);
          }
        }
      });
    }

    it(`${m.file}: the long-prompt schedule reads K and V once per KV head up to T = ${1024 / G}`, () => {
      const k = prefillKernel(compile(fusedGraph(m), longTiles));
      const { dh } = m;
      for (const T of [19, 1024 / G, 1000]) {
        const B = m.dims['B'] ?? 1;
        const S = m.S(T);
        const dims = new Map(Object.entries({ ...m.dims, T }));
        // 1024 rows = 1024 / G query rows x G heads per workgroup:
        //   read = qBytes*B*Hq*T*dh + 4*B*Hkv*ceil(T / (1024 / G))*S*(dh + dh)
        const tiles = Math.ceil(T / (1024 / G));
        expect(evalSize(k.bytesRead, dims), `T=${T}`).toBe(m.qBytes * B * m.hq * T * dh + 4 * B * m.hkv * tiles * S * 2 * dh);
        if (T <= 1024 / G) expect(tiles).toBe(1); // Q, K, V each read once: the lower bound
      }
    });
  }
});
