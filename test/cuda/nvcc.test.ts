// Every kernel of every example (small overrides; the CUDA pipeline with fusion and without)
// compiles with nvcc for sm_80 and sm_90a; ptxas -v gives registers, shared memory and spills.
// Kernels are deduplicated by body and batched into one .cu for both archs (nvcc costs minutes on
// it); ptxas results are cached by content (codegen/cuda/ptxas.ts: ~/.cache/tfc/ptxas, keyed on
// the source and the nvcc version), so only a run after a kernel changed pays for nvcc again.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { cudaFiles } from '../../codegen/cuda/launch.js';
import { describe, expect, it } from 'vitest';
import { printCuda, printCudaModule } from '../../codegen/cuda/print.js';
import { type CudaArch, type PtxasStats, findNvcc, parsePtxasOutput, ptxasStatsForArchs } from '../../codegen/cuda/ptxas.js';
import { checkSource } from '../../src/check/check-source.js';
import { compilePlan } from '../../src/compile/plan.js';
import { type NarrowFloat, retypeFloats } from '../../src/graph/retype-floats.js';
import type { Kernel } from '../../src/kernel/ir/ir.js';
import { lowerToKernels } from '../../src/kernel/lower/lower.js';
import { chooseSchedule, cudaLimits } from '../../src/kernel/schedule/schedule.js';
import { runPipeline } from '../../src/passes/driver.js';
import { createPassContext } from '../../src/passes/pass.js';
import { pipelines, unfusedPipeline } from '../../src/passes/pipeline.js';
import { exampleFiles } from '../helpers/examples.js';

/** The same small overrides as test/e2e/examples-check.test.ts. */
function overridesFor(file: string): Record<string, number> {
  if (file.startsWith('mlp-') || file.startsWith('attn-')) return {};
  if (file.endsWith('llama-nocache.tfx')) return { vocab: 128, d: 32, heads: 4, kv_heads: 2, layers: 2, ffn: 48 };
  if (file.endsWith('llama.tfx')) return { vocab: 128, d: 32, heads: 4, kv_heads: 2, layers: 2, ffn: 48 };
  if (file.endsWith('transformer.tfx')) return { vocab: 128, d: 32, heads: 4, layers: 1, ffn: 64 };
  if (file.endsWith('attention-lse.tfx')) return { heads: 2 }; // attention alone: no model sizes
  return { vocab: 128, ctx: 32, d: 32, heads: 2, layers: 1 };
}

interface Unique {
  readonly kernel: Kernel; // renamed: unique across examples
  readonly from: string; // example and pipeline, for messages
}

/**
 * The examples are f32; these f16/bf16 MLP blocks give the tensor-core matmul kernels
 * (kernel/matmul/mma.ts: plain, fused with bias, gelu and residual epilogues, and B transposed).
 */
const halfModels: readonly (readonly [string, string])[] = (['f16', 'bf16'] as const).map((t) => [
  `mlp-${t}.tfx`,
  `dims B, T\ninput x: ${t}[B, T, 96]\nweight w1: ${t}[96, 384] = "w1"\nweight b1: ${t}[384] = "b1"\nweight w2: ${t}[384, 96] = "w2"\nweight w3: ${t}[384, 96] = "w3"\noutput y: ${t}[B, T, 96]\noutput z: ${t}[B, T, 384]\noutput u: ${t}[B, T, 384]\nmodel m {\n  y = gelu(x @ w1 + b1) @ w2 + x\n  z = x @ w1\n  u = x @ transpose(w3)\n}\n`,
]);

/**
 * f16/bf16 attention for the tensor-core prefill kernel (kernel/attention/mma.ts): causal at
 * dk = dv = 64 (64-key tiles), a masked row with an LSE output, GQA, and cross-attention at
 * dk = dv = 128 (32-key tiles: 48 KiB of static shared memory).
 */
const halfAttention: readonly (readonly [string, string])[] = (['f16', 'bf16'] as const).map((t) => [
  `attn-${t}.tfx`,
  `dims B, T, S
input q: ${t}[B, 2, T, 64]
input qm: ${t}[B, 2, T, 64]
input q4: ${t}[B, 4, T, 64]
input k: ${t}[B, 2, T, 64]
input v: ${t}[B, 2, T, 64]
input qc: ${t}[B, 2, T, 128]
input kc: ${t}[B, 2, S, 128]
input vc: ${t}[B, 2, S, 128]
output causal: ${t}[B, 2, T, 64]
output masked: ${t}[B, 2, T, 64]
output lse: f32[B, 2, T]
output gqa: ${t}[B, 4, T, 64]
output cross: ${t}[B, 2, T, 128]
model m {
  c = grid[T, T](i, j) => j <= i
  causal = softmax(where(c, q @ transpose(k) * 0.125, -inf), axis=-1) @ v
  seen = grid[T, T](i, j) => j <= i && i != 2
  sm = where(seen, qm @ transpose(k) * 0.12, -inf)
  masked = softmax(sm, axis=-1) @ v
  lse = cast(logsumexp(sm, axis=-1), f32)
  qg = reshape(q4, [B, 2, 2, T, 64])
  gqa = reshape(softmax(where(c, qg @ transpose(reshape(k, [B, 2, 1, T, 64])) * 0.125, -inf), axis=-1) @ reshape(v, [B, 2, 1, T, 64]), [B, 4, T, 64])
  cross = softmax(qc @ transpose(kc) * 0.088, axis=-1) @ vc
}
`,
]);

/**
 * `--dtype f16|bf16` whole models (issue 15): GPT-2 and Llama retyped, at d = 128 with 2 heads so
 * that dh = 64 and GPT-2's prefill attention takes the tensor cores through its split views.
 */
const retypedModels: readonly { readonly file: string; readonly dtype: NarrowFloat; readonly overrides: Record<string, number> }[] = (['f16', 'bf16'] as const).flatMap((dtype) => [
  { file: 'examples/gpt2.tfx', dtype, overrides: { vocab: 128, ctx: 64, d: 128, heads: 2, layers: 1 } },
  { file: 'examples/llama.tfx', dtype, overrides: { vocab: 128, d: 128, heads: 2, kv_heads: 1, layers: 1, ffn: 96 } },
]);

function allKernels(): Unique[] {
  const byBody = new Map<string, Unique>();
  const sources: (readonly [string, string, NarrowFloat?])[] = [
    ...exampleFiles.map((f) => [f, readFileSync(f, 'utf8')] as const),
    ...halfModels,
    ...halfAttention,
    ...retypedModels.map((m) => [m.file, readFileSync(m.file, 'utf8'), m.dtype] as const),
  ];
  for (const [file, text, dtype] of sources) {
    const checked = checkSource(text, file, new Map(Object.entries(dtype === undefined ? overridesFor(file) : (retypedModels.find((m) => m.file === file)?.overrides ?? {}))));
    expect(checked.diagnostics.map((d) => d.message), file).toEqual([]);
    if (checked.graph === undefined) throw new Error(`${file}: no graph`);
    const r = dtype === undefined ? checked : retypeFloats(checked.graph, dtype);
    if (r.graph === undefined) throw new Error(`${file} --dtype ${dtype ?? ''}: no graph`);
    for (const [variant, passes] of [
      ['fused', pipelines.cuda],
      ['unfused', unfusedPipeline('cuda')],
    ] as const) {
      const g = runPipeline(r.graph, passes, createPassContext({ target: 'cuda' }));
      const program = lowerToKernels(g, cudaLimits, chooseSchedule(cudaLimits));
      for (const k of program.kernels) {
        const body = printCuda({ ...k, name: 'k' }, { header: false, prelude: false });
        if (!byBody.has(body)) byBody.set(body, { kernel: { ...k, name: `u${byBody.size}_${k.name}` }, from: `${file}${dtype === undefined ? '' : ` --dtype ${dtype}`} (${variant})` });
      }
    }
  }
  return [...byBody.values()];
}

it('parses ptxas -v lines per entry function', () => {
  const text = [
    "ptxas info    : Compiling entry function 'a_softmax' for 'sm_80'",
    'ptxas info    : Function properties for a_softmax',
    '    8 bytes stack frame, 4 bytes spill stores, 12 bytes spill loads',
    'ptxas info    : Used 40 registers, used 1 barriers, 2048 bytes smem, 380 bytes cmem[0]',
    "ptxas info    : Compiling entry function 'b_add' for 'sm_80'",
    'ptxas info    : Function properties for b_add',
    '    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads',
    'ptxas info    : Used 10 registers, used 0 barriers, 364 bytes cmem[0]',
  ].join('\n');
  expect(Object.fromEntries(parsePtxasOutput(text))).toEqual({
    a_softmax: { registers: 40, sharedBytes: 2048, barriers: 1, stackFrameBytes: 8, spillStoreBytes: 4, spillLoadBytes: 12 },
    b_add: { registers: 10, sharedBytes: 0, barriers: 0, stackFrameBytes: 0, spillStoreBytes: 0, spillLoadBytes: 0 },
  });
});

const nvcc = findNvcc();
describe.runIf(nvcc !== undefined)('nvcc compiles every example kernel', () => {
  const kernels = allKernels();
  const source = printCudaModule(kernels.map((u) => u.kernel));
  const archs = ['sm_80', 'sm_90a'] as const satisfies readonly CudaArch[];
  let compiled: Map<CudaArch, Map<string, PtxasStats>> | undefined;
  // One nvcc call for both archs, made by the first test that needs it.
  const statsFor = (arch: CudaArch): Map<string, PtxasStats> => {
    compiled ??= ptxasStatsForArchs(source, archs, nvcc);
    return compiled.get(arch) ?? new Map<string, PtxasStats>();
  };
  for (const arch of archs) {
    it(`for ${arch}, without spills in attention kernels, within the shared-memory limit`, () => {
      const stats = statsFor(arch);
      const rows: string[] = [];
      let mmaKernels = 0;
      let mmaAttention = 0;
      for (const { kernel: k, from } of kernels) {
        const s = stats.get(k.name);
        expect(s, `${k.name} from ${from} missing from ptxas output`).toBeDefined();
        if (s === undefined) continue;
        const declaredShared = k.shared.reduce((n, a) => n + a.length * (a.type === 'f16' ? 2 : 4), 0);
        // At most the kernel IR's arrays: ptxas drops a __shared__ array the code never reads.
        expect(s.sharedBytes, k.name).toBeLessThanOrEqual(declaredShared);
        expect(s.sharedBytes, k.name).toBeLessThanOrEqual(cudaLimits.maxWorkgroupStorageBytes);
        if (k.op.includes('fused_attention')) {
          expect([k.name, s.spillStoreBytes, s.spillLoadBytes], `${from}`).toEqual([k.name, 0, 0]);
        }
        // Tensor-core matmuls: the accumulators must live in registers (no stack frame at all).
        if (k.schedule.kind === 'mma_matmul') {
          mmaKernels++;
          expect([k.name, s.spillStoreBytes, s.spillLoadBytes, s.stackFrameBytes], `${from}`).toEqual([k.name, 0, 0, 0]);
        }
        // Tensor-core attention: S, P and O accumulators in registers too.
        if (k.schedule.kind === 'flash_attention' && k.schedule.mma !== undefined) {
          mmaAttention++;
          expect([k.name, s.spillStoreBytes, s.spillLoadBytes, s.stackFrameBytes], `${from}`).toEqual([k.name, 0, 0, 0]);
        }
        rows.push(`${k.name}: ${s.registers} regs, ${s.sharedBytes} B smem, spills ${s.spillStoreBytes}/${s.spillLoadBytes}`);
      }
      expect(rows.length).toBe(kernels.length);
      // Per half model and pipeline: x @ w1, the second layer's fused epilogue, x @ transpose(w3).
      expect(mmaKernels).toBeGreaterThanOrEqual(6);
      // Per dtype: causal, masked + LSE, GQA (64) and cross (128), and GPT-2's (through its split
      // q/k/v views); the unfused pipeline has none.
      expect(mmaAttention).toBeGreaterThanOrEqual(10);
      if (process.env['TFC_PTXAS_LOG'] === '1') console.log(`${arch}\n${rows.join('\n')}`);
    }, 900_000); // a cold nvcc run took 240+ s at load 150; with the --dtype models, 612 s at load 100+
  }

  // The host launcher (codegen/cuda/launcher.ts) as `tfc compile -o DIR --target cuda` writes it:
  // one more nvcc call (its host code and <<<>>> launches cannot join the kernel-only module above).
  // Also for --dtype f16 (f16 buffers; the F32 -> f16 conversion at upload).
  it.each([['f32'], ['f16']] as const)('compiles the GPT-2 host launcher (cuda/launcher.cu with its kernels) for sm_80, %s', (dtype) => {
    const file = 'examples/gpt2.tfx';
    const checked = checkSource(readFileSync(file, 'utf8'), file, new Map(Object.entries(overridesFor(file))));
    if (checked.graph === undefined) throw new Error(`${file}: no graph`);
    const r = dtype === 'f32' ? checked : retypeFloats(checked.graph, dtype);
    if (r.graph === undefined) throw new Error(`${file}: no graph`);
    const plan = compilePlan(runPipeline(r.graph, pipelines.cuda, createPassContext({ target: 'cuda' })), { target: cudaLimits });
    const dir = mkdtempSync(join(tmpdir(), 'tfc-nvcc-launcher-'));
    try {
      for (const [path, text] of cudaFiles(plan)) {
        mkdirSync(dirname(join(dir, path)), { recursive: true });
        writeFileSync(join(dir, path), text);
      }
      const c = spawnSync(nvcc ?? 'nvcc', ['-arch=sm_80', '-std=c++17', '-diag-suppress', '177', '-c', join(dir, 'cuda', 'launcher.cu'), '-o', join(dir, 'launcher.o')], { encoding: 'utf8' });
      expect(c.stderr).toBe('');
      expect(c.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 600_000);
});
