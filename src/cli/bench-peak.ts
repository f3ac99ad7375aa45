// `tfc bench peak`, and the ceiling every other bench table is read against: what this adapter
// does at best, measured in the same process as the kernels it is compared with (a CPU adapter's
// speed drifts by 30% over an hour, so a figure from another run would mislead).
//   fma:  independent vec4 fused multiply-adds, 4 or 8 accumulators per invocation, 8- and
//         16-invocation workgroups (on lavapipe a workgroup of one or two subgroups runs fastest;
//         32+ invocations with many accumulators reach ~60% of it), the best variant's median.
//   copy: a 64 MiB buffer copied as vec4 by 8-lane workgroups (read + write bytes per second), the median.
// Times are wall times of one dispatch each (submit to onSubmittedWorkDone), tens of ms long.

/** The adapter's ceilings in this process. */
export interface Peak {
  readonly fmaGflops: number;
  readonly copyGBs: number;
  /** Per-round figures (the best FMA variant's), for the spread. */
  readonly fmaRuns: readonly number[];
  readonly copyRuns: readonly number[];
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 === 1 ? (s[s.length >> 1] ?? NaN) : ((s[(s.length >> 1) - 1] ?? NaN) + (s[s.length >> 1] ?? NaN)) / 2;
};

/** A WGSL kernel of `acc` independent vec4 FMA chains, `iters` iterations each. */
export function fmaKernel(workgroup: number, acc: number, iters: number): string {
  const decl = Array.from({ length: acc }, (_, i) => `  var a${i} = vec4<f32>(f32(gid.x) * 1e-9 + ${i}.0);`).join('\n');
  const step = Array.from({ length: acc }, (_, i) => `a${i} = fma(a${i}, m, c);`).join(' ');
  const sum = Array.from({ length: acc }, (_, i) => `a${i}`).join(' + ');
  return `@group(0) @binding(0) var<storage, read_write> o: array<vec4<f32>>;
@compute @workgroup_size(${workgroup})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
${decl}
  let m = vec4<f32>(0.999, 0.998, 0.997, 0.996);
  let c = vec4<f32>(1e-3);
  for (var i = 0u; i < ${iters}u; i++) { ${step} }
  o[gid.x] = ${sum};
}
`;
}

/**
 * Copy: one subgroup-sized workgroup per 2048 vec4s, each lane copying every 8th (so a step of
 * the 8 lanes moves 128 contiguous bytes). One vec4 per invocation measured 2-3 GB/s on
 * lavapipe, this form 9-10 GB/s: per-invocation overhead, not memory, limited the former.
 */
export const copyKernel = `@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<f32>>;
@compute @workgroup_size(8)
fn main(@builtin(workgroup_id) w: vec3<u32>, @builtin(local_invocation_index) l: u32, @builtin(num_workgroups) n: vec3<u32>) {
  let base = (w.y * n.x + w.x) * 2048u;
  for (var i = 0u; i < 256u; i++) {
    let j = base + i * 8u + l;
    if (j < arrayLength(&src)) { dst[j] = src[j]; }
  }
}
`;

/** Workgroups of copyKernel for `vec4s` elements, as a 2-D grid. */
export function copyGrid(vec4s: number): readonly [number, number] {
  const groups = Math.ceil(vec4s / 2048);
  return [Math.min(groups, 32768), Math.ceil(groups / 32768)];
}

/** FLOPs of one dispatch of fmaKernel over `groups` workgroups. */
export const fmaFlops = (groups: number, workgroup: number, acc: number, iters: number): number => groups * workgroup * iters * acc * 4 * 2;

async function timed(device: GPUDevice, pipeline: GPUComputePipeline, bind: GPUBindGroup, grid: readonly [number, number]): Promise<number> {
  const enc = device.createCommandEncoder();
  const pass = enc.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, bind);
  pass.dispatchWorkgroups(grid[0], grid[1]);
  pass.end();
  const t0 = performance.now();
  device.queue.submit([enc.finish()]);
  await device.queue.onSubmittedWorkDone();
  return performance.now() - t0;
}

/** Measures the FMA and copy ceilings on `device` (`rounds` timed dispatches each, after one warm-up). */
export async function measurePeak(device: GPUDevice, rounds = 5): Promise<Peak> {
  const usage = (globalThis as unknown as { GPUBufferUsage: { STORAGE: number; COPY_DST: number } }).GPUBufferUsage;
  const iters = 2048;
  const groups = 2048;
  const out = device.createBuffer({ size: groups * 16 * 16, usage: usage.STORAGE });
  let best: number[] = [];
  // (workgroup, accumulators): the fastest measured on lavapipe were 8x4 and 16x8 (40 GFLOP/s on
  // a quiet machine where 64x8 reached 25); the best of them is the ceiling.
  for (const [workgroup, acc] of [[8, 4], [16, 8], [8, 8]] as const) {
    const pipeline = await device.createComputePipelineAsync({ layout: 'auto', compute: { module: device.createShaderModule({ code: fmaKernel(workgroup, acc, iters) }), entryPoint: 'main' } });
    const bind = device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: out } }] });
    const n = Math.floor((groups * 8) / workgroup);
    await timed(device, pipeline, bind, [n, 1]);
    const runs: number[] = [];
    for (let r = 0; r < rounds; r++) runs.push(fmaFlops(n, workgroup, acc, iters) / (await timed(device, pipeline, bind, [n, 1])) / 1e6);
    if (median(runs) > median(best)) best = runs;
    if (best.length === 0) best = runs;
  }
  const bytes = 64 * 1024 * 1024;
  const src = device.createBuffer({ size: bytes, usage: usage.STORAGE });
  const dst = device.createBuffer({ size: bytes, usage: usage.STORAGE });
  const copy = await device.createComputePipelineAsync({ layout: 'auto', compute: { module: device.createShaderModule({ code: copyKernel }), entryPoint: 'main' } });
  const bind = device.createBindGroup({ layout: copy.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: src } }, { binding: 1, resource: { buffer: dst } }] });
  const grid = copyGrid(bytes / 16);
  await timed(device, copy, bind, grid);
  const copyRuns: number[] = [];
  for (let r = 0; r < rounds; r++) copyRuns.push((2 * bytes) / (await timed(device, copy, bind, grid)) / 1e6);
  out.destroy();
  src.destroy();
  dst.destroy();
  return { fmaGflops: median(best), copyGBs: median(copyRuns), fmaRuns: best, copyRuns };
}

/** One line for table headers: `peak: 31.2 GFLOP/s FMA, 14.3 GB/s copy (this process)`. */
export function peakLine(p: Peak): string {
  return `peak in this process: ${p.fmaGflops.toFixed(1)} GFLOP/s FMA (vec4, median of ${p.fmaRuns.length}), ${p.copyGBs.toFixed(1)} GB/s copy (read + write)`;
}
