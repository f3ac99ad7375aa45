// Builds and runs the generated CUDA host launcher (codegen/cuda/launcher.ts) for a plan: with nvcc
// for a real GPU (`tfc run --target cuda`), or with g++ against codegen/cuda/emu/cuda_emu.h on the
// CPU (`--target cuda-emu`, runPlanEmulated, CI). Binaries are cached by a hash of every source
// file and the compiler flags, so a rerun of the same plan compiles nothing.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { cudaPath, printCudaLauncher } from '../../codegen/cuda/launcher.js';
import { findNvcc } from '../../codegen/cuda/ptxas.js';
import { cudaRuntimeHeaders } from '../../codegen/cuda/runtime/header.js';
import type { Plan } from '../kernel/plan/plan.js';
import { gxxFlags, precompiledHeader } from './emu-toolchain.js';

export type LauncherMode = 'emu' | 'nvcc';

export interface LauncherOptions {
  /** Where binaries are cached (default: $TMPDIR/tfc-cuda-emu for emu, ~/.cache/tfc/cuda for nvcc). */
  readonly cacheDir?: string;
  /** nvcc's -arch (default: the GPU's, from nvidia-smi, else `native`). */
  readonly arch?: string;
}

/** The files of one launcher build: launcher.cu, the runtime headers and every kernel's .cu. */
export function launcherSources(plan: Plan): Map<string, string> {
  const files = new Map<string, string>([['launcher.cu', printCudaLauncher(plan)], ...cudaRuntimeHeaders()]);
  for (const k of plan.kernels) {
    if (k.source.cuda === undefined) throw new Error(`internal: kernel ${k.name} has no CUDA source (compilePlan with a cuda target)`);
    files.set(cudaPath(k.name).slice('cuda/'.length), k.source.cuda);
  }
  return files;
}

export interface NvidiaGpu {
  readonly name: string;
  /** `sm_90` style, from the compute capability. */
  readonly arch: string;
}

/** The first NVIDIA GPU nvidia-smi lists, or undefined (no driver, no GPU, no nvidia-smi). */
export function detectNvidiaGpu(): NvidiaGpu | undefined {
  const r = spawnSync('nvidia-smi', ['--query-gpu=name,compute_cap', '--format=csv,noheader'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  if (r.status !== 0 || typeof r.stdout !== 'string') return undefined;
  const first = r.stdout.split('\n').find((l) => l.trim() !== '');
  if (first === undefined) return undefined;
  const [name = 'NVIDIA GPU', cap = ''] = first.split(',').map((s) => s.trim());
  return { name, arch: /^\d+\.\d+$/.test(cap) ? `sm_${cap.replace('.', '')}` : 'native' };
}

/** Builds (or finds in the cache) the launcher binary for `plan`; returns its path. */
export function buildLauncher(plan: Plan, mode: LauncherMode, opts: LauncherOptions = {}): string {
  const files = launcherSources(plan);
  const cache = opts.cacheDir ?? (mode === 'emu' ? join(tmpdir(), 'tfc-cuda-emu') : join(homedir(), '.cache', 'tfc', 'cuda'));
  mkdirSync(cache, { recursive: true });
  let compiler: string;
  let args: (src: string, exe: string) => string[];
  const hash = createHash('sha256');
  if (mode === 'emu') {
    const header = precompiledHeader(cache);
    hash.update(`emu ${header.hash} ${gxxFlags.join(' ')}\0`);
    compiler = 'g++';
    // -x c++: the .cu files are plain C++ once cuda_emu.h is included first.
    args = (src, exe) => [...gxxFlags, '-include', header.path, '-x', 'c++', src, '-o', exe];
  } else {
    const nvcc = findNvcc();
    if (nvcc === undefined) throw new Error('nvcc not found (set TFC_NVCC or install the CUDA toolkit)');
    const arch = opts.arch ?? detectNvidiaGpu()?.arch ?? 'native';
    const flags = ['-O3', '-std=c++17', `-arch=${arch}`, '-diag-suppress', '177'];
    hash.update(`nvcc ${nvcc} ${flags.join(' ')}\0`);
    compiler = nvcc;
    args = (src, exe) => [...flags, src, '-o', exe];
  }
  for (const [name, text] of [...files].sort(([a], [b]) => (a < b ? -1 : 1))) hash.update(`${name}\0${text}\0`);
  const key = hash.digest('hex').slice(0, 24);
  const exe = join(cache, `launcher-${key}.bin`);
  if (existsSync(exe)) return exe;
  const dir = join(cache, `launcher-${key}.src.${process.pid}`);
  mkdirSync(dir, { recursive: true });
  for (const [name, text] of files) writeFileSync(join(dir, name), text);
  const tmpExe = `${exe}.${process.pid}.tmp`;
  try {
    execFileSync(compiler, args(join(dir, 'launcher.cu'), tmpExe), { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    const stderr = (e as { stderr?: Buffer }).stderr?.toString() ?? '';
    throw new Error(`${mode === 'emu' ? 'g++' : 'nvcc'} failed on the CUDA launcher in ${dir}:\n${stderr.slice(0, 4000)}`);
  }
  renameSync(tmpExe, exe); // atomic: a concurrent build of the same hash writes the same bytes
  return exe;
}

/** Failure of a launcher run (its one-line message from tfc_runtime.h's `fail`). */
export class LauncherError extends Error {}

/**
 * Runs a launcher binary: reads `weights` and `inputs` (safetensors), writes `out`. `dims` are
 * passed as DIM=VALUE arguments (the launcher also binds bare-dim input axes itself).
 */
export function runLauncher(exe: string, weights: string, inputs: string, out: string, dims: ReadonlyMap<string, number>): void {
  const r = spawnSync(exe, [weights, inputs, out, ...[...dims].map(([k, v]) => `${k}=${v}`)], { encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'] });
  if (r.status !== 0) throw new LauncherError(`CUDA launcher ${r.signal !== null ? `killed by ${r.signal}` : `exited ${r.status ?? r.error?.message ?? '?'}`}: ${(r.stderr ?? '').trim()}`);
}
