// tfc's lane matmul kernel vs a hand-written one and the FMA peak, interleaved in one process:
//   node bench/lavapipe/vsraw.mjs M,K,N ['{"name": MATMUL_SCHEDULE}']
import { buf } from './harness.mjs';
import { compare } from './cmp.mjs';
import { compileSource } from '../../dist/src/cli/bench.js';
import { compilePlan } from '../../dist/src/compile/plan.js';
import { chooseSchedule, lavapipeLimits } from '../../dist/src/kernel/schedule/schedule.js';
const [M, K, N] = (process.argv[2] ?? '128,3072,768').split(',').map(Number);
const extra = JSON.parse(process.argv[3] ?? '{}');
const ba = buf(M * K * 4), bb = buf(K * N * 4), bo = buf(M * N * 4);
const src = `config {\n  m = ${M}\n  k = ${K}\n  n = ${N}\n}\ninput a: f32[m, k]\ninput b: f32[k, n]\noutput c: f32[m, n]\nmodel mm {\n  c = a @ b\n}\n`;
const graph = compileSource(src, 'mm.tfx', new Map(), false);
const base = chooseSchedule(lavapipeLimits);
const vs = [];
for (const [name, matmul] of Object.entries({ tfc: base.matmul, ...extra })) {
  const plan = compilePlan(graph, { target: lavapipeLimits, schedule: { ...base, matmul } });
  const k = plan.kernels[0];
  const grid = k.grid.map((g) => g.kind === 'const' ? g.value : NaN);
  vs.push({ name, code: k.source.wgsl, grid, flops: 2 * M * N * K });
}
// hand-written: vec4 accumulators + fma (mm3 bgen 4/1)
{
  const RB = 4, C4 = 1, TM = 32, TN = 32, N4 = N / 4, K4 = K / 4;
  let s = `enable subgroups;
@group(0) @binding(0) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> out: array<vec4<f32>>;
@compute @workgroup_size(8, 1, 1)
fn main(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  let r0 = wid.x * ${TM}u; let c4 = wid.y * ${TN / 4}u + li;
`;
  for (let r = 0; r < TM; r++) s += `  var acc${r} = vec4<f32>(0.0);\n`;
  s += `  for (var k4 = 0u; k4 < ${K4}u; k4++) {\n`;
  for (let rb = 0; rb < RB; rb++) s += `    let av${rb} = a[(r0 + ${rb * 8}u + li) * ${K4}u + k4];\n`;
  for (let kk = 0; kk < 4; kk++) s += `    let b${kk} = b[(k4 * 4u + ${kk}u) * ${N4}u + c4];\n`;
  for (let rb = 0; rb < RB; rb++) for (let r = 0; r < 8; r++) {
    s += `    { let ar = subgroupBroadcast(av${rb}, ${r}u);\n`;
    for (let kk = 0; kk < 4; kk++) s += `      acc${rb * 8 + r} = fma(vec4<f32>(ar[${kk}]), b${kk}, acc${rb * 8 + r});\n`;
    s += `    }\n`;
  }
  s += `  }\n`;
  for (let r = 0; r < TM; r++) s += `  out[(r0 + ${r}u) * ${N4}u + c4] = acc${r};\n`;
  vs.push({ name: 'hand vec4 fma', code: s + '}\n', grid: [M / TM, N / TN, 1], flops: 2 * M * N * K });
}
{
  const acc = 4, iters = 4096, wg = 8;
  const decl = Array.from({ length: acc }, (_, i) => `var a${i} = vec4<f32>(f32(gid.x) * 1e-9 + ${i}.0);`).join('\n');
  const body = Array.from({ length: acc }, (_, i) => `a${i} = fma(a${i}, m, c);`).join('\n');
  const code = `@group(0) @binding(2) var<storage, read_write> o: array<vec4<f32>>;
@compute @workgroup_size(${wg}) fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  ${decl}
  let m = vec4<f32>(0.999, 0.998, 0.997, 0.996); let c = vec4<f32>(1e-3);
  for (var i = 0u; i < ${iters}u; i++) { ${body} }
  o[gid.x] = ${Array.from({ length: acc }, (_, i) => `a${i}`).join(' + ')};
}`;
  vs.push({ name: 'peak fma', code, grid: [1024, 1, 1], flops: 1024 * wg * iters * acc * 8, bindings: [2] });
}
await compare(vs, [ba, bb, bo], 11);
process.exit(0);
