// The tensor-core wrappers of codegen/cuda/mma.ts on their own: a one-warp test kernel
// (fixtures/mma-wrappers.cu: cp.async and plain-load staging, zero fill past K = 29, f16 and bf16
// mma into f32) runs on the CPU emulator against a float64 matmul of the same 16-bit inputs, and
// compiles with nvcc for sm_80 and sm_90a without spills; where a GPU exists the same check runs
// on it (CI has none: compile only).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cudaMmaHelpers } from '../../codegen/cuda/mma.js';
import { cudaPrelude } from '../../codegen/cuda/print.js';
import { findNvcc, parsePtxasOutput } from '../../codegen/cuda/ptxas.js';
import { emuHeaderPath, gxxFlags } from '../../src/runtime-cuda/emu-toolchain.js';
import { detectNvidiaGpu } from '../../src/runtime-cuda/launcher.js';

const fixture = join('test', 'cuda', 'fixtures', 'mma-wrappers.cu');
const dir = mkdtempSync(join(tmpdir(), 'tfc-mma-wrappers-'));
const prelude = join(dir, 'prelude.h');
writeFileSync(prelude, `${cudaPrelude()}\n${cudaMmaHelpers()}`);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('tensor-core wrappers', () => {
  it('match a float64 matmul of the rounded inputs on the emulator (f16 aligned and misaligned, bf16)', () => {
    const exe = join(dir, 'mma-wrappers');
    const c = spawnSync('g++', [...gxxFlags, '-include', emuHeaderPath(), '-include', prelude, '-x', 'c++', fixture, '-o', exe], { encoding: 'utf8' });
    expect(c.stderr).toBe('');
    expect(c.status).toBe(0);
    const r = spawnSync(exe, { encoding: 'utf8' });
    // The fixture's bound: |error| <= 29 f32 roundings of sums <= 29 (products of 16-bit floats are exact).
    expect(r.stdout.trim().split('\n').map((l) => l.endsWith(' ok'))).toEqual([true, true, true]);
    expect(r.status).toBe(0);
  }, 60_000);

  const nvcc = findNvcc();
  it.runIf(nvcc !== undefined)('compile with nvcc for sm_80 and sm_90a without spills', () => {
    for (const arch of ['sm_80', 'sm_90a']) {
      const c = spawnSync(nvcc ?? 'nvcc', [`-arch=${arch}`, '-std=c++17', '-c', '-Xptxas', '-v', '-include', prelude, '-x', 'cu', fixture, '-o', join(dir, `${arch}.o`)], { encoding: 'utf8' });
      expect(c.status, c.stderr).toBe(0);
      const stats = parsePtxasOutput(c.stderr);
      expect([...stats.keys()].sort(), arch).toEqual(['mma_bf16', 'mma_f16']);
      for (const [name, s] of stats) expect([name, s.spillStoreBytes, s.spillLoadBytes, s.stackFrameBytes], arch).toEqual([name, 0, 0, 0]);
    }
  }, 120_000);

  // Where a GPU exists: the fixture's host main runs the same check on the device, so the
  // hardware confirms the fragment layouts the emulator and the wrappers share.
  const gpu = detectNvidiaGpu();
  it.runIf(nvcc !== undefined && gpu !== undefined)('match the float64 matmul on the GPU', () => {
    const exe = join(dir, 'mma-wrappers-gpu');
    const c = spawnSync(nvcc ?? 'nvcc', [`-arch=${gpu?.arch ?? 'native'}`, '-std=c++17', '-include', prelude, '-x', 'cu', fixture, '-o', exe], { encoding: 'utf8' });
    expect(c.status, c.stderr).toBe(0);
    const r = spawnSync(exe, { encoding: 'utf8' });
    expect(r.stdout.trim().split('\n').map((l) => l.endsWith(' ok')), r.stdout).toEqual([true, true, true]);
    expect(r.status).toBe(0);
  }, 120_000);
});
