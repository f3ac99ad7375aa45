// `tfc bench attention --target cuda|cuda-emu`: tfc's fused attention through the generated CUDA
// launcher (one-shot mode, TFC_LAUNCH_REPEAT=N timed with cudaEvents after an untimed first run)
// beside PyTorch's F.scaled_dot_product_attention (bench/cuda/sdpa.py, when a python3 with CUDA
// torch is importable) on the same GPU, as TFLOP/s and the ratio tfc / torch. FLOPs: 4·B·H·T²·dh,
// halved when causal. tfc's output is checked against float64 on 3 query rows of 2 heads.
// --target cuda-emu runs the same launcher on the CPU emulator: plumbing only, times meaningless.
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { lowerModel } from '../compile/kernels.js';
import { compileModel } from '../compile/model.js';
import { cudaLimits } from '../kernel/schedule/schedule.js';
import { f16Bits } from '../runtime/convert.js';
import { type LauncherMode, buildLauncher, detectNvidiaGpu } from '../runtime-cuda/launcher.js';
import { attentionReference, attentionSource } from './bench-attention.js';

export interface CudaBenchOptions {
  readonly mode: LauncherMode;
  readonly B: number;
  readonly H: number;
  readonly T: readonly number[];
  readonly dh: readonly number[];
  readonly causal: readonly boolean[];
  readonly dtypes: readonly ('f16' | 'f32')[];
  /** Timed runs per case (the launcher's and torch's mean over them). */
  readonly repeats: number;
  readonly err: (s: string) => void;
}

export interface CudaTiming {
  readonly status: 'ok' | 'wrong' | 'failed' | 'skipped';
  readonly ms?: number;
  readonly tflops?: number;
  /** max |o - reference| / max |reference| on the checked rows (tfc only). */
  readonly relErr?: number;
  readonly note?: string;
}

export interface CudaCase {
  readonly B: number;
  readonly H: number;
  readonly T: number;
  readonly dh: number;
  readonly causal: boolean;
  readonly dtype: 'f16' | 'f32';
  readonly kernels: readonly string[];
  readonly tfc: CudaTiming;
  readonly torch: CudaTiming;
  /** tfc TFLOP/s / torch TFLOP/s (= torch ms / tfc ms), when both ran. */
  readonly ratio?: number;
}

export interface CudaBenchDocument {
  readonly tool: 'tfc bench';
  readonly suite: 'attention';
  readonly target: 'cuda' | 'cuda-emu';
  readonly device: string;
  readonly peer: string;
  readonly repeats: number;
  readonly note: string;
  readonly cases: readonly CudaCase[];
}

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', ...(fileURLToPath(import.meta.url).includes('/dist/') ? ['..'] : []));

/** Element i of input `seed` (q = 1, k = 2, v = 3) as an index in [0, 2048): a per-index hash, so any slice is computable alone. */
function codeAt(i: number, seed: number): number {
  let h = (Math.imul(i, 0x9e3779b1) ^ Math.imul(seed, 0x85ebca6b)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d) >>> 0;
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b) >>> 0;
  return ((h ^ (h >>> 16)) >>> 0) >>> 21;
}

/** The value of element i: (code - 1024) / 1024 in [-1, 1), exact in f16. */
function valueAt(i: number, seed: number): number {
  return (codeAt(i, seed) - 1024) / 1024;
}

/** binary16 bits of every value (code - 1024) / 1024: the f16 file is written by table lookup. */
const f16OfCode = Uint16Array.from({ length: 2048 }, (_, c) => f16Bits((c - 1024) / 1024));

function slice(seed: number, start: number, n: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = valueAt(start + i, seed);
  return out;
}

/** q, k, v [B, H, T, dh] as a safetensors file, written in 1 Mi-element chunks (T = 16384 is 0.5 GiB a tensor in f32). */
function writeInputs(path: string, dtype: 'f16' | 'f32', shape: readonly number[]): void {
  const n = shape.reduce((a, b) => a * b, 1);
  const size = dtype === 'f16' ? 2 : 4;
  const header: Record<string, unknown> = {};
  ['q', 'k', 'v'].forEach((name, i) => (header[name] = { dtype: dtype === 'f16' ? 'F16' : 'F32', shape, data_offsets: [i * n * size, (i + 1) * n * size] }));
  let text = JSON.stringify(header);
  while ((8 + text.length) % 8 !== 0) text += ' ';
  const fd = openSync(path, 'w');
  try {
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(text.length));
    writeSync(fd, len);
    writeSync(fd, Buffer.from(text));
    const chunk = 1 << 20;
    for (let seed = 1; seed <= 3; seed++) {
      for (let at = 0; at < n; at += chunk) {
        const m = Math.min(chunk, n - at);
        const buf = Buffer.alloc(m * size);
        if (dtype === 'f16') {
          const out = new Uint16Array(buf.buffer, buf.byteOffset, m); // little-endian hosts (x86, Arm Linux)
          for (let i = 0; i < m; i++) out[i] = f16OfCode[codeAt(at + i, seed)] ?? 0;
        } else {
          const out = new Float32Array(buf.buffer, buf.byteOffset, m);
          for (let i = 0; i < m; i++) out[i] = valueAt(at + i, seed);
        }
        writeSync(fd, buf);
      }
    }
  } finally {
    closeSync(fd);
  }
}

/** Values [start, start + n) of tensor `name` (F32) in a safetensors file, read without loading the file. */
function readRange(path: string, name: string, start: number, n: number): Float32Array {
  const fd = openSync(path, 'r');
  try {
    const len = Buffer.alloc(8);
    readSync(fd, len, 0, 8, 0);
    const hl = Number(len.readBigUInt64LE(0));
    const hb = Buffer.alloc(hl);
    readSync(fd, hb, 0, hl, 8);
    const entry = (JSON.parse(hb.toString('utf8')) as Record<string, { dtype: string; data_offsets: [number, number] }>)[name];
    if (entry === undefined || entry.dtype !== 'F32') throw new Error(`${path}: no F32 tensor ${name}`);
    const out = Buffer.alloc(n * 4);
    readSync(fd, out, 0, n * 4, 8 + hl + entry.data_offsets[0] + start * 4);
    return new Float32Array(out.buffer, out.byteOffset, n).slice();
  } finally {
    closeSync(fd);
  }
}

/** max |o - float64| / max |float64| on rows first, middle, last of heads (0, 0) and (B-1, H-1). */
function checkOutput(out: string, c: { B: number; H: number; T: number; dh: number; causal: boolean }): number {
  const headElems = c.T * c.dh;
  let maxErr = 0;
  let maxRef = 0;
  for (const head of [0, c.B * c.H - 1]) {
    const base = head * headElems;
    const [q, k, v] = [1, 2, 3].map((seed) => slice(seed, base, headElems)) as [Float32Array, Float32Array, Float32Array];
    const rows = [...new Set([0, c.T >> 1, c.T - 1])];
    const ref = attentionReference(q, k, v, { B: 1, H: 1, T: c.T, dh: c.dh, causal: c.causal }, rows);
    for (let r = 0; r < rows.length; r++) {
      const got = readRange(out, 'o', base + (rows[r] ?? 0) * c.dh, c.dh);
      for (let j = 0; j < c.dh; j++) {
        const want = ref.want[r * c.dh + j] ?? NaN;
        const g = got[j] ?? NaN;
        maxErr = Number.isFinite(g) ? Math.max(maxErr, Math.abs(g - want)) : Infinity;
        maxRef = Math.max(maxRef, Math.abs(want));
      }
    }
  }
  return maxErr / Math.max(maxRef, 1e-30);
}

/** A python3 whose torch sees a GPU (TFC_PYTHON, python3 on PATH, /usr/bin/python3), or why none. */
function findTorch(env: Readonly<Record<string, string | undefined>>): { python?: string; note: string } {
  const candidates = [env['TFC_PYTHON'], 'python3', '/usr/bin/python3'].filter((p): p is string => p !== undefined && p !== '');
  const seen: string[] = [];
  for (const py of candidates) {
    const r = spawnSync(py, ['-c', 'import torch, torch.nn.functional as F, sys; print(torch.__version__); sys.exit(0 if torch.cuda.is_available() and hasattr(F, "scaled_dot_product_attention") else 3)'], { encoding: 'utf8' });
    if (r.status === 0) return { python: py, note: `torch ${r.stdout.trim()} (${py})` };
    seen.push(`${py}: ${r.status === 3 ? `torch ${r.stdout.trim()} without CUDA or SDPA` : 'no torch'}`);
  }
  return { note: `PyTorch with CUDA is not importable (${seen.join('; ')}): tfc alone` };
}

const flopsOf = (c: { B: number; H: number; T: number; dh: number; causal: boolean }): number => 4 * c.B * c.H * c.T * c.T * c.dh * (c.causal ? 0.5 : 1);

export function benchAttentionCuda(o: CudaBenchOptions, env: Readonly<Record<string, string | undefined>>): CudaBenchDocument {
  const gpu = o.mode === 'nvcc' ? detectNvidiaGpu() : undefined;
  const torch = o.mode === 'nvcc' ? findTorch(env) : { note: 'PyTorch SDPA is not run under the emulator (it needs a GPU)' };
  const dir = mkdtempSync(join(tmpdir(), 'tfc-cuda-bench-'));
  const cases: CudaCase[] = [];
  try {
    const weights = join(dir, 'weights.safetensors');
    const fd = openSync(weights, 'w');
    writeSync(fd, Buffer.from([8, 0, 0, 0, 0, 0, 0, 0, ...Buffer.from('{}      ')]));
    closeSync(fd);
    // torch first, in one process, so each shape is measured on the same GPU state as ours.
    const peer = new Map<string, CudaTiming>();
    if (torch.python !== undefined) {
      o.err(`tfc bench: running PyTorch SDPA (${torch.note})...\n`);
      const r = spawnSync(torch.python, [join(repoRoot, 'bench', 'cuda', 'sdpa.py'), '--B', String(o.B), '--H', String(o.H), '--T', o.T.join(','), '--dh', o.dh.join(','), '--dtype', o.dtypes.join(','), '--causal', o.causal.map((c) => (c ? '1' : '0')).join(','), '--reps', String(o.repeats)], { encoding: 'utf8', maxBuffer: 1 << 26 });
      const last = r.stdout.trim().split('\n').pop() ?? '';
      try {
        const doc = JSON.parse(last) as { rows?: { dtype: string; dh: number; causal: boolean; T: number; ms?: number; tflops?: number; error?: string }[]; error?: string };
        for (const row of doc.rows ?? []) peer.set(`${row.dtype} ${row.dh} ${row.causal} ${row.T}`, row.ms !== undefined ? { status: 'ok', ms: row.ms, ...(row.tflops !== undefined ? { tflops: row.tflops } : {}) } : { status: 'failed', note: row.error ?? 'no time' });
        if (doc.error !== undefined) torch.note = `sdpa.py: ${doc.error}`;
      } catch {
        torch.note = `sdpa.py failed (exit ${r.status ?? '?'}): ${(r.stderr ?? '').trim().split('\n').pop() ?? ''}`;
      }
    }
    for (const dtype of o.dtypes)
      for (const dh of o.dh) {
        const built = o.causal.map((causal) => {
          const src = attentionSource(o.H, dh, causal, dtype);
          const plan = lowerModel(compileModel({ file: 'bench/attention.tfx', text: src }, { target: 'cuda' }), { limits: cudaLimits }).plan;
          o.err(`tfc bench: building the launcher (${o.mode === 'emu' ? 'g++, CPU emulator' : `nvcc, ${gpu?.arch ?? 'native'}`}) for dh=${dh} ${causal ? 'causal' : 'full'} ${dtype}...\n`);
          return { causal, plan, exe: buildLauncher(plan, o.mode, gpu === undefined ? {} : { arch: gpu.arch }) };
        });
        for (const T of o.T) {
          // One inputs file for the causal and the full run of this shape.
          const inputs = join(dir, 'inputs.safetensors');
          writeInputs(inputs, dtype, [o.B, o.H, T, dh]);
          for (const { causal, plan, exe } of built) {
            const shape = { B: o.B, H: o.H, T, dh, causal };
            const out = join(dir, 'out.safetensors');
            const run = spawnSync(exe, [weights, inputs, out, `B=${o.B}`, `T=${T}`], { encoding: 'utf8', env: { ...process.env, TFC_LAUNCH_REPEAT: String(o.repeats) } });
            const m = /([\d.]+) ms per run/.exec(run.stderr ?? '');
            let tfc: CudaTiming;
            if (run.status !== 0 || m === null) tfc = { status: 'failed', note: (run.stderr ?? run.error?.message ?? '').trim().split('\n').pop() ?? 'launcher failed' };
            else {
              const ms = Number(m[1]);
              const relErr = checkOutput(out, shape);
              // f16 storage and arithmetic: 2e-2 of max |o| (as the WebGPU bench); f32: 1e-4.
              const tol = dtype === 'f16' ? 2e-2 : 1e-4;
              tfc = { status: relErr <= tol ? 'ok' : 'wrong', ms, tflops: flopsOf(shape) / (ms * 1e-3) / 1e12, relErr };
            }
            const theirs = peer.get(`${dtype} ${dh} ${causal} ${T}`) ?? { status: 'skipped' as const, note: torch.note };
            const ratio = tfc.status === 'ok' && theirs.status === 'ok' && tfc.ms !== undefined && theirs.ms !== undefined ? theirs.ms / tfc.ms : undefined;
            cases.push({ ...shape, dtype, kernels: plan.kernels.map((k) => k.name), tfc, torch: theirs, ...(ratio !== undefined ? { ratio } : {}) });
            rmSync(out, { force: true });
          }
        }
      }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return {
    tool: 'tfc bench',
    suite: 'attention',
    target: o.mode === 'nvcc' ? 'cuda' : 'cuda-emu',
    device: o.mode === 'nvcc' ? `${gpu?.name ?? 'GPU'} (${gpu?.arch ?? 'native'})` : 'CPU emulator (g++ + cuda_emu.h)',
    peer: torch.python !== undefined ? `torch sdpa, ${torch.note}` : torch.note,
    repeats: o.repeats,
    note:
      o.mode === 'emu'
        ? 'emulator times are meaningless (blocks run one after another on CPU threads): this run checks the plumbing and the output only'
        : 'times: mean of the timed runs after one untimed run (cudaEvents); ratio = tfc TFLOP/s / torch TFLOP/s (issue 6 goal: >= 0.8 on H100)',
    cases,
  };
}

/** The side-by-side table. */
export function formatCudaTable(doc: CudaBenchDocument): string {
  const f = (x: number | undefined, d: number): string => (x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(d));
  const rows: string[][] = [['case', 'tfc ms', 'tfc TFLOP/s', 'torch ms', 'torch TFLOP/s', 'tfc/torch', 'rel err', 'status']];
  for (const c of doc.cases) {
    rows.push([
      `B=${c.B} H=${c.H} T=${c.T} dh=${c.dh} ${c.causal ? 'causal' : 'full'} ${c.dtype}`,
      f(c.tfc.ms, 3),
      f(c.tfc.tflops, 2),
      f(c.torch.ms, 3),
      f(c.torch.tflops, 2),
      c.ratio === undefined ? '-' : `${c.ratio.toFixed(2)}x`,
      c.tfc.relErr === undefined ? '-' : c.tfc.relErr.toExponential(1),
      `tfc ${c.tfc.status}${c.tfc.note !== undefined ? `: ${c.tfc.note.slice(0, 60)}` : ''}; torch ${c.torch.status}${c.torch.status === 'failed' ? `: ${(c.torch.note ?? '').slice(0, 60)}` : ''}`,
    ]);
  }
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  const lines = rows.map((r) => r.map((x, i) => (i === 0 || i === r.length - 1 ? x.padEnd(widths[i] ?? 0) : x.padStart(widths[i] ?? 0))).join('  ').trimEnd());
  return `tfc bench attention --target ${doc.target} on ${doc.device}; peer: ${doc.peer}\n${doc.note}\n${lines.join('\n')}\n`;
}
