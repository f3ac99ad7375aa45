// A paged KV cache (examples/variants/gpt2-paged.tfx) against PyTorch: the batched-decode oracle
// (test/oracle/batched_oracle.py: each sequence alone, rows of 5, 0 and 11 cached tokens) gives
// per-row caches of S = 32 slots; here they are cut into pages of 16 and scattered over a pool of
// 7 pages in a shuffled order, with one page free (noise, owned by no row). The interpreter must
// match within 1e-6 and WebGPU (the attention reading K and V through the page table in its loads:
// `kload`/`vload`, no gathered history) within 1e-4, for one new token (split-K decode) and two.
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
const config = { layers: 2, d: 64, heads: 4, vocab: 256, ctx: 64 };
const [H, DH, PAGE, MP, L] = [4, 16, 16, 2, 2];
const LENGTHS = [5, 0, 11];
const B = LENGTHS.length;
// Physical page of row b's logical page i; page 3 is free.
const placement = [
  [4, 0],
  [6, 2],
  [1, 5],
];
const NP = 7;

/** Row-slot caches [B, H, S, DH] -> a pool [NP, H, PAGE, DH] by `placement`; free pages keep `fill`. */
function toPool(t: Tensor64, fill: (i: number) => number): Tensor64 {
  const data = Float64Array.from({ length: NP * H * PAGE * DH }, (_, i) => fill(i));
  const S = MP * PAGE;
  for (let b = 0; b < B; b++)
    for (let i = 0; i < MP; i++) {
      const p = placement[b]?.[i] ?? -1;
      for (let h = 0; h < H; h++)
        for (let o = 0; o < PAGE; o++)
          for (let e = 0; e < DH; e++) data[((p * H + h) * PAGE + o) * DH + e] = t.data[((b * H + h) * S + i * PAGE + o) * DH + e] ?? NaN;
    }
  return { dtype: t.dtype, shape: [NP, H, PAGE, DH], data };
}

function pagedInputs(dir: string): { weights: Map<string, Tensor64>; inputs: Map<string, Tensor64>; expected: Map<string, Tensor64> } {
  const o = readOracle(dir);
  const inputs = new Map<string, Tensor64>();
  const table = Float64Array.from(placement.flat());
  inputs.set('tokens', o.inputs.get('tokens') as Tensor64);
  inputs.set('lengths', o.inputs.get('lengths') as Tensor64);
  inputs.set('table', { dtype: 'i32', shape: [B, MP], data: table });
  const noise = (i: number): number => Math.fround(Math.sin(i * 12.9898) * 3);
  const expected = new Map<string, Tensor64>([['logits', o.expected.get('logits') as Tensor64]]);
  for (let l = 0; l < L; l++)
    for (const kv of ['key', 'value']) {
      inputs.set(`past.${l}.${kv}`, toPool(o.inputs.get(`past.${l}.${kv}`) as Tensor64, noise));
      expected.set(`present.${l}.${kv}`, toPool(o.expected.get(`present.${l}.${kv}`) as Tensor64, noise));
    }
  return { weights: o.weights, inputs, expected };
}

function graph(): Graph {
  const file = 'examples/variants/gpt2-paged.tfx';
  const r = checkSource(readFileSync(file, 'utf8'), file, new Map(Object.entries(config)));
  if (r.graph === undefined) throw new Error(r.diagnostics.map((d) => d.message).join('; '));
  return r.graph;
}

describe('paged KV cache: pages scattered over a pool, read through the page table', () => {
  for (const T of [1, 2]) {
    it.skipIf(noTorch)(`matches PyTorch (rows of 5, 0, 11 tokens, T=${T}): interpreter 1e-6, WebGPU 1e-4, K and V read in the attention kernel`, { timeout: 300_000 }, async () => {
      const dir = runOracle('batched_oracle.py', ['--seed', '8', '--layers', '2', '--d', '64', '--heads', '4', '--vocab', '256', '--ctx', '64', '--lengths', LENGTHS.join(','), '--new', String(T), '--slots', String(MP * PAGE)]);
      const { weights, inputs, expected } = pagedInputs(dir);
      const g = graph();
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
        expect(types).toContain('f32[NP,4,16,16]');
        expect(types.filter((t) => t.startsWith('f32') && t.includes('MP'))).toEqual([]);
      }
      const dev = await testDevice();
      const s = await createSession(dev, compilePlan(fused, { target: targetLimitsOf(dev) }));
      try {
        s.loadWeights(weights);
        const got = (await s.run(inputs)).outputs;
        for (const [name, want] of expected) {
          const err = relError(got.get(name)?.data ?? [], want);
          console.log(`gpt2-paged T=${T} ${name}: max rel error ${err.toExponential(2)}`);
          expect(err, `WebGPU ${name}`).toBeLessThanOrEqual(1e-4);
        }
      } finally {
        s.dispose();
      }
    });
  }
});
