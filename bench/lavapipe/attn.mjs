// Broadcast attention prefill tile variants side by side (GPU timestamps, min/median of 9, FMA peak in the same process):
//   node bench/lavapipe/attn.mjs T DH full|causal|sw64 ['{"name": {"tileRows": 32, "tileCols": 32, "lanes": 8}, "old": null}']
import { attentionSource } from '../../dist/src/cli/bench-attention.js';
import { compileSource } from '../../dist/src/cli/bench.js';
import { compilePlan } from '../../dist/src/compile/plan.js';
import { chooseSchedule } from '../../dist/src/kernel/schedule/schedule.js';
import { chooseAttentionSchedule } from '../../dist/src/kernel/attention/schedule.js';
import { acquireDevice } from '../../dist/src/runtime/device.js';
import { createSession } from '../../dist/src/runtime/session.js';
import { targetLimitsOf } from '../../dist/src/runtime/target.js';
import { makeTensor } from '../../dist/src/base/tensor.js';
import { measurePeak } from '../../dist/src/cli/bench-peak.js';
const [T, dh, causal] = [Number(process.argv[2] ?? 1024), Number(process.argv[3] ?? 64), process.argv[4] === 'causal' || process.argv[4] === 'sw64'];
const sw = process.argv[4] === 'sw64';
const variants = JSON.parse(process.argv[5] ?? '{}');
const H = 12;
const dev = await acquireDevice();
const target = targetLimitsOf(dev);
const src = sw ? attentionSource(H, dh, true, 'f32').replace('ki <= qi', 'ki <= qi && qi - ki < 64') : attentionSource(H, dh, causal, 'f32');
const g = compileSource(src, 'a.tfx', new Map(), true);
let seed = 5; const rnd = (n) => Array.from({ length: n }, () => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32 - 0.5);
const inputs = new Map(['q', 'k', 'v'].map((n) => [n, makeTensor('f32', [1, H, T, dh], rnd(H * T * dh))]));
const base = chooseSchedule(target);
const att = chooseAttentionSchedule(target, dh, dh);
const sessions = [];
for (const [name, lp] of Object.entries({ default: att.lanesPrefill, ...variants })) {
  const attention = lp === null ? (({ lanesPrefill, ...r }) => r)(att) : { ...att, lanesPrefill: lp };
  const sess = await createSession(dev, compilePlan(g, { target, schedule: { ...base, attention } }));
  await sess.run(inputs);
  sessions.push({ name, sess, ms: [] });
}
const peak = await measurePeak(dev.device, 3);
for (let r = 0; r < 9; r++) for (const x of sessions) { const res = await x.sess.run(inputs, { timing: true }); x.ms.push(res.timing.reduce((a, t) => a + t.ns, 0) / 1e6); }
const pairs = sw ? 64 * T : causal ? T * (T + 1) / 2 : T * T; const flops = 4 * H * dh * pairs;
console.log(`attention T=${T} dh=${dh} ${sw ? 'sliding window 64' : causal ? 'causal' : 'full'}: peak ${peak.fmaGflops.toFixed(1)} GFLOP/s`);
for (const x of sessions) { x.ms.sort((a, b) => a - b); const med = x.ms[4]; console.log(`  ${x.name.padEnd(20)} min ${x.ms[0].toFixed(1)} med ${med.toFixed(1)} ms  ${(flops / med / 1e6).toFixed(1)} GFLOP/s ${(100 * flops / med / 1e6 / peak.fmaGflops).toFixed(0)}%`); }
process.exit(0);
