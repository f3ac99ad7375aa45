// Training graphs with the fused attention backward (src/kernel/attention/backward.ts: the same
// kernel IR, printed as CUDA) on the CUDA emulator (cuda_emu.h, g++ on the CPU) vs the float64
// interpreter on the same graph: the loss and every weight's gradient, attention fused before
// grad as `tfc train` does. Bar 1e-4 per tensor (test/helpers/tensors.ts relError).
import { describe, expect, it } from 'vitest';
import { compilePlan } from '../../src/compile/plan.js';
import { DiagnosticSink } from '../../src/diag/diagnostic.js';
import { parseGraph } from '../../src/graph/parse.js';
import { chooseSchedule, cudaLimits } from '../../src/kernel/schedule/schedule.js';
import { runPipeline } from '../../src/passes/driver.js';
import { createPassContext } from '../../src/passes/pass.js';
import { pipelines } from '../../src/passes/pipeline.js';
import { runPlanEmulated } from '../../src/runtime-cuda/emulate.js';
import { trainingFeeds, trainingLossGrad } from '../helpers/training.js';
import { bindDims, feedsFor, interpret, relError } from './helpers.js';

const tiny = { vocab: 64, ctx: 32, d: 32, heads: 2, layers: 1 };

describe('training gradients with the fused attention backward on the CUDA emulator', () => {
  const forms = [
    { file: 'examples/charlm/charlm.tfx', what: 'GQA 4/2, RoPE, causal', overrides: { layers: 1 }, vocab: 96 },
    { file: 'examples/variants/sliding-window.tfx', what: 'sliding window', overrides: { ...tiny, window: 5 }, vocab: 64 },
    { file: 'examples/variants/sinks.tfx', what: 'attention sinks (the LSE output has a cotangent)', overrides: tiny, vocab: 64 },
    { file: 'examples/variants/relative-bias.tfx', what: 'learned relative-position bias table (its gradient: partial sums + reduce kernel)', overrides: tiny, vocab: 64 },
  ];
  it.each(forms)('$file ($what)', ({ file, overrides, vocab }) => {
    const g = trainingLossGrad(file, true, overrides);
    const fused = runPipeline(g, pipelines.cuda, createPassContext({ target: 'cuda', verify: true }));
    const plan = compilePlan(fused, { target: cudaLimits });
    expect(plan.steps.filter((s) => s.kernel.includes('fused_attention_grad'))).toHaveLength(1);
    expect(plan.steps.filter((s) => s.kernel.includes('softmax'))).toEqual([]);
    const { weights, inputs } = trainingFeeds(g, new Map([['B', 2], ['T', 13]]), 5, vocab);
    const want = interpret(g, { inputs, weights }).outputs;
    const got = runPlanEmulated(plan, bindDims(fused, { inputs, weights }), new Map([...inputs, ...weights].map(([k, t]) => [k, t.data]))).outputs;
    let worst = 0;
    for (const [name, ref] of want) {
      const err = relError(got.get(name) ?? [], ref);
      worst = Math.max(worst, err);
      expect(err, name).toBeLessThanOrEqual(1e-4);
    }
    const table = [...want.keys()].find((k) => k.startsWith('grad.rel_bias'));
    const tableRef = table === undefined ? undefined : want.get(table);
    const tableErr = table === undefined || tableRef === undefined ? '' : `, ${table} ${relError(got.get(table) ?? [], tableRef).toExponential(2)}`;
    console.log(`${file}: ${want.size} outputs on the CUDA emulator, worst rel error ${worst.toExponential(2)}${tableErr} (${plan.steps.length} launches)`);
  }, 900_000);
});

describe('learned score-mod tables in the fused backward on the CUDA emulator (attention/backward-table.ts)', () => {
  // GQA 4/2, a window of 5, s * temp[h] + bias[k]: two tables, a read whose adjoint is score(),
  // and with bias of 600 entries 604 entries over 32 threads (4x8 tiles, 4 lanes): global partial rows.
  const ir = (bias: number): string => `graph attn(B, T) {
  %0 = input {name="q"} : f32[B,4,T,8]
  %1 = input {name="k"} : f32[B,2,T,8]
  %2 = input {name="v"} : f32[B,2,T,4]
  %3 = input {name="temp"} : f32[4]
  %4 = input {name="bias"} : f32[${bias}]
  %5 = fused_attention %0, %1, %2, %3, %4 {mask=(b, h, q, k) => and(le(k, q), lt(sub(q, k), 5)), scale=0.35, score=(b, h, q, k) => add(mul(score(), read(3, h)), read(4, k))} : f32[B,4,T,4]
  %6 = fused_attention_lse %5 : f32[B,4,T]
  %7 = input {name="do"} : f32[B,4,T,4]
  %8 = fused_attention_grad %0, %1, %2, %5, %6, %7, %3, %4 {dscore=(b, h, q, k) => read(6, h), mask=(b, h, q, k) => and(le(k, q), lt(sub(q, k), 5)), scale=0.35, score=(b, h, q, k) => add(mul(score(), read(6, h)), read(7, k)), table_grads=[6, 7]} : f32[B,4,T,8]
  %9 = fused_attention_grad_k %8 : f32[B,2,T,8]
  %10 = fused_attention_grad_v %8 : f32[B,2,T,4]
  %11 = fused_attention_grad_t %8 {operand=6} : f32[4]
  %12 = fused_attention_grad_t %8 {operand=7} : f32[${bias}]
  output "dq" = %8
  output "dk" = %9
  output "dv" = %10
  output "dtemp" = %11
  output "dbias" = %12
}`;
  it.each([16, 600])('dQ, dK, dV and both tables vs the interpreter (bias of %i entries)', (bias) => {
    const sink = new DiagnosticSink();
    const g = parseGraph(ir(bias), 'tables.ir', sink);
    expect(sink.items.map((d) => d.message)).toEqual([]);
    if (g === undefined) throw new Error('no graph');
    const plan = compilePlan(g, { target: cudaLimits, schedule: { ...chooseSchedule(cudaLimits), attentionBackward: { tileRows: 4, tileCols: 8, lanes: 4 } } });
    expect(plan.steps.filter((s) => s.kernel.includes('attention_table_reduce'))).toHaveLength(1);
    const dims = new Map([['B', 2], ['T', 13]]);
    const { inputs, weights } = feedsFor(g, dims, 7, 0.5);
    const want = interpret(g, { inputs, weights }).outputs;
    const got = runPlanEmulated(plan, bindDims(g, { inputs, weights }), new Map([...inputs, ...weights].map(([k, t]) => [k, t.data]))).outputs;
    const errs: string[] = [];
    for (const [name, ref] of want) {
      const err = relError(got.get(name) ?? [], ref);
      errs.push(`${name} ${err.toExponential(2)}`);
      expect(err, name).toBeLessThanOrEqual(1e-4);
    }
    expect(Math.max(...(want.get('dtemp')?.data ?? [0]).map(Math.abs))).toBeGreaterThan(0);
    console.log(`tables (bias ${bias}) on the CUDA emulator: ${errs.join(', ')}`);
  }, 900_000);
});
