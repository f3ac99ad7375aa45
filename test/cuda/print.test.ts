// The CUDA printer on small kernels (inline snapshot of one), its determinism, the launch file
// and the CLI (`compile --emit cuda`, `compile -o DIR --target cuda`, `run --target cuda` refused).
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cudaLaunchOf, cudaFiles } from '../../codegen/cuda/launch.js';
import { cudaPrelude, printCuda } from '../../codegen/cuda/print.js';
import { main } from '../../src/cli/main.js';
import { compilePlan } from '../../src/kernel/compile-plan.js';
import type { Kernel } from '../../src/kernel/ir.js';
import { lowerToKernels } from '../../src/kernel/lower.js';
import { chooseSchedule, cudaLimits } from '../../src/kernel/schedule.js';
import { everyOpIr, graphOf } from '../unit/kernel/helpers.js';

const addIr = `graph m(N) {
  %0 = input {name="x"} : f32[N]  loc(m.tfx:1:1)
  %1 = const {value=-inf} : f32[]  loc(m.tfx:2:1)
  %2 = max %0, %1 : f32[N]  loc(m.tfx:3:1)
  output "y" = %2  loc(m.tfx:4:1)
}
`;

function kernelsOf(ir: string): readonly Kernel[] {
  return lowerToKernels(graphOf(ir), cudaLimits, chooseSchedule(cudaLimits)).kernels;
}

describe('printCuda', () => {
  it('prints a map kernel: header, extern "C" entry, dims as u32 params, -inf as INFINITY', () => {
    const [k] = kernelsOf(addIr);
    if (k === undefined) throw new Error('no kernel');
    expect(printCuda(k, { prelude: false })).toMatchInlineSnapshot(`
      "// kernel k0_max: max
      // from m.tfx:3:1
      // schedule: map, 256 threads per workgroup, one element per thread
      // block: 256x1x1, grid: [ceil(N/256) - max(ceil(N/256), 65535) + 65535, ceil(ceil(N/256)/65535), 1]
      // bytes read: 4*N
      // bytes written: 4*N
      // flops: N
      extern "C" __global__ void __launch_bounds__(256, 1) k0_max(const float* __restrict__ a, float* __restrict__ out, const unsigned int dim_N) {
        const unsigned int wg = (blockIdx.y * 65535u) + blockIdx.x;
        const unsigned int flat = (wg * 256u) + threadIdx.x;
        if (flat < dim_N) {
          const float a1 = a[flat];
          out[flat] = fmaxf(a1, -INFINITY);
        }
      }
      "
    `);
  });

  it('prints the same text twice and never mentions WGSL spellings', () => {
    const ks = kernelsOf(everyOpIr);
    const once = ks.map((k) => printCuda(k)).join('\n');
    expect(ks.map((k) => printCuda(k)).join('\n')).toBe(once);
    for (const wgsl of ['workgroupBarrier', 'var<', 'select(', 'bitcast<', '@builtin', 'subgroupAdd']) expect(once).not.toContain(wgsl);
  });

  it('maps barriers, shared arrays and subgroup ops to __syncthreads, __shared__ and warp shuffles', () => {
    const text = kernelsOf(everyOpIr).map((k) => printCuda(k, { prelude: false })).join('\n');
    expect(text).toContain('__syncthreads();');
    expect(text).toMatch(/__shared__ float \w+\[\d+\];/);
    expect(text).toContain('tfc_warp_sum(');
    expect(text).toContain('const unsigned int sg_lane = lindex & 31u;');
    expect(cudaPrelude()).toContain('__shfl_xor_sync(0xffffffffu, x, offset)');
  });
});

describe('launch.json and the CLI', () => {
  it('lists buffers by binding then dims, in the order of the kernel parameters', () => {
    const plan = compilePlan(graphOf(addIr), { target: cudaLimits });
    const launch = cudaLaunchOf(plan);
    expect(launch.kernels.map((k) => [k.entry, k.block, k.params.map((p) => (p.kind === 'dim' ? `dim ${p.name}` : `${p.role} ${p.access}`))])).toEqual([
      [plan.kernels[0]?.name, [256, 1, 1], ['a read', 'out read_write', 'dim N']],
    ]);
    const src = plan.kernels[0]?.source.cuda ?? '';
    expect(src).toMatch(/\(const float\* __restrict__ a, float\* __restrict__ out, const unsigned int dim_N\)/);
    expect([...cudaFiles(plan).keys()]).toEqual([`cuda/${plan.kernels[0]?.name ?? ''}.cu`, 'cuda/launch.json']);
  });

  it('tfc compile --emit cuda prints the prelude once; -o DIR --target cuda writes cuda/*.cu and launch.json', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tfc-cuda-cli-'));
    let out = '';
    let err = '';
    const io = { out: (t: string) => (out += t), err: (t: string) => (err += t), env: {} };
    expect(await main(['compile', 'examples/gpt2.tfx', '--set', 'layers=1,d=32,heads=2,vocab=64,ctx=16', '--emit', 'cuda'], io)).toBe(0);
    expect(out.split('#define TFC_CUDA_PRELUDE').length).toBe(2);
    expect(out).toMatch(/extern "C" __global__ void __launch_bounds__\(\d+, 1\) \w+\(/);
    const outDir = join(dir, 'out');
    expect(await main(['compile', 'examples/gpt2.tfx', '--set', 'layers=1,d=32,heads=2,vocab=64,ctx=16', '--target', 'cuda', '-o', outDir], io), err).toBe(0);
    const files = readdirSync(join(outDir, 'cuda')).sort();
    const launch = JSON.parse(readFileSync(join(outDir, 'cuda', 'launch.json'), 'utf8')) as { kernels: { file: string }[] };
    expect(files).toEqual([...launch.kernels.map((k) => k.file.slice('cuda/'.length)), 'launch.json'].sort());
    expect(launch.kernels.length).toBeGreaterThan(3);
    // The manifest records the CUDA limits the kernels were compiled for.
    expect(JSON.parse(readFileSync(join(outDir, 'manifest.json'), 'utf8')).target).toBe('cuda-sm80');
  });

  it('tfc run --target cuda is refused with the reason (usage error, exit 2)', async () => {
    let err = '';
    const code = await main(['run', 'examples/gpt2.tfx', '--weights', 'w.safetensors', '--inputs', 'i.safetensors', '--out', 'o.safetensors', '--target', 'cuda'], {
      out: () => {},
      err: (t) => (err += t),
      env: {},
    });
    expect(code).toBe(2);
    expect(err).toContain('tfc run --target cuda: the CUDA host runtime');
    expect(err).toContain('needs an NVIDIA GPU');
  });
});
