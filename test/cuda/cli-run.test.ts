// `tfc run --target cuda-emu` end to end: the generated host launcher (codegen/cuda/launcher.ts)
// built with g++ against cuda_emu.h reads the weights and inputs files, runs every step and writes
// the outputs, which must match `--target interp` (float64) within 1e-4 relative. Malformed inputs
// are refused by the same checks as every target (TFC30x, exit 1) before any launcher is built;
// `--target cuda` without an NVIDIA GPU is a usage error (exit 2) pointing at cuda-emu.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readSafetensors, writeSafetensors } from '../../src/io/safetensors.js';
import { detectNvidiaGpu } from '../../src/runtime-cuda/launcher.js';
import { relError } from './helpers.js';
import { tfc } from '../helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'tfc-cuda-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));


function tensors(path: string) {
  return readSafetensors(new Uint8Array(readFileSync(path)), path).tensors;
}

const cases = [
  { name: 'gpt2', file: 'examples/gpt2.tfx', set: 'vocab=64,ctx=16,d=32,heads=2,layers=2', dims: 'B=2,T=7' },
  // Prefill: an empty cache (P = 0, zero-size past tensors) and 5 new tokens.
  { name: 'llama', file: 'examples/llama.tfx', set: 'vocab=64,d=32,heads=4,kv_heads=2,layers=2,ffn=48', dims: 'B=1,T=5,P=0' },
] as const;

// The emulator always; --target cuda (nvcc, on the device) too where a GPU is present.
const targets = detectNvidiaGpu() === undefined ? ['cuda-emu'] : ['cuda-emu', 'cuda'];

describe('tfc run --target cuda-emu vs --target interp', () => {
  for (const c of cases) for (const target of targets) {
    it(`${c.file} (${c.dims}) on ${target}`, async () => {
      const w = join(dir, `${c.name}-w.safetensors`);
      const i = join(dir, `${c.name}-in.safetensors`);
      expect((await tfc('init-weights', c.file, '--set', c.set, '--seed', '5', '--out', w)).code).toBe(0);
      expect((await tfc('random-inputs', c.file, '--set', c.set, '--set', c.dims, '--seed', '6', '--out', i)).code).toBe(0);
      const ref = join(dir, `${c.name}-interp.safetensors`);
      const got = join(dir, `${c.name}-${target}.safetensors`);
      expect((await tfc('run', c.file, '--set', c.set, '--weights', w, '--inputs', i, '--out', ref, '--target', 'interp')).code).toBe(0);
      const r = await tfc('run', c.file, '--set', c.set, '--weights', w, '--inputs', i, '--out', got, '--target', target);
      expect(r.stderr).toContain(target === 'cuda' ? 'on cuda (' : 'cuda-emu (CPU emulator)');
      expect(r.code).toBe(0);
      const want = tensors(ref);
      const have = tensors(got);
      expect([...have.keys()].sort()).toEqual([...want.keys()].sort());
      for (const [name, t] of want) {
        expect(have.get(name)?.shape, name).toEqual(t.shape);
        // f32 kernels vs float64 (written as f32): 1e-4 relative, floor at 1e-2 of the tensor's scale.
        expect(relError(have.get(name)?.data ?? [], t), name).toBeLessThan(1e-4);
      }
    }, 600_000);
  }

  it('refuses malformed inputs before launching, as other targets do (exit 1, TFC30x)', async () => {
    const c = cases[0];
    const w = join(dir, 'bad-w.safetensors');
    expect((await tfc('init-weights', c.file, '--set', c.set, '--out', w)).code).toBe(0);
    const bad = join(dir, 'bad-in.safetensors');
    // tokens as f32 (the model declares i32), then a token id past the vocabulary.
    writeFileSync(bad, writeSafetensors(new Map([['tokens', { dtype: 'f32', shape: [1, 3], data: Float64Array.from([1, 2, 3]) }]])));
    const r1 = await tfc('run', c.file, '--set', c.set, '--weights', w, '--inputs', bad, '--out', join(dir, 'o1'), '--target', 'cuda-emu');
    expect([r1.code, /TFC303/.test(r1.stderr)]).toEqual([1, true]);
    writeFileSync(bad, writeSafetensors(new Map([['tokens', { dtype: 'i32', shape: [1, 3], data: Float64Array.from([1, 64, 3]) }]])));
    const r2 = await tfc('run', c.file, '--set', c.set, '--weights', w, '--inputs', bad, '--out', join(dir, 'o2'), '--target', 'cuda-emu');
    expect([r2.code, /TFC309/.test(r2.stderr)]).toEqual([1, true]);
  }, 120_000);
});

describe.runIf(detectNvidiaGpu() === undefined)('without an NVIDIA GPU', () => {
  it('--target cuda is a usage error that suggests cuda-emu (exit 2)', async () => {
    const r = await tfc('run', 'examples/gpt2.tfx', '--weights', join(dir, 'none'), '--inputs', join(dir, 'none'), '--out', join(dir, 'o'), '--target', 'cuda');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('no NVIDIA GPU');
    expect(r.stderr).toContain('--target cuda-emu');
  });
});
