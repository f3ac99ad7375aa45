// Decode GEMV read patterns for a 768 x 3072 weight, in GB/s of weight bytes (the "GFLOP/s" column): row tiles x column strips
// (split-K, partials) against a plain streaming read. node bench/lavapipe/gemv2.mjs
import { buf } from './harness.mjs';
import { compare } from './cmp.mjs';
const [N, K] = [3072, 768];
const ba = buf(K * 4), bb = buf(N * K * 4), bo = buf(N * K * 4);
const hdr = `enable subgroups;
@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> out: array<vec4<f32>>;
`;
const v = [];
// rows split: workgroup takes R rows of W[K,N], lanes over vec4 columns (stride 8), partial [K/R, N]
for (const R of [8, 32]) {
  const N4 = N / 4, per = N4 / 8;
  let s = hdr + `@compute @workgroup_size(8) fn main(@builtin(local_invocation_index) l: u32, @builtin(workgroup_id) w: vec3<u32>) {
  let k0 = w.x * ${R}u;
  var acc: array<vec4<f32>, ${per}> = array<vec4<f32>, ${per}>();
  for (var r = 0u; r < ${R}u; r++) { let x = a[k0 + r]; let row = (k0 + r) * ${N4}u;
    for (var c = 0u; c < ${per}u; c++) { acc[c] = fma(vec4<f32>(x), b[row + c * 8u + l], acc[c]); }
  }
  for (var c = 0u; c < ${per}u; c++) { out[w.x * ${N4}u + c * 8u + l] = acc[c]; }
}`;
  v.push({ name: `rows R${R}`, code: s, grid: [K / R, 1, 1], flops: N * K * 4 });
}
// same but column strip of 32 vec4 per workgroup and R rows (2D grid)
for (const [R, CW] of [[32, 32], [64, 64], [128, 16]]) {
  const N4 = N / 4, per = CW / 8;
  let s = hdr + `@compute @workgroup_size(8) fn main(@builtin(local_invocation_index) l: u32, @builtin(workgroup_id) w: vec3<u32>) {
  let k0 = w.y * ${R}u; let c0 = w.x * ${CW}u;
  var acc: array<vec4<f32>, ${per}> = array<vec4<f32>, ${per}>();
  for (var r = 0u; r < ${R}u; r++) { let x = a[k0 + r]; let row = (k0 + r) * ${N4}u + c0;
`;
  for (let c = 0; c < per; c++) s += `    acc[${c}u] = fma(vec4<f32>(x), b[row + ${c * 8}u + l], acc[${c}u]);\n`;
  s += `  }\n`;
  for (let c = 0; c < per; c++) s += `  out[w.y * ${N4}u + c0 + ${c * 8}u + l] = acc[${c}u];\n`;
  v.push({ name: `tile R${R} CW${CW}`, code: s + '}\n', grid: [N4 / CW, K / R, 1], flops: N * K * 4 });
}
// reference: pure streaming read of W with the copy pattern (sum into one value per lane)
{
  const N4 = N / 4, total = N4 * K, perWg = 2048;
  const s = hdr + `@compute @workgroup_size(8) fn main(@builtin(local_invocation_index) l: u32, @builtin(workgroup_id) w: vec3<u32>) {
  var acc = vec4<f32>(0.0); let base = w.x * ${perWg}u;
  for (var i = 0u; i < ${perWg / 8}u; i++) { acc = acc + b[base + i * 8u + l]; }
  out[w.x * 8u + l] = acc;
}`;
  v.push({ name: `stream read`, code: s, grid: [total / perWg, 1, 1], flops: N * K * 4, bindings: [1, 2] });
}
await compare(v, [ba, bb, bo], 9);
process.exit(0);
