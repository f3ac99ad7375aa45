// `tfc train MODEL.tfx --data FILE --steps N`: trains a model's weights on a text. The text is
// tokenized once and split (the tail is the validation set); each step draws seeded windows
// (src/train/data.ts), runs ONE compiled training-step graph (forward, cross-entropy, its backward
// from src/autodiff/, the AdamW update: src/train/step.ts) and keeps the weights and moments on
// the GPU (src/runtime/train.ts). A progress line shows the loss and tokens/s; the output folder
// gets model.safetensors (loadable by `tfc run --weights DIR/model.safetensors --prompt`, with the
// tokenizer files copied beside it), loss.json and loss.svg.
import { copyFileSync, existsSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Command } from 'commander';
import type { Tensor64 } from '../base/tensor.js';
import { compilePlan } from '../compile/plan.js';
import { UserErrorsReported } from '../diag/diagnostic.js';
import type { Graph } from '../graph/ir.js';
import { neededTensors } from '../io/check-tensors.js';
import { writeSafetensors } from '../io/safetensors.js';
import { runPipeline } from '../passes/driver.js';
import { createPassContext } from '../passes/pass.js';
import { planTempBytes } from '../runtime/memory.js';
import { pipelines, trainingPipeline, unfusedPipeline } from '../passes/pipeline.js';
import { acquireDevice } from '../runtime/device.js';
import { createSession, type HostTensor } from '../runtime/session.js';
import { targetLimitsOf } from '../runtime/target.js';
import { Trainer, type TrainBackend, webgpuTrainBackend } from '../runtime/train.js';
import { type CurvePoint, lossCurveSvg } from '../train/curve.js';
import { batchOffsets, evalOffsets, learningRate, splitCorpus, windows } from '../train/data.js';
import { buildTrainingGraphs, type TrainingGraphs, trainingForwardOf } from '../train/graphs.js';
import { UsageError, collect, nonNegativeInt, parseSetOptions } from './args.js';
import { loadWeightFiles, openCheckpoint, weightFilesOf } from './checkpoint.js';
import { readText, writeFileAtomic } from './fsio.js';
import { promptTokenizer } from './generate.js';
import { randomWeights } from './random.js';
import type { Reporter } from './report.js';
import { openModel } from './stages.js';
import { emulatorTrainBackend, interpTrainBackend } from './train-backends.js';
import { cudaLimits } from '../kernel/schedule/schedule.js';

export interface TrainFlags {
  readonly data: string;
  readonly steps: string;
  readonly batch: string;
  readonly seq: string;
  readonly lr: string;
  readonly warmup?: string;
  readonly seed: string;
  readonly weights?: string;
  readonly checkpoint?: string;
  readonly vocab?: string;
  readonly out: string;
  readonly evalEvery?: string;
  readonly valFraction: string;
  readonly target: 'webgpu' | 'cuda-emu' | 'interp';
  readonly fuse: boolean;
  readonly recompute: boolean;
  readonly set: string[];
  readonly accumulate?: string;
}

interface TrainIo {
  readonly out: (t: string) => void;
  readonly err: (t: string) => void;
}

function positiveInt(flag: string, v: string | undefined, fallback: number): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(n) || n < 1) throw new UsageError(`bad ${flag} '${v}': expected a positive integer`);
  return n;
}

function positiveNumber(flag: string, v: string): number {
  const n = Number(v);
  if (!(n > 0) || !Number.isFinite(n)) throw new UsageError(`bad ${flag} '${v}': expected a positive number`);
  return n;
}

const mb = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

/** The model's forward graph for training windows: dims B, T bound; an empty KV cache (P = 0). */
export function trainingForward(rep: Reporter, file: string, batch: number, seq: number, set: ReadonlyMap<string, number>): Graph {
  const probe = openModel(rep, file, { overrides: set }).checked;
  rep.flush();
  const dims = new Map<string, number>();
  if (probe.dims.includes('B')) dims.set('B', batch);
  if (probe.dims.includes('T')) dims.set('T', seq);
  if (probe.dims.includes('P')) dims.set('P', 0);
  // The cleanup passes' graph (`--emit ir`): an empty cache's concatenations are gone.
  const g = openModel(rep, file, { overrides: new Map([...set, ...dims]) }).ir;
  rep.flush();
  // Only the logits: the KV cache outputs and their (now empty) inputs go.
  const fwd = trainingForwardOf(g);
  if (fwd === undefined) throw new UsageError(`${file}: tfc train needs an output named 'logits' (outputs: ${g.outputs.map((o) => o.name).join(', ')})`);
  return fwd;
}

export type { TrainingGraphs };

/**
 * Cross-entropy on the forward graph's logits, its gradients, and the AdamW step
 * (src/train/graphs.ts). With `fuseAttention` (the kernel targets' fused training step) attention
 * is fused in the forward first, so its backward is one fused_attention_grad; with `fuseLoss`
 * (default true) an LM head and its cross-entropy become one fused_cross_entropy (the logits are
 * never materialized whole: src/autodiff/fused-loss.ts); `accumulate` compiles gradient
 * accumulation into the step (src/train/adamw.ts).
 */
export function trainingGraphs(rep: Reporter, fwd: Graph, opts: { readonly fuseAttention?: boolean; readonly fuseLoss?: boolean; readonly accumulate?: boolean } = {}): TrainingGraphs {
  const r = buildTrainingGraphs(fwd, opts, (d) => rep.report(d));
  rep.flush();
  if (r === undefined) throw new UserErrorsReported();
  return r;
}

export function addTrainCommand(program: Command, io: TrainIo & { readonly isTty?: boolean }, state: { debug: number; rep: Reporter }): void {
  program
    .command('train')
    .description('train a model on a text: one fused training step (forward, cross-entropy, backward, AdamW) per batch on WebGPU; writes OUT/model.safetensors, loss.json, loss.svg')
    .argument('<FILE>', '.tfx model with a `logits` output and an i32 `tokens` input')
    .requiredOption('--data <FILE>', 'the training text (its last --val-fraction is held out for validation)')
    .option('--steps <N>', 'training steps', '200')
    .option('--batch <N>', 'windows per micro-batch (per step without --accumulate)', '8')
    .option('--accumulate <N>', 'gradient accumulation: N micro-batches of --batch windows per optimizer step (the same windows as --batch N*batch, in 1/N of the memory)', '1')
    .option('--seq <N>', 'tokens per window', '64')
    .option('--lr <X>', 'peak learning rate (linear warm-up, then linear decay to 10%)', '3e-3')
    .option('--warmup <N>', 'warm-up steps (default: steps / 7)')
    .option('--seed <N>', 'seed of the windows (and of the initial weights without --weights)', '0')
    .option('--weights <FILE>', 'start from these weights (default: fresh weights, as `tfc init-weights`)')
    .option('--checkpoint <DIR>', 'start from this checkpoint folder (weights and tokenizer)')
    .option('--vocab <FILE>', 'the tokenizer: a character vocab.json, or vocab.json with merges.txt beside it (default: the weights\' folder)')
    .option('--out <DIR>', 'output folder', 'train-out')
    .option('--eval-every <N>', 'validation loss every N steps (default: 10 times per run)')
    .option('--val-fraction <X>', 'fraction of the text held out for validation', '0.1')
    .option('--target <T>', 'webgpu; cuda-emu (the CUDA kernels built with g++ and run on the CPU); interp (the float64 interpreter: slow, the reference)', 'webgpu')
    .option('--no-fuse', 'compile the training step without the fusion passes')
    .option('--no-recompute', 'keep every activation alive until the backward reads it (default: norms and elementwise activations are recomputed before their backward use, which lowers the step\'s memory)')
    .option('--set <k=v,...>', 'override config constants (repeatable)', collect, [])
    .action(async (file: string, o: TrainFlags) => {
      if (o.target !== 'webgpu' && o.target !== 'cuda-emu' && o.target !== 'interp') throw new UsageError(`bad --target '${String(o.target)}': webgpu, cuda-emu or interp`);
      const steps = positiveInt('--steps', o.steps, 200);
      const batch = positiveInt('--batch', o.batch, 8);
      const micro = positiveInt('--accumulate', o.accumulate, 1);
      const seq = positiveInt('--seq', o.seq, 64);
      const lr = positiveNumber('--lr', o.lr);
      const warmup = positiveInt('--warmup', o.warmup, Math.max(1, Math.round(steps / 7)));
      const seed = nonNegativeInt('--seed', o.seed);
      const evalEvery = positiveInt('--eval-every', o.evalEvery, Math.max(1, Math.round(steps / 10)));
      const valFraction = Number(o.valFraction);
      if (!(valFraction > 0 && valFraction < 0.5)) throw new UsageError(`bad --val-fraction '${o.valFraction}': expected a number in (0, 0.5)`);
      const rep = state.rep;
      const set = parseSetOptions(o.set);

      // Data first: a bad file or tokenizer fails before anything compiles.
      const text = readText(o.data, 'training data');
      const ckpt = o.checkpoint === undefined ? undefined : openCheckpoint(o.checkpoint);
      const fwd = trainingForward(rep, file, batch, seq, set);
      const weightFiles = o.weights !== undefined || ckpt !== undefined ? weightFilesOf(fwd, o.weights !== undefined ? { weights: o.weights } : {}, ckpt) : [];
      const tokenizer = await promptTokenizer({ weights: weightFiles, ...(o.vocab !== undefined ? { vocab: o.vocab } : {}), ...(o.checkpoint !== undefined ? { checkpoint: o.checkpoint } : {}) });
      const ids = tokenizer.encode(text);
      const corpus = splitCorpus(ids, valFraction);
      if (corpus.train.length < seq + 2 || corpus.val.length < seq + 1) throw new UsageError(`${o.data}: ${ids.length} tokens are too few for windows of ${seq} tokens (and a validation part)`);
      io.err(`tfc train: ${o.data}: ${text.length} characters, ${ids.length} tokens (${corpus.train.length} train, ${corpus.val.length} validation)\n`);

      // The initial weights: a file, or fresh ones.
      const needed = neededTensors(fwd).filter((n) => n.kind === 'weight');
      let init: Map<string, Tensor64>;
      if (weightFiles.length > 0) init = loadWeightFiles(rep, weightFiles).tensors;
      else {
        const ds: Parameters<typeof randomWeights>[3] = [];
        init = randomWeights(needed, seed, new Map(), ds);
        rep.reportAll(ds);
        rep.flush();
        if (rep.hasErrors) throw new UserErrorsReported();
      }
      for (const n of needed) if (!init.has(n.name)) throw new UsageError(`the weights have no tensor '${n.name}' that ${file} needs`);

      // The training step and the validation loss, as graphs.
      const { evalGraph, stepGraph, gradOf, grads } = trainingGraphs(rep, fwd, { fuseAttention: o.fuse && o.target !== 'interp', fuseLoss: o.fuse, accumulate: micro > 1 });
      const trained = [...gradOf.keys()];
      io.err(`tfc train: ${file}: ${trained.length} weights (${trained.reduce((a, n) => a + (init.get(n)?.data.length ?? 0), 0).toLocaleString('en-US')} parameters), step graph ${stepGraph.nodes.length} nodes (forward ${grads.forwardNodes}), ${grads.saved.length} saved activations\n`);

      const hostOf = (t: Tensor64): HostTensor => ({ dtype: t.dtype, shape: t.shape, data: Float32Array.from(t.data) });
      const initHost = new Map([...init].map(([n, t]) => [n, hostOf(t)]));
      const frozen = new Map([...initHost].filter(([n]) => !gradOf.has(n)));
      const ints = (shape: number[], data: Int32Array): HostTensor => ({ dtype: 'i32', shape, data });
      const batchOf = (src: Int32Array, offs: Int32Array): Map<string, HostTensor> => {
        const w = windows(src, offs, seq);
        return new Map([
          ['tokens', ints([offs.length, seq], w.tokens)],
          ['targets', ints([offs.length, seq], w.targets)],
        ]);
      };

      // Backends: the training step and the loss alone (validation) on the same target.
      let trainer: Trainer<unknown>;
      let evalLoss: (weights: Map<string, HostTensor>, b: Map<string, HostTensor>) => Promise<number>;
      let cleanup = (): void => undefined;
      const passes = o.fuse ? pipelines.webgpu : unfusedPipeline('webgpu');
      const stepPasses = (target: 'webgpu' | 'cuda') => trainingPipeline(target, { fuse: o.fuse, recompute: o.recompute });
      if (o.target === 'webgpu') {
        const dev = await acquireDevice();
        const limits = targetLimitsOf(dev);
        const compile = (g: Graph, ps = passes) => compilePlan(runPipeline(g, ps, createPassContext({ target: 'webgpu' })), { target: limits });
        const stepSession = await createSession(dev, compile(stepGraph, stepPasses('webgpu')));
        const evalSession = await createSession(dev, compile(evalGraph));
        const temps = planTempBytes(stepSession.plan, new Map());
        io.err(`tfc train: ${stepSession.plan.steps.length} kernels per training step, ${mb(temps.slots)} of temporaries${o.recompute ? '' : ' (--no-recompute)'}, on ${dev.adapterInfo.description || dev.adapterInfo.device}\n`);
        // Compile every pipeline now (lavapipe compiles at first dispatch), not inside step 1.
        for (const [what, sess] of [['training step', stepSession], ['validation', evalSession]] as const) {
          await sess.warmUp((done, total) => {
            if (io.isTty === true) io.err(`\r\x1b[2Ktfc train: compiling the ${what}'s pipelines ${done}/${total}`);
            else if (done === total) io.err(`tfc train: compiled the ${what}'s ${total} pipelines\n`);
          });
          if (io.isTty === true) io.err('\n');
        }
        if (frozen.size > 0) stepSession.loadWeights(frozen);
        trainer = new Trainer(webgpuTrainBackend(dev.device, stepSession) as TrainBackend<unknown>, initHost);
        evalLoss = async (weights, b) => {
          evalSession.loadWeights(new Map([...frozen, ...weights]));
          const r = await evalSession.run(b);
          return r.outputs.get('loss')?.data[0] ?? NaN;
        };
        cleanup = () => {
          trainer.dispose();
          stepSession.dispose();
          evalSession.dispose();
          dev.device.destroy();
        };
      } else if (o.target === 'cuda-emu') {
        const cudaPasses = o.fuse ? pipelines.cuda : unfusedPipeline('cuda');
        const compile = (g: Graph, ps = cudaPasses) => compilePlan(runPipeline(g, ps, createPassContext({ target: 'cuda' })), { target: cudaLimits });
        const stepPlan = compile(stepGraph, stepPasses('cuda'));
        io.err(`tfc train: ${stepPlan.steps.length} kernels per training step, on the CUDA emulator (g++ builds the launcher once)\n`);
        trainer = new Trainer(emulatorTrainBackend(stepPlan, frozen) as TrainBackend<unknown>, initHost);
        const evalBackend = emulatorTrainBackend(compile(evalGraph), frozen);
        evalLoss = async (weights, b) => {
          const r = await evalBackend.run(new Map([...weights, ...b]), []);
          return r.host.get('loss')?.[0] ?? NaN;
        };
      } else {
        trainer = new Trainer(interpTrainBackend(stepGraph, frozen) as TrainBackend<unknown>, initHost);
        const evalBackend = interpTrainBackend(evalGraph, frozen);
        evalLoss = async (weights, b) => {
          const r = await evalBackend.run(new Map([...weights, ...b]), []);
          return r.host.get('loss')?.[0] ?? NaN;
        };
      }

      const valOffsets = evalOffsets(corpus.val.length, seq, 64);
      const validate = async (): Promise<number> => {
        const w = await trainer.weights();
        let sum = 0;
        for (let i = 0; i < valOffsets.length; i += batch) {
          const offs = valOffsets.subarray(i, Math.min(valOffsets.length, i + batch));
          if (offs.length < batch) break; // the compiled batch size
          sum += (await evalLoss(w, batchOf(corpus.val, offs))) * offs.length;
        }
        const n = Math.floor(valOffsets.length / batch) * batch;
        return n === 0 ? NaN : sum / n;
      };

      // Each step's windows, split into `micro` micro-batches of `batch`.
      const offsets = batchOffsets(seed, steps, batch * micro, corpus.train.length, seq);
      const train: CurvePoint[] = [];
      const val: CurvePoint[] = [{ step: 0, loss: await validate() }];
      io.err(`tfc train: validation loss before training ${val[0]?.loss.toFixed(4)}\n`);
      const started = performance.now();
      let evalMs = 0; // validation time, left out of tokens/s
      const isTty = io.isTty === true;
      try {
        for (let s = 0; s < steps; s++) {
          const rate = learningRate(s, steps, lr, warmup);
          const all = offsets[s] ?? new Int32Array();
          let r = { loss: 0, gradNorm: NaN };
          for (let k = 0; k < micro; k++) {
            const part = await trainer.step(batchOf(corpus.train, all.subarray(k * batch, (k + 1) * batch)), rate, { apply: k === micro - 1, micro });
            r = { loss: r.loss + part.loss / micro, gradNorm: part.gradNorm };
          }
          if (!Number.isFinite(r.loss)) throw new UsageError(`the loss is ${r.loss} at step ${s + 1}: lower --lr (now ${lr})`);
          train.push({ step: s + 1, loss: r.loss });
          const last = s + 1 === steps;
          if ((s + 1) % evalEvery === 0 || last) {
            const e0 = performance.now();
            val.push({ step: s + 1, loss: await validate() });
            evalMs += performance.now() - e0;
          }
          const secs = (performance.now() - started - evalMs) / 1000;
          const tps = ((s + 1) * batch * micro * seq) / secs;
          const v = val[val.length - 1];
          const line = `step ${s + 1}/${steps}  loss ${r.loss.toFixed(4)}  val ${v?.loss.toFixed(4)} (step ${v?.step})  lr ${rate.toExponential(2)}  |g| ${r.gradNorm.toFixed(3)}  ${Math.round(tps).toLocaleString('en-US')} tokens/s`;
          if (isTty) io.err(`\r\x1b[2K${line}`);
          else if ((s + 1) % evalEvery === 0 || last || s === 0) io.err(`${line}\n`);
        }
        if (isTty) io.err('\n');
        const weights = await trainer.weights();
        const all = new Map<string, Tensor64>([...init].map(([n, t]) => [n, t]));
        for (const [n, t] of weights) all.set(n, { dtype: 'f32', shape: [...t.shape], data: Float64Array.from(t.data) });
        writeFileAtomic(rep, join(o.out, 'model.safetensors'), writeSafetensors(all, 'f32', { trained_by: 'tfc train', steps: String(steps), data: basename(o.data) }));
        // The tokenizer files beside the weights, so `tfc run --weights OUT/model.safetensors --prompt` finds them.
        const tokDir = o.vocab !== undefined ? dirname(o.vocab) : o.checkpoint ?? (weightFiles[0] !== undefined ? dirname(weightFiles[0]) : undefined);
        for (const f of ['vocab.json', 'merges.txt', 'tokenizer.json', 'tokenizer_config.json', 'config.json']) {
          const from = o.vocab !== undefined && f === 'vocab.json' ? o.vocab : tokDir === undefined ? undefined : join(tokDir, f);
          if (from !== undefined && existsSync(from)) copyFileSync(from, join(o.out, f));
        }
        const secs = (performance.now() - started - evalMs) / 1000;
        const doc = { model: file, data: o.data, steps, batch, accumulate: micro, seq, lr, warmup, seed, seconds: secs, tokensPerSecond: (steps * batch * micro * seq) / secs, train, val };
        writeFileAtomic(rep, join(o.out, 'loss.json'), `${JSON.stringify(doc, null, 1)}\n`);
        writeFileAtomic(rep, join(o.out, 'loss.svg'), lossCurveSvg(`tfc train ${basename(file)} on ${basename(o.data)}: ${steps} steps of ${batch} x ${seq} tokens`, train, val));
        io.err(`tfc train: validation loss ${val[0]?.loss.toFixed(4)} -> ${val[val.length - 1]?.loss.toFixed(4)} in ${secs.toFixed(1)} s of training steps; wrote ${join(o.out, 'model.safetensors')}, loss.json, loss.svg\n`);
      } finally {
        cleanup();
      }
    });
}
