// The subgroup-broadcast matmul (MatmulSchedule.laneBroadcast, src/kernel/matmul/lanes.ts) on
// WebGPU against the float64 interpreter: random legal schedules (tile rows, columns per lane, K
// step, raster order, scalar or vector loads) over small odd shapes, for every operand form the
// lowering distinguishes: plain, transposed weight (B contiguous along K), batched with a
// broadcast weight, batched B, A read through a head-merging view, a fused epilogue reading other
// tensors, and the layernorm / rmsnorm folds (layernorm rows at mean 100, std 1). The decode-step
// kernel (MatmulSchedule.kLanes, src/kernel/matmul/gemv.ts) runs the same cases.
import { describe, beforeAll, expect, it } from 'vitest';
import { checkSource } from '../../src/check/check-source.js';
import type { Graph } from '../../src/graph/ir.js';
import { interpret } from '../../src/interp/interpret.js';
import { maxRelError, type Tensor64 } from '../../src/base/tensor.js';
import { makeRng } from '../../src/cli/random.js';
import { compilePlan } from '../../src/compile/plan.js';
import { lowerToKernels } from '../../src/kernel/lower/lower.js';
import { type MatmulSchedule, chooseSchedule, decodeScheduleFor, gemvTemplate, lavapipeLimits, specializeMatmul, streamTemplate } from '../../src/kernel/schedule/schedule.js';
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

/** f32-representable values mean + std * uniform(-1, 1) * sqrt(3), from a seed. */
function tensor(shape: number[], seed: number, mean = 0, std = 1): Tensor64 {
  const rng = makeRng(seed);
  const data = new Float64Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < data.length; i++) data[i] = Math.fround(mean + std * Math.sqrt(3) * (2 * rng() - 1));
  return { dtype: 'f32', shape, data };
}

interface Case {
  readonly name: string;
  readonly src: string;
  /** name -> shape (and mean) of every input/weight. */
  readonly tensors: Record<string, { shape: number[]; mean?: number }>;
}

const L = lavapipeLimits.subgroupSize;

function cases(M: number, K: number, N: number): Case[] {
  const t = (name: string, shape: number[], mean?: number): [string, { shape: number[]; mean?: number }] => [name, mean === undefined ? { shape } : { shape, mean }];
  const io = (decls: string, body: string): string => `${decls}\nmodel m {\n  ${body}\n}\n`;
  return [
    { name: 'plain', src: io(`input a: f32[${M}, ${K}]\ninput w: f32[${K}, ${N}]\noutput y: f32[${M}, ${N}]`, 'y = a @ w'), tensors: Object.fromEntries([t('a', [M, K]), t('w', [K, N])]) },
    {
      name: 'transposed weight',
      src: io(`input a: f32[${M}, ${K}]\ninput w: f32[${N}, ${K}]\noutput y: f32[${M}, ${N}]`, 'y = a @ transpose(w)'),
      tensors: Object.fromEntries([t('a', [M, K]), t('w', [N, K])]),
    },
    {
      name: 'batched, broadcast weight',
      src: io(`input a: f32[2, ${M}, ${K}]\ninput w: f32[${K}, ${N}]\noutput y: f32[2, ${M}, ${N}]`, 'y = a @ w'),
      tensors: Object.fromEntries([t('a', [2, M, K]), t('w', [K, N])]),
    },
    {
      name: 'batched B',
      src: io(`input a: f32[2, 3, ${M}, ${K}]\ninput w: f32[2, 1, ${K}, ${N}]\noutput y: f32[2, 3, ${M}, ${N}]`, 'y = a @ w'),
      tensors: Object.fromEntries([t('a', [2, 3, M, K]), t('w', [2, 1, K, N])]),
    },
    {
      // [B, H, T, dh] -> [B, T, H * dh] then a projection: A is a view whose K index is h * dh + d.
      name: 'A through a head-merging view',
      src: io(`input x: f32[2, 2, ${M}, ${K}]\ninput w: f32[${2 * K}, ${N}]\noutput y: f32[2, ${M}, ${N}]`, `y = reshape(permute(x, [0, 2, 1, 3]), [2, ${M}, ${2 * K}]) @ w`),
      tensors: Object.fromEntries([t('x', [2, 2, M, K]), t('w', [2 * K, N])]),
    },
    {
      name: 'epilogue: bias, gelu, residual',
      src: io(`input a: f32[${M}, ${K}]\ninput w: f32[${K}, ${N}]\ninput b: f32[${N}]\ninput r: f32[${M}, ${N}]\noutput y: f32[${M}, ${N}]`, 'y = r + gelu(a @ w + b, approx="tanh")'),
      tensors: Object.fromEntries([t('a', [M, K]), t('w', [K, N]), t('b', [N]), t('r', [M, N])]),
    },
    {
      name: 'layernorm fold at mean 100',
      src: io(`input a: f32[${M}, ${K}]\ninput g: f32[${K}]\ninput be: f32[${K}]\ninput w: f32[${K}, ${N}]\ninput b: f32[${N}]\noutput y: f32[${M}, ${N}]`, 'y = layernorm(a, g, be) @ w + b'),
      tensors: Object.fromEntries([t('a', [M, K], 100), t('g', [K], 1), t('be', [K]), t('w', [K, N]), t('b', [N])]),
    },
    {
      name: 'rmsnorm fold, transposed weight',
      src: io(`input a: f32[${M}, ${K}]\ninput g: f32[${K}]\ninput w: f32[${N}, ${K}]\noutput y: f32[${M}, ${N}]`, 'y = rmsnorm(a, g) @ transpose(w)'),
      tensors: Object.fromEntries([t('a', [M, K], 0.5), t('g', [K], 1), t('w', [N, K])]),
    },
  ];
}

function fusedGraph(src: string): Graph {
  const r = checkSource(src, 'lanes.tfx');
  if (r.graph === undefined) throw new Error(`no graph: ${r.diagnostics.map((d) => d.message).join('; ')}`);
  return runPipeline(r.graph, pipelines.webgpu, createPassContext({ target: 'webgpu', verify: true }));
}

/**
 * A random legal schedule for the matmul node of `g`: lane-broadcast or K split across lanes
 * (vector loads only where legal, each dropped at random).
 */
function randomSchedule(g: Graph, rng: () => number, kind: 'lanes' | 'kLanes' | 'kSplit'): MatmulSchedule {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rng() * xs.length)] as T;
  let base: MatmulSchedule;
  if (kind === 'lanes') {
    const threadCols = pick([1, 2, 3, 4, 8]);
    const rows = L * pick([1, 2, 3]);
    base = { tileRows: rows, tileCols: L * threadCols, tileK: pick([1, 2, 4, 8]), threadRows: rows, threadCols, laneBroadcast: true, rowsFirst: rng() < 0.5, normFold: pick(['inline', 'separate'] as const) };
  } else if (kind === 'kSplit') {
    const rows = pick([1, 2, 3]);
    const cols = 4 * L * pick([1, 2, 3]);
    base = { tileRows: rows, tileCols: cols, tileK: pick([1, 3, 8, 32]), threadRows: rows, threadCols: cols / L, kSplit: true, normFold: pick(['inline', 'separate'] as const) };
  } else {
    const rows = pick([1, 2, 3]);
    const cols = pick([1, 4, 5, 8, 12]);
    // tileK must divide K here (no scalar tail): 1 always does; the template's 4 where K allows.
    base = { tileRows: rows, tileCols: cols, tileK: 4, threadRows: rows, threadCols: cols, kLanes: true };
  }
  const mm = g.nodes.find((n) => n.op === 'matmul' || n.op === 'fused_matmul');
  if (mm === undefined) throw new Error('no matmul');
  // 'separate' needs A as a plain buffer (the norm kernel reads rows contiguously); the cases
  // with a norm have one, but a view A falls back to 'inline'.
  if (base.normFold === 'separate' && g.nodes[mm.operands[0] ?? -1]?.op === 'view') base = { ...base, normFold: 'inline' };
  // The chooser's legal vector widths, each dropped to scalar loads at random.
  const legal = specializeMatmul(g, mm, base);
  return { ...legal, aVector: rng() < 0.7 ? (legal.aVector ?? 1) : 1, bVector: rng() < 0.7 ? (legal.bVector ?? 1) : 1 };
}

async function run(g: Graph, c: Case, matmul: MatmulSchedule | undefined): Promise<{ got: Tensor64; schedules: string[] }> {
  // A forced schedule applies to every M (no decode path); the default keeps the chooser's both.
  const { decodeMatmul, ...forced } = chooseSchedule(lavapipeLimits);
  const base = matmul === undefined ? { ...forced, ...(decodeMatmul !== undefined ? { decodeMatmul } : {}) } : forced;
  const program = lowerToKernels(g, lavapipeLimits, matmul === undefined ? base : { ...base, matmul });
  const plan = compilePlan(g, { target: lavapipeLimits, program });
  const s = await createSession(dev, plan);
  try {
    let seed = 11;
    const feeds = new Map(Object.entries(c.tensors).map(([name, t]) => [name, tensor(t.shape, seed++, t.mean ?? 0)]));
    const r = await s.run(feeds);
    const y = r.outputs.get('y');
    if (y === undefined) throw new Error('no output y');
    const schedules = program.kernels.filter((k) => k.schedule.kind === 'tiled_matmul').map((k) => JSON.stringify(k.schedule));
    return { got: { dtype: 'f32', shape: y.shape, data: Float64Array.from(y.data) }, schedules };
  } finally {
    s.dispose();
  }
}

function reference(c: Case): Tensor64 {
  const r = checkSource(c.src, 'lanes.tfx');
  if (r.graph === undefined) throw new Error('no graph');
  let seed = 11;
  const inputs = new Map(Object.entries(c.tensors).map(([name, t]) => [name, tensor(t.shape, seed++, t.mean ?? 0)]));
  const y = interpret(r.graph, { inputs, weights: new Map() }).outputs.get('y');
  if (y === undefined) throw new Error('no reference');
  return y;
}

describe('subgroup-broadcast matmul vs float64', () => {
  // Odd M, N (partial row and column tiles, lanes past N), K not a multiple of 4 (scalar tail)
  // and K a multiple of 8 (vector loads legal); M = 1 (a decode step).
  const shapes: readonly [number, number, number][] = [
    [19, 12, 13],
    [7, 5, 9],
    [1, 8, 20],
  ];
  let seed = 1;
  for (const [M, K, N] of shapes) {
    for (const c of cases(M, K, N)) {
      it(`${c.name}, M=${M} K=${K} N=${N}: the default and 3 random legal schedules within 1e-4`, async () => {
        const g = fusedGraph(c.src);
        const want = reference(c);
        const floor = 1e-3 * Math.max(...Array.from(want.data, Math.abs));
        const rng = makeRng(seed++);
        // kSplit needs a 2-D weight contiguous along N in runs of 4 (N = 20 here; not 13 or 9).
        const mm = g.nodes.find((x) => x.op === 'matmul' || x.op === 'fused_matmul');
        const streamable = mm !== undefined && decodeScheduleFor(g, mm, { maxRows: 1, schedule: gemvTemplate(), streaming: streamTemplate(L) }).kSplit === true;
        const chosen = [undefined, randomSchedule(g, rng, 'lanes'), randomSchedule(g, rng, 'kLanes'), randomSchedule(g, rng, streamable ? 'kSplit' : 'kLanes')];
        for (const matmul of chosen) {
          const { got, schedules } = await run(g, c, matmul);
          // One matmul kernel (M is a constant here): lavapipe's default is the lane schedule, or
          // the K-split one for a single row (every batched case has M > 1 rows per matrix or batch).
          expect(schedules.length).toBe(1);
          const rows = c.name.startsWith('batched B') ? M : c.name.startsWith('batched') || c.name.startsWith('A through') ? 2 * M : M;
          const kind = matmul === undefined ? (rows <= 1 ? (streamable ? 'kSplit' : 'kLanes') : 'laneBroadcast') : matmul.kLanes === true ? 'kLanes' : matmul.kSplit === true ? 'kSplit' : 'laneBroadcast';
          expect(schedules[0]).toContain(`"${kind}":true`);
          // f32 vs float64 over K <= 24 terms: 1e-4 relative, floor 1e-3 of the output scale.
          const err = maxRelError(got, want, floor);
          expect(err, `schedule ${schedules[0] ?? '?'}`).toBeLessThan(1e-4);
        }
      }, 240_000);
    }
  }
});
