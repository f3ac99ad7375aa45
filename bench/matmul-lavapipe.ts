// Tiled matmul schedules side by side on one WebGPU adapter (printed for the notes; no asserts):
//   npx tsc -p tsconfig.json --outDir /tmp/b && node /tmp/b/bench/matmul-lavapipe.js [M K N]
// Staged (workgroup tiles, the GPU schedule) vs direct loads (the CPU schedule), same plan
// otherwise. Time = sum of GPU timestamps, median of 5 runs after a warm-up, rounds interleaved.
import { compileSource } from '../src/cli/bench.js';
import { compilePlan } from '../src/compile/plan.js';
import { type MatmulSchedule, chooseSchedule } from '../src/kernel/schedule/schedule.js';
import { acquireDevice } from '../src/runtime/device.js';
import { createSession } from '../src/runtime/session.js';
import { targetLimitsOf } from '../src/runtime/target.js';
import { makeTensor } from '../src/base/tensor.js';
import { loadavg } from 'node:os';

const [M, K, N] = [Number(process.argv[2] ?? 256), Number(process.argv[3] ?? 768), Number(process.argv[4] ?? 768)];
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
const dev = await acquireDevice();
const target = targetLimitsOf(dev);
const src = `config {\n  m = ${M}\n  k = ${K}\n  n = ${N}\n}\ninput a: f32[m, k]\ninput b: f32[k, n]\noutput c: f32[m, n]\nmodel mm {\n  c = a @ b\n}\n`;
const graph = compileSource(src, 'bench/matmul.tfx', new Map(), false);
let seed = 3;
const rnd = (n: number): number[] => Array.from({ length: n }, () => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32 - 0.5);
const inputs = new Map([['a', makeTensor('f32', [M, K], rnd(M * K))], ['b', makeTensor('f32', [K, N], rnd(K * N))]]);
const variants: Record<string, MatmulSchedule> = {
  'staged 64x64 k16, 4x4/thread (GPU)': { tileRows: 64, tileCols: 64, tileK: 16, threadRows: 4, threadCols: 4 },
  'direct 64x64, 8x8/thread (CPU)': { tileRows: 64, tileCols: 64, tileK: 16, threadRows: 8, threadCols: 8, isDirect: true },
  'direct 32x64, 4x8/thread': { tileRows: 32, tileCols: 64, tileK: 16, threadRows: 4, threadCols: 8, isDirect: true },
  'direct 32x32, 4x4/thread': { tileRows: 32, tileCols: 32, tileK: 16, threadRows: 4, threadCols: 4, isDirect: true },
};
const base = chooseSchedule(target);
const sessions = [];
for (const [name, matmul] of Object.entries(variants)) {
  const sess = await createSession(dev, compilePlan(graph, { target, schedule: { ...base, matmul } }));
  await sess.run(inputs);
  sessions.push({ name, sess, ms: [] as number[] });
}
for (let round = 0; round < 5; round++) {
  for (const x of sessions) {
    const r = await x.sess.run(inputs, { timing: true });
    if (r.timing !== undefined) x.ms.push(r.timing.reduce((a, t) => a + t.ns, 0) / 1e6);
  }
}
const first = median(sessions[0]?.ms ?? []);
console.log(`matmul ${M}x${K} @ ${K}x${N} f32 on ${target.name}, load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
for (const x of sessions) {
  const t = median(x.ms);
  console.log(`  ${x.name.padEnd(36)} ${t.toFixed(1)} ms  ${((2 * M * K * N) / t / 1e6).toFixed(2)} GFLOP/s  x${(first / t).toFixed(2)} vs staged`);
  x.sess.dispose();
}
