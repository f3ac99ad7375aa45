// Runs a compiled plan's CUDA kernels on the CPU: the generated host launcher
// (codegen/cuda/launcher.ts, which #includes the plan's `source.cuda`) built with g++ against
// codegen/cuda/emu/cuda_emu.h, every step in order with buffers in host memory. Binaries are cached by a hash of their source, so a rerun
// compiles nothing. Used by the CUDA tests (test/cuda/); needs g++ 12+ (C++20 <barrier>).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { evalCondition, evalSize, weightSources, type Plan } from '../kernel/plan/plan.js';
import { readSafetensors, writeSafetensors } from '../io/safetensors.js';
import type { Tensor64 } from '../base/tensor.js';
import { type LauncherMode, buildLauncher, runLauncher } from './launcher.js';

export interface EmuOptions {
  /** Where binaries are cached (default: $TMPDIR/tfc-cuda-emu). */
  readonly cacheDir?: string;
  /** 'nvcc': the same launcher built by nvcc and run on the GPU (tests that run where one exists). */
  readonly mode?: LauncherMode;
}

export interface EmuResult {
  /** Output name -> values (floats as Float32Array, i32, i8 and bool as Int32Array). */
  readonly outputs: Map<string, Float32Array | Int32Array>;
  readonly stepsRun: number;
}

/**
 * Runs every step of `plan` (skipping those whose `when` is false for `dims`) through the
 * generated host launcher (codegen/cuda/launcher.ts) built with g++ against cuda_emu.h: the same
 * driver `tfc run --target cuda-emu` and, under nvcc, `--target cuda` use. `feeds` maps the
 * safetensors names of inputs and weights to their values; they are written to safetensors files
 * in the buffers' dtypes (weights split into row chunks as their whole tables).
 */
export function runPlanEmulated(plan: Plan, dims: ReadonlyMap<string, number>, feeds: ReadonlyMap<string, ArrayLike<number>>, opts: EmuOptions = {}): EmuResult {
  const exe = buildLauncher(plan, opts.mode ?? 'emu', opts.cacheDir === undefined ? {} : { cacheDir: opts.cacheDir });
  const work = mkdtempSync(join(tmpdir(), 'tfc-cuda-run-'));
  try {
    const files = { input: new Map<string, Tensor64>(), weight: new Map<string, Tensor64>() };
    for (const b of plan.buffers) {
      if ((b.kind !== 'input' && b.kind !== 'weight') || b.name === undefined) continue;
      // A packed weight's parts are tensors of their own (the launcher packs them at load).
      const sources = b.kind === 'weight' ? weightSources(b) : [{ name: b.name, shape: b.shape.map((d) => evalSize(d, dims)) }];
      for (const { name, shape } of sources) {
        const values = feeds.get(name);
        if (values === undefined) throw new Error(`no values for ${b.kind} ${name}`);
        files[b.kind].set(name, { dtype: b.dtype, shape, data: Float64Array.from(values) });
      }
    }
    const paths = { weights: join(work, 'weights.safetensors'), inputs: join(work, 'inputs.safetensors'), out: join(work, 'out.safetensors') };
    writeFileSync(paths.weights, writeSafetensors(files.weight));
    writeFileSync(paths.inputs, writeSafetensors(files.input));
    runLauncher(exe, paths.weights, paths.inputs, paths.out, dims);
    const read = readSafetensors(new Uint8Array(readFileSync(paths.out)), paths.out);
    const outputs = new Map<string, Float32Array | Int32Array>();
    for (const [name, t] of read.tensors) outputs.set(name, t.dtype === 'i32' || t.dtype === 'i8' || t.dtype === 'bool' ? Int32Array.from(t.data) : Float32Array.from(t.data));
    const stepsRun = plan.steps.filter((s) => s.when === undefined || evalCondition(s.when, dims)).length;
    return { outputs, stepsRun };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
