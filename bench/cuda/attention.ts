// Fused attention on CUDA through the generated launcher, timed with cudaEvents (issue 6 bench):
//   npx tsc -p tsconfig.json && node dist/bench/cuda/attention.js   (GPU: B=4, H=16, dh 64/128, T 1024/4096/16384, f16/f32, causal and full)
//   node dist/bench/cuda/attention.js --emu --T 64 --B 1 --H 2 --reps 1   (CPU emulator smoke run: checks the script, times nothing useful)
// Pair with `python3 bench/cuda/sdpa.py` (PyTorch F.scaled_dot_product_attention on the same shapes)
// on the same GPU. Correctness is the CUDA tests' job (test/cuda/); this prints time and TFLOP/s.
// FLOPs: 4·B·H·T²·dh (q·k and p·v), halved when causal. Not yet run on a GPU (written without one).
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { attentionSource } from '../../src/cli/bench.js';
import { checkSource } from '../../src/check/check-source.js';
import { compilePlan } from '../../src/kernel/compile-plan.js';
import { cudaLimits } from '../../src/kernel/schedule.js';
import { runPipeline } from '../../src/passes/driver.js';
import { createPassContext } from '../../src/passes/pass.js';
import { pipelines } from '../../src/passes/pipeline.js';
import { buildLauncher } from '../../src/runtime-cuda/launcher.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? fallback) : fallback;
}
const emu = process.argv.includes('--emu');
const B = Number(arg('B', '4'));
const H = Number(arg('H', '16'));
const Ts = arg('T', '1024,4096,16384').split(',').map(Number);
const dhs = arg('dh', '64,128').split(',').map(Number);
const dtypes = arg('dtype', 'f16,f32').split(',') as ('f16' | 'f32')[];
const reps = Number(arg('reps', '20'));

/** A safetensors file of seeded values in [-1, 1), written in chunks (T = 16384 tensors are 0.5 GiB in f32). */
function writeRandom(path: string, names: readonly string[], dtype: 'f16' | 'f32', shape: readonly number[]): void {
  const n = shape.reduce((a, b) => a * b, 1);
  const size = dtype === 'f16' ? 2 : 4;
  const header: Record<string, unknown> = {};
  names.forEach((name, i) => (header[name] = { dtype: dtype === 'f16' ? 'F16' : 'F32', shape, data_offsets: [i * n * size, (i + 1) * n * size] }));
  let text = JSON.stringify(header);
  while ((8 + text.length) % 8 !== 0) text += ' ';
  const fd = openSync(path, 'w');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(text.length));
  writeSync(fd, len);
  writeSync(fd, Buffer.from(text));
  let s = 12345;
  const chunk = 1 << 20;
  for (let t = 0; t < names.length; t++) {
    for (let at = 0; at < n; at += chunk) {
      const m = Math.min(chunk, n - at);
      const buf = Buffer.alloc(m * size);
      for (let i = 0; i < m; i++) {
        s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
        const v = s / 2 ** 31 - 1;
        // f16: sign, exponent 14 (values in [0.5, 1)) and random mantissa; good enough for timing.
        if (dtype === 'f16') buf.writeUInt16LE((v < 0 ? 0x8000 : 0) | (14 << 10) | (s & 0x3ff), i * 2);
        else buf.writeFloatLE(v, i * 4);
      }
      writeSync(fd, buf);
    }
  }
  closeSync(fd);
}

const dir = mkdtempSync(join(tmpdir(), 'tfc-cuda-bench-'));
const rows: Record<string, unknown>[] = [];
try {
  for (const dtype of dtypes)
    for (const dh of dhs)
      for (const causal of [true, false]) {
        const src = attentionSource(H, dh, causal, dtype);
        const r = checkSource(src, 'bench/attention.tfx', new Map());
        if (r.graph === undefined) throw new Error(r.diagnostics.map((d) => d.message).join('; '));
        const plan = compilePlan(runPipeline(r.graph, pipelines.cuda, createPassContext({ target: 'cuda' })), { target: cudaLimits });
        const exe = buildLauncher(plan, emu ? 'emu' : 'nvcc');
        const weights = join(dir, 'w.safetensors');
        writeRandom(weights, [], 'f32', [0]);
        for (const T of Ts) {
          const inputs = join(dir, 'in.safetensors');
          writeRandom(inputs, ['q', 'k', 'v'], dtype, [B, H, T, dh]);
          const run = spawnSync(exe, [weights, inputs, join(dir, 'out.safetensors'), `B=${B}`, `T=${T}`], { encoding: 'utf8', env: { ...process.env, TFC_LAUNCH_REPEAT: String(reps) } });
          const m = /([\d.]+) ms per run/.exec(run.stderr ?? '');
          const ms = m === null ? NaN : Number(m[1]);
          const flops = 4 * B * H * T * T * dh * (causal ? 0.5 : 1);
          const row = { dtype, dh, causal, B, H, T, kernels: plan.kernels.map((k) => k.name), ms, tflops: flops / (ms * 1e-3) / 1e12, ...(run.status !== 0 ? { error: (run.stderr ?? '').trim() } : {}) };
          rows.push(row);
          console.log(`${dtype} dh=${dh} ${causal ? 'causal' : 'full  '} T=${String(T).padStart(5)}: ${ms.toFixed(3)} ms, ${row.tflops.toFixed(2)} TFLOP/s${run.status !== 0 ? `  FAILED: ${row.error ?? ''}` : ''}`);
        }
      }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
console.log(JSON.stringify({ system: emu ? 'tfc cuda-emu' : 'tfc cuda', rows }));
