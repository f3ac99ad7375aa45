// The compiled plan: the contract between the compiler (kernel IR -> WGSL/CUDA) and the runtimes.
// It is what manifest.json holds: buffers with sizes as formulas of the dims, and the ordered
// list of kernel launches with their bindings. Nothing here is target specific except the
// per-target source text attached to each kernel.
import type { DType } from '../../graph/types.js';

/**
 * A size formula evaluated by the host at dispatch time from the dim values: integers,
 * dims, +, *, ceil-division and max. Kept tiny so that JSON round-trips it and the host glue
 * can evaluate it without the compiler.
 */
export type SizeExpr =
  | { readonly kind: 'const'; readonly value: number }
  | { readonly kind: 'dim'; readonly name: string }
  | { readonly kind: 'add'; readonly args: readonly SizeExpr[] }
  | { readonly kind: 'mul'; readonly args: readonly SizeExpr[] }
  | { readonly kind: 'ceildiv'; readonly num: SizeExpr; readonly den: number }
  | { readonly kind: 'max'; readonly args: readonly SizeExpr[] };

export function evalSize(e: SizeExpr, dims: ReadonlyMap<string, number>): number {
  switch (e.kind) {
    case 'const':
      return e.value;
    case 'dim': {
      const v = dims.get(e.name);
      if (v === undefined) throw new Error(`dim ${e.name} has no value`);
      return v;
    }
    case 'add':
      return e.args.reduce((s, a) => s + evalSize(a, dims), 0);
    case 'mul':
      return e.args.reduce((s, a) => s * evalSize(a, dims), 1);
    case 'ceildiv':
      return Math.ceil(evalSize(e.num, dims) / e.den);
    case 'max':
      return e.args.reduce((s, a) => Math.max(s, evalSize(a, dims)), -Infinity);
  }
}

/**
 * A step that runs only when `size op value` holds for the run's dims: one plan can hold two paths
 * for a symbolic dim (fused attention: the prefill kernel when T > 1, split-K decode when T <= 1).
 * Skipped steps still count in buffer live ranges, so temps stay valid for either path.
 */
export interface StepCondition {
  readonly size: SizeExpr;
  readonly op: '<=' | '>';
  readonly value: number;
  /** Must hold as well (a range: fused attention's short-prompt prefill runs for 1 < T <= 256). */
  readonly and?: StepCondition;
}

export function evalCondition(c: StepCondition, dims: ReadonlyMap<string, number>): boolean {
  const x = evalSize(c.size, dims);
  return (c.op === '<=' ? x <= c.value : x > c.value) && (c.and === undefined || evalCondition(c.and, dims));
}

/**
 * The steps a run at `dims` dispatches, in order: those whose `when` holds and whose grid is not
 * empty (what the runtime's `stats.lastDispatches` counts). A decode step's dispatches are the
 * plan's at T = 1 (docs/performance.md, "Decode dispatches").
 */
export function dispatchedSteps(plan: Plan, dims: ReadonlyMap<string, number>): Plan['steps'][number][] {
  const kernels = new Map(plan.kernels.map((k) => [k.name, k]));
  return plan.steps.filter((s) => {
    const k = kernels.get(s.kernel);
    return (s.when === undefined || evalCondition(s.when, dims)) && k !== undefined && k.grid.every((g) => evalSize(g, dims) > 0);
  });
}

export type BufferKind = 'input' | 'weight' | 'output' | 'temp';

export interface PlanBuffer {
  readonly id: number;
  readonly kind: BufferKind;
  /** The safetensors name for inputs, weights and outputs. */
  readonly name?: string;
  readonly dtype: DType;
  /** Element count as a formula of the dims (shape product). */
  readonly elements: SizeExpr;
  /** Shape for inputs/outputs/weights, each a formula (for validation and readback). */
  readonly shape: readonly SizeExpr[];
  /** Step index of first write and last read: the runtime reuses memory between temps. */
  readonly firstUse: number;
  readonly lastUse: number;
  /**
   * A weight chunk (split-large-weights: the tensor is over one storage binding): this buffer holds
   * rows [start, end) of the safetensors tensor `name`, whose axis 0 has `total` rows. Several
   * buffers share the name; `shape` is the chunk's.
   */
  readonly rows?: WeightRows;
  /**
   * A packed weight (pack-weights: one matmul over q/k/v or gate/up): this buffer holds the rows of
   * these safetensors tensors one after another (each [rows, ...shape[1:]]); `name` joins their
   * names with '+' (a key, not a tensor to load). Each part is written at its own offset at load.
   */
  readonly parts?: readonly WeightPart[];
}

export interface WeightPart {
  readonly name: string;
  readonly rows: number;
}

export interface WeightRows {
  readonly start: number;
  readonly end: number;
  readonly total: number;
}

/**
 * The safetensors tensors a weight buffer is loaded from and their shapes: one (the whole table for
 * a row chunk), or the parts of a packed weight, in buffer order.
 */
export function weightSources(b: PlanBuffer): { readonly name: string; readonly shape: number[] }[] {
  if (b.parts === undefined) return [{ name: b.name ?? '', shape: weightSourceShape(b) }];
  const rest = b.shape.slice(1).map((d) => evalSize(d, new Map()));
  return b.parts.map((p) => ({ name: p.name, shape: [p.rows, ...rest] }));
}

/** The shape of the tensor a weight buffer is loaded from (the whole table for a row chunk). */
export function weightSourceShape(b: PlanBuffer): number[] {
  const shape = b.shape.map((d) => evalSize(d, new Map()));
  return b.rows === undefined ? shape : [b.rows.total, ...shape.slice(1)];
}

export interface PlanBinding {
  readonly binding: number;
  readonly buffer: number; // PlanBuffer id
  readonly access: 'read' | 'read_write';
}

export interface PlanKernel {
  readonly name: string;
  readonly entryPoint: string;
  readonly workgroupSize: readonly [number, number, number];
  /** Workgroups to launch per axis. */
  readonly grid: readonly [SizeExpr, SizeExpr, SizeExpr];
  /** Dims passed as u32 uniforms in this order (binding `uniformBinding`), so T changes never recompile. */
  readonly uniforms: readonly string[];
  readonly uniformBinding: number;
  /** Binding slots of the kernel; each step says which buffer goes in each slot. */
  readonly slots: readonly { readonly binding: number; readonly access: 'read' | 'read_write'; readonly role: string }[];
  readonly bytesRead: SizeExpr;
  readonly bytesWritten: SizeExpr;
  readonly flops: SizeExpr;
  readonly features: readonly ('subgroups' | 'shader-f16')[];
  /** Source per target: `wgsl` always, `cuda` once that backend lands. */
  readonly source: { readonly wgsl: string; readonly cuda?: string };
  /** `file:line:col` of the graph nodes this kernel computes. */
  readonly locs: readonly string[];
}

export interface Plan {
  readonly model: string;
  readonly dims: readonly string[];
  readonly buffers: readonly PlanBuffer[];
  /** Launches in order; kernels are deduplicated by source so pipelines are shared. */
  readonly steps: readonly {
    readonly kernel: string;
    readonly bindings: readonly PlanBinding[];
    readonly locs: readonly string[];
    /** Absent: always runs. */
    readonly when?: StepCondition;
  }[];
  readonly kernels: readonly PlanKernel[];
  readonly outputs: readonly { readonly name: string; readonly buffer: number }[];
}
