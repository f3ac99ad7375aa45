// The emulator's scheduling (codegen/cuda/emu/cuda_emu.h): a block's threads are fibers on one OS
// thread, switched at __syncthreads and the warp collectives. A hand-written program checks the
// ordering a GPU guarantees: every write before a __syncthreads is seen by every thread after it
// (a block-wide tree reduction over 3 blocks of 96 threads, a partial last warp), shuffles within
// each warp (xor butterflies), threadIdx/blockIdx per fiber across switches; and a barrier some
// threads never reach aborts with a message instead of hanging.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { emuHeaderPath, gxxFlags } from '../../src/runtime-cuda/emu-toolchain.js';

const dir = mkdtempSync(join(tmpdir(), 'tfc-emu-fibers-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const program = `
#include <cstdio>
__global__ void reduce(const float* x, float* out, unsigned* ids) {
  __shared__ float buf[128];
  unsigned t = threadIdx.x, b = blockIdx.x;
  buf[t] = t < 96 ? x[b * 96 + t] : 0.0f;
  if (t >= 96) buf[t] = 0.0f;
  __syncthreads();
  for (unsigned s = 64; s > 0; s >>= 1) {
    if (t < s && t + s < 128) buf[t] += buf[t + s];
    __syncthreads();
  }
  // a warp butterfly: every lane ends with its warp's sum of lane ids
  float lanes = (float)(t % 32);
  for (int m = 16; m > 0; m >>= 1) lanes += __shfl_xor_sync(0xffffffffu, lanes, m);
  ids[b * 96 + t] = (threadIdx.x == t && blockIdx.x == b) ? (unsigned)lanes : 999999u;
  if (t == 0) out[b] = buf[0];
}
int main(int argc, char**) {
  float x[288], out[3];
  unsigned ids[288];
  for (int i = 0; i < 288; i++) x[i] = (float)(i % 7) - 2.0f;
  tfc_emu::launch(dim3{3, 1, 1}, dim3{96, 1, 1}, [&] { reduce(x, out, ids); });
  for (int b = 0; b < 3; b++) { float want = 0; for (int i = 0; i < 96; i++) want += x[b * 96 + i]; std::printf("%g %g\\n", out[b], want); }
  unsigned bad = 0;
  for (int i = 0; i < 288; i++) if (ids[i] != 496u) bad++;
  std::printf("bad lanes %u\\n", bad);
  if (argc > 1) tfc_emu::launch(dim3{1, 1, 1}, dim3{64, 1, 1}, [] { if (threadIdx.x != 5) __syncthreads(); });
  return 0;
}
`;

describe('CUDA emulator: fibers', () => {
  const src = join(dir, 'fibers.cu');
  const exe = join(dir, 'fibers');
  writeFileSync(src, program);
  const build = (): void => {
    const c = spawnSync('g++', [...gxxFlags, '-include', emuHeaderPath(), '-x', 'c++', src, '-o', exe], { encoding: 'utf8' });
    expect(c.stderr).toBe('');
    expect(c.status).toBe(0);
  };

  it('barriers order shared-memory writes, shuffles stay within warps, ids follow each fiber', () => {
    build();
    const r = spawnSync(exe, { encoding: 'utf8' });
    expect(r.status).toBe(0);
    const lines = r.stdout.trim().split('\n');
    for (const l of lines.slice(0, 3)) {
      const [got, want] = l.split(' ').map(Number);
      expect(got).toBe(want);
    }
    // 0 + 1 + ... + 31 = 496 in every lane (the 96 threads are three full warps)
    expect(lines[3]).toBe('bad lanes 0');
  }, 120_000);

  it('a barrier that one thread never reaches aborts with a message', () => {
    const r = spawnSync(exe, ['hang'], { encoding: 'utf8', timeout: 60_000 });
    expect(r.signal).toBe('SIGABRT');
    expect(r.stderr).toMatch(/tfc_emu: block \(0, 0, 0\): 63 threads wait at a barrier the others never reach/);
  }, 120_000);
});
