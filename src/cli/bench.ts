// `tfc bench attention|model|decode|compile`: tfc (fused and --no-fuse pipelines) against ONNX
// Runtime Web (plain graph and com.microsoft MultiHeadAttention) and TensorFlow.js, all on the
// same WebGPU adapter in this process; every output is checked against a float64 reference.
// This file holds what every suite shares (options, compiling a bench model, measuring the
// contenders round-robin, the output document); the suites are bench-attention.ts,
// bench-model.ts (model prefill and decode) and bench-compile.ts.
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { lowerModel } from '../compile/kernels.js';
import { type Compilation, compileModel } from '../compile/model.js';
import { DiagnosticSink, UserErrorsReported } from '../diag/diagnostic.js';
import type { Graph } from '../graph/ir.js';
import type { Plan } from '../kernel/plan/plan.js';
import type { TargetLimits } from '../kernel/schedule/schedule.js';
import { pipelines } from '../passes/pipeline.js';
import { benchDevice, type RunSample, type Runner } from './bench-peers.js';
import { type Peak, measurePeak } from './bench-peak.js';
import type { StepSources } from '../kernel/analysis/fusion-profile.js';
import { lowerBound } from '../kernel/analysis/report.js';
import { type BenchDocument, type CaseResult, type PlotPoint, type SystemResult, Progress, formatTable, median, plotSvg, svgToPng } from './bench-report.js';

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
export function benchStages(text: string, file: string, overrides: ReadonlyMap<string, number>, fuse: boolean, limits: TargetLimits): { plan: Plan } & StepSources {
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
export async function measureAll(cs: readonly (Contender | SystemResult)[], o: BenchOptions, progress: Progress, label: string): Promise<SystemResult[]> {
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

export function skipped(system: string, note: string): SystemResult {
  return { system, status: 'skipped', timeSource: 'wall', wallMs: [], note };
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
export function graphFlops(g: Graph, dims: ReadonlyMap<string, number>): number {
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
