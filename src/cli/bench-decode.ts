// `tfc bench decode`: one-token decode steps of GPT-2 with a KV cache (examples/variants/gpt2-kv.tfx)
// after a prefill of T tokens, tfc fused against tfc --no-fuse. The systems' sessions are all open
// at once and their steps interleave (step i of every system, rotating which goes first), so that
// a change in machine load hits every system alike: run one after the other, the fused/unfused
// ratio of GPT-2 small swung from 0.78x to 1.24x a minute apart on this 2-core machine.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Plan } from '../kernel/plan/plan.js';
import { lowerBound } from '../kernel/analysis/report.js';
import type { HostTensor, Session, StepTiming } from '../runtime/session.js';
import { createSession } from '../runtime/session.js';
import { targetLimitsOf } from '../runtime/target.js';
import { type BenchOptions, benchCompilation, benchPlan, repoRoot, wanted } from './bench.js';
import { configOverrides, exportGpt2, readDir } from './bench-model.js';
import { benchDevice } from './bench-peers.js';
import { type CaseResult, type SystemResult, Progress, compare, median } from './bench-report.js';

/** One system's live decode: its session, the cache outputs of its last step, its samples. */
interface LiveDecode {
  readonly system: string;
  readonly plan: Plan;
  readonly session: Session;
  outs: Map<string, HostTensor>;
  readonly err: { maxAbsErr: number; relErr: number };
  readonly wallMs: number[];
  readonly gpuMs: number[];
  /** Per plan step, the fastest time over the measured steps (ms) and its kernel. */
  readonly stepMin: { kernel: string; ms: number }[];
}

/** Tokens/s of one-token decode steps with a KV cache (gpt2-kv.tfx), after a prefill of T tokens. */
export async function benchDecode(o: BenchOptions, set: Readonly<Record<string, number>>, steps: number): Promise<CaseResult[]> {
  const dev = await benchDevice();
  const file = join(repoRoot, 'examples', 'variants', 'gpt2-kv.tfx');
  const systems = ['tfc', 'tfc --no-fuse'].filter((s) => wanted(o, s));
  const name = `gpt2-kv decode P=${set['T']} +${steps}`;
  const progress = new Progress(systems.length * 2, o.err, o.isTty);
  let dir: string;
  try {
    dir = exportGpt2(set, true);
  } catch (e) {
    // The oracle could not run (e.g. P + steps beyond ctx): every system fails with its message.
    progress.end();
    const note = e instanceof Error ? (e.message.split('\n').find((l) => l.includes('Error')) ?? e.message.split('\n')[0] ?? '') : String(e);
    return [{ suite: 'decode', name, params: { ...set, steps }, results: systems.map((system) => ({ system, status: 'failed' as const, timeSource: 'wall', wallMs: [], note: `the PyTorch oracle failed: ${note.trim()}` })) }];
  }
  const weights = readDir(dir, 'weights.safetensors');
  const prefill = readDir(dir, 'inputs.safetensors');
  const decodeIn = readDir(dir, 'decode_inputs.safetensors');
  const decodeWant = readDir(dir, 'decode_expected.safetensors').get('logits');
  if (decodeWant === undefined) throw new Error('oracle: no decode logits');
  const src = readFileSync(file, 'utf8');
  const layers = set['layers'] ?? 1;
  const timestamps = dev.features.has('timestamp-query');
  const run = async (session: Session, ins: Map<string, HostTensor>, timing: boolean): Promise<{ outs: Map<string, HostTensor>; gpuMs: number; steps: readonly StepTiming[] }> => {
    const r = await session.run(ins, { timing });
    const outs = new Map<string, HostTensor>([...r.outputs].map(([n, t]) => [n, { dtype: t.dtype, shape: t.shape, data: t.data }]));
    return { outs, gpuMs: (r.timing ?? []).reduce((a, t) => a + t.ns, 0) / 1e6, steps: r.timing ?? [] };
  };
  const nextInputs = (outs: Map<string, HostTensor>, token: number | readonly number[]): Map<string, HostTensor> => {
    const ids = typeof token === 'number' ? [token] : token;
    const m = new Map<string, HostTensor>([['tokens', { dtype: 'i32', shape: [1, ids.length], data: ids }]]);
    for (let l = 0; l < layers; l++) {
      for (const kv of ['key', 'value']) {
        const t = outs.get(`present.${l}.${kv}`);
        if (t === undefined) throw new Error(`no present.${l}.${kv}`);
        m.set(`past.${l}.${kv}`, t);
      }
    }
    return m;
  };
  const firstToken = decodeIn.get('tokens')?.data[0] ?? 0;
  const failed = (system: string, e: unknown): SystemResult => ({ system, status: 'failed', timeSource: 'wall', wallMs: [], note: e instanceof Error ? (e.message.split('\n')[0] ?? '') : String(e) });

  // Open every system, prefill, and check its first decode step against PyTorch.
  const slots: (LiveDecode | SystemResult)[] = [];
  for (const system of systems) {
    try {
      const plan = benchPlan(src, file, configOverrides(set), system === 'tfc', targetLimitsOf(dev));
      const session = await createSession(dev, plan);
      session.loadWeights(weights);
      // The prompt in chunks of at most 512 tokens (each chunk's logits [1, chunk, vocab] must fit
      // one storage binding: GPT-2's 1024 x 50257 f32 logits are 206 MB, over lavapipe's 128 MiB).
      const prompt = Array.from(prefill.get('tokens')?.data ?? [], Number);
      let pre = await run(session, new Map([...prefill].map(([n, t]) => (n === 'tokens' ? [n, { dtype: 'i32', shape: [1, Math.min(512, prompt.length)], data: prompt.slice(0, 512) }] : [n, t]))), false);
      for (let at = 512; at < prompt.length; at += 512) pre = await run(session, nextInputs(pre.outs, prompt.slice(at, at + 512)), false);
      const step1 = await run(session, nextInputs(pre.outs, firstToken), false);
      const got = step1.outs.get('logits');
      const err = compare(Float32Array.from(got?.data ?? []), decodeWant.data);
      slots.push({ system, plan, session, outs: step1.outs, err, wallMs: [], gpuMs: [], stepMin: [] });
    } catch (e) {
      slots.push(failed(system, e));
    }
    progress.step(`decode ${system}: prefill`);
  }

  // The measured steps, interleaved: step i of every live system before step i + 1 of any.
  const live = slots.filter((s): s is LiveDecode => 'session' in s);
  const broken = new Map<string, SystemResult>();
  for (let i = 0; i < steps; i++) {
    for (let j = 0; j < live.length; j++) {
      const s = live[(i + j) % live.length];
      if (s === undefined || broken.has(s.system)) continue;
      try {
        const t0 = performance.now();
        const r = await run(s.session, nextInputs(s.outs, (firstToken + i + 1) % (set['vocab'] ?? 2)), timestamps);
        s.wallMs.push(performance.now() - t0);
        s.gpuMs.push(r.gpuMs);
        for (const st of r.steps) {
          const m = s.stepMin[st.step];
          if (m === undefined || st.ns / 1e6 < m.ms) s.stepMin[st.step] = { kernel: st.kernel, ms: st.ns / 1e6 };
        }
        s.outs = r.outs;
      } catch (e) {
        broken.set(s.system, failed(s.system, e));
      }
    }
  }
  const results: SystemResult[] = slots.map((s) => {
    if (!('session' in s)) return s;
    s.session.dispose();
    progress.step(`decode ${s.system}: ${steps} steps`);
    const failure = broken.get(s.system);
    if (failure !== undefined) return failure;
    return {
      system: s.system,
      status: s.err.relErr <= 1e-3 ? 'ok' : 'wrong',
      timeSource: timestamps ? 'timestamp-query' : 'wall',
      wallMs: s.wallMs,
      ...(timestamps ? { gpuMs: s.gpuMs } : {}),
      maxAbsErr: s.err.maxAbsErr,
      relErr: s.err.relErr,
      kernels: s.plan.steps.length,
      ...(s.stepMin.length > 0 ? { profile: profileOf(s.stepMin) } : {}),
      note: `${(1000 / median(s.wallMs)).toFixed(1)} tokens/s wall (cache grows from ${set['T']} to ${(set['T'] ?? 0) + steps}; steps interleaved with the other systems)`,
    };
  });
  progress.end();
  // Bytes a step must move at the cache length of the middle measured step: weights and the cache read, logits and the new cache written.
  const lb = lowerBound(benchCompilation(src, file, configOverrides(set), false).graph, new Map([['B', 1], ['T', 1], ['P', (set['T'] ?? 0) + 1 + (steps >> 1)]]));
  return [{ suite: 'decode', name, params: { ...set, steps }, results, work: { bytes: lb.bytesRead + lb.bytesWritten } }];
}

/**
 * Time per kernel of one decode step: each plan step's fastest time over the measured steps (the
 * noise on this machine is one-sided: a step is never faster than its cost), summed by kernel.
 */
function profileOf(stepMin: readonly ({ kernel: string; ms: number } | undefined)[]): { kernel: string; ms: number; count: number }[] {
  const by = new Map<string, { ms: number; count: number }>();
  for (const st of stepMin) {
    if (st === undefined) continue;
    const e = by.get(st.kernel) ?? { ms: 0, count: 0 };
    e.ms += st.ms;
    e.count++;
    by.set(st.kernel, e);
  }
  return [...by].map(([kernel, e]) => ({ kernel, ...e })).sort((a, b) => b.ms - a.ms);
}
