// Fused vs unfused attention on one WebGPU adapter (issue 5), printed for the notes; no asserts.
//   npx tsx bench/attention-fused.ts [T]      (default T=1024, 12 heads, dh=64, B=1, f32)
// Both graphs come from the same .tfx (bench.ts attentionSource): fused = the webgpu pipeline
// with fuse-attention, unfused = the cleanup passes only. Time = sum of the steps' GPU timestamps
// (session.run with timing), median of 5 runs after 2 warm-up runs; wall clock alongside.
import { compileSource } from '../src/cli/bench.js';
import { attentionSource } from '../src/cli/bench-attention.js';
import { compilePlan } from '../src/compile/plan.js';
import { evalCondition, evalSize } from '../src/kernel/plan/plan.js';
import { acquireDevice } from '../src/runtime/device.js';
import { createSession } from '../src/runtime/session.js';
import { targetLimitsOf } from '../src/runtime/target.js';
import { makeTensor } from '../src/base/tensor.js';

const T = Number(process.argv[2] ?? 1024);
const H = 12;
const dh = 64;
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

const dev = await acquireDevice();
const target = targetLimitsOf(dev);
const n = H * T * dh;
let s = 7;
const rnd = (): number[] => Array.from({ length: n }, () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 31 - 1));
const inputs = new Map([['q', makeTensor('f32', [1, H, T, dh], rnd())], ['k', makeTensor('f32', [1, H, T, dh], rnd())], ['v', makeTensor('f32', [1, H, T, dh], rnd())]]);
const dims = new Map([['B', 1], ['T', T]]);
for (const causal of [true, false]) {
  const src = attentionSource(H, dh, causal, 'f32');
  const row: string[] = [];
  const outs: Float32Array[] = [];
  for (const fuse of [true, false]) {
    const plan = compilePlan(compileSource(src, 'bench/attention.tfx', new Map(), fuse), { target });
    const launches = plan.steps.filter((st) => st.when === undefined || evalCondition(st.when, dims)).length;
    const read = plan.steps.reduce((a, st) => {
      const k = plan.kernels.find((x) => x.name === st.kernel);
      return st.when !== undefined && !evalCondition(st.when, dims) ? a : a + (k === undefined ? 0 : evalSize(k.bytesRead, dims) + evalSize(k.bytesWritten, dims));
    }, 0);
    const sess = await createSession(dev, plan);
    for (let i = 0; i < 2; i++) await sess.run(inputs);
    const gpu: number[] = [];
    const wall: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      const r = await sess.run(inputs, { timing: true });
      wall.push(performance.now() - t0);
      if (r.timing !== undefined) gpu.push(r.timing.reduce((a, t) => a + t.ns, 0) / 1e6);
      if (i === 0) outs.push(r.outputs.get('o')?.data as Float32Array);
    }
    sess.dispose();
    row.push(`${fuse ? 'fused' : 'unfused'}: ${launches} launches, traffic ${(read / 2 ** 20).toFixed(1)} MiB, GPU ${median(gpu).toFixed(1)} ms, wall ${median(wall).toFixed(1)} ms`);
  }
  let diff = 0;
  const [a, b] = outs;
  if (a !== undefined && b !== undefined) for (let i = 0; i < a.length; i++) diff = Math.max(diff, Math.abs((a[i] ?? 0) - (b[i] ?? 0)));
  console.log(`attention T=${T} heads=${H} dh=${dh} f32 ${causal ? 'causal' : 'full'} on ${target.name}:\n  ${row.join('\n  ')}\n  max |fused - unfused| = ${diff.toExponential(2)}`);
}
