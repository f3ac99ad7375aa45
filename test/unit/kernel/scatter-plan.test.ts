// scatter in the plan, without a GPU: gpt2-paged.tfx's cache write updates the page pools in
// place (each present.{l}.* output IS its past.{l}.* input buffer, no copy kernel), so a decode
// step's traffic does not depend on the pool's size; the scatter kernel moves the new tokens only.
// Also the builtin's diagnostics and the interpreter's rule.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { checkSource } from '../../../src/check/check-source.js';
import { compilePlan } from '../../../src/compile/plan.js';
import { interpret } from '../../../src/interp/interpret.js';
import { evalCondition, evalSize, type Plan } from '../../../src/kernel/plan/plan.js';
import { lavapipeLimits } from '../../../src/kernel/schedule/schedule.js';
import { runPipeline } from '../../../src/passes/driver.js';
import { createPassContext } from '../../../src/passes/pass.js';
import { pipelines } from '../../../src/passes/pipeline.js';

const config = { layers: 2, d: 64, heads: 4, vocab: 256, ctx: 64 };
const [L, D, PAGE] = [2, 64, 16];

function pagedPlan(): Plan {
  const file = 'examples/variants/gpt2-paged.tfx';
  const r = checkSource(readFileSync(file, 'utf8'), file, new Map(Object.entries(config)));
  if (r.graph === undefined) throw new Error(r.diagnostics.map((d) => d.message).join('; '));
  return compilePlan(runPipeline(r.graph, pipelines.webgpu, createPassContext({ target: 'webgpu' })), { target: lavapipeLimits });
}

/** Bytes moved by the steps a run at `dims` dispatches. */
function stepBytes(p: Plan, dims: Record<string, number>): { total: number; byKernel: Map<string, number> } {
  const m = new Map(Object.entries(dims));
  const byKernel = new Map<string, number>();
  let total = 0;
  for (const s of p.steps) {
    if (s.when !== undefined && !evalCondition(s.when, m)) continue;
    const k = p.kernels.find((x) => x.name === s.kernel);
    if (k === undefined) throw new Error(`no kernel ${s.kernel}`);
    const b = evalSize(k.bytesRead, m) + evalSize(k.bytesWritten, m);
    byKernel.set(k.name, (byKernel.get(k.name) ?? 0) + b);
    total += b;
  }
  return { total, byKernel };
}

describe('gpt2-paged: the page pools are updated in place', () => {
  const p = pagedPlan();

  it('each present.{l}.key/value output is its past.{l}.key/value input buffer; no copy kernel', () => {
    for (let l = 0; l < L; l++) {
      for (const kv of ['key', 'value']) {
        const input = p.buffers.find((b) => b.kind === 'input' && b.name === `past.${l}.${kv}`);
        const output = p.outputs.find((o) => o.name === `present.${l}.${kv}`);
        expect(input).toBeDefined();
        expect(output?.buffer, `present.${l}.${kv}`).toBe(input?.id);
      }
    }
    expect(p.kernels.filter((k) => k.name.includes('scatter_copy'))).toEqual([]);
    expect(p.steps.filter((s) => s.kernel.includes('scatter'))).toHaveLength(2 * L); // K and V per layer (one shared kernel)
    // No buffer of the pool's size besides the pools themselves.
    const pool = p.buffers.filter((b) => b.shape.some((e) => e.kind === 'dim' && e.name === 'NP'));
    expect(pool.map((b) => b.kind)).toEqual(Array.from({ length: 2 * L }, () => 'input'));
  });

  it('a decode step moves the same bytes with a pool of 8 pages and of 4096; the scatter moves the new tokens only', () => {
    const dims = { B: 3, T: 1, MP: 4 };
    const small = stepBytes(p, { ...dims, NP: 8 });
    const big = stepBytes(p, { ...dims, NP: 4096 });
    expect(big.total).toBe(small.total);
    // Scatter: per new element an i32 offset and a value read, the value written; K and V per layer.
    const perScatter = 3 * 1 * D * (4 + 4 + 4);
    const scatter = [...big.byKernel].filter(([k]) => k.includes('scatter')).reduce((s, [, b]) => s + b, 0);
    expect(scatter).toBe(2 * L * perScatter);
    // The pool is 4096 * 4 heads * 16 * 16 * 4 B = 4 MiB per tensor; the step moves far less than one.
    expect(big.total).toBeLessThan(4096 * D * PAGE * 4);
  });
});

describe('scatter builtin', () => {
  const header = 'dims N, M\ninput pool: f32[N]\ninput at: i32[M]\ninput vals: f32[M]\noutput out: f32[N]\n';
  const errors = (body: string): string[] => checkSource(header + body, 's.tfx').diagnostics.map((d) => `${d.code} ${d.message}`);

  it('checks the index dtype, the value dtype and that index and values have one shape', () => {
    expect(errors('input fat: f32[M]\nmodel m {\n  out = scatter(pool, fat, vals)\n}\n')).toEqual(['TFC208 scatter needs i32 indices, got f32[M]']);
    expect(errors('input ivals: i32[M]\nmodel m {\n  out = scatter(pool, at, ivals)\n}\n')).toEqual(['TFC202 scatter writes i32[M] into f32[N]: the dtypes differ']);
    expect(errors('input v2: f32[M, 2]\nmodel m {\n  out = scatter(pool, at, v2)\n}\n')).toEqual(["TFC201 scatter's index [M] and values [M,2] must have one shape"]);
    expect(errors('model m {\n  out = scatter(pool, at)\n}\n')).toEqual([expect.stringMatching(/^TFC104 scatter takes 3 argument\(s\) or more, got 2 \(missing 'values'\)/)]);
  });

  it('interprets as a copy of dest with the offsets replaced (the last of equal offsets wins)', () => {
    const r = checkSource(`${header}model m {\n  out = scatter(pool, at, vals)\n}\n`, 's.tfx');
    if (r.graph === undefined) throw new Error('no graph');
    const out = interpret(r.graph, {
      inputs: new Map([
        ['pool', { dtype: 'f32', shape: [4], data: Float64Array.from([1, 2, 3, 4]) }],
        ['at', { dtype: 'i32', shape: [3], data: Float64Array.from([3, 0, 3]) }],
        ['vals', { dtype: 'f32', shape: [3], data: Float64Array.from([7, 8, 9]) }],
      ]),
      weights: new Map(),
    }).outputs.get('out');
    expect(Array.from(out?.data ?? [])).toEqual([8, 2, 3, 9]);
  });
});
