// What `tfc compile FILE -o DIR --target cuda` writes next to manifest.json: one self-contained
// `cuda/<kernel>.cu` per plan kernel (its `source.cuda`) and `cuda/launch.json`, which tells a
// host how to launch each kernel: entry symbol (extern "C", so it is the kernel name), block size,
// grid as size formulas of the dims (the plan's SizeExpr JSON, evaluated like manifest.json's),
// and the parameter list in order: the buffers by binding, then one u32 per dim, all by value
// (cuLaunchKernel kernelParams = [&ptr0, ..., &dim0, ...]). The step order and buffer bindings
// are manifest.json's `steps`. Deterministic: fixed key order, plan order.
import { cudaPath, printCudaLauncher } from './launcher.js';
import { cudaPrelude } from './print.js';
import { cudaMmaHelpers } from './mma.js';
import { cudaRuntimeHeaders } from './runtime/header.js';
import type { Plan, PlanKernel, SizeExpr } from '../../src/kernel/plan/plan.js';

export const cudaLaunchFormat = 'tfc-cuda-launch';
export const cudaLaunchVersion = 1;

export type CudaParam =
  | { readonly kind: 'buffer'; readonly binding: number; readonly role: string; readonly access: 'read' | 'read_write' }
  | { readonly kind: 'dim'; readonly name: string };

export interface CudaLaunchKernel {
  readonly name: string;
  readonly file: string;
  readonly entry: string;
  readonly block: readonly [number, number, number];
  readonly grid: readonly [SizeExpr, SizeExpr, SizeExpr];
  readonly params: readonly CudaParam[];
}

export interface CudaLaunch {
  readonly format: typeof cudaLaunchFormat;
  readonly version: typeof cudaLaunchVersion;
  readonly model: string;
  readonly kernels: readonly CudaLaunchKernel[];
}

function cudaSource(k: PlanKernel): string {
  if (k.source.cuda === undefined) throw new Error(`internal: kernel ${k.name} has no CUDA source (compile for a cuda target)`);
  return k.source.cuda;
}

export function cudaLaunchOf(plan: Plan): CudaLaunch {
  return {
    format: cudaLaunchFormat,
    version: cudaLaunchVersion,
    model: plan.model,
    kernels: plan.kernels.map((k) => ({
      name: k.name,
      file: cudaPath(k.name),
      entry: k.name,
      block: k.workgroupSize,
      grid: k.grid,
      params: [
        ...k.slots.map((s): CudaParam => ({ kind: 'buffer', binding: s.binding, role: s.role, access: s.access })),
        ...k.uniforms.map((d): CudaParam => ({ kind: 'dim', name: d })),
      ],
    })),
  };
}

/**
 * `cuda/*.cu`, `cuda/launch.json` and the host launcher (`cuda/launcher.cu`, which #includes the
 * kernels and the runtime headers `cuda/tfc_runtime.h`, `cuda/tfc_launcher.h`: `nvcc -O3 -arch=native launcher.cu -o launcher`) for a plan
 * compiled with CUDA sources.
 */
export function cudaFiles(plan: Plan): Map<string, string> {
  const files = new Map<string, string>();
  for (const k of plan.kernels) files.set(cudaPath(k.name), cudaSource(k));
  files.set('cuda/launch.json', JSON.stringify(cudaLaunchOf(plan), null, 2) + '\n');
  files.set('cuda/launcher.cu', printCudaLauncher(plan));
  for (const [name, text] of cudaRuntimeHeaders()) files.set(`cuda/${name}`, text);
  return files;
}

/** `--emit cuda`: the prelude once, then every kernel (the per-file prelude left out). */
export function cudaEmitText(plan: Plan): string {
  const prelude = cudaPrelude();
  const mma = `${prelude}\n${cudaMmaHelpers()}`;
  let usesMma = false;
  const bodies = plan.kernels.map((k) => {
    const s = cudaSource(k);
    if (s.startsWith(`${mma}\n`)) {
      usesMma = true;
      return s.slice(mma.length + 1);
    }
    return s.startsWith(`${prelude}\n`) ? s.slice(prelude.length + 1) : s;
  });
  return [usesMma ? mma : prelude, ...bodies].join('\n');
}
