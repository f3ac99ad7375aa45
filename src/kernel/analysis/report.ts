// The memory-traffic report (`tfc compile FILE --report [--json]`): per kernel, bytes read and
// written in global memory and FLOPs for one forward pass at concrete dims, the totals with
// fusion and without it (`--no-fuse`), and the lower bound (each input and weight read once,
// each output written once). Figures come from the kernels' traffic formulas (analysis/traffic.ts); the
// kernels come from the compile driver (src/compile/kernels.ts), so no pass runs here.
import type { Graph } from '../../graph/ir.js';
import { concreteShape } from '../../graph/types.js';
import { getOp } from '../../ops/catalog.js';
import { dimEval } from '../../base/dim.js';
import type { Kernel } from '../ir/ir.js';
import { evalCondition, evalSize, type SizeExpr } from '../plan/plan.js';
import { storageBytes } from '../ir/storage.js';
import { sConst } from '../plan/to-size.js';
import { type CostModel, modelKernelMs } from './cost.js';
import { type FusionRow, type StepSources, fusionProfile } from './fusion-profile.js';

export interface TrafficFigures {
  readonly bytesRead: number;
  readonly bytesWritten: number;
  readonly flops: number;
}

export interface KernelTraffic extends TrafficFigures {
  readonly name: string;
  readonly op: string;
  /** The cost model's time for this launch (analysis/cost.ts), ms. */
  readonly modelMs: number;
  /** Per-thread registers, static shared memory and spills (CUDA: ptxas -v), when asked for. */
  readonly resources?: KernelResources;
  /** Fused attention: the key tiles its block sparsity visits at these dims, of all tiles (figures count only those). */
  readonly tiles?: { readonly visited: number; readonly total: number };
  /** The attention backward: its bytes if it read every operand and wrote every result once (its own lower bound). */
  readonly onceBytes?: number;
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
  readonly total: TrafficFigures & { readonly kernels: number; readonly modelMs: number };
  readonly unfused: TrafficFigures & { readonly kernels: number; readonly modelMs: number };
  readonly lowerBound: TrafficFigures;
  /** Where the modelled times come from (analysis/cost.ts: the target's ceilings and efficiencies). */
  readonly costModel: string;
  /** Each fused kernel (group) next to the unfused kernels it replaced, modelled (analysis/fusion-profile.ts). */
  readonly fusion: readonly FusionRow[];
}

/** Dims not given: B = 1 (one sequence), any other = 128. */
export function defaultDimValue(name: string): number {
  return name === 'B' ? 1 : 128;
}

/** What the report is computed from: the compile driver (src/compile/kernels.ts) lowers both plans. */
export interface ReportInput {
  readonly model: string;
  /** The TargetLimits name both kernel lists were lowered for. */
  readonly limits: string;
  /** Every dim of the model with its value (reportDims). */
  readonly dims: ReadonlyMap<string, number>;
  /** The reported kernels (the fused plan's, or the unfused plan's for `--no-fuse`). */
  readonly kernels: readonly Kernel[];
  /** The unfused pipeline's kernels (the `--no-fuse` baseline row). */
  readonly unfusedKernels: readonly Kernel[];
  /** The unfused pipeline's graph: its inputs, weights, outputs and FLOPs give the lower bound. */
  readonly unfusedGraph: Graph;
  /** The cost model the kernels' times come from. */
  readonly cost: CostModel;
  /** The two programs with their graphs (kernels in launch order), for the fusion rows. */
  readonly fusedSources?: StepSources;
  readonly unfusedSources?: StepSources;
  /** Resources of the reported kernels, in order (the CLI asks ptxas for sm_80 with --target cuda). */
  readonly resources?: (ks: readonly Kernel[]) => readonly (KernelResources | undefined)[];
  /**
   * The key tiles a kernel with `traffic.perTile` (fused attention prefill) visits at the report's
   * dims, and of how many; undefined where they cannot be counted (a mask that reads input data):
   * then every tile is counted, a worst case.
   */
  readonly tileCount?: TileCount;
}

/**
 * Visited tiles of all: for the attention backward also `kv`, its dK/dV role's (key tile, query
 * head, query tile) triples (the figures above are then its dQ role's).
 */
export type TileCount = (k: Kernel) => { readonly visited: number; readonly total: number; readonly kv?: { readonly visited: number; readonly total: number } } | undefined;

/**
 * `k` with its per-tile traffic (K/V loads, scores, lambda reads; the backward's two roles each by
 * its own count) scaled to the tiles block sparsity visits, as constant sizes at `dims`; `k`
 * itself where nothing is counted.
 */
function visitedOnly(k: Kernel, dims: ReadonlyMap<string, number>, count: TileCount | undefined): { kernel: Kernel; tiles?: { visited: number; total: number } } {
  const pt = k.traffic.perTile;
  const c = pt === undefined || count === undefined ? undefined : count(k);
  if (pt === undefined || c === undefined || c.total === 0) return { kernel: k };
  const skipped = 1 - c.visited / c.total;
  const kvPart = k.traffic.perKvTile;
  const kvSkipped = kvPart === undefined || c.kv === undefined || c.kv.total === 0 ? 0 : 1 - c.kv.visited / c.kv.total;
  const less = (total: SizeExpr, q: SizeExpr, kv: SizeExpr | undefined): number => Math.round(evalSize(total, dims) - skipped * evalSize(q, dims) - (kv === undefined ? 0 : kvSkipped * evalSize(kv, dims)));
  const bytesRead = less(k.traffic.bytesRead, pt.bytesRead, kvPart?.bytesRead);
  const flops = less(k.traffic.flops, pt.flops, kvPart?.flops);
  const visited = c.visited + (c.kv?.visited ?? 0);
  const total = c.total + (c.kv?.total ?? 0);
  return { kernel: { ...k, traffic: { bytesRead: sConst(bytesRead), bytesWritten: k.traffic.bytesWritten, flops: sConst(flops) } }, tiles: { visited, total } };
}

/** The dims a report is evaluated at: `given` where it names a dim of `g`, else defaultDimValue. */
export function reportDims(g: Graph, given: ReadonlyMap<string, number>): Map<string, number> {
  return new Map(g.dims.map((d) => [d, given.get(d) ?? defaultDimValue(d)]));
}

/** The attention backward's operands and results once: its reads less both roles' per-tile parts, plus its writes. */
function onceBytesOf(k: Kernel, dims: ReadonlyMap<string, number>): { onceBytes?: number } {
  const t = k.traffic;
  if (t.perTile === undefined || t.perKvTile === undefined) return {};
  return { onceBytes: evalSize(t.bytesRead, dims) - evalSize(t.perTile.bytesRead, dims) - evalSize(t.perKvTile.bytesRead, dims) + evalSize(t.bytesWritten, dims) };
}

function kernelFigures(ks: readonly Kernel[], dims: ReadonlyMap<string, number>, cost: CostModel, count?: TileCount): KernelTraffic[] {
  return ks.map((orig) => {
    const { kernel: k, tiles } = visitedOnly(orig, dims, count);
    return {
      name: k.name,
      op: k.op,
      modelMs: modelKernelMs(k, dims, cost),
      bytesRead: evalSize(k.traffic.bytesRead, dims),
      bytesWritten: evalSize(k.traffic.bytesWritten, dims),
      flops: evalSize(k.traffic.flops, dims),
      ...(tiles !== undefined ? { tiles } : {}),
      ...onceBytesOf(orig, dims),
    };
  });
}

function sum(ks: readonly (TrafficFigures & { readonly modelMs: number })[]): TrafficFigures & { kernels: number; modelMs: number } {
  return {
    bytesRead: ks.reduce((s, k) => s + k.bytesRead, 0),
    bytesWritten: ks.reduce((s, k) => s + k.bytesWritten, 0),
    flops: ks.reduce((s, k) => s + k.flops, 0),
    kernels: ks.length,
    modelMs: ks.reduce((s, k) => s + k.modelMs, 0),
  };
}

/**
 * Each input and weight read once, each output written once (a scatter: its values); FLOPs are the unfused graph's
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
  // A scatter writes only its values (in place, into dest's buffer: a paged cache's new tokens).
  const writes = (id: number): number => {
    const n = g.nodes[id];
    return n?.op === 'scatter' ? bytes(n.operands[2] ?? id) : bytes(id);
  };
  const bytesWritten = [...written].reduce((s, id) => s + writes(id), 0);
  return { bytesRead, bytesWritten, flops };
}

/** Evaluates both kernel lists' traffic formulas and the lower bound at `dims`. */
export function trafficReport(r: ReportInput): TrafficReport {
  // One forward pass at these dims: a kernel whose `when` is false there (the decode path of an
  // attention or a matmul during a prefill, or the other way round) does not run, so it is not counted.
  const runs = (k: Kernel): boolean => k.when === undefined || evalCondition(k.when, r.dims);
  const kernels = r.kernels.filter(runs);
  const unfused = kernelFigures(r.unfusedKernels.filter(runs), r.dims, r.cost, r.tileCount);
  const res = r.resources?.(kernels);
  const reported = kernelFigures(kernels, r.dims, r.cost, r.tileCount).map((k, i) => {
    const x = res?.[i];
    return x === undefined ? k : { ...k, resources: x };
  });
  // Modelled time per launched step of each program (0 for a step that does not run).
  const stepMs = (src: StepSources): number[] => src.program.kernels.map((k) => (runs(k) ? modelKernelMs(visitedOnly(k, r.dims, r.tileCount).kernel, r.dims, r.cost) : 0));
  const fusion = r.fusedSources !== undefined && r.unfusedSources !== undefined ? fusionProfile(r.fusedSources, stepMs(r.fusedSources), r.unfusedSources, stepMs(r.unfusedSources), r.dims) : [];
  return {
    model: r.model,
    limits: r.limits,
    dims: Object.fromEntries(r.dims),
    kernels: reported,
    total: sum(reported),
    unfused: sum(unfused),
    lowerBound: lowerBound(r.unfusedGraph, r.dims),
    costModel: r.cost.name,
    fusion,
  };
}

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
  const ms = (x: number): string => x.toFixed(3);
  const rows: string[][] = r.kernels.map((k) => [k.name, String(k.bytesRead), String(k.bytesWritten), String(k.flops), ms(k.modelMs), ...resCols(k)]);
  const nameW = Math.max(6, ...rows.map((x) => (x[0] ?? '').length), 'unfused (--no-fuse)'.length);
  const colW = Math.max(13, ...rows.flatMap((x) => x.slice(1).map((c) => c.length)));
  const line = (c: readonly string[]): string => `${(c[0] ?? '').padEnd(nameW)}  ${c.slice(1).map((x) => x.padStart(colW)).join('  ')}`;
  const fig = (label: string, f: TrafficFigures & { readonly modelMs?: number }, kernels?: number): string =>
    `${line([label, String(f.bytesRead), String(f.bytesWritten), String(f.flops), f.modelMs === undefined ? '-' : ms(f.modelMs)])}  ${kernels === undefined ? '' : `${kernels} kernels, `}${human(f.bytesRead + f.bytesWritten, 'B')} moved, ${human(f.flops, 'FLOP')}`;
  const out: string[] = [];
  out.push(`traffic report: ${r.model} at ${dims === '' ? 'no dims' : dims}, kernels for ${r.limits} (one forward pass; global memory; unset dims: B=1, others 128)`);
  if (hasRes) out.push('registers per thread, static shared memory per block, spill stores + loads: ptxas -v');
  out.push(line(['kernel', 'bytes read', 'bytes written', 'FLOPs', 'model ms', ...(hasRes ? ['registers', 'smem bytes', 'spill bytes'] : [])]));
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
  const sparse = r.kernels.filter((k) => k.tiles !== undefined && k.tiles.visited < k.tiles.total);
  if (sparse.length > 0) {
    const pct = (k: KernelTraffic): string => `${k.name} ${k.tiles === undefined ? '' : `${((100 * k.tiles.visited) / k.tiles.total).toFixed(1)}%`}`;
    out.push(`attention kernels count only the key tiles their block sparsity visits at these dims: ${sparse.map(pct).join(', ')}`);
  }
  const backward = r.kernels.filter((k) => k.onceBytes !== undefined && k.onceBytes > 0);
  if (backward.length > 0) {
    const times = (k: KernelTraffic): string => `${k.name} ${((k.bytesRead + k.bytesWritten) / (k.onceBytes ?? 1)).toFixed(2)}x`;
    out.push(`attention backward: bytes moved / Q, K, V, O, dO, LSE read and dQ, dK, dV written once (K/V are read again per query tile, Q/dO/O per key tile): ${backward.map(times).join(', ')}`);
  }
  out.push(`model ms: ${r.costModel} (src/kernel/analysis/cost.ts; measure with tfc bench model, whose fusion profile times the same groups)`);
  if (opts.noFuse !== true && r.fusion.length > 0) {
    out.push('fused kernels vs the unfused kernels they replaced (modelled ms; replaced / fused > 1: the fusion pays):');
    for (const f of r.fusion) {
      const ratio = f.fusedMs > 0 ? f.replacedMs / f.fusedMs : NaN;
      out.push(`  ${f.fused.join(' + ')}${f.count > 1 ? ` (x${f.count})` : ''}: ${ms(f.fusedMs)} vs ${ms(f.replacedMs)} (${f.replaced.join(', ')}): ${Number.isFinite(ratio) ? ratio.toFixed(2) : '-'}x${ratio < 1 ? '  SLOWER' : ''}`);
    }
  }
  return out.join('\n') + '\n';
}

/** Modelled milliseconds to 6 decimals (deterministic text). */
const round = (x: number): number => Math.round(x * 1e6) / 1e6;

/** The report as JSON (`--report --json`); keys in a fixed order. */
export function trafficReportJson(r: TrafficReport): string {
  const figs = (f: TrafficFigures): TrafficFigures => ({ bytesRead: f.bytesRead, bytesWritten: f.bytesWritten, flops: f.flops });
  return (
    JSON.stringify(
      {
        model: r.model,
        limits: r.limits,
        dims: r.dims,
        kernels: r.kernels.map((k) => ({ name: k.name, op: k.op, ...figs(k), modelMs: round(k.modelMs), ...(k.resources !== undefined ? { resources: k.resources } : {}), ...(k.tiles !== undefined ? { tiles: k.tiles } : {}), ...(k.onceBytes !== undefined ? { onceBytes: k.onceBytes } : {}) })),
        total: { ...figs(r.total), kernels: r.total.kernels, modelMs: round(r.total.modelMs) },
        unfused: { ...figs(r.unfused), kernels: r.unfused.kernels, modelMs: round(r.unfused.modelMs) },
        lowerBound: figs(r.lowerBound),
        costModel: r.costModel,
        fusion: r.fusion.map((f) => ({ fused: f.fused, fusedMs: round(f.fusedMs), replaced: f.replaced, replacedMs: round(f.replacedMs), count: f.count })),
      },
      null,
      2,
    ) + '\n'
  );
}
