// RoPE on K computed in the attention's K load (kload) vs rope(k) as its own kernel, on one
// WebGPU adapter in one process (issue 5); printed for the notes, no asserts.
//   npx tsc -p tsconfig.json --outDir /tmp/b && ln -s $PWD/node_modules /tmp/b/ && node /tmp/b/bench/rope-kload.js [T [H HKV]]
// (default T=1024, H=8 query heads on HKV=2 KV heads, dh=64, B=1, f32, causal). Only K is roped, so
// the two plans differ only in where rope(k) runs: `kload` = the webgpu pipeline (one attention
// kernel that recomputes K per key tile: once per workgroup when K is staged, once per row group
// of the workgroup at every inner-loop read when K is read directly), `kernel` = the same
// pipeline without fuse-attention-loads (a fused_map writes rope(k), attention reads it).
// Schedules: the target's own (lavapipe: direct, 32x64, 8 rows/thread) and a staged one.
// Time = sum of the launched steps' GPU timestamps, median of 5 runs after 2 warm-up runs.
import { checkSource } from '../src/check/check-source.js';
import { makeTensor } from '../src/base/tensor.js';
import { compilePlan } from '../src/compile/plan.js';
import type { AttentionSchedule } from '../src/kernel/attention/schedule.js';
import { evalCondition } from '../src/kernel/plan/plan.js';
import { chooseSchedule } from '../src/kernel/schedule/schedule.js';
import { runPipeline } from '../src/passes/driver.js';
import { createPassContext } from '../src/passes/pass.js';
import { pipelines } from '../src/passes/pipeline.js';
import { acquireDevice } from '../src/runtime/device.js';
import { createSession } from '../src/runtime/session.js';
import { targetLimitsOf } from '../src/runtime/target.js';

const T = Number(process.argv[2] ?? 1024);
const [H, HKV, dh] = [Number(process.argv[3] ?? 8), Number(process.argv[4] ?? 2), 64];
const half = dh / 2;
const src = `dims B, T
input q: f32[B, ${H}, T, ${dh}]
input xk: f32[B, T, ${HKV * dh}]
input v: f32[B, ${HKV}, T, ${dh}]
input cos_t: f32[T, ${dh}]
input sin_t: f32[T, ${dh}]
output o: f32[B, ${H}, T, ${dh}]
model m {
  k0 = permute(reshape(xk, [B, T, ${HKV}, ${dh}]), [0, 2, 1, 3])
  k = k0 * cos_t + concat(-slice(k0, ${half}, ${dh}, axis=-1), slice(k0, 0, ${half}, axis=-1), axis=-1) * sin_t
  qg = reshape(q, [B, ${HKV}, ${H / HKV}, T, ${dh}])
  kg = reshape(k, [B, ${HKV}, 1, T, ${dh}])
  vg = reshape(v, [B, ${HKV}, 1, T, ${dh}])
  causal = grid[T, T](qi, ki) => ki <= qi
  p = softmax(where(causal, qg @ transpose(kg) / ${Math.sqrt(dh)}, -inf), axis=-1)
  o = reshape(p @ vg, [B, ${H}, T, ${dh}])
}
`;
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
const dev = await acquireDevice();
const target = targetLimitsOf(dev);
const r = checkSource(src, 'bench/rope-kload.tfx', new Map());
if (r.graph === undefined) throw new Error(r.diagnostics.map((d) => d.message).join('; '));
const source = r.graph;
let s = 7;
const rnd = (n: number): number[] => Array.from({ length: n }, () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 31 - 1);
const inputs = new Map([
  ['q', makeTensor('f32', [1, H, T, dh], rnd(H * T * dh))],
  ['xk', makeTensor('f32', [1, T, HKV * dh], rnd(HKV * T * dh))],
  ['v', makeTensor('f32', [1, HKV, T, dh], rnd(HKV * T * dh))],
  ['cos_t', makeTensor('f32', [T, dh], rnd(T * dh))],
  ['sin_t', makeTensor('f32', [T, dh], rnd(T * dh))],
]);
const dims = new Map([['B', 1], ['T', T]]);
const base = chooseSchedule(target);
const staged: AttentionSchedule = { tileRows: 32, tileCols: 32, lanes: target.subgroupSize || 8, useSubgroups: target.subgroupSize > 0, splits: 8, decodeMaxT: 1, rowsPerThread: 4 };
// All four plans are built first; the timed runs then go round-robin over them, so a load change
// on the (shared) machine hits every plan alike.
interface Contender { readonly name: string; readonly run: () => Promise<{ ms: number; o: Float32Array }>; readonly ms: number[] }
const contenders: Contender[] = [];
for (const [sname, attention] of [['target default', base.attention], ['staged 32x32', staged]] as const) {
  for (const variant of ['kload', 'kernel'] as const) {
    const passes = variant === 'kload' ? pipelines.webgpu : pipelines.webgpu.filter((p) => p.name !== 'fuse-attention-loads');
    const g = runPipeline(source, passes, createPassContext({ target: 'webgpu' }));
    const plan = compilePlan(g, { target, schedule: attention === undefined ? base : { ...base, attention } });
    const steps = plan.steps.filter((st) => st.when === undefined || evalCondition(st.when, dims));
    const sess = await createSession(dev, plan);
    const run = async (): Promise<{ ms: number; o: Float32Array }> => {
      const res = await sess.run(inputs, { timing: true });
      return { ms: (res.timing ?? []).reduce((x, t) => x + t.ns, 0) / 1e6, o: res.outputs.get('o')?.data as Float32Array };
    };
    for (let i = 0; i < 2; i++) await run();
    contenders.push({ name: `${sname} schedule, ${variant}: ${steps.length} launches (${steps.map((st) => st.kernel).join(', ')})`, run, ms: [] });
  }
}
const outs: Float32Array[] = [];
for (let i = 0; i < 7; i++) {
  for (const c of contenders) {
    const { ms, o } = await c.run();
    c.ms.push(ms);
    if (i === 0) outs.push(o);
  }
}
let diff = 0;
const ref = outs[0];
for (const o of outs) if (ref !== undefined) for (let i = 0; i < o.length; i++) diff = Math.max(diff, Math.abs((o[i] ?? 0) - (ref[i] ?? 0)));
console.log(`rope(k) at load, T=${T} ${H}/${HKV} heads dh=${dh} causal on ${target.name} (GPU ms, median of 7, round-robin):`);
for (const [i, c] of contenders.entries()) {
  const m = median(c.ms);
  const pair = contenders[i % 2 === 0 ? i + 1 : i - 1];
  console.log(`  ${c.name}: ${m.toFixed(2)} ms${i % 2 === 0 && pair !== undefined ? ` (kload / kernel = ${(m / median(pair.ms)).toFixed(2)})` : ''}`);
}
console.log(`  max |difference| between the plans' outputs = ${diff.toExponential(2)}`);
