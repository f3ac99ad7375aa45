// Per-kernel GPU time of one GPT-2-small decode step (constant weights): node bench/lavapipe/dec.mjs fuse|nofuse P
import { benchCompilation } from '../../dist/src/cli/bench.js';
import { benchPasses } from '../../dist/src/cli/bench.js';
import { lowerModel } from '../../dist/src/compile/kernels.js';
import { acquireDevice } from '../../dist/src/runtime/device.js';
import { createSession } from '../../dist/src/runtime/session.js';
import { targetLimitsOf } from '../../dist/src/runtime/target.js';
import { readFileSync } from 'node:fs';
const fuse = process.argv[2] !== 'nofuse';
const P = Number(process.argv[3] ?? 128);
const file = 'examples/variants/gpt2-kv.tfx'; // run from the repository root
const set = new Map([['layers', 12], ['d', 768], ['heads', 12], ['vocab', 50257], ['ctx', 2048]]);
const dev = await acquireDevice();
const c = benchCompilation(readFileSync(file, 'utf8'), file, set, fuse);
const st = lowerModel(c, { limits: targetLimitsOf(dev) });
const sess = await createSession(dev, st.plan);
const weights = new Map();
for (const n of c.checked.nodes) if (n.op === "weight") { const shape = n.type.shape.map((d) => d.terms[0]?.coef ?? 1); const name = n.attrs.name.value; if (weights.has(name)) continue; weights.set(name, { dtype: 'f32', shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(0.01) }); }
sess.loadWeights(weights);
const ins = new Map([['tokens', { dtype: 'i32', shape: [1, 1], data: [3] }]]);
for (let l = 0; l < 12; l++) for (const kv of ['key', 'value']) ins.set(`past.${l}.${kv}`, { dtype: 'f32', shape: [1, 12, P, 64], data: new Float32Array(12 * P * 64).fill(0.1) });
await sess.run(ins);
const by = new Map(); let tot = 0;
for (let r = 0; r < 3; r++) { const res = await sess.run(ins, { timing: true }); if (r < 2) continue; for (const t of res.timing) { by.set(t.kernel, (by.get(t.kernel) ?? 0) + t.ns / 1e6); tot += t.ns / 1e6; } }
console.log(`decode step ${fuse ? 'fused' : 'unfused'} P=${P}: ${tot.toFixed(1)} ms GPU`);
for (const [k, ms] of [...by].sort((a, b) => b[1] - a[1]).slice(0, 14)) console.log(`  ${k.padEnd(40)} ${ms.toFixed(2)} ms`);
process.exit(0);
