// `tfc run --target cuda | cuda-emu`: takes the plan compiled for CUDA, builds the host launcher
// (src/runtime-cuda/launcher.ts: nvcc for a GPU, g++ + cuda_emu.h for the CPU emulator), runs it
// on the user's (already validated) safetensors files and reads the outputs back as Tensor64s.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findNvcc } from '../../codegen/cuda/ptxas.js';
import { readSafetensors } from '../io/safetensors.js';
import type { Plan } from '../kernel/plan/plan.js';
import type { Tensor64 } from '../base/tensor.js';
import { type LauncherMode, buildLauncher, detectNvidiaGpu, runLauncher } from './launcher.js';

/** Why this machine cannot run `mode`, or undefined when it can (checked before any work). */
export function cudaRunRefusal(mode: LauncherMode): string | undefined {
  if (mode === 'nvcc') {
    if (detectNvidiaGpu() === undefined) return 'no NVIDIA GPU is available (nvidia-smi lists none); use --target cuda-emu to run the same CUDA kernels on the CPU emulator';
    if (findNvcc() === undefined) return 'nvcc not found (install the CUDA toolkit or set TFC_NVCC)';
    return undefined;
  }
  const r = spawnSync('g++', ['--version'], { stdio: 'ignore' });
  return r.status === 0 ? undefined : 'the CUDA CPU emulator needs g++ 12 or later (C++20 <barrier>) on PATH';
}

export interface CudaRun {
  readonly outputs: Map<string, Tensor64>;
  readonly dims: ReadonlyMap<string, number>;
  /** For the CLI's summary line: `cuda (NVIDIA H100 ..., sm_90)` or `cuda-emu (CPU emulator)`. */
  readonly where: string;
}

/** Runs a plan compiled for CUDA (cudaLimits, with CUDA sources) on weight and input files checked by the caller. */
export function runOnCuda(plan: Plan, weightsPath: string, inputsPath: string, dims: ReadonlyMap<string, number>, mode: LauncherMode): CudaRun {
  const gpu = mode === 'nvcc' ? detectNvidiaGpu() : undefined;
  const exe = buildLauncher(plan, mode, gpu === undefined ? {} : { arch: gpu.arch });
  const work = mkdtempSync(join(tmpdir(), 'tfc-cuda-run-'));
  try {
    const out = join(work, 'out.safetensors');
    runLauncher(exe, weightsPath, inputsPath, out, dims);
    const read = readSafetensors(new Uint8Array(readFileSync(out)), out);
    const outputs = new Map<string, Tensor64>();
    // Plan output order (the launcher's file is sorted by the writer, not by the model).
    for (const o of plan.outputs) {
      const t = read.tensors.get(o.name);
      const b = plan.buffers[o.buffer];
      if (t === undefined || b === undefined) throw new Error(`internal: CUDA launcher wrote no output ${o.name}`);
      outputs.set(o.name, { dtype: b.dtype, shape: t.shape, data: t.data });
    }
    return { outputs, dims, where: mode === 'nvcc' ? `cuda (${gpu?.name ?? 'GPU'}, ${gpu?.arch ?? 'native'})` : 'cuda-emu (CPU emulator)' };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
