// scratch: what one device.createBindGroup costs in Dawn (node webgpu): the per-step cost a decode step saved by keeping bind groups (Session, issue 16 item 8).
import { buf, dev } from './harness.mjs';
const code = `@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> o: array<f32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3<u32>) { o[g.x] = a[g.x] + b[g.x]; }`;
const pipe = dev.createComputePipeline({ layout: 'auto', compute: { module: dev.createShaderModule({ code }), entryPoint: 'main' } });
const bufs = [buf(4096), buf(4096), buf(4096)];
const layout = pipe.getBindGroupLayout(0);
for (let r = 0; r < 3; r++) {
  const t0 = performance.now();
  for (let i = 0; i < 2610; i++) dev.createBindGroup({ layout, entries: bufs.map((b, j) => ({ binding: j, resource: { buffer: b, offset: 0, size: 4096 } })) });
  console.log(`2610 createBindGroup: ${(performance.now() - t0).toFixed(1)} ms (${((performance.now() - t0) / 2610 * 1000).toFixed(1)} us each)`);
}
process.exit(0);
