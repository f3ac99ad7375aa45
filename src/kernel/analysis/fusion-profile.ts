// Each fused kernel against the unfused kernels it replaced (issue 13: "no fused kernel slower
// than the kernels it replaced"), with measured times (`tfc bench model`: each step's minimum over
// the runs) or modelled ones (`tfc compile --report`: analysis/cost.ts). Each fused plan step is traced to
// the graph node it was lowered from (the kernel program's `origin`), whose `from` spans name the
// unfused nodes it replaced; each unfused plan step to its node's span. Groups = the fused node's
// steps (a separate norm kernel and its matmul are one group) and the unfused steps of the spans
// it replaced, summed over layers by the fused kernel's name.
import { formatSpan } from '../../diag/span.js';
import type { Graph } from '../../graph/ir.js';
import type { KernelProgram } from '../ir/ir.js';
import { evalCondition } from '../plan/plan.js';

/** Where a plan's steps come from: the lowered program (one step per kernel, in order) and its graph. */
export interface StepSources {
  readonly graph: Graph;
  readonly program: KernelProgram;
}

export interface FusionRow {
  /** Fused kernel names of the group (a shared kernel keeps its first use's name). */
  readonly fused: readonly string[];
  readonly fusedMs: number;
  /** The unfused kernels those steps replaced, and their summed time. */
  readonly replaced: readonly string[];
  readonly replacedMs: number;
  /** Groups (layers) folded into this row. */
  readonly count: number;
}

/**
 * Per step: the node it was lowered from, as (its span, the spans it replaced), each keyed with
 * the node's layer (the `_l<N>` of its scope): a function called once per layer has the same
 * source spans in every layer, so spans alone would give layer 1's unfused kernels to layer 0.
 */
function stepSpans(s: StepSources): { readonly own: string; readonly replaced: readonly string[]; readonly node: number }[] {
  const origin = s.program.origin ?? [];
  return s.program.kernels.map((_, i) => {
    const node = s.graph.nodes[origin[i] ?? -1];
    if (node === undefined) return { own: `?${i}`, replaced: [], node: -1 };
    const layer = /_l(\d+)$/.exec(node.scope ?? '')?.[1] ?? '';
    const key = (span: string): string => `${span}|${layer}`;
    return { own: key(formatSpan(node.loc)), replaced: (node.from ?? []).map((x) => key(formatSpan(x))), node: node.id };
  });
}

/**
 * Rows per fused kernel name: its steps' minimum times (ms) against those of the unfused steps
 * whose node spans it replaced. `fusedMs[i]`/`unfusedMs[i]` are per plan step; steps skipped at
 * these dims (time 0 or undefined) count as 0. Fused steps that replaced nothing are left out.
 */
export function fusionProfile(fused: StepSources, fusedMs: readonly (number | undefined)[], unfused: StepSources, unfusedMs: readonly (number | undefined)[], dims?: ReadonlyMap<string, number>): FusionRow[] {
  // With dims, steps whose `when` is false there (the other path of a prefill/decode pair) take no part.
  const runs = (k: KernelProgram['kernels'][number] | undefined): boolean => dims === undefined || k?.when === undefined || evalCondition(k.when, dims);
  const f = stepSpans(fused);
  const u = stepSpans(unfused);
  const unfusedBySpan = new Map<string, number[]>();
  u.forEach((x, i) => {
    if (runs(unfused.program.kernels[i])) unfusedBySpan.set(x.own, [...(unfusedBySpan.get(x.own) ?? []), i]);
  });
  const claimed = new Set<number>();
  // Steps of one fused node form a group.
  const groups = new Map<number, number[]>();
  f.forEach((x, i) => {
    if (runs(fused.program.kernels[i])) groups.set(x.node, [...(groups.get(x.node) ?? []), i]);
  });
  const rows = new Map<string, { fused: Set<string>; fusedMs: number; replaced: Set<string>; replacedMs: number; count: number }>();
  for (const steps of groups.values()) {
    const first = f[steps[0] ?? -1];
    if (first === undefined || first.replaced.length === 0) continue;
    const spans = new Set([first.own, ...first.replaced]);
    const mine: number[] = [];
    for (const span of spans) for (const j of unfusedBySpan.get(span) ?? []) if (!claimed.has(j)) mine.push(j);
    if (mine.length === 0) continue;
    mine.forEach((j) => claimed.add(j));
    // Layers fold into one row: `mlp_l3_fused_matmul` counts as `mlp_l*_fused_matmul`.
    const anyLayer = (nm: string): string => nm.replace(/_l\d+(?=_|$)/g, '_l*');
    const names = steps.map((i) => anyLayer(fused.program.kernels[i]?.name ?? '?'));
    const key = [...new Set(names)].join(' + ');
    const row = rows.get(key) ?? { fused: new Set<string>(), fusedMs: 0, replaced: new Set<string>(), replacedMs: 0, count: 0 };
    names.forEach((nm) => row.fused.add(nm));
    row.fusedMs += steps.reduce((a, i) => a + (fusedMs[i] ?? 0), 0);
    mine.forEach((j) => row.replaced.add(anyLayer(unfused.program.kernels[j]?.name ?? '?')));
    row.replacedMs += mine.reduce((a, j) => a + (unfusedMs[j] ?? 0), 0);
    row.count++;
    rows.set(key, row);
  }
  return [...rows.values()]
    .map((r) => ({ fused: [...r.fused], fusedMs: r.fusedMs, replaced: [...r.replaced], replacedMs: r.replacedMs, count: r.count }))
    .sort((a, b) => b.replacedMs - a.replacedMs);
}

/** The profile as text lines: `fused (x12) 281.8 ms vs 317.0 ms unfused (matmul_1, gelu, add): 1.12x`. */
export function formatFusionProfile(rows: readonly FusionRow[]): string {
  const lines = rows.map((r) => {
    const ratio = r.fusedMs > 0 ? r.replacedMs / r.fusedMs : NaN;
    const flag = ratio < 1 ? '  SLOWER than what it replaced' : '';
    return `  ${r.fused.join(' + ')}${r.count > 1 ? ` (x${r.count})` : ''}: ${r.fusedMs.toFixed(1)} ms vs ${r.replacedMs.toFixed(1)} ms for ${r.replaced.join(', ')}: ${Number.isFinite(ratio) ? ratio.toFixed(2) : '-'}x${flag}`;
  });
  return `fusion profile (each step's minimum over the runs; replaced / fused > 1: the fusion pays):\n${lines.join('\n')}\n`;
}
