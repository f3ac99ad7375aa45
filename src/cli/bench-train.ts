// `tfc bench train [MODEL]`: time of one training step (forward, cross-entropy, backward, AdamW:
// the graph `tfc train` runs) compiled with the fusion passes and without, in this process, from
// the same weights on the same batches, their steps interleaved (step i of each before step i + 1
// of any) so a change in machine load hits both alike. The first step's loss of each is checked
// against the float64 interpreter running the same step graph.
import { dimConst, dimConstValue } from '../base/dim.js';
import { randomWeights } from './random.js';
import { compilePlan } from '../compile/plan.js';
import type { Graph } from '../graph/ir.js';
import { neededTensors } from '../io/check-tensors.js';
import { runPipeline } from '../passes/driver.js';
import { createPassContext } from '../passes/pass.js';
import { trainingPipeline } from '../passes/pipeline.js';
import { createSession, type HostTensor, type Session } from '../runtime/session.js';
import { targetLimitsOf } from '../runtime/target.js';
import { Trainer, webgpuTrainBackend } from '../runtime/train.js';
import { mulberry32 } from '../train/data.js';
import { type BenchOptions, wanted } from './bench.js';
import { benchDevice } from './bench-peers.js';
import { type CaseResult, type SystemResult, Progress, median } from './bench-report.js';
import { Reporter } from './report.js';
import { interpTrainBackend } from './train-backends.js';
import { trainingForward, trainingGraphs } from './train.js';

interface Live {
  readonly system: string;
  readonly session: Session;
  readonly trainer: Trainer;
  readonly wallMs: number[];
  readonly losses: number[];
}

export async function benchTrain(o: BenchOptions, file: string, set: Readonly<Record<string, number>>, steps: number): Promise<CaseResult[]> {
  const batch = set['B'] ?? 8;
  const seq = set['T'] ?? 64;
  const config = new Map(Object.entries(set).filter(([k]) => k !== 'B' && k !== 'T'));
  let diagnostics = '';
  const rep = new Reporter((t) => (diagnostics += t));
  let fwd: Graph;
  try {
    fwd = trainingForward(rep, file, batch, seq, config);
  } catch (e) {
    throw new Error(`${file}: ${diagnostics.trim() || (e instanceof Error ? e.message : String(e))}`);
  }
  // Fused: attention fused before grad (its backward one fused_attention_grad) and the LM head's
  // cross-entropy one fused_cross_entropy; --no-fuse: the unfused chains differentiated.
  const stepGraphs = { fused: trainingGraphs(rep, fwd, { fuseAttention: true }).stepGraph, unfused: trainingGraphs(rep, fwd, { fuseLoss: false }).stepGraph };
  const stepGraph = stepGraphs.unfused;
  const name = `train ${file.split('/').pop() ?? file} B=${batch} T=${seq}`;
  const dev = await benchDevice();
  const systems = ['tfc', 'tfc --no-fuse'].filter((s) => wanted(o, s));
  const progress = new Progress(systems.length + steps, o.err, o.isTty);

  // The same weights (`tfc init-weights` values) and batches for every system.
  const init = new Map([...randomWeights(neededTensors(fwd), 0, new Map(), [])].map(([n, t]): [string, HostTensor] => [n, { dtype: t.dtype, shape: t.shape, data: Float32Array.from(t.data) }]));
  // Token ids below the vocabulary: the logits' last axis.
  const logits = fwd.nodes[fwd.outputs[0]?.value ?? -1];
  const vocab = Math.max(2, dimConstValue(logits?.type.shape.at(-1) ?? dimConst(2)) ?? 2);
  const next = mulberry32(7);
  const ids = (): Int32Array => Int32Array.from({ length: batch * seq }, () => Math.floor(next() * vocab));
  const batches = Array.from({ length: steps }, () => new Map<string, HostTensor>([['tokens', { dtype: 'i32', shape: [batch, seq], data: ids() }], ['targets', { dtype: 'i32', shape: [batch, seq], data: ids() }]]));
  const lr = 1e-3;
  const want = (await new Trainer(interpTrainBackend(stepGraph), init).step(batches[0] ?? new Map(), lr)).loss;

  const slots: (Live | SystemResult)[] = [];
  for (const system of systems) {
    try {
      const fused = system === 'tfc';
      // Both systems recompute cheap activations (the memory policy is not a fusion).
      const passes = trainingPipeline('webgpu', { fuse: fused, recompute: true });
      const plan = compilePlan(runPipeline(fused ? stepGraphs.fused : stepGraphs.unfused, passes, createPassContext({ target: 'webgpu' })), { target: targetLimitsOf(dev) });
      const session = await createSession(dev, plan);
      await session.warmUp();
      slots.push({ system, session, trainer: new Trainer(webgpuTrainBackend(dev.device, session), init), wallMs: [], losses: [] });
    } catch (e) {
      slots.push({ system, status: 'failed', timeSource: 'wall', wallMs: [], note: e instanceof Error ? (e.message.split('\n')[0] ?? '') : String(e) });
    }
    progress.step(`${name}: ${system} compiled`);
  }
  const live = slots.filter((s): s is Live => 'trainer' in s);
  for (let i = 0; i < steps; i++) {
    for (let j = 0; j < live.length; j++) {
      const s = live[(i + j) % live.length];
      if (s === undefined) continue;
      const t0 = performance.now();
      const r = await s.trainer.step(batches[i] ?? new Map(), lr);
      s.wallMs.push(performance.now() - t0);
      s.losses.push(r.loss);
    }
    progress.step(`${name}: step ${i + 1}`);
  }
  progress.end();
  const results = slots.map((s): SystemResult => {
    if (!('trainer' in s)) return s;
    s.trainer.dispose();
    s.session.dispose();
    const got = s.losses[0] ?? NaN;
    const relErr = Math.abs(got - want) / Math.abs(want);
    return {
      system: s.system,
      status: relErr <= 1e-4 ? 'ok' : 'wrong',
      timeSource: 'wall',
      wallMs: s.wallMs,
      maxAbsErr: Math.abs(got - want),
      relErr,
      kernels: s.session.plan.steps.length,
      note: `${Math.round((batch * seq * 1000) / median(s.wallMs)).toLocaleString('en-US')} tokens/s (steps interleaved with the other systems; first loss vs float64)`,
    };
  });
  return [{ suite: 'train', name, params: { ...set, steps }, results }];
}
