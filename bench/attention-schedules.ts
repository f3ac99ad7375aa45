// Fused attention tile schedules side by side with the unfused plan on one WebGPU adapter
// (printed for the notes; no asserts). Same inputs and one process, so the ratios hold under load:
//   npx tsc -p tsconfig.json --outDir /tmp/b && node /tmp/b/bench/attention-schedules.js [T] [rounds]
// Time = sum of the steps' GPU timestamps, median over rounds (schedules interleaved per round).
import { compileSource } from '../src/cli/bench.js';
import { attentionSource } from '../src/cli/bench-attention.js';
import { compilePlan } from '../src/compile/plan.js';
import { type AttentionSchedule, attentionSharedBytes, chooseAttentionSchedule } from '../src/kernel/attention/schedule.js';
import { type MatmulSchedule, chooseSchedule } from '../src/kernel/schedule/schedule.js';
import { acquireDevice } from '../src/runtime/device.js';
import { createSession } from '../src/runtime/session.js';
import { targetLimitsOf } from '../src/runtime/target.js';
import { makeTensor } from '../src/base/tensor.js';
import { loadavg } from 'node:os';

const T = Number(process.argv[2] ?? 1024);
const rounds = Number(process.argv[3] ?? 3);
const only = process.argv[4]?.split(','); // substrings of variant names to run
const masks = process.argv[5] === 'causal' ? [true] : process.argv[5] === 'full' ? [false] : [true, false];
const H = 12;
const dh = 64;
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
const dev = await acquireDevice();
const target = targetLimitsOf(dev);
let seed = 7;
const rnd = (): number[] => Array.from({ length: H * T * dh }, () => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 31 - 1);
const inputs = new Map([['q', makeTensor('f32', [1, H, T, dh], rnd())], ['k', makeTensor('f32', [1, H, T, dh], rnd())], ['v', makeTensor('f32', [1, H, T, dh], rnd())]]);
const gpuStaged: AttentionSchedule = chooseAttentionSchedule({ ...target, isCpu: false }, dh, dh);
const stagedMatmul: MatmulSchedule = chooseSchedule({ ...target, isCpu: false }).matmul;
const base = chooseSchedule(target);
const at = (tileRows: number, tileCols: number, rowsPerThread: number, isDirect: boolean): AttentionSchedule => ({ ...gpuStaged, tileRows, tileCols, rowsPerThread, isDirect });
const { longPrefill: _long, ...shortOnly } = chooseAttentionSchedule(target, dh, dh);
type Variant = { readonly fuse: boolean; readonly attention?: AttentionSchedule; readonly matmul: MatmulSchedule };
const variants: Record<string, Variant> = {
  'unfused, staged matmul (GPU schedule)': { fuse: false, matmul: stagedMatmul },
  'unfused, chosen matmul': { fuse: false, matmul: base.matmul },
  'fused 32x32 staged, 1 row/thread (GPU)': { fuse: true, attention: gpuStaged, matmul: base.matmul },
  'fused chosen': { fuse: true, attention: chooseAttentionSchedule(target, dh, dh), matmul: base.matmul },
  'fused chosen, short-prompt step only': { fuse: true, attention: shortOnly, matmul: base.matmul },
  'fused 64x32 direct, 4 rows/thread': { fuse: true, attention: at(64, 32, 4, true), matmul: base.matmul },
  'fused 32x32 staged, 4 rows/thread': { fuse: true, attention: at(32, 32, 4, false), matmul: base.matmul },
  'fused 64x32 staged, 8 rows/thread': { fuse: true, attention: at(64, 32, 8, false), matmul: base.matmul },
  'fused 64x32 direct, 8 rows/thread': { fuse: true, attention: at(64, 32, 8, true), matmul: base.matmul },
  'fused 32x32 direct, 8 rows/thread': { fuse: true, attention: at(32, 32, 8, true), matmul: base.matmul },
  'fused 64x64 direct, 8 rows/thread': { fuse: true, attention: at(64, 64, 8, true), matmul: base.matmul },
  'fused 64x32 direct, 1 lane/row (K/V loads uniform)': { fuse: true, attention: { ...at(64, 32, 1, true), lanes: 1, useSubgroups: false }, matmul: base.matmul },
  'fused 64x16 direct, 1 lane/row (K/V loads uniform)': { fuse: true, attention: { ...at(64, 16, 1, true), lanes: 1, useSubgroups: false }, matmul: base.matmul },
  'fused 32x64 direct, 8 rows/thread': { fuse: true, attention: at(32, 64, 8, true), matmul: base.matmul },
  'fused 64x64 staged, 8 rows/thread': { fuse: true, attention: at(64, 64, 8, false), matmul: base.matmul },
  // Traffic-minimal (qInRegisters): Q rows in private arrays, K/V staged once per workgroup of
  // up to 1024 rows, P by shuffle, per-row-group block sparsity.
  ...Object.fromEntries(
    ([[1024, 32], [1024, 64], [512, 32], [256, 32], [128, 32], [64, 64]] as const).map(([r, c]) => [
      `fused ${r}x${c} Q in registers, staged K/V, 8 rows/thread`,
      { fuse: true, attention: { ...at(r, c, 8, false), shuffleP: true, qInRegisters: true }, matmul: base.matmul },
    ]),
  ),
};
console.log(`attention T=${T} heads=${H} dh=${dh} f32 B=1 on ${target.name}; chosen fused: ${JSON.stringify(chooseAttentionSchedule(target, dh, dh))}`);
for (const causal of masks) {
  const runs = [];
  for (const [name, vv] of Object.entries(variants)) {
    if (only !== undefined && !only.some((o) => name.includes(o))) continue;
    if (vv.attention !== undefined && attentionSharedBytes(vv.attention, vv.attention.tileRows, dh, dh) > target.maxWorkgroupStorageBytes) {
      console.log(`  (skipped ${name}: over the workgroup storage limit)`);
      continue;
    }
    const g = compileSource(attentionSource(H, dh, causal, 'f32'), 'bench/attention.tfx', new Map(), vv.fuse);
    const sess = await createSession(dev, compilePlan(g, { target, schedule: { ...base, matmul: vv.matmul, ...(vv.attention === undefined ? {} : { attention: vv.attention }) } }));
    const out = (await sess.run(inputs)).outputs.get('o')?.data as Float32Array;
    runs.push({ name, sess, out, ms: [] as number[] });
  }
  for (let r = 0; r < rounds; r++) {
    for (const x of runs) {
      const res = await x.sess.run(inputs, { timing: true });
      if (res.timing !== undefined) x.ms.push(res.timing.reduce((a, t) => a + t.ns, 0) / 1e6);
    }
  }
  const ref = runs[0];
  const unfused = median(ref?.ms ?? []);
  console.log(`${causal ? 'causal' : 'full'} (load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}):`);
  for (const x of runs) {
    let diff = 0;
    if (ref !== undefined) for (let i = 0; i < x.out.length; i++) diff = Math.max(diff, Math.abs((x.out[i] ?? 0) - (ref.out[i] ?? 0)));
    const t = median(x.ms);
    console.log(`  ${x.name.padEnd(42)} ${t.toFixed(1).padStart(8)} ms  x${(unfused / t).toFixed(2)} vs first  max|diff| ${diff.toExponential(1)}`);
    x.sess.dispose();
  }
}
