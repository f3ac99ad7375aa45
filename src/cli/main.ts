// The `tfc` command line: check, compile (--emit a stage, --dump-after a pass), run (safetensors
// in and out through the float64 interpreter), fmt, and seeded weights/inputs for demos.
// Exit codes: 0 ok, 1 user error in the model or data, 2 usage error, 70 internal compiler error.
// Over 400 lines: one commander program, every command's options next to its action; the
// actions' work lives in stages.ts, webgpu.ts, tune-command.ts, bench-command.ts and friends.
import { Command, CommanderError, Option } from 'commander';
import { type Diagnostic, UserErrorsReported, InternalError, diag } from '../diag/diagnostic.js';
import type { Graph } from '../graph/ir.js';
import { diagnosticCodes, type DiagCode } from '../diag/codes.js';
import { interpret } from '../interp/interpret.js';
import { isInterpError } from '../ops/errors.js';
import { checkIndexRanges, checkTensors, declaredTensors, neededTensors } from '../io/check-tensors.js';
import { SafetensorsError, fileSpan, readSafetensors, writeSafetensors, type SafetensorsFile } from '../io/safetensors.js';
import { ScheduleError } from '../kernel/schedule/schedule.js';
import { UsageError, collect, debugLevels, notAvailableYet, parseDebug, parseSetOptions } from './args.js';
import { readBytes, writeDirAtomic, writeFileAtomic, readText } from './fsio.js';
import { randomInputs, randomWeights } from './random.js';
import { Reporter } from './report.js';
import { reportText } from './traffic.js';
import type { Tensor64 } from '../base/tensor.js';
import { type PassRow, formatModule, openModel, parseOnly, passList, passTable, printAst, type Target } from './stages.js';
import { pipelines } from '../passes/pipeline.js';
import { compileLimits, hasWebGpu, runOnWebGpu } from './webgpu.js';
import { lowerModel } from '../compile/kernels.js';
import { trainRefusal } from '../compile/train.js';
import { kernelDebugText } from './debug-kernels.js';
import { reportDims } from '../kernel/analysis/report.js';
import { printKernels } from '../kernel/ir/print.js';
import { cudaLimits } from '../kernel/schedule/schedule.js';
import { cudaRunRefusal, runOnCuda } from '../runtime-cuda/run.js';
import { NoWebGpuError } from '../runtime/device.js';
import { RuntimeError } from '../runtime/errors.js';
import { addBenchCommand } from './bench-command.js';
import { runPrompt } from './generate.js';
import { checkpointOverrides, limitDiagnostic, loadWeightFiles, oneWeightsFile, openCheckpoint, weightFilesOf, withKeyNotes } from './checkpoint.js';
import { addTrainCommand } from './train.js';
import { isStderrTty } from './stderr-filter.js';
import { addTuneCommand, cachedScheduleForCompile, cachedScheduleForRun } from './tune-command.js';
import { tuneCachePath } from '../kernel/schedule/tune-cache.js';

export const exitOk = 0;
export const exitUserError = 1;
export const exitUsage = 2;
export const exitInternal = 70;

const emitStages = ['ast', 'grad', 'ir', 'fused', 'kernels', 'wgsl', 'cuda', 'host'] as const;
const targets = ['interp', 'webgpu', 'cuda'] as const;
const builtTargets: readonly string[] = ['interp', 'webgpu'];

export interface Io {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  readonly env: Readonly<Record<string, string | undefined>>;
}

const processIo: Io = {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
  env: process.env,
};

/**
 * A reader that closed our stdout (`tfc compile --emit kernels | head -1`) ends the run quietly,
 * exit 0, as other Unix tools do: without a listener, EPIPE is an uncaught error with a stack.
 */
function endQuietlyOnClosedStdout(): void {
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') throw e;
    process.exit(exitOk);
  });
}

interface Common {
  readonly set: string[];
  /** `--dtype` (compile, run): the model's float type; f32 keeps the model as written. */
  readonly dtype?: 'f32' | 'f16' | 'bf16';
}

/** CompileOptions.dtype from `--dtype`: f32 (the default) retypes nothing. */
function dtypeOf(o: Common): { dtype?: 'f16' | 'bf16' } {
  return o.dtype === undefined || o.dtype === 'f32' ? {} : { dtype: o.dtype };
}

/** `tfc compile`'s options as commander parses them (choices checked by commander). */
interface CompileFlags extends Common {
  readonly outDir?: string;
  readonly emit?: string;
  readonly dumpAfter?: string;
  readonly loc: boolean;
  readonly target: Target;
  readonly limits: string;
  readonly tunedFor?: string;
  readonly report?: boolean;
  readonly json?: boolean;
  readonly fuse: boolean;
  readonly grad?: boolean;
  readonly train?: boolean;
}

/** `tfc compile --help`'s pass list: every pass of every target (fusion passes included), in order. */
function passHelp(): string {
  const rows = passTable();
  if (rows.length === 0) return '';
  const width = Math.max(...rows.map((p) => p.name.length), 'all'.length);
  const every = (Object.keys(pipelines) as Target[]).length;
  const note = (p: PassRow): string => {
    const where = p.targets.length === every ? '' : p.targets.join(', ');
    const tags = [where, p.fusion ? 'fusion: --no-fuse leaves it out' : ''].filter((t) => t !== '');
    return tags.length === 0 ? '' : ` [${tags.join('; ')}]`;
  };
  const lines = rows.map((p) => `  ${p.name.padEnd(width)}  ${p.summary}${note(p)}`);
  return `\nPasses (for --dump-after), in pipeline order; [targets] when not every target runs it:\n${lines.join('\n')}\n  ${'all'.padEnd(width)}  every pass\n`;
}

function debugHelp(): string {
  return `\nTFC_DEBUG=N or --debug N:\n${debugLevels.map(([n, s]) => `  ${n}  ${s}`).join('\n')}\n`;
}

function loadTensors(rep: Reporter, path: string, what: string): SafetensorsFile {
  const bytes = readBytes(path, what);
  try {
    return readSafetensors(bytes, path);
  } catch (e) {
    if (e instanceof SafetensorsError) {
      rep.report(e.diagnostic);
      throw new UserErrorsReported();
    }
    throw e;
  }
}

function seedOf(text: string): number {
  if (!/^\d+$/.test(text) || Number(text) > 0xffffffff) throw new UsageError(`bad --seed '${text}': expected an integer 0..4294967295`);
  return Number(text);
}

export function buildProgram(io: Io, state: { debug: number; rep: Reporter }): Command {
  const program = new Command();
  program
    .name('tfc')
    .description('tfc: compiles .tfx transformer models; checks, prints each stage, runs them on WebGPU or the float64 interpreter')
    .version('0.1.0')
    .option('--debug <N>', 'debug level 0..4 (overrides TFC_DEBUG)')
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({ writeOut: io.out, writeErr: io.err })
    .addHelpText('after', `${debugHelp()}\nExit codes: 0 ok, 1 error in the model or data, 2 usage error, ${exitInternal} internal compiler error.\nRun 'tfc CMD --help' for one command.`)
    .hook('preAction', (cmd) => {
      state.debug = parseDebug(cmd.opts<{ debug?: string }>().debug, io.env['TFC_DEBUG']);
    });

  const setOption = (): Option =>
    new Option('--set <k=v,...>', 'override config constants and bind dims (repeatable): --set layers=2,d=64,T=1024').argParser(collect).default([]);
  const dtypeOption = (): Option =>
    new Option('--dtype <T>', "store the model's f32 weights and activations as T (kernels still accumulate in f32); weights convert at load").choices(['f32', 'f16', 'bf16']);

  program
    .command('check')
    .description('parse and type-check a model; exit 0 if well-formed, 1 with diagnostics on stderr')
    .argument('<FILE>', '.tfx source (or a dumped .ir file)')
    .addOption(setOption())
    .action((file: string, o: Common) => {
      const g = openModel(state.rep, file, { overrides: parseSetOptions(o.set) }).checked;
      state.rep.flush();
      if (state.debug >= 1) io.err(`tfc check: ${file}: ${g.nodes.length} nodes, ${g.outputs.length} outputs\n`);
    });

  program
    .command('compile')
    .description('compile a model; --emit prints one stage on stdout, -o writes the artifacts')
    .argument('<FILE>', '.tfx source (or a dumped .ir file)')
    .option('-o, --out-dir <DIR>', 'write DIR/model.ir, DIR/manifest.json, DIR/wgsl/*.wgsl and DIR/model.ts (the folder is replaced atomically)')
    .option('--checkpoint <DIR>', "read config constants from DIR/config.json (the keys the model's `from` names)")
    .addOption(new Option('--emit <STAGE>', 'print a stage on stdout').choices(emitStages))
    .option('--dump-after <PASS>', 'print the IR after PASS (or all passes) on stderr')
    .addOption(setOption())
    .option('--no-loc', 'leave loc(...) out of printed IR')
    .addOption(new Option('--target <T>', 'target pipeline').choices(targets).default('webgpu'))
    .addOption(new Option('--limits <L>', 'device limits the kernels are compiled for (tiles, subgroups): default runs on any WebGPU adapter').choices(Object.keys(compileLimits)).default('default'))
    .option('--report', 'print global-memory traffic and FLOPs per kernel, fused vs --no-fuse vs the lower bound (dims from --set; else B=1, others 128)')
    .option('--json', 'with --report: print the report as JSON')
    .option('--no-fuse', 'leave the fusion passes out of the pipeline (the unfused baseline)')
    .option('--train', "also compile the training step (cross-entropy of 'logits' against next-token 'targets', backward, AdamW; B and T symbolic): DIR/train/ holds its plan and model.ts exports createTrainer (trainStep on the GPU; weights go back to the model with trainer.copyTo)")
    .option('--grad', "compile the backward instead: the cross-entropy of the 'logits' output against a new i32 input 'targets', differentiated w.r.t. every weight (outputs 'loss' and 'grad.<weight>'); --emit grad prints it with its saved activations")
    .addOption(dtypeOption())
    .option('--tuned-for <ADAPTER>', "use the schedules 'tfc tune' cached for ADAPTER (as tune printed it, or a unique part of it) from $TFC_TUNE_CACHE or ~/.cache/tfc/tune.json; compile never starts a GPU device")
    .addHelpText('after', () => passHelp())
    .action(async (file: string, o: CompileFlags) => {
      if (o.dumpAfter !== undefined && o.dumpAfter !== 'all') {
        const names = passList(o.target).map((p) => p.name);
        if (!names.includes(o.dumpAfter)) {
          throw new UsageError(`unknown pass '${o.dumpAfter}' for --dump-after (passes: ${[...names, 'all'].join(', ')})`);
        }
      }
      if (o.emit === 'ast' && file.endsWith('.ir')) throw new UsageError(`--emit ast needs a .tfx source; ${file} is graph IR`);
      const given = parseSetOptions(o.set);
      // --checkpoint DIR: constants from its config.json (the model's `from` keys); --set wins.
      const ckpt = (o as { checkpoint?: string }).checkpoint;
      const fromCkpt = ckpt === undefined ? undefined : checkpointOverrides(state.rep, file, openCheckpoint(ckpt), given);
      const overrides = new Map([...(fromCkpt?.values ?? []), ...given]);
      // The report always compares kernel pipelines (webgpu's for --target interp).
      const target: Target = o.report === true && o.target === 'interp' ? 'webgpu' : o.target;
      const grad = o.grad === true || o.emit === 'grad';
      const c = openModel(state.rep, file, { overrides, target, ...dtypeOf(o), noFuse: o.fuse === false, ...(grad ? { grad } : {}), passes: { ...(o.dumpAfter !== undefined ? { dumpAfter: o.dumpAfter } : {}), debug: state.debug, locs: o.loc, log: io.err } });
      if (o.emit === 'ast') {
        const ast = c.ast;
        state.rep.flush();
        if (ast !== undefined) io.out(printAst(ast, { locs: o.loc }));
        return;
      }
      void c.checked; // the checker's warnings print before any pass output
      state.rep.flush();
      if (o.train === true) {
        const why = trainRefusal(c);
        if (why !== undefined) throw new UsageError(why);
      }
      if (o.emit === 'grad') {
        io.out(c.gradText);
        return;
      }
      // CUDA kernels are compiled for cudaLimits (warps of 32, 48 KiB shared); --limits picks WebGPU's.
      const isCuda = target === 'cuda' || (o.emit === 'cuda' && o.report !== true);
      const limits = isCuda ? cudaLimits : compileLimits[o.limits];
      if (limits === undefined) throw new UsageError(`unknown --limits '${o.limits}'`);
      if (o.report === true) {
        io.out(reportText(lowerModel(c, { limits }), overrides, { json: o.json === true, noFuse: o.fuse === false, target, log: io.err }));
        return;
      }
      const g = c.graph;
      state.rep.flush();
      if (o.emit === 'ir') io.out(c.irText);
      if (o.emit === 'fused') io.out(c.graphText);
      // `tfc tune`'s winners for the adapter the user names (read from the cache file only: an
      // offline compile never starts a device), when they fit the compile limits.
      if (o.tunedFor !== undefined && isCuda) throw new UsageError('--tuned-for applies to WebGPU compiles (the tune cache holds WebGPU schedules)');
      const tuned = o.tunedFor === undefined ? undefined : cachedScheduleForCompile(state.rep, g, limits, tuneCachePath(undefined, io.env), o.tunedFor, io.err);
      if (tuned !== undefined && tuned.used.length > 0) {
        io.err(`tfc compile: ${tuned.used.length} tuned schedule${tuned.used.length === 1 ? '' : 's'} for ${tuned.adapter} from ${tuneCachePath(undefined, io.env)}\n`);
        if (state.debug >= 1) io.err(tuned.used.map((u) => `  ${u}\n`).join(''));
      }
      const k = lowerModel(c, { limits, cuda: isCuda, ...(tuned !== undefined ? { schedule: tuned.schedule } : {}), ...(o.train === true ? { train: true } : {}) });
      if (o.emit === 'kernels') io.out(printKernels(k.program));
      if (state.debug >= 1) {
        io.err(kernelDebugText(state.debug, { plan: k.plan, program: k.program, dims: reportDims(g, overrides), limits: limits.name, language: isCuda ? 'cuda' : 'wgsl' }));
      }
      if (o.emit === 'wgsl') io.out(k.wgsl);
      if (o.emit === 'cuda') io.out(k.cuda);
      if (o.emit === 'host') io.out(await k.hostModule());
      if (o.outDir !== undefined) {
        writeDirAtomic(state.rep, o.outDir, await k.files());
        const train = k.trainPlan;
        io.err(`tfc compile: wrote ${o.outDir}/model.ir, manifest.json and ${k.plan.kernels.length} kernels in wgsl/${isCuda ? ', cuda/ (with launch.json)' : ''}${train !== undefined ? `, the training step (${train.kernels.length} kernels, ${train.steps.length} steps) in train/` : ''}\n`);
      }
    });

  program
    .command('run')
    .description('run a model on safetensors inputs and write its outputs (f32) to a safetensors file')
    .argument('<FILE>', '.tfx source (or a dumped .ir file)')
    .option('--weights <W>', 'weights .safetensors (a model without weights needs none)')
    .option('--checkpoint <DIR>', 'a Hugging Face model folder: config.json, model.safetensors (or its shards), tokenizer files')
    .option('--inputs <IN>', 'inputs .safetensors (names as declared in the model)')
    .option('--out <OUT>', 'output .safetensors to write')
    .option('--prompt <TEXT>', 'generate text from TEXT instead (webgpu, cuda or cuda-emu; a decoder with token ids, logits and a KV cache; vocab.json next to the weights)')
    .option('--max-new-tokens <N>', 'with --prompt: tokens to generate (default 100)')
    .option('--temperature <X>', 'with --prompt: sampling temperature, 0 = greedy (default 0.8)')
    .option('--top-k <K>', 'with --prompt: sample among the K most likely tokens (default: all)')
    .option('--top-p <P>', 'with --prompt: nucleus sampling threshold (default 1)')
    .option('--seed <N>', 'with --prompt: sampler seed (default 0)')
    .option('--vocab <FILE>', 'with --prompt: vocabulary JSON (default: vocab.json next to the weights)')
    .option('--no-fuse', 'leave the fusion passes out of the pipeline (the unfused baseline)')
    .option('--no-tune-cache', "ignore schedules cached by 'tfc tune' for this adapter")
    .addOption(dtypeOption())
    .addOption(setOption())
    .addOption(new Option('--target <T>', 'where to run (default: webgpu when an adapter exists, else interp; cuda-emu: the CUDA kernels on the CPU emulator)').choices([...targets, 'cuda-emu']))
    .action(async (file: string, opts: Common & { weights?: string; checkpoint?: string; inputs?: string; out?: string; target?: Target | 'cuda-emu'; prompt?: string; fuse?: boolean }) => {
      // CUDA through the generated launcher (src/runtime-cuda/run.ts): nvcc on a GPU, or g++ + the CPU emulator.
      const cudaMode = opts.target === 'cuda' ? 'nvcc' : opts.target === 'cuda-emu' ? 'emu' : undefined;
      const refusal = cudaMode === undefined ? undefined : cudaRunRefusal(cudaMode);
      if (refusal !== undefined) throw new UsageError(`tfc run --target ${opts.target ?? ''}: ${refusal}`);
      if (cudaMode === undefined && opts.target !== undefined && !builtTargets.includes(opts.target)) throw notAvailableYet(`--target ${opts.target}`);
      const overrides = parseSetOptions(opts.set);
      // A checkpoint's config.json gives the constants its `from` keys name; --set wins over it.
      const checkpoint = opts.checkpoint === undefined ? undefined : openCheckpoint(opts.checkpoint);
      const fromCkpt = checkpointOverrides(state.rep, file, checkpoint, overrides);
      const m = openModel(state.rep, file, { overrides: new Map([...(fromCkpt?.values ?? []), ...overrides]), ...dtypeOf(opts), noFuse: opts.fuse === false, passes: { debug: state.debug, locs: true, log: io.err } });
      const checkedGraph = m.checked;
      state.rep.flush();
      if (fromCkpt !== undefined && state.debug >= 1) io.err(`tfc run: from ${checkpoint?.configPath ?? ''}: ${[...fromCkpt.values].map(([k, v]) => `${k}=${v}`).join(', ') || 'no constants'}${fromCkpt.defaulted.length > 0 ? `; defaults kept: ${fromCkpt.defaulted.join(', ')}` : ''}\n`);
      const weightFiles = weightFilesOf(checkedGraph, opts, checkpoint);
      if (opts.prompt !== undefined) {
        // Text generation (src/cli/generate.ts): WebGPU's host-module runtime, or the CUDA launcher in
        // serve mode (weights and KV cache on the device) for --target cuda|cuda-emu.
        if (opts.target !== undefined && opts.target !== 'webgpu' && cudaMode === undefined) throw new UsageError('--prompt runs on webgpu, cuda or cuda-emu');
        if (cudaMode !== undefined) {
          // The launcher's own weight checks exit without a diagnostic: check the file here first (TFC30x, exit 1).
          const weights = loadWeightFiles(state.rep, weightFiles);
          const needed = neededTensors(checkedGraph).filter((n) => n.kind === 'weight');
          state.rep.reportAll(withKeyNotes(checkTensors(needed, { file: '(no inputs file)', tensors: new Map() }, weights).diagnostics, fromCkpt, checkpoint?.configPath ?? ''));
          state.rep.flush();
          if (state.rep.hasErrors) throw new UserErrorsReported();
        }
        const pg = m.variant({ target: cudaMode === undefined ? 'webgpu' : 'cuda' }).graph;
        const context = m.contextLength;
        await runPrompt(pg, { ...(opts as unknown as Record<string, string>), weights: weightFiles, ...(checkpoint !== undefined ? { checkpoint: checkpoint.dir } : {}), prompt: opts.prompt, ...(context !== undefined ? { context } : {}) }, io, cudaMode ?? 'webgpu');
        return;
      }
      if (opts.inputs === undefined || opts.out === undefined) throw new UsageError('run needs --inputs and --out (or --prompt to generate text)');
      const o = { ...opts, inputs: opts.inputs, out: opts.out };
      let target: Target = o.target === 'cuda-emu' ? 'cuda' : (o.target ?? 'webgpu');
      if (o.target === undefined) {
        const gpu = await hasWebGpu();
        if (!gpu.ok) {
          io.err(`tfc: warning: no WebGPU adapter, running on the float64 interpreter (--target interp): ${gpu.reason}\n`);
          target = 'interp';
        }
      }
      const c = m.variant({ target });
      const g = c.graph;
      const weights = loadWeightFiles(state.rep, weightFiles);
      const inputs = loadTensors(state.rep, o.inputs, 'inputs file');
      const preset = new Map([...overrides].filter(([k]) => g.dims.includes(k)));
      const checked = checkTensors(neededTensors(g), { file: o.inputs, ...inputs }, weights, preset);
      state.rep.reportAll(withKeyNotes(checked.diagnostics, fromCkpt, checkpoint?.configPath ?? ''));
      // The model's `limit`s (its context), then token ids and positions inside their tables, on
      // the checked graph (the same on every target).
      const broken = checked.diagnostics.some((d) => d.severity === 'error') ? undefined : limitDiagnostic(m.limits, checked.dims, `the inputs of ${o.inputs} give`);
      if (broken !== undefined) state.rep.report(broken);
      else if (!checked.diagnostics.some((d) => d.severity === 'error')) state.rep.reportAll(checkIndexRanges(checkedGraph, { file: o.inputs, ...inputs }, checked.dims));
      state.rep.flush();
      if (state.rep.hasErrors) throw new UserErrorsReported();
      // Float tensors in the model's dtypes (an f32 checkpoint into a --dtype f16 model rounds here, once).
      const needed = neededTensors(g);
      const feeds = { weights: declaredTensors(needed, 'weight', weights.tensors), inputs: declaredTensors(needed, 'input', inputs.tensors) };
      const started = performance.now();
      let result: { outputs: ReadonlyMap<string, Tensor64>; dims: ReadonlyMap<string, number> };
      let where: string = target;
      try {
        if (target === 'webgpu') {
          const useCache = (opts as { tuneCache?: boolean }).tuneCache !== false;
          const r = await runOnWebGpu(c, feeds.weights, feeds.inputs, preset, async (t) => {
            if (!useCache) return undefined;
            const cached = cachedScheduleForRun(g, t, tuneCachePath(undefined, io.env), io.err);
            if (cached !== undefined && state.debug >= 1) io.err(`tfc run: tuned schedules from ${tuneCachePath(undefined, io.env)}:\n${cached.used.map((u) => `  ${u}\n`).join('')}`);
            return cached?.schedule;
          });
          result = r;
          where = `webgpu (${r.adapter}; peak GPU memory ${(r.memory.peakBytes / 2 ** 20).toFixed(2)} MiB)`;
        } else if (cudaMode !== undefined) {
          const r = runOnCuda(lowerModel(c, { limits: cudaLimits }).plan, oneWeightsFile(weightFiles, 'cuda'), o.inputs, checked.dims, cudaMode);
          result = r;
          where = r.where;
        } else {
          result = interpret(g, feeds, { dims: preset });
        }
      } catch (e) {
        if (isInterpError(e)) {
          state.rep.report(diag(e.code, e.loc ?? fileSpan(file), e.message));
          throw new UserErrorsReported();
        }
        if (e instanceof RuntimeError && e.code !== undefined) {
          state.rep.report(diag(e.code, fileSpan(o.inputs), e.message));
          throw new UserErrorsReported();
        }
        throw e;
      }
      const ms = performance.now() - started;
      const outputs = new Map(result.outputs);
      writeFileAtomic(state.rep, o.out, writeSafetensors(outputs, 'f32'));
      const shown = [...outputs].map(([name, t]) => `${name} ${t.dtype === 'f16' || t.dtype === 'bf16' ? 'f32' : t.dtype}[${t.shape.join(',')}]`);
      const dims = [...result.dims].map(([k, v]) => `${k}=${v}`).join(', ');
      io.err(`tfc run: ${g.name} on ${where}${dims === '' ? '' : ` (${dims})`}: ${shown.join(', ')} -> ${o.out} in ${ms.toFixed(0)} ms\n`);
    });

  program
    .command('fmt')
    .description('print the canonical form of a .tfx file (or rewrite it with --write)')
    .argument('<FILE>', '.tfx source')
    .option('--write', 'rewrite FILE in place instead of printing')
    .action((file: string, o: { write?: boolean }) => {
      if (file.endsWith('.ir')) throw new UsageError(`fmt formats .tfx sources; ${file} is graph IR (compile --emit ir prints it)`);
      const module = parseOnly(state.rep, file);
      state.rep.flush();
      const text = formatModule(module);
      if (o.write === true) {
        if (readText(file) !== text) writeFileAtomic(state.rep, file, text);
      } else io.out(text);
    });

  // init-weights and random-inputs: seeded tensors for a model, so it runs without a checkpoint.
  const seededCommand = (name: string, description: string, outFlag: string, outHelp: string, what: string, make: (g: Graph, seed: number, dims: ReadonlyMap<string, number>, ds: Diagnostic[]) => Map<string, Tensor64>): void => {
    program
      .command(name)
      .description(description)
      .argument('<FILE>', '.tfx source (or a dumped .ir file)')
      .requiredOption(outFlag, outHelp)
      .option('--seed <N>', 'random seed', '0')
      .addOption(setOption())
      .action((file: string, o: Common & { out: string; seed: string }) => {
        const seed = seedOf(o.seed);
        const overrides = parseSetOptions(o.set);
        const g = openModel(state.rep, file, { overrides }).checked;
        const ds: Diagnostic[] = [];
        const tensors = make(g, seed, overrides, ds);
        state.rep.reportAll(ds);
        state.rep.flush();
        if (state.rep.hasErrors) throw new UserErrorsReported();
        writeFileAtomic(state.rep, o.out, writeSafetensors(tensors));
        io.err(`tfc ${name}: ${tensors.size} ${what} -> ${o.out}\n`);
      });
  };
  seededCommand('init-weights', 'write seeded random weights for a model (to run it without a checkpoint)', '--out <W>', 'weights .safetensors to write', 'weights', (g, seed, dims, ds) =>
    randomWeights(neededTensors(g), seed, dims, ds),
  );
  seededCommand('random-inputs', 'write seeded random inputs for a model (bind its dims with --set, e.g. B=1,T=8)', '--out <IN>', 'inputs .safetensors to write', 'inputs', (g, seed, dims, ds) =>
    randomInputs(g, neededTensors(g), seed, dims, ds),
  );

  program
    .command('explain')
    .description('print what a diagnostic code means (e.g. tfc explain TFC204)')
    .argument('<CODE>', 'a code like TFC204')
    .action((code: string) => {
      const key = code.toUpperCase();
      if (!Object.prototype.hasOwnProperty.call(diagnosticCodes, key)) throw new UsageError(`unknown diagnostic code '${code}' (see docs/diagnostics.md)`);
      io.out(`${key}: ${diagnosticCodes[key as DiagCode]}\n`);
    });

  addBenchCommand(program, io);
  addTuneCommand(program, io, state);
  addTrainCommand(program, { ...io, isTty: isStderrTty() }, state);
  for (const cmd of program.commands) cmd.exitOverride().configureOutput({ writeOut: io.out, writeErr: io.err }).showSuggestionAfterError(true);
  return program;
}

/** Runs one tfc invocation; returns the exit code (never throws for user mistakes). */
export async function main(argv: readonly string[], io: Io = processIo): Promise<number> {
  if (io === processIo) endQuietlyOnClosedStdout();
  const state = { debug: 0, rep: new Reporter(io.err) };
  const program = buildProgram(io, state);
  if (argv.length === 0) {
    // No command is a usage error: the help goes to stderr, exit 2.
    io.err(program.helpInformation());
    return exitUsage;
  }
  try {
    await program.parseAsync([...argv], { from: 'user' });
    state.rep.flush();
    return exitOk;
  } catch (e) {
    state.rep.flush();
    if (e instanceof CommanderError) {
      // Commander already printed its one-line message (or the help / version text).
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return exitOk;
      return exitUsage;
    }
    if (e instanceof UsageError) {
      io.err(`tfc: error: ${e.message}\n`);
      return exitUsage;
    }
    if (e instanceof UserErrorsReported) {
      const s = state.rep.summary();
      if (s !== undefined) io.err(`${s}\n`);
      return exitUserError;
    }
    if (e instanceof SafetensorsError) {
      state.rep.report(e.diagnostic);
      state.rep.flush();
      return exitUserError;
    }
    if (e instanceof ScheduleError) {
      // A schedule that cannot lower a node: from a tune cache (a hand-edited or stale entry) or,
      // with none supplied, the chooser (then it is a bug to report). Either way one line, no trace.
      io.err(`tfc: error: ${e.message} (a schedule from the tune cache is checked against each node; fix or remove that entry, or rerun tfc tune; without a cache this is a bug in tfc's chooser, please report it)\n`);
      return exitUserError;
    }
    if (e instanceof NoWebGpuError || (e instanceof RuntimeError && e.kind !== 'plan')) {
      // No adapter for an explicit --target webgpu, a missing feature (shader-f16), a device limit.
      io.err(`tfc: error: ${e instanceof NoWebGpuError ? `--target webgpu: ${e.message} (or use --target interp)` : e.message}\n`);
      return exitUserError;
    }
    const pass = e instanceof InternalError && e.pass !== undefined ? ` in pass ${e.pass}` : '';
    const msg = e instanceof Error ? e.message : String(e);
    // The driver's InternalError already starts with the header and carries the pass's input IR.
    const head = msg.startsWith('internal compiler error') ? msg : `internal compiler error${pass}: ${msg}`;
    const stack = e instanceof Error && e.stack !== undefined ? e.stack.split('\n').slice(1).join('\n') : '';
    io.err(`${head}\n${stack === '' ? '' : stack + '\n'}`);
    io.err('this is a bug in tfc, not in your model; please report it with the command line and input files\n');
    return exitInternal;
  }
}


// Also runnable directly (`node dist/src/cli/main.js ...`), as outside checks invoke it.
if (process.argv[1] !== undefined && import.meta.url === (await import('node:url')).pathToFileURL(process.argv[1]).href) {
  process.exitCode = await main(process.argv.slice(2));
}
