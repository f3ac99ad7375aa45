// The memory-traffic report (`tfc compile FILE --report [--json]`): per kernel, bytes read and
// written in global memory and FLOPs for one forward pass at concrete dims, the totals with
// fusion and without it (`--no-fuse`), and the lower bound (each input and weight read once,
// each output written once). Figures come from the kernels' traffic formulas (traffic.ts).
import type { Graph } from '../graph/ir.js';
import { concreteShape } from '../graph/types.js';
import { getOp } from '../ops/catalog.js';
import { dimEval } from '../check/dim.js';
import { runPipeline } from '../passes/driver.js';
import { type PassContext, type Target } from '../passes/pass.js';
import { pipelines, unfusedPipeline } from '../passes/pipeline.js';
import type { Kernel } from './ir.js';
import { lowerToKernels } from './lower.js';
import { evalSize } from './plan.js';
import { type TargetLimits, lavapipeLimits } from './schedule.js';
import { storageBytes } from './storage.js';

export interface TrafficFigures {
  readonly bytesRead: number;
  readonly bytesWritten: number;
  readonly flops: number;
}

export interface KernelTraffic extends TrafficFigures {
  readonly name: string;
  readonly op: string;
  /** Per-thread registers, static shared memory and spills (CUDA: ptxas -v), when asked for. */
  readonly resources?: KernelResources;
}

export interface KernelResources {
  readonly registers: number;
  readonly sharedBytes: number;
  readonly spillBytes: number;
}

export interface TrafficReport {
  readonly model: string;
  /** The TargetLimits name the kernels were lowered for (tiles differ per target, so traffic does). */
  readonly limits: string;
  /** The dim values the figures are evaluated at (given with --set, or the defaults). */
  readonly dims: Readonly<Record<string, number>>;
  readonly kernels: readonly KernelTraffic[];
  readonly total: TrafficFigures & { readonly kernels: number };
  readonly unfused: TrafficFigures & { readonly kernels: number };
  readonly lowerBound: TrafficFigures;
}

/** Dims not given: B = 1 (one sequence), any other = 128. */
export function defaultDimValue(name: string): number {
  return name === 'B' ? 1 : 128;
}

export interface ReportOptions {
  readonly target?: Target; // whose pipeline: webgpu (default) or cuda
  readonly limits?: TargetLimits; // schedule for tile sizes (default: lavapipe)
  readonly dims?: ReadonlyMap<string, number>;
  /** Report the unfused plan's kernels (the `--no-fuse` baseline). */
  readonly noFuse?: boolean;
  /** Context for the pass runs (remarks, verification); one per run is made from it. */
  readonly context: () => PassContext;
  /** Resources of the reported kernels, in order (the CLI asks ptxas for sm_80 with --target cuda). */
  readonly resources?: (ks: readonly Kernel[]) => readonly (KernelResources | undefined)[];
}

function kernelFigures(ks: readonly Kernel[], dims: ReadonlyMap<string, number>): KernelTraffic[] {
  return ks.map((k) => ({
    name: k.name,
    op: k.op,
    bytesRead: evalSize(k.traffic.bytesRead, dims),
    bytesWritten: evalSize(k.traffic.bytesWritten, dims),
    flops: evalSize(k.traffic.flops, dims),
  }));
}

function sum(ks: readonly TrafficFigures[]): TrafficFigures & { kernels: number } {
  return {
    bytesRead: ks.reduce((s, k) => s + k.bytesRead, 0),
    bytesWritten: ks.reduce((s, k) => s + k.bytesWritten, 0),
    flops: ks.reduce((s, k) => s + k.flops, 0),
    kernels: ks.length,
  };
}

/**
 * Each input and weight read once, each output written once; FLOPs are the unfused graph's
 * (the work the model asks for, from the catalog).
 */
export function lowerBound(g: Graph, dims: ReadonlyMap<string, number>): TrafficFigures {
  const bytes = (id: number): number => {
    const n = g.nodes[id];
    const shape = n === undefined ? undefined : concreteShape(n.type.shape, dims);
    if (n === undefined || shape === undefined) throw new Error(`internal: %${id} has unbound dims`);
    return shape.reduce((p, d) => p * d, 1) * storageBytes(n.type.dtype);
  };
  let bytesRead = 0;
  let flops = 0;
  for (const n of g.nodes) {
    if (n.op === 'input' || n.op === 'weight') bytesRead += bytes(n.id);
    const def = getOp(n.op);
    if (def !== undefined) {
      const f = dimEval(def.flops(n.operands.map((o) => g.nodes[o]?.type ?? n.type), n.type, n.attrs), dims);
      flops += f ?? 0;
    }
  }
  const written = new Set(g.outputs.map((o) => o.value));
  const bytesWritten = [...written].reduce((s, id) => s + bytes(id), 0);
  return { bytesRead, bytesWritten, flops };
}

/** Runs the fused and unfused pipelines on `g` (a checked, unoptimized graph) and evaluates both. */
export function trafficReport(g: Graph, opts: ReportOptions): TrafficReport {
  const target = opts.target ?? 'webgpu';
  const limits = opts.limits ?? lavapipeLimits;
  const dims = new Map<string, number>();
  for (const d of g.dims) dims.set(d, opts.dims?.get(d) ?? defaultDimValue(d));
  const unfusedGraph = runPipeline(g, unfusedPipeline(target), opts.context());
  const unfused = kernelFigures(lowerToKernels(unfusedGraph, limits).kernels, dims);
  const unfusedKernels = lowerToKernels(unfusedGraph, limits).kernels;
  const reported = opts.noFuse === true ? unfusedKernels : lowerToKernels(runPipeline(g, pipelines[target], opts.context()), limits).kernels;
  const res = opts.resources?.(reported);
  const fused = kernelFigures(reported, dims).map((k, i) => {
    const r = res?.[i];
    return r === undefined ? k : { ...k, resources: r };
  });
  return {
    model: g.name,
    limits: limits.name,
    dims: Object.fromEntries(dims),
    kernels: fused,
    total: sum(fused),
    unfused: sum(unfused),
    lowerBound: lowerBound(unfusedGraph, dims),
  };
}

/** `12.6 MB` style, decimal units (bytes and FLOPs), deterministic. */
function human(v: number, unit: string): string {
  const units = ['', 'k', 'M', 'G', 'T'];
  let x = v;
  let i = 0;
  while (Math.abs(x) >= 1000 && i < units.length - 1) {
    x /= 1000;
    i++;
  }
  return `${i === 0 ? String(x) : x.toFixed(1)} ${units[i] ?? ''}${unit}`;
}

/** The report as a text table (stdout of `tfc compile --report`). */
export function printTrafficReport(r: TrafficReport, opts: { readonly noFuse?: boolean; readonly given?: ReadonlyMap<string, number> } = {}): string {
  // Dims bound by --set are constants in the graph by now (r.dims is then empty): name them.
  const given = [...(opts.given ?? new Map<string, number>())].map(([k, v]) => `${k}=${v}`).join(',');
  const dims = Object.entries(r.dims).map(([k, v]) => `${k}=${v}`).join(', ') || (given === '' ? '' : `--set ${given}`);
  const hasRes = r.kernels.some((k) => k.resources !== undefined);
  const resCols = (k: KernelTraffic): string[] => (!hasRes ? [] : k.resources === undefined ? ['-', '-', '-'] : [String(k.resources.registers), String(k.resources.sharedBytes), String(k.resources.spillBytes)]);
  const rows: string[][] = r.kernels.map((k) => [k.name, String(k.bytesRead), String(k.bytesWritten), String(k.flops), ...resCols(k)]);
  const nameW = Math.max(6, ...rows.map((x) => (x[0] ?? '').length), 'unfused (--no-fuse)'.length);
  const colW = Math.max(13, ...rows.flatMap((x) => x.slice(1).map((c) => c.length)));
  const line = (c: readonly string[]): string => `${(c[0] ?? '').padEnd(nameW)}  ${c.slice(1).map((x) => x.padStart(colW)).join('  ')}`;
  const fig = (label: string, f: TrafficFigures, kernels?: number): string =>
    `${line([label, String(f.bytesRead), String(f.bytesWritten), String(f.flops)])}  ${kernels === undefined ? '' : `${kernels} kernels, `}${human(f.bytesRead + f.bytesWritten, 'B')} moved, ${human(f.flops, 'FLOP')}`;
  const out: string[] = [];
  out.push(`traffic report: ${r.model} at ${dims === '' ? 'no dims' : dims}, kernels for ${r.limits} (one forward pass; global memory; unset dims: B=1, others 128)`);
  if (hasRes) out.push('registers per thread, static shared memory per block, spill stores + loads: ptxas -v');
  out.push(line(['kernel', 'bytes read', 'bytes written', 'FLOPs', ...(hasRes ? ['registers', 'smem bytes', 'spill bytes'] : [])]));
  for (const x of rows) out.push(line(x));
  out.push('');
  out.push(fig(opts.noFuse === true ? 'total (--no-fuse)' : 'total (fused)', r.total, r.total.kernels));
  out.push(fig('unfused (--no-fuse)', r.unfused, r.unfused.kernels));
  out.push(fig('lower bound', r.lowerBound));
  const lb = r.lowerBound.bytesRead + r.lowerBound.bytesWritten;
  if (lb > 0) {
    const ratio = (f: TrafficFigures): string => ((f.bytesRead + f.bytesWritten) / lb).toFixed(2);
    out.push(`traffic / lower bound: ${opts.noFuse === true ? '' : `fused ${ratio(r.total)}x, `}unfused ${ratio(r.unfused)}x`);
  }
  return out.join('\n') + '\n';
}

/** The report as JSON (`--report --json`); keys in a fixed order. */
export function trafficReportJson(r: TrafficReport): string {
  const figs = (f: TrafficFigures): TrafficFigures => ({ bytesRead: f.bytesRead, bytesWritten: f.bytesWritten, flops: f.flops });
  return (
    JSON.stringify(
      {
        model: r.model,
        limits: r.limits,
        dims: r.dims,
        kernels: r.kernels.map((k) => ({ name: k.name, op: k.op, ...figs(k), ...(k.resources !== undefined ? { resources: k.resources } : {}) })),
        total: { ...figs(r.total), kernels: r.total.kernels },
        unfused: { ...figs(r.unfused), kernels: r.unfused.kernels },
        lowerBound: figs(r.lowerBound),
      },
      null,
      2,
    ) + '\n'
  );
}
