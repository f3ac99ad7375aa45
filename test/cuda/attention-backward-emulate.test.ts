// Training graphs with the fused attention backward (src/kernel/attention/backward.ts: the same
// kernel IR, printed as CUDA) on the CUDA emulator (cuda_emu.h, g++ on the CPU) vs the float64
// interpreter on the same graph: the loss and every weight's gradient, attention fused before
// grad as `tfc train` does. Bar 1e-4 per tensor (test/helpers/tensors.ts relError).
import { describe, expect, it } from 'vitest';
import { compilePlan } from '../../src/compile/plan.js';
import { chooseSchedule, cudaLimits } from '../../src/kernel/schedule/schedule.js';
import { runPipeline } from '../../src/passes/driver.js';
import { createPassContext } from '../../src/passes/pass.js';
import { pipelines } from '../../src/passes/pipeline.js';
import { runPlanEmulated } from '../../src/runtime-cuda/emulate.js';
import { tableTiles, tablesGraph } from '../helpers/attention-tables.js';
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
  // test/helpers/attention-tables.ts: GQA 4/2, a window, two tables; 600: global partial rows.
  it.each([16, 600])('dQ, dK, dV and both tables vs the interpreter (bias of %i entries)', (bias) => {
    const g = tablesGraph(bias);
    const plan = compilePlan(g, { target: cudaLimits, schedule: { ...chooseSchedule(cudaLimits), attentionBackward: tableTiles } });
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
