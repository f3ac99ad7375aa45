// `tfc bench attention|model|decode|compile`: tfc (fused and --no-fuse pipelines) against ONNX
// Runtime Web (plain graph and com.microsoft MultiHeadAttention) and TensorFlow.js, all on the
// same WebGPU adapter in this process; every output is checked against a float64 reference.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { lowerModel } from '../compile/kernels.js';
import { type Compilation, compileModel } from '../compile/model.js';
import { DiagnosticSink, UserErrorsReported } from '../diag/diagnostic.js';
import type { Graph } from '../graph/ir.js';
import type { Diagnostic } from '../diag/diagnostic.js';
import { neededTensors } from '../io/check-tensors.js';
import { interpret } from '../interp/interpret.js';
import type { Tensor64 } from '../base/tensor.js';
import { randomInputs, randomWeights } from './random.js';
import { readSafetensors } from '../io/safetensors.js';
import type { Plan } from '../kernel/plan/plan.js';
import type { TargetLimits } from '../kernel/schedule/schedule.js';
import { pipelines } from '../passes/pipeline.js';
import type { HostTensor } from '../runtime/session.js';
import { targetLimitsOf } from '../runtime/target.js';
import { mhaAttentionOnnx, onnxType, plainAttentionOnnx, encodeF16 } from './bench-onnx.js';
import { benchDevice, ortRunner, tfcRunner, tfjsRunner, type RunSample, type Runner } from './bench-peers.js';
import { type Peak, measurePeak } from './bench-peak.js';
import { type StepSources, fusionProfile } from '../kernel/analysis/fusion-profile.js';
import { lowerBound } from '../kernel/analysis/report.js';
import { type BenchDocument, type CaseResult, type PlotPoint, type SystemResult, Progress, compare, formatTable, median, plotSvg, svgToPng } from './bench-report.js';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', ...(fileURLToPath(import.meta.url).includes('/dist/') ? ['..'] : []));

export interface BenchOptions {
  readonly warmup: number;
  readonly repeats: number;
  /** Subsets: attention T values, head dims, causal or not, dtypes. */
  readonly T?: readonly number[];
  readonly dh?: readonly number[];
  readonly causal?: readonly boolean[];
  readonly dtypes?: readonly ('f32' | 'f16')[];
  readonly heads: number;
  readonly systems?: readonly string[];
  /** Write JSON/SVG/PNG here (default bench/results); undefined `outDir` in tests: a temp dir. */
  readonly outDir: string;
  readonly err: (s: string) => void;
  readonly isTty: boolean;
}

// ---------------------------------------------------------------------------------------------
// Shared helpers

/** Deterministic values in [-1, 1) (an LCG, as the tests use). */
export function seeded(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

/** The unfused pipeline: the default one without the passes whose names start with `fuse-`. */
export function benchPasses(fuse: boolean): typeof pipelines.webgpu {
  return fuse ? pipelines.webgpu : pipelines.webgpu.filter((p) => !p.name.startsWith('fuse-'));
}

/** A bench model through the compile driver with benchPasses(fuse); errors throw with their messages. */
export function benchCompilation(text: string, file: string, overrides: ReadonlyMap<string, number>, fuse: boolean): Compilation {
  const sink = new DiagnosticSink();
  const c = compileModel({ file, text }, { overrides, target: 'webgpu', pipeline: benchPasses(fuse), diagnostics: sink });
  try {
    void c.checked;
  } catch (e) {
    if (e instanceof UserErrorsReported) throw new Error(`${file}: ${sink.items.map((d) => d.message).join('; ')}`);
    throw e;
  }
  return c;
}

/** The graph of benchCompilation (bench/*.ts scripts lower it themselves). */
export function compileSource(text: string, file: string, overrides: ReadonlyMap<string, number>, fuse: boolean): Graph {
  return benchCompilation(text, file, overrides, fuse).graph;
}

/** The plan of a bench model for an adapter's limits. */
export function benchPlan(text: string, file: string, overrides: ReadonlyMap<string, number>, fuse: boolean, limits: TargetLimits): Plan {
  return benchStages(text, file, overrides, fuse, limits).plan;
}

/** The plan with the program and graph it came from (the fusion profile traces steps to nodes). */
function benchStages(text: string, file: string, overrides: ReadonlyMap<string, number>, fuse: boolean, limits: TargetLimits): { plan: Plan } & StepSources {
  const c = benchCompilation(text, file, overrides, fuse);
  const k = lowerModel(c, { limits });
  return { plan: k.plan, program: k.program, graph: c.graph };
}

export interface Contender {
  readonly system: string;
  readonly make: () => Promise<Runner>;
  readonly check: (out: Float32Array) => { maxAbsErr: number; relErr: number };
  readonly tol: number;
}

/**
 * Measures the contenders of one case. Each is built and run `warmup` times (the first run is
 * the one checked), then the measured repeats go round-robin over the systems, so that a change
 * in machine load (shared CI cores) hits every system alike instead of whichever ran last.
 */
async function measureAll(cs: readonly (Contender | SystemResult)[], o: BenchOptions, progress: Progress, label: string): Promise<SystemResult[]> {
  interface Live {
    readonly c: Contender;
    readonly runner: Runner;
    readonly err: { maxAbsErr: number; relErr: number };
    readonly wallMs: number[];
    readonly gpu: { ms: number; steps: RunSample['steps'] }[];
  }
  const slots: (Live | SystemResult)[] = [];
  const failed = (system: string, e: unknown): SystemResult => ({
    system,
    status: 'failed',
    timeSource: 'wall',
    wallMs: [],
    note: e instanceof Error ? (e.message.split('\n')[0] ?? '') : String(e),
  });
  for (const c of cs) {
    if (!('make' in c)) {
      slots.push(c);
      continue;
    }
    let runner: Runner | undefined;
    try {
      runner = await c.make();
      const first = await runner.run();
      for (let i = 1; i < o.warmup; i++) await runner.run();
      slots.push({ c, runner, err: c.check(first.out), wallMs: [], gpu: [] });
    } catch (e) {
      runner?.dispose();
      slots.push(failed(c.system, e));
    }
  }
  for (let i = 0; i < o.repeats; i++) {
    for (const [j, s] of slots.entries()) {
      if (!('runner' in s)) continue;
      try {
        const t0 = performance.now();
        const r = await s.runner.run();
        s.wallMs.push(performance.now() - t0);
        if (r.gpuMs !== undefined) s.gpu.push({ ms: r.gpuMs, steps: r.steps });
      } catch (e) {
        s.runner.dispose();
        slots[j] = failed(s.c.system, e);
      }
    }
  }
  const out: SystemResult[] = [];
  for (const s of slots) {
    if (!('runner' in s)) {
      out.push(s);
      progress.step(`${label} ${s.system}`);
      continue;
    }
    s.runner.dispose();
    const hasGpu = s.gpu.length === s.wallMs.length && s.gpu.length > 0;
    const isWrong = !(s.err.relErr <= s.c.tol);
    let base: SystemResult = {
      system: s.c.system,
      status: isWrong ? 'wrong' : 'ok',
      timeSource: hasGpu ? s.runner.timeSource : 'wall',
      wallMs: s.wallMs,
      ...(hasGpu ? { gpuMs: s.gpu.map((g) => g.ms) } : {}),
      maxAbsErr: s.err.maxAbsErr,
      relErr: s.err.relErr,
      ...(s.runner.kernels !== undefined ? { kernels: s.runner.kernels } : {}),
      ...(isWrong ? { note: `error ${s.err.relErr.toExponential(1)} above tolerance ${s.c.tol}` } : {}),
    };
    // Per-kernel profile of the median run (tfc's timestamp queries).
    const mid = [...s.gpu].sort((a, b) => a.ms - b.ms)[s.gpu.length >> 1];
    const stepMinMs: number[] = [];
    for (const g of s.gpu) for (const st of g.steps ?? []) stepMinMs[st.step] = Math.min(stepMinMs[st.step] ?? Infinity, st.ns / 1e6);
    if (stepMinMs.length > 0) base = { ...base, stepMinMs: Array.from(stepMinMs, (x) => x ?? 0) };
    if (mid?.steps !== undefined) {
      const by = new Map<string, { ms: number; count: number }>();
      for (const st of mid.steps) {
        const e = by.get(st.kernel) ?? { ms: 0, count: 0 };
        e.ms += st.ns / 1e6;
        e.count++;
        by.set(st.kernel, e);
      }
      out.push({ ...base, profile: [...by].map(([kernel, e]) => ({ kernel, ...e })).sort((a, b) => b.ms - a.ms) });
    } else out.push(base);
    progress.step(`${label} ${s.c.system}`);
  }
  return out;
}

export function wanted(o: BenchOptions, system: string): boolean {
  // Exact names, or a family: `ort` selects ort-mha and ort-plain.
  return o.systems === undefined || o.systems.some((s) => system === s || system.startsWith(`${s}-`));
}

function skipped(system: string, note: string): SystemResult {
  return { system, status: 'skipped', timeSource: 'wall', wallMs: [], note };
}

// ---------------------------------------------------------------------------------------------
// attention

export function attentionSource(heads: number, dh: number, causal: boolean, dtype: 'f32' | 'f16'): string {
  const body = causal
    ? `  s = q @ transpose(k) / sqrt(dh)\n  mask = grid[T, T](qi, ki) => ki <= qi\n  o = softmax(where(mask, s, -inf), axis=-1) @ v\n`
    : `  o = softmax(q @ transpose(k) / sqrt(dh), axis=-1) @ v\n`;
  return (
    `# tfc bench attention: ${causal ? 'causal' : 'full'} softmax attention, ${dtype}\n` +
    `config {\n  heads = ${heads}\n  dh = ${dh}\n}\n\ndims B, T\n\n` +
    `input q: ${dtype}[B, heads, T, dh]\ninput k: ${dtype}[B, heads, T, dh]\ninput v: ${dtype}[B, heads, T, dh]\n` +
    `output o: ${dtype}[B, heads, T, dh]\n\nmodel attention {\n${body}}\n`
  );
}

/** Query rows the reference checks: the first, the last and an even spread (all when T is small). */
export function checkedRows(T: number): number[] {
  if (T <= 64) return Array.from({ length: T }, (_, i) => i);
  const rows = new Set<number>([0, 1, T - 1]);
  for (let i = 0; i < 29; i++) rows.add(Math.floor(((i + 0.5) * T) / 29));
  return [...rows].sort((a, b) => a - b);
}

/**
 * Float64 attention on the given query rows of every (b, h): returns the flat indices into
 * [B, H, T, dh] and the reference values there.
 */
export function attentionReference(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  s: { B: number; H: number; T: number; dh: number; causal: boolean },
  rows: readonly number[],
): { at: number[]; want: Float64Array } {
  const { B, H, T, dh } = s;
  const at: number[] = [];
  const want: number[] = [];
  const scores = new Float64Array(T);
  const scale = 1 / Math.sqrt(dh);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) {
      const base = (b * H + h) * T * dh;
      for (const r of rows) {
        const n = s.causal ? r + 1 : T;
        let mx = -Infinity;
        for (let j = 0; j < n; j++) {
          let acc = 0;
          for (let c = 0; c < dh; c++) acc += (q[base + r * dh + c] ?? 0) * (k[base + j * dh + c] ?? 0);
          scores[j] = acc * scale;
          mx = Math.max(mx, scores[j] ?? 0);
        }
        let sum = 0;
        for (let j = 0; j < n; j++) {
          const e = Math.exp((scores[j] ?? 0) - mx);
          scores[j] = e;
          sum += e;
        }
        for (let c = 0; c < dh; c++) {
          let acc = 0;
          for (let j = 0; j < n; j++) acc += (scores[j] ?? 0) * (v[base + j * dh + c] ?? 0);
          at.push(base + r * dh + c);
          want.push(acc / sum);
        }
      }
    }
  return { at, want: Float64Array.from(want) };
}

/** [B, H, T, dh] <-> [B, T, H·dh] (the BSNH layout MultiHeadAttention takes). */
export function toBsnh(x: Float32Array, B: number, H: number, T: number, dh: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) for (let t = 0; t < T; t++) for (let c = 0; c < dh; c++) out[((b * T + t) * H + h) * dh + c] = x[((b * H + h) * T + t) * dh + c] ?? 0;
  return out;
}

export function fromBsnh(x: Float32Array, B: number, H: number, T: number, dh: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) for (let t = 0; t < T; t++) for (let c = 0; c < dh; c++) out[((b * H + h) * T + t) * dh + c] = x[((b * T + t) * H + h) * dh + c] ?? 0;
  return out;
}

function roundF16(x: Float32Array): Float32Array {
  const bits = new Uint16Array(encodeF16(x).buffer);
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const h = bits[i] ?? 0;
    const sgn = h & 0x8000 ? -1 : 1;
    const e = (h >> 10) & 0x1f;
    const m = h & 0x3ff;
    out[i] = e === 0 ? sgn * m * 2 ** -24 : sgn * (1 + m / 1024) * 2 ** (e - 15);
  }
  return out;
}

export async function benchAttention(o: BenchOptions): Promise<CaseResult[]> {
  const dev = await benchDevice();
  const hasF16 = dev.features.has('shader-f16');
  const Ts = o.T ?? [256, 1024, 2048];
  const dhs = o.dh ?? [64, 128];
  const causals = o.causal ?? [true, false];
  const dtypes = o.dtypes ?? (hasF16 ? ['f32', 'f16'] : ['f32']);
  const systems = ['tfc', 'tfc --no-fuse', 'ort-mha', 'ort-plain', 'tfjs'].filter((s) => wanted(o, s));
  const combos: { T: number; dh: number; causal: boolean; dtype: 'f32' | 'f16' }[] = [];
  for (const dtype of dtypes) for (const dh of dhs) for (const causal of causals) for (const T of Ts) combos.push({ T, dh, causal, dtype });
  const progress = new Progress(combos.length * systems.length, o.err, o.isTty);
  const out: CaseResult[] = [];
  const B = 1;
  const H = o.heads;
  for (const c of combos) {
    const n = B * H * c.T * c.dh;
    let q = seeded(n, 1 + c.T);
    let k = seeded(n, 2 + c.T);
    let v = seeded(n, 3 + c.T);
    if (c.dtype === 'f16') [q, k, v] = [roundF16(q), roundF16(k), roundF16(v)];
    const ref = attentionReference(q, k, v, { B, H, T: c.T, dh: c.dh, causal: c.causal }, checkedRows(c.T));
    const check = (got: Float32Array): { maxAbsErr: number; relErr: number } => compare(got, ref.want, ref.at);
    // f32: a softmax-weighted mean of values in [-1, 1) stays within a few ulps; 1e-4 of max|o| is
    // loose enough for any summation order. f16 storage and arithmetic: 2e-2.
    const tol = c.dtype === 'f32' ? 1e-4 : 2e-2;
    const name = `attention T=${c.T} dh=${c.dh} ${c.causal ? 'causal' : 'full'} ${c.dtype}`;
    const label = `T=${c.T} dh=${c.dh}${c.causal ? ' causal' : ''} ${c.dtype}`;
    const contenders: (Contender | SystemResult)[] = [];
    const host = (x: Float32Array): HostTensor => ({ dtype: c.dtype, shape: [B, H, c.T, c.dh], data: x });
    const inputs = new Map<string, HostTensor>([
      ['q', host(q)],
      ['k', host(k)],
      ['v', host(v)],
    ]);
    const src = attentionSource(H, c.dh, c.causal, c.dtype);
    const elemType = c.dtype === 'f16' ? onnxType.float16 : onnxType.float;
    const shape = { B, heads: H, T: c.T, dh: c.dh, causal: c.causal, elemType };
    const ortData = (x: Float32Array): Float32Array | Uint16Array => (c.dtype === 'f16' ? new Uint16Array(encodeF16(x).buffer) : x);
    const ortType = c.dtype === 'f16' ? 'float16' : 'float32';
    for (const system of systems) {
      if (system === 'tfjs' && c.dtype === 'f16') {
        contenders.push(skipped(system, 'tfjs-backend-webgpu 4.22 has no float16 tensors'));
        continue;
      }
      if (c.dtype === 'f16' && system.startsWith('tfc') && !hasF16) {
        contenders.push(skipped(system, 'adapter has no shader-f16'));
        continue;
      }
      const make = async (): Promise<Runner> => {
        if (system.startsWith('tfc')) {
          const plan = benchPlan(src, `bench/attention-${c.dtype}.tfx`, new Map(), system === 'tfc', targetLimitsOf(dev));
          return tfcRunner({ system, plan, weights: new Map(), inputs, output: 'o' });
        }
        if (system === 'ort-mha') {
          const bs = (x: Float32Array): Float32Array | Uint16Array => ortData(toBsnh(x, B, H, c.T, c.dh));
          const dims = [B, c.T, H * c.dh];
          return ortRunner(
            system,
            mhaAttentionOnnx(shape),
            [
              { name: 'q', type: ortType, dims, data: bs(q) },
              { name: 'k', type: ortType, dims, data: bs(k) },
              { name: 'v', type: ortType, dims, data: bs(v) },
            ],
            'o',
            (x) => fromBsnh(x, B, H, c.T, c.dh),
          );
        }
        if (system === 'ort-plain') {
          const dims = [B, H, c.T, c.dh];
          return ortRunner(
            system,
            plainAttentionOnnx(shape),
            [
              { name: 'q', type: ortType, dims, data: ortData(q) },
              { name: 'k', type: ortType, dims, data: ortData(k) },
              { name: 'v', type: ortType, dims, data: ortData(v) },
            ],
            'o',
          );
        }
        const T = c.T;
        const scale = 1 / Math.sqrt(c.dh);
        return tfjsRunner(
          system,
          [q, k, v].map((data) => ({ shape: [B * H, T, c.dh], data, dtype: 'float32' as const })),
          (tf, [tq, tk, tv]) => {
            if (tq === undefined || tk === undefined || tv === undefined) throw new Error('tfjs: inputs');
            let s = tf.mul(tf.matMul(tq, tk, false, true), scale);
            if (c.causal) {
              const mask = tf.linalg.bandPart(tf.ones([T, T]), -1, 0);
              s = tf.where(tf.cast(mask, 'bool'), s, tf.fill(s.shape, -Infinity));
            }
            return tf.matMul(tf.softmax(s, -1), tv);
          },
        );
      };
      contenders.push({ system, make, check, tol });
    }
    const results = await measureAll(contenders, o, progress, label);
    // Visible query-key pairs: T^2, or T(T + 1)/2 causal; 2 FLOPs per pair and head element for QK^T and PV each.
    const pairs = c.causal ? (c.T * (c.T + 1)) / 2 : c.T * c.T;
    out.push({ suite: 'attention', name, params: { B, heads: H, T: c.T, dh: c.dh, causal: c.causal, dtype: c.dtype }, results, work: { flops: 4 * B * H * c.dh * pairs } });
  }
  progress.end();
  return out;
}

// ---------------------------------------------------------------------------------------------
// model (prefill) and decode

export const modelPresets: Readonly<Record<string, Readonly<Record<string, number>>>> = {
  tiny: { layers: 2, d: 128, heads: 4, vocab: 512, ctx: 256, T: 128 },
  // GPT-2 small's real shapes: wte alone is 154 MB, above lavapipe's 128 MiB storage binding.
  small: { layers: 12, d: 768, heads: 12, vocab: 50257, ctx: 1024, T: 128 },
  // A Llama-style model of about 100M parameters (issue 13's second prefill target), for examples/llama.tfx.
  llama100m: { layers: 12, d: 768, heads: 12, kv_heads: 4, ffn: 2048, vocab: 32000, T: 128 },
};

export function exportGpt2(set: Readonly<Record<string, number>>, kv: boolean): string {
  const key = Object.entries(set)
    .map(([k, v]) => `${k}${v}`)
    .join('-');
  const dir = join(tmpdir(), `tfc-bench-gpt2-${key}${kv ? '-kv' : ''}`);
  const done = join(dir, kv ? 'decode_expected.safetensors' : 'model.onnx');
  if (existsSync(done)) return dir;
  const args = ['--out', dir, '--layers', String(set['layers']), '--d', String(set['d']), '--heads', String(set['heads']), '--vocab', String(set['vocab']), '--ctx', String(set['ctx']), '--batch', '1', '--seq', String(set['T'])];
  const script = kv ? join(repoRoot, 'test', 'oracle', 'gpt2_oracle.py') : join(repoRoot, 'bench', 'export_gpt2.py');
  const r = spawnSync('/usr/bin/python3', [script, ...args, ...(kv ? ['--kv'] : [])], { encoding: 'utf8', env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' } });
  if (r.status !== 0) throw new Error(`${script} failed: ${(r.stderr ?? r.error?.message ?? '').slice(-400)}`);
  return dir;
}

export function readDir(dir: string, file: string): Map<string, HostTensor> {
  const f = readSafetensors(readFileSync(join(dir, file)), file);
  return new Map([...f.tensors].map(([n, t]) => [n, { dtype: t.dtype, shape: t.shape, data: t.data }]));
}

export function configOverrides(set: Readonly<Record<string, number>>): Map<string, number> {
  return new Map(Object.entries(set).filter(([k]) => k !== 'T'));
}

/**
 * A model other than GPT-2 (no ONNX export, no PyTorch oracle here): seeded weights and tokens
 * (`tfc init-weights` / `random-inputs` values), the float64 interpreter as the reference, tfc
 * fused and --no-fuse. Dims other than T that are not set are 0 (an empty KV cache: prefill).
 */
async function benchSeededModel(o: BenchOptions, file: string, set: Readonly<Record<string, number>>, presetName: string): Promise<CaseResult[]> {
  const dev = await benchDevice();
  const systems = ['tfc', 'tfc --no-fuse'].filter((s) => wanted(o, s));
  const src = readFileSync(file, 'utf8');
  const checked = benchCompilation(src, file, configOverrides(set), false).checked;
  const dims = new Map(checked.dims.map((d) => [d, d === 'T' ? (set['T'] ?? 1) : d === 'B' ? 1 : 0]));
  const ds: Diagnostic[] = [];
  const needed = neededTensors(checked);
  const weights64 = randomWeights(needed, 1, dims, ds);
  const inputs64 = randomInputs(checked, needed, 2, dims, ds);
  if (ds.length > 0) throw new Error(`${file}: ${ds.map((d) => d.message).join('; ')}`);
  const host = (m: Map<string, Tensor64>): Map<string, HostTensor> => new Map([...m].map(([n, t]) => [n, { dtype: t.dtype, shape: t.shape, data: t.dtype === 'i32' ? Int32Array.from(t.data) : Float32Array.from(t.data) }]));
  const output = checked.outputs[0]?.name ?? 'logits';
  o.err(`tfc bench model: float64 reference of ${file} (the interpreter; a minute at ~100M parameters)\n`);
  const want = interpret(checked, { inputs: inputs64, weights: weights64 }).outputs.get(output);
  if (want === undefined) throw new Error(`${file}: no output ${output}`);
  const label = `${presetName} T=${set['T']}`;
  const progress = new Progress(systems.length, o.err, o.isTty);
  const sources = new Map<string, StepSources>();
  const contenders: Contender[] = systems.map((system) => ({
    system,
    make: async (): Promise<Runner> => {
      const st = benchStages(src, file, configOverrides(set), system === 'tfc', targetLimitsOf(dev));
      sources.set(system, st);
      return tfcRunner({ system, plan: st.plan, weights: host(weights64), inputs: host(inputs64), output });
    },
    check: (got: Float32Array) => compare(got, want.data),
    tol: 1e-3,
  }));
  const results = await measureAll(contenders, o, progress, label);
  progress.end();
  const flops = graphFlops(checked, dims);
  const name = `${basename(file, '.tfx')} ${label}`;
  return [{ suite: 'model', name, params: { ...set, preset: presetName }, results, work: { flops }, ...fusionOf(results, sources, dims) }];
}

/** The fusion profile of a model case from the two tfc systems' step minimums, when both ran. */
function fusionOf(results: readonly SystemResult[], sources: ReadonlyMap<string, StepSources>, dims: ReadonlyMap<string, number>): { fusion?: ReturnType<typeof fusionProfile> } {
  const fusedR = results.find((r) => r.system === 'tfc' && r.stepMinMs !== undefined);
  const unfusedR = results.find((r) => r.system === 'tfc --no-fuse' && r.stepMinMs !== undefined);
  const fs = sources.get('tfc');
  const us = sources.get('tfc --no-fuse');
  if (fusedR?.stepMinMs === undefined || unfusedR?.stepMinMs === undefined || fs === undefined || us === undefined) return {};
  return { fusion: fusionProfile(fs, fusedR.stepMinMs, us, unfusedR.stepMinMs, dims) };
}

export async function benchModel(o: BenchOptions, file: string, set: Readonly<Record<string, number>>, presetName: string): Promise<CaseResult[]> {
  if (!basename(file).startsWith('gpt2')) return benchSeededModel(o, file, set, presetName);
  const dev = await benchDevice();
  const systems = ['tfc', 'tfc --no-fuse', 'ort'].filter((s) => wanted(o, s));
  const progress = new Progress(systems.length, o.err, o.isTty);
  const label = `${presetName} T=${set['T']}`;
  let dir: string;
  try {
    dir = exportGpt2(set, false);
  } catch (e) {
    progress.end();
    const note = e instanceof Error ? e.message : String(e);
    return [{ suite: 'model', name: `gpt2 ${label}`, params: { ...set, preset: presetName }, results: systems.map((s) => ({ ...skipped(s, note), status: 'failed' as const })) }];
  }
  const weights = readDir(dir, 'weights.safetensors');
  const inputs = readDir(dir, 'inputs.safetensors');
  const expected = readDir(dir, 'expected.safetensors').get('logits');
  const tokens = inputs.get('tokens');
  if (expected === undefined || tokens === undefined) throw new Error('export: missing logits or tokens');
  const check = (got: Float32Array): { maxAbsErr: number; relErr: number } => compare(got, expected.data);
  const src = readFileSync(file, 'utf8');
  const contenders: Contender[] = [];
  const sources = new Map<string, StepSources>();
  for (const system of systems) {
    const make = async (): Promise<Runner> => {
      if (system.startsWith('tfc')) {
        const st = benchStages(src, file, configOverrides(set), system === 'tfc', targetLimitsOf(dev));
        sources.set(system, st);
        return tfcRunner({ system, plan: st.plan, weights, inputs, output: 'logits' });
      }
      const model = readFileSync(join(dir, 'model.onnx'));
      const ids = BigInt64Array.from(Array.from(tokens.data, (x) => BigInt(x)));
      return ortRunner(system, new Uint8Array(model.buffer, model.byteOffset, model.byteLength), [{ name: 'tokens', type: 'int64', dims: tokens.shape, data: ids }], 'logits');
    };
    // Logits over L layers in f32 against the float64 oracle: 1e-3 of max|logit|.
    contenders.push({ system, make, check, tol: 1e-3 });
  }
  const results = await measureAll(contenders, o, progress, label);
  progress.end();
  const flops = graphFlops(benchCompilation(src, file, configOverrides(set), false).graph, new Map([['B', 1], ['T', set['T'] ?? 1]]));
  // Each fused kernel against the unfused kernels it replaced, from both tfc plans' step minimums.
  return [{ suite: 'model', name: `gpt2 ${label}`, params: { ...set, preset: presetName }, results, work: { flops }, ...fusionOf(results, sources, new Map([['B', 1], ['T', set['T'] ?? 1]])) }];
}

// ---------------------------------------------------------------------------------------------
// compile

export function exampleFiles(): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    const r = spawnSync('find', [d, '-name', '*.tfx', '-type', 'f'], { encoding: 'utf8' });
    out.push(...r.stdout.split('\n').filter((s) => s !== ''));
  };
  walk(join(repoRoot, 'examples'));
  return out.sort();
}

/**
 * Compile time per example: front end + graph passes + kernel lowering and WGSL (compilePlan),
 * cold (first in this process) and warm (the median of repeats); plus the driver's shader
 * compilation of every distinct kernel (createComputePipelineAsync), cold.
 */
export async function benchCompile(o: BenchOptions, files: readonly string[]): Promise<CaseResult[]> {
  const dev = await benchDevice();
  const progress = new Progress(files.length, o.err, o.isTty);
  const out: CaseResult[] = [];
  for (const file of files) {
    const src = readFileSync(file, 'utf8');
    const rel = file.startsWith(repoRoot) ? file.slice(repoRoot.length + 1) : file;
    const results: SystemResult[] = [];
    try {
      const once = (): { ms: number; kernels: number; wgsl: string[] } => {
        const t0 = performance.now();
        const plan = benchPlan(src, file, new Map(), true, targetLimitsOf(dev));
        return { ms: performance.now() - t0, kernels: plan.steps.length, wgsl: plan.kernels.map((k) => k.source.wgsl) };
      };
      const cold = once();
      const warm: number[] = [];
      for (let i = 0; i < o.repeats; i++) warm.push(once().ms);
      const t0 = performance.now();
      await Promise.all(
        cold.wgsl.map((code) => dev.device.createComputePipelineAsync({ layout: 'auto', compute: { module: dev.device.createShaderModule({ code }), entryPoint: 'main' } })),
      );
      const shaderMs = performance.now() - t0;
      results.push({ system: 'tfc compile cold', status: 'ok', timeSource: 'wall', wallMs: [cold.ms], kernels: cold.kernels });
      results.push({ system: 'tfc compile warm', status: 'ok', timeSource: 'wall', wallMs: warm, kernels: cold.kernels });
      results.push({ system: 'shaders (driver) cold', status: 'ok', timeSource: 'wall', wallMs: [shaderMs], kernels: cold.wgsl.length, note: `${cold.wgsl.length} distinct kernels` });
    } catch (e) {
      results.push({ system: 'tfc compile cold', status: 'failed', timeSource: 'wall', wallMs: [], note: e instanceof Error ? (e.message.split('\n')[0] ?? '') : String(e) });
    }
    progress.step(rel);
    out.push({ suite: 'compile', name: rel, params: { file: rel }, results });
  }
  progress.end();
  return out;
}

// ---------------------------------------------------------------------------------------------
// Output

export function machineState(): string {
  const [l1, l5] = loadavg();
  return `${cpus().length} cores, load average ${l1?.toFixed(2)} (1 min) ${l5?.toFixed(2)} (5 min) at start`;
}

export async function benchDocument(cases: readonly CaseResult[], o: BenchOptions, startedAt: string, machine: string, peak?: Peak): Promise<BenchDocument> {
  const dev = await benchDevice();
  const a = dev.adapterInfo;
  return {
    tool: 'tfc bench',
    version: 1,
    adapter: [a.vendor, a.architecture, a.device, a.description].filter((s) => s !== '').join(' / '),
    machine,
    ...(peak !== undefined ? { peak: { fmaGflops: peak.fmaGflops, copyGBs: peak.copyGBs } } : {}),
    startedAt,
    warmup: o.warmup,
    repeats: o.repeats,
    cases,
  };
}

/** The adapter's ceilings in this process (bench-peak.ts), on the bench device. */
export async function benchPeak(repeats: number): Promise<Peak> {
  const dev = await benchDevice();
  return measurePeak(dev.device, Math.max(3, repeats));
}

/** FLOPs of one run of `g` at `dims` (the op catalog's count, the same for every system). */
function graphFlops(g: Graph, dims: ReadonlyMap<string, number>): number {
  return lowerBound(g, dims).flops;
}

/** Writes <suite>.json, and for attention and model a time-vs-T plot as <suite>.svg/.png. Returns the paths. */
export async function writeResults(doc: BenchDocument, suite: string, outDir: string): Promise<string[]> {
  mkdirSync(outDir, { recursive: true });
  const written: string[] = [];
  const json = join(outDir, `${suite}.json`);
  writeFileSync(json, `${JSON.stringify(doc, null, 1)}\n`);
  written.push(json);
  if (suite === 'attention') {
    const points: PlotPoint[] = [];
    for (const c of doc.cases) {
      const panel = `dh=${c.params['dh']} ${c.params['causal'] === true ? 'causal' : 'full'} ${c.params['dtype']}`;
      for (const r of c.results) {
        if (r.status !== 'ok') continue;
        const ms = r.gpuMs !== undefined && r.gpuMs.length > 0 ? median(r.gpuMs) : median(r.wallMs);
        points.push({ panel, system: `${r.system} (${r.gpuMs !== undefined ? 'gpu' : 'wall'})`, x: Number(c.params['T']), ms });
      }
    }
    const svg = plotSvg(
      `tfc bench attention: median time vs T, ${doc.cases[0]?.params['heads'] ?? ''} heads (wrong or failed results are not plotted)`,
      points,
      'T',
      `${doc.adapter}; ${doc.machine}`,
    );
    const svgPath = join(outDir, `${suite}.svg`);
    writeFileSync(svgPath, svg);
    written.push(svgPath);
    const png = await svgToPng(svg);
    if (png !== undefined) {
      const pngPath = join(outDir, `${suite}.png`);
      writeFileSync(pngPath, png);
      written.push(pngPath);
    }
  }
  return written;
}

export { formatTable };
