// The backward graph of `grad` (src/autodiff/) compiled by the normal pipeline and run on WebGPU
// (lavapipe here): the cross-entropy loss of GPT-2 tiny, the Llama-style example and the
// encoder-decoder and its gradient w.r.t. every weight, against the float64 interpreter on the
// same backward graph, seeded weights, tokens and targets.
// Bar: max rel error <= 1e-4 per tensor (floor 1% of max|ref|, test/helpers/tensors.ts), f32.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { gradGraph } from '../../src/autodiff/grad.js';
import { withCrossEntropyLoss } from '../../src/autodiff/loss.js';
import { makeTensor, type Tensor64 } from '../../src/base/tensor.js';
import { checkSource } from '../../src/check/check-source.js';
import { gatherIndexRanges } from '../../src/cli/webgpu.js';
import { randomWeights } from '../../src/cli/random.js';
import { compilePlan } from '../../src/compile/plan.js';
import type { Diagnostic } from '../../src/diag/diagnostic.js';
import type { Graph } from '../../src/graph/ir.js';
import { interpret } from '../../src/interp/interpret.js';
import { neededTensors } from '../../src/io/check-tensors.js';
import { runPipeline } from '../../src/passes/driver.js';
import { createPassContext } from '../../src/passes/pass.js';
import { graphPasses, pipelines } from '../../src/passes/pipeline.js';
import { createSession } from '../../src/runtime/session.js';
import { targetLimitsOf } from '../../src/runtime/target.js';
import { relError, tensorFor } from '../helpers/tensors.js';
import { deviceAndSessions } from './helpers.js';

const gpu = deviceAndSessions();

function backward(file: string, overrides: Record<string, number>): Graph {
  const r = checkSource(readFileSync(file, 'utf8'), file, new Map(Object.entries(overrides)));
  const errors: Diagnostic[] = [...r.diagnostics];
  const withLoss = r.graph === undefined ? undefined : withCrossEntropyLoss(r.graph, {}, (d) => errors.push(d));
  const g = withLoss === undefined ? undefined : gradGraph(withLoss, { output: 'loss' }, (d) => errors.push(d));
  expect(errors.map((d) => d.message)).toEqual([]);
  if (g === undefined) throw new Error('no backward graph');
  return g.graph;
}

/** Compiles the backward, runs it on the GPU and compares every output with the interpreter. */
async function compare(g: Graph, fused: boolean, dims: Record<string, number>, inputs: Map<string, Tensor64>, what: string): Promise<void> {
  const compiled = runPipeline(g, fused ? pipelines.webgpu : graphPasses, createPassContext({ target: 'webgpu', verify: true }));
  const plan = compilePlan(compiled, { target: targetLimitsOf(gpu.dev) });
  expect(plan.steps.some((s) => s.kernel.includes('scatter_add'))).toBe(true);
  const session = await createSession(gpu.dev, plan, { inputRanges: gatherIndexRanges(compiled) });
  gpu.sessions.push(session);
  const ds: Diagnostic[] = [];
  const weights = randomWeights(neededTensors(g), 5, new Map(Object.entries(dims)), ds);
  expect(ds).toEqual([]);
  session.loadWeights(weights);
  const got = await session.run(inputs);
  const want = interpret(g, { inputs, weights }).outputs;
  expect(want.size).toBe(g.outputs.length);
  let worst = 0;
  for (const [name, ref] of want) {
    const out = got.outputs.get(name);
    expect(out?.shape, name).toEqual(ref.shape);
    const err = relError(out?.data ?? [], ref);
    worst = Math.max(worst, err);
    expect(err, `${what}: ${name}`).toBeLessThanOrEqual(1e-4);
  }
  console.log(`${what} backward (${fused ? 'fused' : 'unfused'}): ${plan.steps.length} launches, ${plan.kernels.length} kernels, ${want.size} outputs, worst rel error ${worst.toExponential(2)}`);
}

const gpt2 = { layers: 2, d: 32, heads: 4, vocab: 64, ctx: 16 };
const llama = { layers: 2, d: 32, heads: 4, kv_heads: 2, ffn: 48, vocab: 64 };
const encdec = { layers: 2, d: 32, heads: 4, ffn: 48, vocab: 64 };
const ids = (shape: number[], seed: number): Tensor64 => tensorFor('i32', shape, seed, 64);

// Unfused for all three (the bar), the fused pipeline for GPT-2 too: creating every fused
// pipeline of the other two took over 5 minutes on this loaded lavapipe machine.
describe('grad on WebGPU vs the float64 interpreter', () => {
  for (const fused of [false, true]) {
    it(`GPT-2 tiny, B=2, T=8 (${fused ? 'fused pipeline' : 'unfused: --no-fuse'})`, { timeout: 600_000 }, async () => {
      const g = backward('examples/gpt2.tfx', gpt2);
      expect(g.outputs.length).toBe(1 + 4 + 12 * gpt2.layers);
      await compare(g, fused, { B: 2, T: 8 }, new Map([['tokens', ids([2, 8], 6)], ['targets', ids([2, 8], 7)]]), 'gpt2 tiny');
    });
  }

  it('Llama-style (GQA 4/2 heads, RoPE, SwiGLU, empty cache), B=2, T=7 (unfused)', { timeout: 600_000 }, async () => {
    const g = backward('examples/llama.tfx', llama);
    const empty = makeTensor('f32', [2, 2, 0, 8]);
    const cache = Array.from({ length: llama.layers }, (_, l) => [[`past.${l}.key`, empty], [`past.${l}.value`, empty]] as const).flat();
    const inputs = new Map<string, Tensor64>([['tokens', ids([2, 7], 8)], ['targets', ids([2, 7], 9)], ...cache]);
    await compare(g, false, { B: 2, T: 7, P: 0 }, inputs, 'llama');
  });

  it('encoder-decoder, B=2, S=5, T=4 (unfused)', { timeout: 600_000 }, async () => {
    const g = backward('examples/transformer.tfx', encdec);
    await compare(g, false, { B: 2, S: 5, T: 4 }, new Map([['src', ids([2, 5], 10)], ['tgt', ids([2, 4], 11)], ['targets', ids([2, 4], 12)]]), 'transformer');
  });
});
