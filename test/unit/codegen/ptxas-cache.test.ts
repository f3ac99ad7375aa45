// The ptxas results cache (codegen/cuda/ptxas.ts): a second compile of the same source with the
// same nvcc is read back without running nvcc; another source, other archs or another nvcc
// version compiles again; a failed compile is not kept; TFC_PTXAS_CACHE=off turns it off. nvcc is
// a fake here (a shell script that counts its compiles and prints ptxas -v lines), so this runs
// without the CUDA toolkit.
import { chmodSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ptxasCacheDir, ptxasStatsForArchs } from '../../../codegen/cuda/ptxas.js';

const dir = mkdtempSync(join(tmpdir(), 'tfc-ptxas-cache-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const nvcc = join(dir, 'nvcc');
const log = join(dir, 'compiles.log');
const version = join(dir, 'version');
writeFileSync(version, 'fake nvcc 1.0\n');
writeFileSync(log, '');
// For each `code=sm_XX` argument: the ptxas -v lines of one kernel whose register count is the
// number of compiles so far (so a cached result is told from a fresh one). A source holding
// BROKEN fails like a syntax error.
writeFileSync(
  nvcc,
  `#!/bin/sh
if [ "$1" = "--version" ]; then cat "${version}"; exit 0; fi
echo x >> "${log}"
n=$(wc -l < "${log}")
for a in "$@"; do case "$a" in *.cu) src="$a";; esac; done
if grep -q BROKEN "$src"; then echo "kernels.cu(1): error: BROKEN" >&2; exit 2; fi
for a in "$@"; do case "$a" in arch=*) arch=\${a##*code=}
  echo "ptxas info    : Compiling entry function 'k_one' for '$arch'" >&2
  echo "ptxas info    : Function properties for k_one" >&2
  echo "    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads" >&2
  echo "ptxas info    : Used $n registers, 380 bytes cmem[0]" >&2;;
esac; done
exit 0
`,
);
chmodSync(nvcc, 0o755);

const compiles = (): number => readFileSync(log, 'utf8').split('\n').filter((l) => l !== '').length;
const regs = (m: Map<string, Map<string, { registers: number }>>, arch: string): number | undefined => m.get(arch as 'sm_80')?.get('k_one')?.registers;

describe('ptxas results cache', () => {
  const cache = join(dir, 'cache');

  it('compiles once per source, nvcc version and archs; reads the rest back', () => {
    const first = ptxasStatsForArchs('__global__ void k_one() {}', ['sm_80', 'sm_90a'], nvcc, cache);
    expect([regs(first, 'sm_80'), regs(first, 'sm_90a'), compiles()]).toEqual([1, 1, 1]);
    const again = ptxasStatsForArchs('__global__ void k_one() {}', ['sm_80', 'sm_90a'], nvcc, cache);
    expect([regs(again, 'sm_80'), regs(again, 'sm_90a'), compiles()]).toEqual([1, 1, 1]);
    expect(readdirSync(cache).filter((f) => f.endsWith('.json'))).toHaveLength(1);
    // Another source, another arch list, another nvcc: compiled.
    expect(regs(ptxasStatsForArchs('__global__ void k_one() { }', ['sm_80', 'sm_90a'], nvcc, cache), 'sm_80')).toBe(2);
    expect(regs(ptxasStatsForArchs('__global__ void k_one() {}', ['sm_80'], nvcc, cache), 'sm_80')).toBe(3);
    writeFileSync(version, 'fake nvcc 2.0\n');
    expect(regs(ptxasStatsForArchs('__global__ void k_one() {}', ['sm_80', 'sm_90a'], nvcc, cache), 'sm_90a')).toBe(4);
    expect(compiles()).toBe(4);
  });

  it('keeps no failed compile: each try runs nvcc and throws its message', () => {
    const before = compiles();
    for (let i = 0; i < 2; i++) expect(() => ptxasStatsForArchs('BROKEN', ['sm_80'], nvcc, cache)).toThrow(/BROKEN/);
    expect(compiles()).toBe(before + 2);
  });

  it('without a cache folder every call compiles', () => {
    const before = compiles();
    ptxasStatsForArchs('__global__ void k_one() {}', ['sm_80', 'sm_90a'], nvcc, false);
    ptxasStatsForArchs('__global__ void k_one() {}', ['sm_80', 'sm_90a'], nvcc, false);
    expect(compiles()).toBe(before + 2);
  });

  it('TFC_PTXAS_CACHE picks the folder or turns the cache off; the default is ~/.cache/tfc/ptxas', () => {
    expect(ptxasCacheDir({ TFC_PTXAS_CACHE: '/x/y' })).toBe('/x/y');
    expect(ptxasCacheDir({ TFC_PTXAS_CACHE: 'off' })).toBeUndefined();
    expect(ptxasCacheDir({})).toMatch(/\.cache\/tfc\/ptxas$/);
  });
});
