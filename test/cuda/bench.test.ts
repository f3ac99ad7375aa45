// `tfc bench attention --target cuda|cuda-emu` (src/cli/bench-cuda.ts): without an NVIDIA GPU
// --target cuda refuses with exit 2 and says where to run it; --target cuda-emu runs one tiny shape
// through the same launcher on the CPU emulator (plumbing: the table/JSON, and the output checked
// against float64), never PyTorch; other suites are not wired to CUDA (exit 2).
import { describe, expect, it } from 'vitest';
import { detectNvidiaGpu } from '../../src/runtime-cuda/launcher.js';
import type { CudaBenchDocument } from '../../src/cli/bench-cuda.js';
import { tfc } from '../helpers/cli.js';

describe('tfc bench attention --target cuda', () => {
  it.runIf(detectNvidiaGpu() === undefined)('without a GPU is exit 2 pointing at a GPU session and at cuda-emu', async () => {
    const r = await tfc('bench', 'attention', '--target', 'cuda');
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('no NVIDIA GPU');
    expect(r.stderr).toContain('run it in a session with a GPU');
    expect(r.stderr).toContain('--target cuda-emu');
  });

  it('is wired for the attention suite only', async () => {
    const r = await tfc('bench', 'model', '--target', 'cuda-emu');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('attention suite only');
  });

  it('--target cuda-emu runs a tiny shape, checks the output against float64 and says its times are meaningless', async () => {
    const r = await tfc('bench', 'attention', '--target', 'cuda-emu', '--T', '33', '--dh', '64', '--causal', '--repeats', '1', '--json');
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout) as CudaBenchDocument;
    expect(doc.target).toBe('cuda-emu');
    expect(doc.note).toContain('meaningless');
    expect(doc.cases.map((c) => [c.B, c.H, c.T, c.dh, c.causal, c.dtype, c.tfc.status, c.torch.status])).toEqual([[1, 2, 33, 64, true, 'f16', 'ok', 'skipped']]);
    // f16 inputs and storage, f32 accumulation: within 2e-2 of max |o| (the bench's own bar),.
    expect(doc.cases[0]?.tfc.relErr).toBeLessThan(2e-2);
    expect(doc.cases[0]?.kernels.length).toBeGreaterThan(0);
  }, 300_000);
});
