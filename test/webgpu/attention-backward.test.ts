// The fused attention backward (src/kernel/attention/backward.ts) on WebGPU (lavapipe): the
// training loss and every weight's gradient of small models, attention fused before grad as
// `tfc train` does, against the float64 interpreter on the same graph (whose fused_attention_grad
// rule test/unit/autodiff/attention-grad.test.ts checks against finite differences and the unfused
// backward). Per form: the plan runs one backward kernel per attention layer and holds no T x S
// buffer. Bar: 1e-4 per tensor (test/helpers/tensors.ts relError: floor 1% of max |ref|).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compilePlan } from '../../src/compile/plan.js';
import type { Graph } from '../../src/graph/ir.js';
import { interpret } from '../../src/interp/interpret.js';
import { type Plan, evalSize } from '../../src/kernel/plan/plan.js';
import type { Schedule } from '../../src/kernel/schedule/schedule.js';
import { chooseSchedule } from '../../src/kernel/schedule/schedule.js';
import { runPipeline } from '../../src/passes/driver.js';
import { createPassContext } from '../../src/passes/pass.js';
import { pipelines } from '../../src/passes/pipeline.js';
import type { AcquiredDevice } from '../../src/runtime/device.js';
import { createSession } from '../../src/runtime/session.js';
import { targetLimitsOf } from '../../src/runtime/target.js';
import { tableTiles, tablesGraph } from '../helpers/attention-tables.js';
import { declaredShape, relError, tensorFor } from '../helpers/tensors.js';
import { strAttr } from '../../src/graph/ir.js';
import { trainingFeeds, trainingLossGrad } from '../helpers/training.js';
import { testDevice } from './helpers.js';

let dev: AcquiredDevice;
beforeAll(async () => {
  dev = await testDevice();
});
afterAll(() => dev.device.destroy());

const tiny = { vocab: 64, ctx: 32, d: 32, heads: 2, layers: 1 };
/** Small tiles so T = 13 spans several query and key tiles (block sparsity, partial tiles): 4 rows x 8 keys, 4 lanes. */
const small = { attentionBackward: { tileRows: 4, tileCols: 8, lanes: 4 } };

interface Form {
  readonly file: string;
  readonly what: string;
  readonly overrides: Record<string, number>;
  /** Fused attention layers (each one backward kernel). */
  readonly layers: number;
  readonly vocab: number;
  readonly schedule?: Partial<Schedule>;
  readonly dims?: Record<string, number>;
}

const forms: readonly Form[] = [
  { file: 'examples/gpt2.tfx', what: 'causal, MHA (default tiles)', overrides: { ...tiny, layers: 2 }, layers: 2, vocab: 64 },
  { file: 'examples/charlm/charlm.tfx', what: 'GQA 4/2, RoPE, causal (default tiles)', overrides: {}, layers: 2, vocab: 96 },
  { file: 'examples/charlm/charlm.tfx', what: 'GQA 4/2, RoPE, causal', overrides: { layers: 1 }, layers: 1, vocab: 96, schedule: small },
  { file: 'examples/variants/sliding-window.tfx', what: 'sliding window 5', overrides: { ...tiny, window: 5 }, layers: 1, vocab: 64, schedule: small },
  { file: 'examples/variants/softcap.tfx', what: 'soft-cap score mod', overrides: tiny, layers: 1, vocab: 64, schedule: small },
  { file: 'examples/variants/score-mods.tfx', what: 'piecewise and gated score mods', overrides: tiny, layers: 1, vocab: 64, schedule: small },
  { file: 'examples/variants/alibi.tfx', what: 'ALiBi', overrides: tiny, layers: 1, vocab: 64, schedule: small },
  { file: 'examples/variants/mqa.tfx', what: 'MQA 2/1', overrides: tiny, layers: 1, vocab: 64, schedule: small },
  { file: 'examples/variants/document-mask.tfx', what: 'document mask (a mask reading an input)', overrides: tiny, layers: 1, vocab: 64, schedule: small },
  { file: 'examples/variants/varlen.tfx', what: 'per-row lengths', overrides: tiny, layers: 1, vocab: 64, schedule: small },
  { file: 'examples/variants/prefix-lm.tfx', what: 'prefix LM', overrides: tiny, layers: 1, vocab: 64, schedule: small },
  { file: 'examples/variants/streaming.tfx', what: 'sink tokens + window', overrides: { ...tiny, window: 4 }, layers: 1, vocab: 64, schedule: small },
  { file: 'examples/variants/local-global.tfx', what: 'local and global layers', overrides: { ...tiny, layers: 2, window: 4 }, layers: 2, vocab: 64, schedule: small },
  { file: 'examples/variants/plain-attention.tfx', what: 'additive mask input', overrides: { ...tiny, heads: 2 }, layers: 1, vocab: 64, schedule: small },
  { file: 'examples/variants/llama-nocache.tfx', what: 'Llama GQA + RoPE, no cache', overrides: { vocab: 64, d: 32, heads: 4, kv_heads: 2, layers: 1, ffn: 48 }, layers: 1, vocab: 64, schedule: small },
  { file: 'examples/variants/sinks.tfx', what: 'attention sinks (the LSE output has a cotangent)', overrides: tiny, layers: 1, vocab: 64, schedule: small },
  // A learned table's gradient (attention/backward-table.ts): 34 entries, summed in registers
  // (default tiles: 1 per thread); 514 entries at 32 threads, summed in global partial rows.
  { file: 'examples/variants/relative-bias.tfx', what: 'learned relative-position bias table (default tiles)', overrides: tiny, layers: 1, vocab: 64 },
  { file: 'examples/variants/relative-bias.tfx', what: 'learned relative-position bias table of 514 entries (partial rows in global memory)', overrides: { ...tiny, max_dist: 128 }, layers: 1, vocab: 64, schedule: small },
  { file: 'examples/transformer.tfx', what: 'encoder-decoder: bidirectional, causal and cross attention (S != T)', overrides: { vocab: 64, d: 32, heads: 4, layers: 1, ffn: 64 }, layers: 3, vocab: 64, schedule: small, dims: { S: 7 } },
];

function compile(g: Graph, schedule?: Partial<Schedule>): { fused: Graph; plan: Plan } {
  const fused = runPipeline(g, pipelines.webgpu, createPassContext({ target: 'webgpu', verify: true }));
  const target = targetLimitsOf(dev);
  return { fused, plan: compilePlan(fused, { target, ...(schedule !== undefined ? { schedule: { ...chooseSchedule(target), ...schedule } } : {}) }) };
}

const backwardSteps = (plan: Plan): number => plan.steps.filter((s) => s.kernel.includes('fused_attention_grad')).length;

describe('fused attention backward on WebGPU vs the float64 interpreter', () => {
  for (const form of forms) {
    it(`${form.file} (${form.what}): loss and gradients within 1e-4, ${form.layers} backward kernel(s), no T x S buffer`, { timeout: 600_000 }, async () => {
      const g = trainingLossGrad(form.file, true, form.overrides);
      const { plan } = compile(g, form.schedule);
      expect(backwardSteps(plan)).toBe(form.layers);
      expect(plan.steps.filter((s) => s.kernel.includes('softmax'))).toEqual([]);
      // The model's own inputs are the user's (plain-attention's additive mask is [B, 1, T, T]).
      for (const b of plan.buffers.filter((x) => x.kind !== 'input')) {
        const at = (T: number): number => evalSize(b.elements, new Map([['B', 1], ['T', T], ['S', T]]));
        // Doubling T at most doubles every buffer (a T x S buffer would quadruple).
        expect(at(512) / at(256), `buffer ${b.id} (${b.kind}${b.name !== undefined ? ` ${b.name}` : ''})`).toBeLessThanOrEqual(2);
      }
      const dims = new Map(Object.entries({ B: 2, T: 13, ...form.dims }));
      const { weights, inputs } = trainingFeeds(g, dims, 3, form.vocab);
      const want = interpret(g, { inputs, weights }).outputs;
      const s = await createSession(dev, plan);
      try {
        s.loadWeights(weights);
        const got = (await s.run(inputs)).outputs;
        let worst = 0;
        for (const [name, ref] of want) {
          const err = relError(got.get(name)?.data ?? [], ref);
          worst = Math.max(worst, err);
          expect(err, name).toBeLessThanOrEqual(1e-4);
        }
        const table = [...want.keys()].find((k) => k.startsWith('grad.rel_bias'));
        const tableRef = table === undefined ? undefined : want.get(table);
        const tableErr = table === undefined || tableRef === undefined ? '' : `, ${table} ${relError(got.get(table)?.data ?? [], tableRef).toExponential(2)}`;
        console.log(`${form.file} (${form.what}): ${want.size} outputs, worst rel error ${worst.toExponential(2)}${tableErr}, ${plan.steps.length} launches`);
      } finally {
        s.dispose();
      }
    });
  }
});

describe('learned score-mod tables in the fused backward on WebGPU (attention/backward-table.ts)', () => {
  it('GQA 4/2, a window, two tables (one adjoint holds score()): dQ, dK, dV, both tables within 1e-4; registers and global partial rows', { timeout: 600_000 }, async () => {
    for (const bias of [16, 600]) {
      const g = tablesGraph(bias);
      const target = targetLimitsOf(dev);
      const plan = compilePlan(g, { target, schedule: { ...chooseSchedule(target), attentionBackward: tableTiles } });
      expect(plan.steps.filter((s) => s.kernel.includes('fused_attention_grad'))).toHaveLength(1);
      expect(plan.steps.filter((s) => s.kernel.includes('attention_table_reduce'))).toHaveLength(1);
      const dims = new Map([['B', 2], ['T', 13]]);
      const inputs = new Map(g.nodes.filter((n) => n.op === 'input').map((n, i) => [strAttr(n, 'name'), tensorFor(n.type.dtype, declaredShape(n, dims), 7 + i, 11, 0.5)]));
      const want = interpret(g, { inputs, weights: new Map() }).outputs;
      const s = await createSession(dev, plan);
      try {
        const got = (await s.run(inputs)).outputs;
        const errs: string[] = [];
        for (const [name, ref] of want) {
          const err = relError(got.get(name)?.data ?? [], ref);
          errs.push(`${name} ${err.toExponential(2)}`);
          expect(err, name).toBeLessThanOrEqual(1e-4);
        }
        console.log(`tables (bias ${bias}) on WebGPU: ${errs.join(', ')}`);
      } finally {
        s.dispose();
      }
    }
  });
});
