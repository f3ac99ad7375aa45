// The CUDA printer on small kernels (inline snapshot of one), its determinism, the launch file
// and the CLI (`compile --emit cuda`, `compile -o DIR --target cuda`, the launcher files and temp slots).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cudaLaunchOf, cudaFiles } from '../../codegen/cuda/launch.js';
import { cString, cxxSize, tempSlots } from '../../codegen/cuda/launcher.js';
import { cudaPrelude, printCuda } from '../../codegen/cuda/print.js';
import { main } from '../../src/cli/main.js';
import { compilePlan } from '../../src/compile/plan.js';
import type { Kernel } from '../../src/kernel/ir/ir.js';
import { lowerToKernels } from '../../src/kernel/lower/lower.js';
import { chooseSchedule, cudaLimits } from '../../src/kernel/schedule/schedule.js';
import { runPipeline } from '../../src/passes/driver.js';
import { createPassContext } from '../../src/passes/pass.js';
import { pipelines } from '../../src/passes/pipeline.js';
import { emuHeaderPath } from '../../src/runtime-cuda/emu-toolchain.js';
import { printTrafficReport, trafficReportJson } from '../../src/kernel/analysis/report.js';
import { lowerModel } from '../../src/compile/kernels.js';
import { compileModel } from '../../src/compile/model.js';
import { everyOpIr, graphOf } from '../unit/kernel/helpers.js';
import { graphOf as tfxGraph } from './helpers.js';

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
    expect([...cudaFiles(plan).keys()]).toEqual([`cuda/${plan.kernels[0]?.name ?? ''}.cu`, 'cuda/launch.json', 'cuda/launcher.cu', 'cuda/tfc_runtime.h', 'cuda/tfc_launcher.h']);
  });

  it('tfc compile --emit cuda prints the prelude once; -o DIR --target cuda writes cuda/*.cu, launch.json and the launcher', async () => {
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
    expect(files).toEqual([...launch.kernels.map((k) => k.file.slice('cuda/'.length)), 'launch.json', 'launcher.cu', 'tfc_launcher.h', 'tfc_runtime.h'].sort());
    // The written folder is self-contained: launcher.cu with its includes type-checks under the emulator header.
    const launcher = readFileSync(join(outDir, 'cuda', 'launcher.cu'), 'utf8');
    for (const k of launch.kernels) expect(launcher).toContain(`#include "${k.file.slice('cuda/'.length)}"`);
    const gxx = spawnSync('g++', ['-std=c++20', '-fsyntax-only', '-w', '-include', emuHeaderPath(), '-x', 'c++', join(outDir, 'cuda', 'launcher.cu')], { encoding: 'utf8' });
    expect(gxx.stderr).toBe('');
    expect(gxx.status).toBe(0);
    expect(launch.kernels.length).toBeGreaterThan(3);
    // The manifest records the CUDA limits the kernels were compiled for.
    expect(JSON.parse(readFileSync(join(outDir, 'manifest.json'), 'utf8')).target).toBe('cuda-sm80');
  });

  it('launcher temps share memory only between disjoint live ranges', () => {
    const g = runPipeline(tfxGraph(readFileSync('examples/gpt2.tfx', 'utf8'), 'examples/gpt2.tfx', new Map(Object.entries({ layers: 2, d: 32, heads: 2, vocab: 64, ctx: 16 }))), pipelines.cuda, createPassContext({ target: 'cuda' }));
    const plan = compilePlan(g, { target: cudaLimits });
    const slots = tempSlots(plan);
    const temps = plan.buffers.filter((b) => b.kind === 'temp');
    expect(slots.size).toBe(temps.length);
    expect(new Set(slots.values()).size).toBeLessThan(temps.length); // some reuse on a 2-layer model
    for (const a of temps)
      for (const b of temps) {
        if (a.id < b.id && slots.get(a.id) === slots.get(b.id)) expect(a.lastUse < b.firstUse || b.lastUse < a.firstUse, `temps ${a.id} and ${b.id}`).toBe(true);
      }
    // Size formulas in C++: ceil-division and max spelled through tfc_runtime.h's helpers.
    expect(cxxSize({ kind: 'max', args: [{ kind: 'ceildiv', num: { kind: 'dim', name: 'T' }, den: 64 }, { kind: 'const', value: 1 }] }, new Map([['T', 0]]))).toBe('tfc::umax(tfc::cdiv(d[0], 64), uint64_t(1))');
    expect(cString('a"b\\?\n')).toBe('"a\\042b\\134\\077\\012"');
  });

  it('--report columns: registers, shared memory and spills per kernel when resources are given', () => {
    const c = compileModel({ file: 'examples/gpt2.tfx', text: readFileSync('examples/gpt2.tfx', 'utf8') }, { target: 'cuda', overrides: new Map(Object.entries({ layers: 1, d: 32, heads: 2, vocab: 64, ctx: 16 })) });
    // Stand-in for ptxas (tested in nvcc.test.ts): kernel i has 10 + i registers, no stats for the last.
    const r = lowerModel(c, { limits: cudaLimits }).report({ resources: (ks) => ks.map((_, i) => (i === ks.length - 1 ? undefined : { registers: 10 + i, sharedBytes: 4 * i, spillBytes: 0 })) });
    const text = printTrafficReport(r);
    expect(text).toMatch(/kernel +bytes read +bytes written +FLOPs +model ms +registers +smem bytes +spill bytes/);
    const rows = text.split('\n').filter((l) => r.kernels.some((k) => l.startsWith(`${k.name} `)));
    expect(rows[1]?.trim().split(/ +/).slice(-3)).toEqual(['11', '4', '0']);
    expect(rows.at(-1)?.trim().split(/ +/).slice(-3)).toEqual(['-', '-', '-']);
    const json = JSON.parse(trafficReportJson(r)) as { kernels: { resources?: unknown }[] };
    expect(json.kernels[0]?.resources).toEqual({ registers: 10, sharedBytes: 0, spillBytes: 0 });
  });
});
