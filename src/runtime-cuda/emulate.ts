// Runs a compiled plan's CUDA kernels on the CPU: the plan's `source.cuda` plus a generated main
// (codegen/cuda/emu/driver.ts) built with g++ against codegen/cuda/emu/cuda_emu.h, every step in
// order with buffers in host memory. Binaries are cached by a hash of their source, so a rerun
// compiles nothing. Used by the CUDA tests (test/cuda/); needs g++ 12+ (C++20 <barrier>).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { printEmuProgram } from '../../codegen/cuda/emu/driver.js';
import { evalCondition, evalSize, type Plan } from '../kernel/plan.js';
import { decodeValues, encodeValues, paddedBytes } from '../runtime/convert.js';

/** codegen/cuda/emu/cuda_emu.h, found from this file in src/ or in dist/src/. */
export function emuHeaderPath(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    const p = join(dir, 'codegen', 'cuda', 'emu', 'cuda_emu.h');
    if (existsSync(p)) return p;
    dir = resolve(dir, '..');
  }
  throw new Error('internal: codegen/cuda/emu/cuda_emu.h not found');
}

export interface EmuOptions {
  /** Where binaries are cached (default: $TMPDIR/tfc-cuda-emu). */
  readonly cacheDir?: string;
}

const gxxFlags = ['-std=c++20', '-O1', '-pthread', '-w'];

/**
 * cuda_emu.h copied into the cache with a precompiled header next to it (keyed by its hash): the
 * standard headers it pulls in (<barrier>, <thread>, <iostream>) are most of a build's g++ time,
 * and the .gch halves it. g++ silently falls back to the plain header when the .gch does not fit.
 */
function precompiledHeader(cache: string): { path: string; hash: string } {
  const text = readFileSync(emuHeaderPath());
  const hash = createHash('sha256').update(text).digest('hex').slice(0, 16);
  const dir = join(cache, `emu-${hash}`);
  const path = join(dir, 'cuda_emu.h');
  if (!existsSync(`${path}.gch`)) {
    mkdirSync(dir, { recursive: true });
    const tmpH = `${path}.${process.pid}.tmp`;
    writeFileSync(tmpH, text);
    renameSync(tmpH, path);
    const tmpGch = `${path}.gch.${process.pid}.tmp`;
    execFileSync('g++', [...gxxFlags, '-x', 'c++-header', path, '-o', tmpGch], { stdio: ['ignore', 'ignore', 'pipe'] });
    renameSync(tmpGch, `${path}.gch`);
  }
  return { path, hash };
}

/** Builds (or finds in the cache) the emulator binary for a plan; returns its path. */
export function buildEmulator(plan: Plan, opts: EmuOptions = {}): string {
  const cache = opts.cacheDir ?? join(tmpdir(), 'tfc-cuda-emu');
  const program = printEmuProgram(plan.kernels);
  const header = precompiledHeader(cache);
  const hash = createHash('sha256').update(header.hash).update('\0').update(program).digest('hex').slice(0, 24);
  const exe = join(cache, `${hash}.bin`);
  if (existsSync(exe)) return exe;
  const src = join(cache, `${hash}.cu`);
  writeFileSync(src, program);
  const tmpExe = `${exe}.${process.pid}.tmp`;
  // -x c++: the .cu is plain C++ once cuda_emu.h is included first.
  execFileSync('g++', [...gxxFlags, '-include', header.path, '-x', 'c++', src, '-o', tmpExe], { stdio: ['ignore', 'ignore', 'pipe'] });
  renameSync(tmpExe, exe); // atomic: a concurrent build of the same hash writes the same bytes
  return exe;
}

export interface EmuResult {
  /** Output name -> values (floats as Float32Array, i32 and bool as Int32Array). */
  readonly outputs: Map<string, Float32Array | Int32Array>;
  readonly stepsRun: number;
}

/**
 * Runs every step of `plan` (skipping those whose `when` is false for `dims`). `feeds` maps the
 * safetensors names of inputs and weights to their values.
 */
export function runPlanEmulated(plan: Plan, dims: ReadonlyMap<string, number>, feeds: ReadonlyMap<string, ArrayLike<number>>, opts: EmuOptions = {}): EmuResult {
  const exe = buildEmulator(plan, opts);
  const work = mkdtempSync(join(tmpdir(), 'tfc-cuda-run-'));
  try {
    const lines: string[] = [`buffers ${plan.buffers.length}`];
    for (const b of plan.buffers) {
      const n = evalSize(b.elements, dims);
      const bytes = paddedBytes(b.dtype, n);
      let path = '-';
      if (b.kind === 'input' || b.kind === 'weight') {
        const all = b.name === undefined ? undefined : feeds.get(b.name);
        if (all === undefined) throw new Error(`no values for ${b.kind} ${b.name ?? `#${b.id}`}`);
        // A row chunk of a split weight (PlanBuffer.rows) reads its rows of the whole table.
        const row = b.rows === undefined ? 0 : n / (b.rows.end - b.rows.start);
        const values = b.rows === undefined ? all : Array.prototype.slice.call(all, b.rows.start * row, b.rows.end * row);
        if (values.length !== n) throw new Error(`${b.name ?? ''}: ${values.length} values for ${n} elements`);
        path = join(work, `in${b.id}.bin`);
        writeFileSync(path, new Uint8Array(encodeValues(b.dtype, values)));
      }
      lines.push(`${bytes} ${path}`);
    }
    const kernelIndex = new Map(plan.kernels.map((k, i) => [k.name, i]));
    const run = plan.steps.filter((s) => s.when === undefined || evalCondition(s.when, dims));
    lines.push(`steps ${run.length}`);
    for (const s of run) {
      const i = kernelIndex.get(s.kernel);
      const k = plan.kernels[i ?? -1];
      if (i === undefined || k === undefined) throw new Error(`internal: step names unknown kernel ${s.kernel}`);
      const grid = k.grid.map((g) => evalSize(g, dims));
      const dimValues = k.uniforms.map((d) => {
        const v = dims.get(d);
        if (v === undefined) throw new Error(`dim ${d} has no value`);
        return v;
      });
      const ids = k.slots.map((slot) => {
        const b = s.bindings.find((x) => x.binding === slot.binding);
        if (b === undefined) throw new Error(`internal: step of ${k.name} leaves slot ${slot.binding} unbound`);
        return b.buffer;
      });
      lines.push([i, ...grid, dimValues.length, ...dimValues, ids.length, ...ids].join(' '));
    }
    lines.push(`outputs ${plan.outputs.length}`);
    for (const o of plan.outputs) lines.push(`${o.buffer} ${join(work, `out${o.buffer}.bin`)}`);
    const script = join(work, 'run.txt');
    writeFileSync(script, lines.join('\n') + '\n');
    execFileSync(exe, [script], { stdio: ['ignore', 'ignore', 'pipe'] });
    const outputs = new Map<string, Float32Array | Int32Array>();
    for (const o of plan.outputs) {
      const b = plan.buffers[o.buffer];
      if (b === undefined) throw new Error(`internal: output ${o.name} has no buffer`);
      const data = readFileSync(join(work, `out${o.buffer}.bin`));
      const bytes = data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength);
      outputs.set(o.name, decodeValues(b.dtype, bytes, evalSize(b.elements, dims)));
    }
    return { outputs, stepsRun: run.length };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
