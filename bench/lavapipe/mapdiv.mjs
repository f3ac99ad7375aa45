// scratch: does a map kernel's per-element division by a run-time dim cost on lavapipe? The KV
// cache concat of gpt2-kv (present = concat(past, new) along P) as tfc emits it (flat index,
// div/mod by P + T per element) against the same copy with a 2-D grid (one row of dh per
// workgroup: the run-time divisions once per workgroup from workgroup_id).
import { buf, time, read, dev } from './harness.mjs';
const P = Number(process.argv[2] ?? 128), T = 1, H = 12, DH = 64;
const S = P + T, n = H * S * DH;
const dimsBuf = dev.createBuffer({ size: 16, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
dev.queue.writeBuffer(dimsBuf, 0, new Uint32Array([1, T, P, 0]));
const past = buf(H * P * DH * 4, Float32Array.from({ length: H * P * DH }, (_, i) => i));
const fresh = buf(T * 3 * H * DH * 4, Float32Array.from({ length: T * 3 * H * DH }, (_, i) => -i));
const out1 = buf(n * 4), out2 = buf(n * 4);
const head = `struct Dims { B: u32, T: u32, P: u32, }
@group(0) @binding(0) var<storage, read> t0: array<f32>;
@group(0) @binding(1) var<storage, read> t1: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> dims: Dims;`;
const flat = `${head}
@compute @workgroup_size(256, 1, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let flat: u32 = wid.x * 256u + lid.x;
  if (flat < dims.B * 12u * (dims.P + dims.T) * 64u) {
    let i3 = flat % 64u; let q3 = flat / 64u;
    let i2 = q3 % (dims.P + dims.T); let q2 = q3 / (dims.P + dims.T);
    let i1 = q2 % 12u; let q1 = q2 / 12u;
    var w: f32 = 0.0f;
    if (i2 < dims.P) { w = t0[i3 + i2 * 64u + i1 * 64u * dims.P + q1 * 64u * dims.P * 12u]; }
    else { w = t1[i1 * 64u + i3 + 768u + (i2 - dims.P) * 2304u + q1 * 2304u * dims.T]; }
    out[flat] = w;
  }
}`;
const rows = `${head}
@compute @workgroup_size(64, 1, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let row: u32 = wid.x;
  let i2 = row % (dims.P + dims.T); let q2 = row / (dims.P + dims.T);
  let i1 = q2 % 12u; let q1 = q2 / 12u;
  let i3 = lid.x;
  let flat = row * 64u + i3;
  var w: f32 = 0.0f;
  if (i2 < dims.P) { w = t0[i3 + i2 * 64u + i1 * 64u * dims.P + q1 * 64u * dims.P * 12u]; }
  else { w = t1[i1 * 64u + i3 + 768u + (i2 - dims.P) * 2304u + q1 * 2304u * dims.T]; }
  out[flat] = w;
}`;
const copy = `${head}
@compute @workgroup_size(256, 1, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let flat: u32 = wid.x * 256u + lid.x;
  if (flat < dims.B * 12u * dims.P * 64u) { out[flat] = t0[flat] + t1[0] * 0.0; }
}`;
const consts = flat.replaceAll('dims.P', `${P}u`).replaceAll('dims.T', '1u');
const b1 = [past, fresh, out1, dimsBuf], b2 = [past, fresh, out2, dimsBuf];
const t = { flat: [], rows: [], copy: [], consts: [] };
for (let r = 0; r < 7; r++) {
  t.flat.push(await time(flat, b1, [Math.ceil(n / 256), 1, 1], 3));
  t.rows.push(await time(rows, b2, [H * S, 1, 1], 3));
  t.copy.push(await time(copy, b2, [Math.ceil(H * P * DH / 256), 1, 1], 3));
  t.consts.push(await time(consts, b2, [Math.ceil(n / 256), 1, 1], 3));
}
const a = await read(out1, n * 4);
await time(rows, b2, [H * S, 1, 1], 1);
const b = await read(out2, n * 4);
let same = a.every((x, i) => x === b[i]);
const med = (xs) => xs.sort((x, y) => x - y)[xs.length >> 1];
console.log(`P=${P}: ${n} elements; flat ${med(t.flat).toFixed(3)} ms, rows ${med(t.rows).toFixed(3)} ms, plain copy of the past ${med(t.copy).toFixed(3)} ms, flat with constant dims ${med(t.consts).toFixed(3)} ms (wall per dispatch incl. submit); same output: ${same}`);
process.exit(0);
