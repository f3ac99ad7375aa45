// `generate` on a decoder without a KV cache (examples/gpt2.tfx): each step must run the whole
// sequence so far. The logits of every step on WebGPU match the float64 interpreter's last row on
// the growing sequence, and greedy tokens are its argmax (tokens alone would not catch a step run
// without context: with random weights the argmax is mostly the current token itself).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { checkSource } from '../../src/check/check-source.js';
import { randomWeights } from '../../src/cli/random.js';
import { neededTensors } from '../../src/io/check-tensors.js';
import { interpret } from '../../src/interp/interpret.js';
import { compilePlan } from '../../src/compile/plan.js';
import { runPipeline } from '../../src/passes/driver.js';
import { createPassContext } from '../../src/passes/pass.js';
import { pipelines } from '../../src/passes/pipeline.js';
import { createLoadedModel } from '../../src/runtime/host.js';
import { targetLimitsOf } from '../../src/runtime/target.js';
import { writeSafetensors } from '../../src/io/safetensors.js';
import { testDevice } from './helpers.js';

const repo = new URL('../../', import.meta.url).pathname;

describe('generate without a KV cache', () => {
  it('gives the float64 interpreter greedy tokens (gpt2.tfx, 2 layers)', { timeout: 240_000 }, async () => {
    const config = new Map([['layers', 2], ['d', 32], ['heads', 2], ['vocab', 50], ['ctx', 16]]);
    const checked = checkSource(readFileSync(`${repo}examples/gpt2.tfx`, 'utf8'), 'gpt2.tfx', config);
    if (checked.graph === undefined) throw new Error(checked.diagnostics.map((d) => d.message).join('\n'));
    const weights = randomWeights(neededTensors(checked.graph), 3, config, []);
    const dev = await testDevice();
    const graph = runPipeline(checked.graph, pipelines.webgpu, createPassContext({ target: 'webgpu' }));
    const plan = compilePlan(graph, { target: targetLimitsOf(dev) });
    const spec = { name: 'gpt2', tokens: 'tokens', logits: 'logits', vocab: 50, context: 16, cache: [] };
    const model = await createLoadedModel(dev, plan, spec, writeSafetensors(weights));
    const prompt = [5, 17, 3];
    const stepLogits: Float32Array[] = [];
    const got = await model.generate(prompt, { maxNewTokens: 6, temperature: 0, onLogits: (l) => void stepLogits.push(Float32Array.from(l)) });
    // int64 token ids (BigInt64Array) give the same logits; one outside i32 is refused (TFC309).
    const asNumbers = await model.forward({ tokens: [5, 17, 3] });
    const asInt64 = await model.forward({ tokens: BigInt64Array.of(5n, 17n, 3n) });
    expect(Array.from(asInt64.get('logits')?.data ?? [])).toEqual(Array.from(asNumbers.get('logits')?.data ?? []));
    await expect(model.forward({ tokens: BigInt64Array.of(5n, 4294967301n) })).rejects.toThrow(/element 1 is 4294967301: an int64 token id must fit in i32/);
    model.dispose();

    const want: number[] = [];
    const seq = [...prompt];
    for (let step = 0; step < 6; step++) {
      const r = interpret(checked.graph, { inputs: new Map([['tokens', { dtype: 'i32', shape: [1, seq.length], data: Float64Array.from(seq) }]]), weights });
      const logits = r.outputs.get('logits')?.data ?? new Float64Array(0);
      const row = logits.subarray(logits.length - 50);
      const scale = Math.max(...Array.from(row, Math.abs));
      const diff = Math.max(...Array.from(row, (v, i) => Math.abs(v - (stepLogits[step]?.[i] ?? NaN))));
      // f32 kernels vs float64: 1e-4 of max |logit| (the example tests' bar).
      expect(diff / scale, `step ${step}`).toBeLessThan(1e-4);
      let best = 0;
      for (let i = 1; i < 50; i++) if ((row[i] ?? -Infinity) > (row[best] ?? -Infinity)) best = i;
      want.push(best);
      seq.push(best);
    }
    expect(got.tokens).toEqual(want);
  });
});
