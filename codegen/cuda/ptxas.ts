// Registers, shared memory and spills per kernel, from `nvcc -c -Xptxas -v` (no GPU needed):
// for the traffic report (`--report`) and the no-spill tests. One nvcc call per source, so batch
// kernels with printCudaModule. nvcc is found at $TFC_NVCC, else /usr/local/bin/nvcc, else PATH.
// Results are cached by content (see ptxasCacheDir): nvcc spends seconds to minutes on a module.
import { createHash } from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';

export type CudaArch = 'sm_80' | 'sm_86' | 'sm_89' | 'sm_90' | 'sm_90a';

export interface PtxasStats {
  readonly registers: number;
  /** Static shared memory per block (`smem`), bytes. */
  readonly sharedBytes: number;
  readonly stackFrameBytes: number;
  readonly spillStoreBytes: number;
  readonly spillLoadBytes: number;
  readonly barriers: number;
}

/** The nvcc to run, or undefined when none is installed. */
export function findNvcc(env: Readonly<Record<string, string | undefined>> = process.env): string | undefined {
  const fromEnv = env['TFC_NVCC'];
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  if (existsSync('/usr/local/bin/nvcc')) return '/usr/local/bin/nvcc';
  if (existsSync('/usr/local/cuda/bin/nvcc')) return '/usr/local/cuda/bin/nvcc';
  try {
    execFileSync('nvcc', ['--version'], { stdio: 'ignore' });
    return 'nvcc';
  } catch {
    return undefined;
  }
}

/**
 * Parses `ptxas -v` output: per entry function, the lines
 *   ptxas info    : Compiling entry function 'NAME' for 'sm_80'
 *   ptxas info    : Function properties for NAME
 *       0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
 *   ptxas info    : Used 30 registers, used 1 barriers, 2048 bytes smem, 380 bytes cmem[0]
 */
export function parsePtxasOutput(text: string): Map<string, PtxasStats> {
  return parsePtxasOutputByArch(text).values().next().value ?? new Map<string, PtxasStats>();
}

/** As parsePtxasOutput, keyed by the arch each entry function was compiled for (`sm_80`). */
export function parsePtxasOutputByArch(text: string): Map<string, Map<string, PtxasStats>> {
  const byArch = new Map<string, Map<string, PtxasStats>>();
  let out = new Map<string, PtxasStats>();
  let current: string | undefined;
  let frame = { stackFrameBytes: 0, spillStoreBytes: 0, spillLoadBytes: 0 };
  for (const line of text.split('\n')) {
    const entry = /Compiling entry function '([^']+)' for '([^']+)'/.exec(line);
    if (entry !== null) {
      current = entry[1];
      const arch = entry[2] ?? '';
      out = byArch.get(arch) ?? new Map<string, PtxasStats>();
      byArch.set(arch, out);
      frame = { stackFrameBytes: 0, spillStoreBytes: 0, spillLoadBytes: 0 };
      continue;
    }
    const f = /(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads/.exec(line);
    if (f !== null && current !== undefined) {
      frame = { stackFrameBytes: Number(f[1]), spillStoreBytes: Number(f[2]), spillLoadBytes: Number(f[3]) };
      continue;
    }
    const used = /Used (\d+) registers(.*)$/.exec(line);
    if (used !== null && current !== undefined) {
      const rest = used[2] ?? '';
      const smem = /(\d+) bytes smem/.exec(rest);
      const bars = /used (\d+) barriers/.exec(rest);
      out.set(current, {
        registers: Number(used[1]),
        sharedBytes: smem === null ? 0 : Number(smem[1]),
        barriers: bars === null ? 0 : Number(bars[1]),
        ...frame,
      });
      current = undefined;
    }
  }
  return byArch;
}

/**
 * Compiles `source` (one or more kernels) to an object with `-Xptxas -v` for `arch` and returns
 * the stats per kernel name. Throws with nvcc's messages when it does not compile.
 */
export function ptxasStats(source: string, arch: CudaArch, nvcc: string | undefined = findNvcc(), cacheDir: string | false = ptxasCacheDir() ?? false): Map<string, PtxasStats> {
  return ptxasStatsForArchs(source, [arch], nvcc, cacheDir).get(arch) ?? new Map<string, PtxasStats>();
}

/**
 * Where ptxas results are kept: $TFC_PTXAS_CACHE (a folder; `off` turns the cache off), else
 * ~/.cache/tfc/ptxas. One JSON file per key: the nvcc binary, its `--version` text, the archs and
 * flags, and the source, so another nvcc or any change to a kernel misses. Only successful
 * compiles are kept (a failure runs nvcc again and throws with its messages).
 */
export function ptxasCacheDir(env: Readonly<Record<string, string | undefined>> = process.env): string | undefined {
  const v = env['TFC_PTXAS_CACHE'];
  if (v === 'off') return undefined;
  return v !== undefined && v !== '' ? v : join(homedir(), '.cache', 'tfc', 'ptxas');
}

type StatsByArch = Map<CudaArch, Map<string, PtxasStats>>;

function cacheKey(nvcc: string, args: readonly string[], source: string): string {
  const version = spawnSync(nvcc, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).stdout ?? '';
  return createHash('sha256').update(`${nvcc}\0${version}\0${args.join(' ')}\0${source}`).digest('hex').slice(0, 32);
}

function readCached(path: string): StatsByArch | undefined {
  try {
    const o = JSON.parse(readFileSync(path, 'utf8')) as Record<string, Record<string, PtxasStats>>;
    return new Map(Object.entries(o).map(([a, ks]) => [a as CudaArch, new Map(Object.entries(ks))]));
  } catch {
    return undefined; // absent or unreadable: compile
  }
}

function writeCached(path: string, stats: StatsByArch): void {
  try {
    mkdirSync(join(path, '..'), { recursive: true });
    const tmp = `${path}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(Object.fromEntries([...stats].map(([a, ks]) => [a, Object.fromEntries(ks)]))));
    renameSync(tmp, path); // atomic: a concurrent compile of the same key writes the same result
  } catch {
    // a read-only home: the result is still returned, only not kept
  }
}

/** One nvcc call for several archs (`-gencode` each; the front end runs once): stats per arch. */
export function ptxasStatsForArchs(
  source: string,
  archs: readonly CudaArch[],
  nvcc: string | undefined = findNvcc(),
  cacheDir: string | false = ptxasCacheDir() ?? false, // false: no cache
): Map<CudaArch, Map<string, PtxasStats>> {
  if (nvcc === undefined) throw new Error('nvcc not found (set TFC_NVCC or install the CUDA toolkit)');
  const gencode = archs.flatMap((a) => ['-gencode', `arch=${a.replace('sm_', 'compute_')},code=${a}`]);
  const flags = [...gencode, '-c', '-Xptxas', '-v', '-diag-suppress', '177'];
  const cached = cacheDir === false ? undefined : join(cacheDir, `${cacheKey(nvcc, flags, source)}.json`);
  const hit = cached === undefined ? undefined : readCached(cached);
  if (hit !== undefined) return hit;
  const stats = runPtxas(source, archs, nvcc, flags);
  if (cached !== undefined) writeCached(cached, stats);
  return stats;
}

function runPtxas(source: string, archs: readonly CudaArch[], nvcc: string, flags: readonly string[]): StatsByArch {
  const dir = mkdtempSync(join(tmpdir(), 'tfc-ptxas-'));
  try {
    const src = join(dir, 'kernels.cu');
    writeFileSync(src, source);
    const r = spawnSync(nvcc, [...flags, src, '-o', join(dir, 'kernels.o')], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    // ptxas -v reports on stderr, next to any errors.
    if (r.status !== 0) throw new Error(`nvcc for ${archs.join(', ')} failed (${r.error?.message ?? `exit ${r.status}`}):\n${r.stderr}${r.stdout}`);
    const parsed = parsePtxasOutputByArch(`${r.stdout}\n${r.stderr}`);
    return new Map(archs.map((a) => [a, parsed.get(a) ?? new Map<string, PtxasStats>()]));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
