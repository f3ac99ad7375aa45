// Speculative decoding vs plain greedy decoding on this WebGPU adapter (issue 16 item 5): the
// trained charlm in slot-cache form (examples/charlm/charlm-slots.tfx), target = 2 layers, draft =
// its first layer (same checkpoint). Wall time of 200 tokens, rounds interleaved (plain, then each
// k) so machine drift hits all alike; tokens are checked equal. Run after `npm run build`:
//   XDG_RUNTIME_DIR=/tmp node bench/speculative.mjs [rounds=3] [k=2,3,4]
import { readFileSync } from 'node:fs';
import { checkSource } from '../dist/src/check/check-source.js';
import { compilePlan } from '../dist/src/compile/plan.js';
import { runPipeline } from '../dist/src/passes/driver.js';
import { createPassContext } from '../dist/src/passes/pass.js';
import { pipelines } from '../dist/src/passes/pipeline.js';
import { acquireDevice } from '../dist/src/runtime/device.js';
import { readWeights } from '../dist/src/runtime/host.js';
import { createSession } from '../dist/src/runtime/session.js';
import { greedyDecode, speculativeDecode } from '../dist/src/runtime/speculative.js';
import { targetLimitsOf } from '../dist/src/runtime/target.js';

const rounds = Number(process.argv[2] ?? 3);
const ks = (process.argv[3] ?? '2,3,4').split(',').map(Number);
const file = 'examples/charlm/charlm-slots.tfx';
const SLOTS = 300;
const STEPS = 200;
const dev = await acquireDevice();
const weights = await readWeights([new Uint8Array(readFileSync('examples/charlm/charlm.safetensors'))]);
async function model(layers) {
  const r = checkSource(readFileSync(file, 'utf8'), file, new Map([['layers', layers], ['ctx', SLOTS]]));
  const g = runPipeline(r.graph, pipelines.webgpu, createPassContext({ target: 'webgpu' }));
  const session = await createSession(dev, compilePlan(g, { target: targetLimitsOf(dev) }));
  session.loadWeights(weights);
  return { session, layers, kvHeads: 2, headDim: 16, slots: SLOTS, vocab: 96 };
}
const target = await model(2);
const draft = await model(1);
const chars = JSON.parse(readFileSync('examples/charlm/vocab.json', 'utf8')).chars;
const prompt = [...'First Citizen:\nBefore we proceed any further, hear me speak.\n'].map((c) => chars.indexOf(c));
const plainRef = await greedyDecode(target, prompt, STEPS); // warm-up (pipeline compiles)
for (const k of ks) await speculativeDecode(target, draft, prompt, STEPS, k);
const times = new Map([['plain', []], ...ks.map((k) => [`k=${k}`, []])]);
const stats = new Map();
for (let r = 0; r < rounds; r++) {
  let t0 = performance.now();
  await greedyDecode(target, prompt, STEPS);
  times.get('plain').push(performance.now() - t0);
  for (const k of ks) {
    t0 = performance.now();
    const s = await speculativeDecode(target, draft, prompt, STEPS, k);
    times.get(`k=${k}`).push(performance.now() - t0);
    if (s.tokens.join() !== plainRef.tokens.join()) throw new Error(`k=${k}: tokens differ from plain greedy decoding`);
    stats.set(k, s);
  }
}
const med = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const plainMs = med(times.get('plain'));
console.log(`charlm, ${STEPS} tokens, ${dev.adapterInfo?.description ?? 'WebGPU'}; medians of ${rounds} interleaved rounds; tokens identical to plain greedy`);
console.log(`plain greedy: ${plainMs.toFixed(0)} ms (${((STEPS * 1000) / plainMs).toFixed(1)} tokens/s), ${plainRef.calls} target calls`);
for (const k of ks) {
  const s = stats.get(k);
  const ms = med(times.get(`k=${k}`));
  console.log(`speculative k=${k}: ${ms.toFixed(0)} ms (${((STEPS * 1000) / ms).toFixed(1)} tokens/s, ${(plainMs / ms).toFixed(2)}x plain), acceptance ${s.accepted}/${s.drafted} = ${((100 * s.accepted) / s.drafted).toFixed(1)}%, ${s.targetCalls} target + ${s.draftCalls} draft calls`);
}
process.exit(0);
