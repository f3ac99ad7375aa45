// Graph -> Plan (manifest.json): lowers to kernels, shares identical kernels (same structural
// key: one pipeline), prints each shared kernel's WGSL (and CUDA), assigns buffers (inputs,
// weights, outputs, temps; a reshape is a view sharing its source's buffer) and their live
// ranges. In the compile driver's layer because it reaches both the kernel stage and codegen.
import type { Graph } from '../graph/ir.js';
import { printWgsl, uniformBinding } from '../../codegen/wgsl/print.js';
import { printCuda } from '../../codegen/cuda/print.js';
import { kernelNameReserved } from '../../codegen/common/names.js';
import { type Kernel, type KernelProgram, kernelFeatures, usesMatrixStmts } from '../kernel/ir/ir.js';
import { KernelsByKey } from '../kernel/ir/kernel-key.js';
import { type LoweringTarget, lowerToKernels } from '../kernel/lower/lower.js';
import type { BufferKind, Plan, PlanBinding, PlanBuffer, PlanKernel, WeightPart, WeightRows } from '../kernel/plan/plan.js';
import { dimConst, dimConstValue } from '../base/dim.js';
import { weightRowRange } from '../ops/source.js';
import { type Schedule, type TargetLimits, chooseSchedule, lavapipeLimits } from '../kernel/schedule/schedule.js';
import { dimToSize, shapeElements } from '../kernel/plan/to-size.js';

export interface CompileOptions {
  readonly target?: TargetLimits;
  /** Forces a schedule (tests, `tfc tune`); default: chosen from the target's limits. */
  readonly schedule?: Schedule;
  /** Attach CUDA source to each kernel (`source.cuda`); default: when the target is a CUDA preset (`cuda-*`). */
  readonly cuda?: boolean;
  /** The kernels, already lowered with this target and schedule (`tfc tune` keeps their `origin`). */
  readonly program?: KernelProgram;
}

/** `target` with the reserved words of every language a plan is printed in, for kernel names. */
export function printableTarget(target: TargetLimits): LoweringTarget {
  return { ...target, reservedNames: kernelNameReserved };
}

export function compilePlan(g: Graph, opts: CompileOptions = {}): Plan {
  const target = opts.target ?? lavapipeLimits;
  const withCuda = opts.cuda ?? target.name.startsWith('cuda');
  const program = opts.program ?? lowerToKernels(g, printableTarget(target), opts.schedule ?? chooseSchedule(target));
  const storageOf = (id: number): number => {
    const s = program.storage.get(id);
    if (s === undefined || s === 'folded') throw new Error(`internal: graph value %${id} has no buffer`);
    return s;
  };

  // Buffers: inputs and weights in graph order, then the rest in the order kernels write them.
  interface Draft {
    id: number;
    kind: BufferKind;
    name?: string;
    node: number;
    shapeOf: number; // node whose shape the buffer reports
    firstUse: number;
    lastUse: number;
    rows?: WeightRows;
    parts?: WeightPart[];
  }
  const drafts = new Map<number, Draft>(); // storage node id -> draft
  const order: Draft[] = [];
  const draftFor = (storageNode: number): Draft => {
    let d = drafts.get(storageNode);
    if (d === undefined) {
      const node = g.nodes[storageNode];
      const kind: BufferKind = node?.op === 'input' ? 'input' : node?.op === 'weight' || node?.op === 'packed_weight' ? 'weight' : 'temp';
      d = { id: order.length, kind, node: storageNode, shapeOf: storageNode, firstUse: -1, lastUse: -1 };
      if (node?.op === 'packed_weight') {
        // Filled at load from its operands' tensors, each at its rows (pack-weights).
        d.parts = node.operands.map((o) => {
          const w = g.nodes[o];
          const a = w?.attrs['name'];
          return { name: a?.kind === 'str' ? a.value : '', rows: dimConstValue(w?.type.shape[0] ?? dimConst(0)) ?? 0 };
        });
        d.name = d.parts.map((p) => p.name).join('+');
      } else if ((kind === 'input' || kind === 'weight') && node !== undefined) {
        const a = node.attrs['name'];
        if (a !== undefined && a.kind === 'str') d.name = a.value;
        const rows = weightRowRange(node);
        if (rows !== undefined) d.rows = rows;
      }
      drafts.set(storageNode, d);
      order.push(d);
    }
    return d;
  };
  // A weight read only by packed_weight nodes has no buffer of its own: the pack holds its rows.
  const packedOnly = (n: (typeof g.nodes)[number]): boolean => {
    const users = g.nodes.filter((u) => u.operands.includes(n.id));
    return users.length > 0 && users.every((u) => u.op === 'packed_weight') && !g.outputs.some((o) => o.value === n.id);
  };
  for (const n of g.nodes) if (n.op === 'input' || n.op === 'packed_weight' || (n.op === 'weight' && !packedOnly(n))) draftFor(n.id);

  // Kernels deduplicated by structure (body, buffers, grid, workgroup size; kernel/ir/kernel-key.ts).
  const byKey = new KernelsByKey<{ first: Kernel; locs: string[] }>();
  const kernelOrder: { first: Kernel; locs: string[] }[] = [];
  const steps: Plan['steps'][number][] = [];
  program.kernels.forEach((k, step) => {
    const entry = byKey.findOrAdd(k, () => {
      const e = { first: k, locs: [] };
      kernelOrder.push(e);
      return e;
    });
    for (const l of k.locs) if (!entry.locs.includes(l)) entry.locs.push(l);
    const bindings: PlanBinding[] = k.buffers.map((b) => {
      const value = k.bindings[b.slot];
      if (value === undefined) throw new Error(`internal: kernel ${k.name} slot ${b.slot} unbound`);
      const d = draftFor(storageOf(value));
      if (b.access === 'read_write' && d.firstUse < 0) d.firstUse = step;
      if (d.firstUse < 0) d.firstUse = 0; // inputs and weights: uploaded before the first step
      d.lastUse = Math.max(d.lastUse, step);
      return { binding: b.slot, buffer: d.id, access: b.access };
    });
    steps.push(k.when === undefined ? { kernel: entry.first.name, bindings, locs: k.locs } : { kernel: entry.first.name, bindings, locs: k.locs, when: k.when });
  });

  const lastStep = Math.max(steps.length - 1, 0);
  const outputs = g.outputs.map((o) => {
    const d = draftFor(storageOf(o.value));
    if (d.kind === 'temp') {
      d.kind = 'output';
      d.name = o.name;
      d.shapeOf = o.value;
    }
    if (d.firstUse < 0) d.firstUse = 0;
    d.lastUse = lastStep; // kept until read back
    return { name: o.name, buffer: d.id };
  });

  const buffers: PlanBuffer[] = order.map((d) => {
    const shape = g.nodes[d.shapeOf]?.type.shape ?? [];
    const extra = program.temps?.get(d.node); // a lowering's own temp (not a graph value)
    const dtype = extra?.dtype ?? g.nodes[d.node]?.type.dtype ?? 'f32';
    const base = {
      id: d.id,
      kind: d.kind,
      dtype,
      elements: extra?.elements ?? shapeElements(shape),
      shape: extra === undefined ? shape.map(dimToSize) : [extra.elements],
      firstUse: Math.max(d.firstUse, 0),
      lastUse: Math.max(d.lastUse, d.firstUse, 0),
    };
    const named = d.name === undefined ? base : { ...base, name: d.name };
    if (d.parts !== undefined) return { ...named, parts: d.parts };
    return d.rows === undefined ? named : { ...named, rows: { start: d.rows.start, end: d.rows.end, total: d.rows.total } };
  });

  const kernels: PlanKernel[] = kernelOrder.map((entry) => {
    const k: Kernel = { ...entry.first, locs: entry.locs };
    const f = kernelFeatures(k);
    const features: ('subgroups' | 'shader-f16')[] = [];
    if (f.usesSubgroups) features.push('subgroups');
    if (f.usesF16) features.push('shader-f16');
    return {
      name: k.name,
      entryPoint: 'main',
      workgroupSize: k.workgroupSize,
      grid: k.grid,
      uniforms: k.uniforms,
      uniformBinding: uniformBinding(k),
      slots: k.buffers.map((b) => ({ binding: b.slot, access: b.access, role: b.role })),
      bytesRead: k.traffic.bytesRead,
      bytesWritten: k.traffic.bytesWritten,
      flops: k.traffic.flops,
      features,
      source: withCuda ? { wgsl: wgslOrCudaOnly(k), cuda: printCuda(k) } : { wgsl: printWgsl(k) },
      locs: k.locs,
    };
  });

  return { model: g.name, dims: g.dims, buffers, steps, kernels, outputs };
}

/**
 * A kernel with matrix intrinsics (tensor-core mma, cp.async; only CUDA targets with
 * `tensorCores` lower to them) has no WGSL: its `wgsl` is a comment saying so, which a WebGPU
 * device rejects (no entry point) instead of running something else.
 */
function wgslOrCudaOnly(k: Kernel): string {
  return usesMatrixStmts(k) ? `// kernel ${k.name} uses tensor-core intrinsics: CUDA only (no WGSL)\n` : printWgsl(k);
}
