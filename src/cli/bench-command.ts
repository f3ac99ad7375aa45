// `tfc bench` on the command line: parses the options, runs one suite (bench-attention.ts, bench-model.ts, bench-compile.ts), prints the table
// (or the JSON with --json) and writes <suite>.json/.svg/.png under --out-dir (bench/results).
import { Command, Option } from 'commander';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { UsageError, collect, parseSetOptions } from './args.js';
import { type BenchOptions, benchDocument, benchPeak, formatTable, machineState, writeResults } from './bench.js';
import { benchAttention } from './bench-attention.js';
import { benchCompile, exampleFiles } from './bench-compile.js';
import { benchModel, modelPresets } from './bench-model.js';
import type { CaseResult } from './bench-report.js';
import { peakLine } from './bench-peak.js';
import { benchDecode } from './bench-decode.js';
import { benchTrain } from './bench-train.js';
import { formatFusionProfile } from '../kernel/analysis/fusion-profile.js';
import { benchAttentionCuda, formatCudaTable } from './bench-cuda.js';
import { cudaRunRefusal } from '../runtime-cuda/run.js';
import { isStderrTty } from './stderr-filter.js';

interface RawOptions {
  T?: string;
  dh?: string;
  causal?: boolean;
  full?: boolean;
  dtype?: string;
  heads?: string;
  batch?: string;
  target: string;
  repeats: string;
  warmup: string;
  systems?: string;
  json?: boolean;
  outDir: string;
  set: string[];
  preset: string;
  steps: string;
}

function ints(flag: string, text: string | undefined): number[] | undefined {
  if (text === undefined) return undefined;
  const xs = text.split(',').map((s) => Number(s.trim()));
  if (xs.some((x) => !Number.isInteger(x) || x <= 0)) throw new UsageError(`bad ${flag} '${text}': expected positive integers, comma-separated`);
  return xs;
}

function options(o: RawOptions, err: (s: string) => void): BenchOptions {
  const repeats = ints('--repeats', o.repeats)?.[0] ?? 5;
  const warmup = ints('--warmup', o.warmup)?.[0] ?? 1;
  const T = ints('--T', o.T);
  const dh = ints('--dh', o.dh);
  const causal = o.causal === true && o.full !== true ? [true] : o.full === true && o.causal !== true ? [false] : undefined;
  const dtypes = o.dtype === undefined ? undefined : o.dtype.split(',').map((d) => {
    if (d !== 'f32' && d !== 'f16') throw new UsageError(`bad --dtype '${d}': f32 or f16`);
    return d;
  });
  return {
    warmup,
    repeats,
    heads: ints('--heads', o.heads)?.[0] ?? 12,
    outDir: resolve(o.outDir),
    err,
    isTty: isStderrTty(),
    ...(T !== undefined ? { T } : {}),
    ...(dh !== undefined ? { dh } : {}),
    ...(causal !== undefined ? { causal } : {}),
    ...(dtypes !== undefined ? { dtypes } : {}),
    ...(o.systems !== undefined ? { systems: o.systems.split(',') } : {}),
  };
}

/**
 * `--target cuda|cuda-emu` (attention only): the CUDA launcher beside PyTorch SDPA (bench-cuda.ts).
 * Defaults are issue 6's shapes on a GPU (B=4, 16 heads, T 1024/4096/16384, dh 64/128, f16) and one
 * tiny shape on the emulator, whose times mean nothing. Without a GPU, --target cuda is exit 2.
 */
function runCudaBench(suite: string, raw: RawOptions, o: BenchOptions, io: { out: (s: string) => void; err: (s: string) => void }, env: Readonly<Record<string, string | undefined>>): void {
  if (suite !== 'attention') throw new UsageError(`--target ${raw.target} is wired for the attention suite only (got '${suite}')`);
  const mode = raw.target === 'cuda' ? 'nvcc' : 'emu';
  const refusal = cudaRunRefusal(mode);
  if (refusal !== undefined) {
    throw new UsageError(
      mode === 'nvcc'
        ? `tfc bench attention --target cuda: ${refusal.replace(/; use --target cuda-emu.*$/, '')}; run it in a session with a GPU (docs/cuda.md, "Never run on a GPU yet", says how to get tfc onto the device machine), or --target cuda-emu for a plumbing check on the CPU emulator (its times are meaningless)`
        : `tfc bench attention --target cuda-emu: ${refusal}`,
    );
  }
  const gpu = mode === 'nvcc';
  const doc = benchAttentionCuda(
    {
      mode,
      B: ints('--batch', raw.batch)?.[0] ?? (gpu ? 4 : 1),
      H: ints('--heads', raw.heads)?.[0] ?? (gpu ? 16 : 2),
      T: o.T ?? (gpu ? [1024, 4096, 16384] : [40]),
      dh: o.dh ?? (gpu ? [64, 128] : [64]),
      causal: o.causal ?? [true, false],
      dtypes: o.dtypes ?? ['f16'],
      repeats: o.repeats,
      err: io.err,
    },
    env,
  );
  if (raw.json === true) io.out(`${JSON.stringify(doc, null, 1)}\n`);
  else io.out(formatCudaTable(doc));
  if (gpu) {
    const written = writeCudaResults(doc, o.outDir);
    io.err(`tfc bench: wrote ${written}\n`);
  }
}

function writeCudaResults(doc: object, outDir: string): string {
  mkdirSync(outDir, { recursive: true });
  const path = join(outDir, 'attention-cuda.json');
  writeFileSync(path, `${JSON.stringify(doc, null, 1)}\n`);
  return path;
}

export function addBenchCommand(program: Command, io: { out: (s: string) => void; err: (s: string) => void; env?: Readonly<Record<string, string | undefined>> }): void {
  const cmd = program
    .command('bench')
    .description('race tfc (fused and --no-fuse) against ONNX Runtime Web and TF.js on this WebGPU adapter, or (attention --target cuda) against PyTorch SDPA on an NVIDIA GPU; results checked against float64')
    .argument('<SUITE>', 'attention | model | decode | train | compile | peak (the adapter\'s FMA GFLOP/s and copy GB/s; every other table shows % of it, measured in the same run)')
    .argument('[FILE]', 'model for `model` (default examples/gpt2.tfx) and `train` (default examples/charlm/charlm.tfx; --set B=..,T=.. sizes the batch); example files for `compile` (default all)')
    .option('--T <N,...>', 'attention: sequence lengths (default 256,1024,2048)')
    .option('--dh <N,...>', 'attention: head dims (default 64,128)')
    .option('--causal', 'attention: causal cases only')
    .option('--full', 'attention: non-causal cases only')
    .option('--dtype <f32,f16>', 'attention: dtypes (default f32 and, with shader-f16, f16)')
    .option('--heads <N>', 'attention: heads (default 12; 16 with --target cuda)')
    .option('--batch <N>', 'attention with --target cuda|cuda-emu: batch (default 4 on a GPU, 1 on the emulator)')
    .addOption(new Option('--target <T>', 'webgpu (peers: ORT Web, TF.js), cuda (the CUDA launcher beside PyTorch SDPA on an NVIDIA GPU) or cuda-emu (the same on the CPU emulator: plumbing only)').choices(['webgpu', 'cuda', 'cuda-emu']).default('webgpu'))
    .option('--systems <S,...>', 'only these systems: tfc, "tfc --no-fuse", ort-mha, ort-plain, ort (both, or the model peer), tfjs')
    .option('--repeats <N>', 'measured runs per case (median and spread)', '5')
    .option('--warmup <N>', 'unmeasured runs first', '1')
    .addOption(new Option('--preset <P>', 'model/decode shapes').choices(Object.keys(modelPresets)).default('tiny'))
    .addOption(new Option('--set <k=v,...>', 'model/decode: override preset shapes, e.g. --set layers=2,T=64').argParser(collect).default([]))
    .option('--steps <N>', 'decode: measured one-token steps; train: measured training steps', '16')
    .option('--json', 'print the JSON document on stdout instead of the table')
    .option('--out-dir <DIR>', 'where <suite>.json/.svg/.png go', 'bench/results')
    .action(async (suite: string, file: string | undefined, raw: RawOptions) => {
      const o = options(raw, io.err);
      if (raw.target !== 'webgpu') {
        runCudaBench(suite, raw, o, io, io.env ?? process.env);
        return;
      }
      const startedAt = new Date().toISOString();
      const machine = machineState();
      if (!['attention', 'model', 'decode', 'train', 'compile', 'peak'].includes(suite)) throw new UsageError(`unknown bench suite '${suite}' (attention, model, decode, train, compile, peak)`);
      // The ceiling every table is read against, measured first in this same process.
      const peak = suite === 'compile' ? undefined : await benchPeak(o.repeats);
      if (suite === 'peak') {
        if (peak === undefined) throw new UsageError('no peak');
        const doc = await benchDocument([], o, startedAt, machine, peak);
        const written = await writeResults(doc, 'peak', o.outDir);
        if (raw.json === true) io.out(`${JSON.stringify({ ...doc, fmaRuns: peak.fmaRuns, copyRuns: peak.copyRuns }, null, 1)}\n`);
        else io.out(`tfc bench peak on ${doc.adapter}; ${machine}\n${peakLine(peak)}\n  FMA runs (GFLOP/s): ${peak.fmaRuns.map((x) => x.toFixed(1)).join(' ')}\n  copy runs (GB/s): ${peak.copyRuns.map((x) => x.toFixed(1)).join(' ')}\n`);
        io.err(`tfc bench: wrote ${written.join(', ')}\n`);
        return;
      }
      const set = { ...(modelPresets[raw.preset] ?? {}), ...Object.fromEntries(parseSetOptions(raw.set)) };
      let cases: CaseResult[];
      switch (suite) {
        case 'attention':
          cases = await benchAttention(o);
          break;
        case 'model':
          cases = await benchModel(o, file ?? 'examples/gpt2.tfx', set, raw.preset);
          break;
        case 'decode':
          cases = await benchDecode(o, set, ints('--steps', raw.steps)?.[0] ?? 16);
          break;
        case 'train':
          cases = await benchTrain(o, file ?? 'examples/charlm/charlm.tfx', set, ints('--steps', raw.steps)?.[0] ?? 20);
          break;
        case 'compile':
          cases = await benchCompile(o, file !== undefined ? [resolve(file)] : exampleFiles());
          break;
        default:
          throw new UsageError(`unknown bench suite '${suite}' (attention, model, decode, train, compile, peak)`);
      }
      const doc = await benchDocument(cases, o, startedAt, machine, peak);
      const written = await writeResults(doc, suite, o.outDir);
      if (raw.json === true) io.out(`${JSON.stringify(doc, null, 1)}\n`);
      else {
        io.out(`tfc bench ${suite} on ${doc.adapter}; ${machine}; warmup ${o.warmup}, ${o.repeats} repeats; ratio = peer time / tfc time (>1: tfc faster)\n`);
        if (peak !== undefined) io.out(`${peakLine(peak)}; % peak = the case's work (FLOPs, or bytes for decode) / time / peak\n`);
        io.out(formatTable(cases, suite === 'compile' ? 'tfc compile cold' : 'tfc', peak));
        const prof = cases.flatMap((c) => c.results.filter((r) => r.profile !== undefined).map((r) => ({ c, r })));
        for (const { c, r } of prof) {
          const top = (r.profile ?? []).slice(0, 4).map((p) => `${p.kernel} ${p.ms.toFixed(2)} ms${p.count > 1 ? ` x${p.count}` : ''}`);
          io.out(`  profile ${c.name} / ${r.system}: ${top.join(', ')}\n`);
        }
        for (const c of cases) if (c.fusion !== undefined && c.fusion.length > 0) io.out(`${c.name}: ${formatFusionProfile(c.fusion)}`);
      }
      io.err(`tfc bench: wrote ${written.join(', ')}\n`);
    });
  cmd.exitOverride().configureOutput({ writeOut: io.out, writeErr: io.err });
}
