// Speculative decoding on WebGPU (src/runtime/speculative.ts) with the trained charlm in its
// slot-cache form (examples/charlm/charlm-slots.tfx): the target is the 2-layer model, the draft
// its first layer alone (`--set layers=1`, the same checkpoint), or a draft with random weights.
// Over 200 tokens the output must be the target's plain greedy tokens, token for token, whatever
// the draft; the trained draft must be accepted often enough to save target calls.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkSource } from '../../src/check/check-source.js';
import { randomWeights } from '../../src/cli/random.js';
import { compilePlan } from '../../src/compile/plan.js';
import type { Diagnostic } from '../../src/diag/diagnostic.js';
import { neededTensors } from '../../src/io/check-tensors.js';
import { runPipeline } from '../../src/passes/driver.js';
import { createPassContext } from '../../src/passes/pass.js';
import { pipelines } from '../../src/passes/pipeline.js';
import type { AcquiredDevice } from '../../src/runtime/device.js';
import { readWeights } from '../../src/runtime/host.js';
import { type HostTensor, createSession } from '../../src/runtime/session.js';
import { type SlotModel, argmaxRow, greedyDecode, speculativeDecode } from '../../src/runtime/speculative.js';
import { targetLimitsOf } from '../../src/runtime/target.js';
import { testDevice } from './helpers.js';

const file = 'examples/charlm/charlm-slots.tfx';
const SLOTS = 300;
const STEPS = 200;

let dev: AcquiredDevice;
let target: SlotModel;
let draft: SlotModel;
let noise: SlotModel;
beforeAll(async () => {
  dev = await testDevice();
  const trained = await readWeights([new Uint8Array(readFileSync('examples/charlm/charlm.safetensors'))]);
  const model = async (layers: number, random: boolean): Promise<SlotModel> => {
    // ctx bounds the slots; RoPE has no position table, so more slots than the training context are fine.
    const r = checkSource(readFileSync(file, 'utf8'), file, new Map([['layers', layers], ['ctx', SLOTS]]));
    if (r.graph === undefined) throw new Error(r.diagnostics.map((d) => d.message).join('; '));
    const g = runPipeline(r.graph, pipelines.webgpu, createPassContext({ target: 'webgpu' }));
    const session = await createSession(dev, compilePlan(g, { target: targetLimitsOf(dev) }));
    if (random) {
      const ds: Diagnostic[] = [];
      session.loadWeights(randomWeights(neededTensors(r.graph), 9, new Map(), ds));
      expect(ds).toEqual([]);
    } else session.loadWeights(trained);
    return { session, layers, kvHeads: 2, headDim: 16, slots: SLOTS, vocab: 96 };
  };
  target = await model(2, false);
  draft = await model(1, false);
  noise = await model(1, true);
}, 600_000);
afterAll(() => dev.device.destroy());

const chars = (JSON.parse(readFileSync('examples/charlm/vocab.json', 'utf8')) as { chars: string[] }).chars;
const encode = (text: string): number[] => [...text].map((ch) => chars.indexOf(ch));

describe('speculative decoding (charlm, slot cache)', () => {
  it('gives the target\'s greedy tokens over 200 tokens with a truncated draft and with a random one; rejected drafts roll back by length', { timeout: 600_000 }, async () => {
    const prompt = encode('First Citizen:\nBefore we proceed any further, hear me speak.\n');
    expect(prompt.every((t) => t >= 0)).toBe(true);
    const plain = await greedyDecode(target, prompt, STEPS);
    expect(plain.tokens).toHaveLength(STEPS);
    for (const [label, d, k] of [['first layer', draft, 4], ['random weights', noise, 3]] as const) {
      const s = await speculativeDecode(target, d, prompt, STEPS, k);
      expect(s.tokens, label).toEqual(plain.tokens);
      console.log(`charlm speculative (${label}, k=${k}): ${s.accepted}/${s.drafted} drafts accepted (${((100 * s.accepted) / s.drafted).toFixed(1)}%), ${s.targetCalls} target calls vs ${plain.calls} plain, ${s.draftCalls} draft calls`);
      if (label === 'first layer') expect(s.targetCalls).toBeLessThan(plain.calls * 0.75);
      else expect(s.accepted).toBeLessThan(s.drafted); // the random draft is rejected, and still gives the same text
    }
  });

  it('the slot-cache model is charlm: its greedy tokens equal charlm.tfx\'s (concat cache) over 60 tokens', { timeout: 600_000 }, async () => {
    const prompt = encode('First Citizen:\nBefore we proceed any further, hear me speak.\n');
    const r = checkSource(readFileSync('examples/charlm/charlm.tfx', 'utf8'), 'examples/charlm/charlm.tfx', new Map());
    if (r.graph === undefined) throw new Error('charlm.tfx');
    const g = runPipeline(r.graph, pipelines.webgpu, createPassContext({ target: 'webgpu' }));
    const concat = await createSession(dev, compilePlan(g, { target: targetLimitsOf(dev) }));
    concat.loadWeights(await readWeights([new Uint8Array(readFileSync('examples/charlm/charlm.safetensors'))]));
    const cache = new Map<string, HostTensor>();
    for (let l = 0; l < 2; l++) for (const kv of ['key', 'value']) cache.set(`past.${l}.${kv}`, { shape: [1, 2, 0, 16], data: [] });
    const want: number[] = [];
    let tokens = prompt;
    while (want.length < 60) {
      const out = await concat.run(new Map([['tokens', { dtype: 'i32', shape: [1, tokens.length], data: tokens }], ...cache]));
      const next = argmaxRow(out.outputs.get('logits')?.data ?? [], tokens.length - 1, 96);
      want.push(next);
      for (const name of [...cache.keys()]) cache.set(name, out.outputs.get(name.replace('past.', 'present.')) as HostTensor);
      tokens = [next];
    }
    concat.dispose();
    expect((await greedyDecode(target, prompt, 60)).tokens).toEqual(want);
  });

  it('refuses a prompt that does not fit the cache, naming the slots', async () => {
    await expect(greedyDecode(target, Array.from({ length: SLOTS + 1 }, () => 1), 1)).rejects.toThrow(`${SLOTS} slots`);
  });
});
