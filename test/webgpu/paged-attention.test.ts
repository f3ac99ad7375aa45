// A paged KV cache (examples/variants/gpt2-paged.tfx) against PyTorch: the batched-decode oracle
// (test/oracle/batched_oracle.py: each sequence alone, rows of 5, 0 and 11 cached tokens) gives
// per-row caches of S = 32 slots; here they are cut into pages and scattered over a pool in a
// shuffled order, with one page free (noise, owned by no row). The interpreter must match within
// 1e-6 and WebGPU (the attention reading K and V through the page table in its loads:
// `kload`/`vload`, no gathered history) within 1e-4, for one new token (split-K decode) and two.
// Two layouts: the whole history in pages of 16; and a sliding window of 6 in pages of 4 where
// the pages before each row's window are not in the pool at all (row 2's table starts at its
// logical page 1: first_page = 1), as generatePaged leaves them after freeing.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { checkSource } from '../../src/check/check-source.js';
import { compilePlan } from '../../src/compile/plan.js';
import type { Graph } from '../../src/graph/ir.js';
import { printType } from '../../src/graph/types.js';
import { interpret } from '../../src/interp/interpret.js';
import type { Tensor64 } from '../../src/base/tensor.js';
import { runPipeline } from '../../src/passes/driver.js';
import { createPassContext } from '../../src/passes/pass.js';
import { pipelines } from '../../src/passes/pipeline.js';
import { createSession } from '../../src/runtime/session.js';
import { targetLimitsOf } from '../../src/runtime/target.js';
import { readOracle, relError as oracleError, runOracle, torchMissingReason } from '../oracle/oracle.js';
import { relError } from '../helpers/tensors.js';
import { testDevice } from './helpers.js';

const noTorch = torchMissingReason() !== undefined;
const [H, DH, L, S] = [4, 16, 2, 32];
const LENGTHS = [5, 0, 11];
const B = LENGTHS.length;

interface Layout {
  readonly name: string;
  readonly page: number;
  readonly window?: number;
  /** Per row: its first logical page in the table, and the physical pages of its logical pages from there on. */
  readonly first: readonly number[];
  readonly placement: readonly (readonly number[])[];
  readonly pages: number;
}

const layouts: readonly Layout[] = [
  // Pages of 16: two per row (S = 32); page 3 is free.
  { name: 'whole history, pages of 16', page: 16, first: [0, 0, 0], placement: [[4, 0], [6, 2], [1, 5]], pages: 7 },
  // Window 6, pages of 4: a row keeps the pages from (lengths - 6 + 1) / 4 on, up to its last new
  // token (T <= 2): row 0 logical pages 0-1, row 1 page 0, row 2 pages 1-3 (its page 0, positions
  // 0-3, is gone). Page 2 is free.
  { name: 'window 6, pages of 4, pages before the window dropped', page: 4, window: 6, first: [0, 0, 1], placement: [[5, 0], [3], [6, 1, 4]], pages: 7 },
];

/** Row-slot caches [B, H, S, DH] -> a pool [NP, H, page, DH] by the layout; free pages keep `fill`. */
function toPool(t: Tensor64, lay: Layout, fill: (i: number) => number): Tensor64 {
  const { page, pages } = lay;
  const data = Float64Array.from({ length: pages * H * page * DH }, (_, i) => fill(i));
  for (let b = 0; b < B; b++)
    (lay.placement[b] ?? []).forEach((p, i) => {
      const logical = (lay.first[b] ?? 0) + i;
      for (let h = 0; h < H; h++)
        for (let o = 0; o < page; o++)
          for (let e = 0; e < DH; e++) data[((p * H + h) * page + o) * DH + e] = t.data[((b * H + h) * S + logical * page + o) * DH + e] ?? NaN;
    });
  return { dtype: t.dtype, shape: [pages, H, page, DH], data };
}

function pagedInputs(dir: string, lay: Layout): { weights: Map<string, Tensor64>; inputs: Map<string, Tensor64>; expected: Map<string, Tensor64> } {
  const o = readOracle(dir);
  const inputs = new Map<string, Tensor64>();
  const MP = Math.max(...lay.placement.map((p) => p.length));
  // Rows with fewer pages repeat their last one (masked, as PageAllocator.tables pads).
  const table = Float64Array.from(lay.placement.flatMap((p) => Array.from({ length: MP }, (_, i) => p[Math.min(i, p.length - 1)] ?? 0)));
  inputs.set('tokens', o.inputs.get('tokens') as Tensor64);
  inputs.set('lengths', o.inputs.get('lengths') as Tensor64);
  inputs.set('table', { dtype: 'i32', shape: [B, MP], data: table });
  inputs.set('first_page', { dtype: 'i32', shape: [B], data: Float64Array.from(lay.first) });
  const noise = (i: number): number => Math.fround(Math.sin(i * 12.9898) * 3);
  const expected = new Map<string, Tensor64>([['logits', o.expected.get('logits') as Tensor64]]);
  for (let l = 0; l < L; l++)
    for (const kv of ['key', 'value']) {
      inputs.set(`past.${l}.${kv}`, toPool(o.inputs.get(`past.${l}.${kv}`) as Tensor64, lay, noise));
      expected.set(`present.${l}.${kv}`, toPool(o.expected.get(`present.${l}.${kv}`) as Tensor64, lay, noise));
    }
  return { weights: o.weights, inputs, expected };
}

function graph(lay: Layout): Graph {
  const file = 'examples/variants/gpt2-paged.tfx';
  const config = { layers: 2, d: 64, heads: 4, vocab: 256, ctx: 64, page: lay.page, ...(lay.window !== undefined ? { window: lay.window } : {}) };
  const r = checkSource(readFileSync(file, 'utf8'), file, new Map(Object.entries(config)));
  if (r.graph === undefined) throw new Error(r.diagnostics.map((d) => d.message).join('; '));
  return r.graph;
}

describe('paged KV cache: pages scattered over a pool, read through the page table', () => {
  for (const lay of layouts)
    for (const T of [1, 2]) {
      it.skipIf(noTorch)(`${lay.name}: matches PyTorch (rows of 5, 0, 11 tokens, T=${T}): interpreter 1e-6, WebGPU 1e-4, K and V read in the attention kernel`, { timeout: 600_000 }, async () => {
        const window = lay.window === undefined ? [] : ['--window', String(lay.window)];
        const dir = runOracle('batched_oracle.py', ['--seed', '8', '--layers', '2', '--d', '64', '--heads', '4', '--vocab', '256', '--ctx', '64', '--lengths', LENGTHS.join(','), '--new', String(T), '--slots', String(S), ...window]);
        const { weights, inputs, expected } = pagedInputs(dir, lay);
        const g = graph(lay);
        const ref = interpret(g, { inputs, weights }).outputs;
        for (const [name, want] of expected) {
          const got = ref.get(name);
          if (got === undefined) throw new Error(`no output ${name}`);
          expect(oracleError(got, want), `interpreter ${name}`).toBeLessThanOrEqual(1e-6); // max |tfc - torch| / max |torch|, as test/e2e/oracle.test.ts
        }
        const fused = runPipeline(g, pipelines.webgpu, createPassContext({ target: 'webgpu' }));
        // The attention reads the pool itself: K and V come from kload/vload, no gathered history.
        const attn = fused.nodes.filter((n) => n.op === 'fused_attention');
        expect(attn).toHaveLength(L);
        for (const a of attn) {
          expect(a.attrs['kload']).toBeDefined();
          expect(a.attrs['vload']).toBeDefined();
          // The kernel reads the pools themselves [NP, H, page, dh], never a gathered [B, H, MP * page, dh] history.
          const types = a.operands.map((o) => printType(fused.nodes[o]?.type ?? { dtype: 'f32', shape: [] }));
          expect(types).toContain(`f32[NP,4,${lay.page},16]`);
          expect(types.filter((t) => t.startsWith('f32') && t.includes('MP'))).toEqual([]);
        }
        const dev = await testDevice();
        const s = await createSession(dev, compilePlan(fused, { target: targetLimitsOf(dev) }));
        try {
          s.loadWeights(weights);
          const got = (await s.run(inputs)).outputs;
          for (const [name, want] of expected) {
            const err = relError(got.get(name)?.data ?? [], want);
            console.log(`gpt2-paged (${lay.name}) T=${T} ${name}: max rel error ${err.toExponential(2)}`);
            expect(err, `WebGPU ${name}`).toBeLessThanOrEqual(1e-4);
          }
        } finally {
          s.dispose();
        }
      });
    }
});
