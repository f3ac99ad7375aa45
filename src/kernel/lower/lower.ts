// The plain, unfused lowering: graph IR -> kernel IR, one kernel per op (the `--no-fuse`
// baseline). Tile sizes and thread counts come from a Schedule (schedule/schedule.ts); traffic formulas
// from analysis/traffic.ts. Reshape is a view (no kernel); scalar constants used only by elementwise ops
// and grid bodies are folded into their consumers as literals, otherwise filled by a tiny kernel.
// This file is the driver (buffers, kernel naming, dispatch per op); each op family's lowering is a
// function of the Lowering state: lower/map.ts (per element), lower/movement.ts (permute, slice,
// concat, gather), lower/reduce.ts, lower/softmax-norm.ts, matmul/matmul.ts, attention/attention.ts;
// per-element op semantics in lower/scalar.ts, dim expressions in lower/dims.ts.
import { formatSpan } from '../../diag/span.js';
import { type Graph, type Node, type ScalarExpr, floatAttr } from '../../graph/ir.js';
import { mapScalarExpr, scalarChildren } from '../../graph/lambda.js';
import { DefUse } from '../../graph/rewrite.js';
import { computeType } from '../ir/storage.js';
import { getOp } from '../../ops/catalog.js';
import { NameScope } from '../../base/names.js';
import {
  type Expr,
  type GlobalBuffer,
  type Kernel,
  type KernelProgram,
  type KernelSchedule,
  type KernelTemp,
  type SharedArray,
  type Stmt,
  type Traffic,
  add,
  builtin,
  forEachExpr,
  lit,
  mul,
  u32,
} from '../ir/ir.js';
import { KernelBuilder } from '../ir/builder.js';
import type { SizeExpr, StepCondition } from '../plan/plan.js';
import { type Schedule, chooseSchedule, scheduleShapeKey } from '../schedule/schedule.js';
import { dimToSize, sCeilDiv, sConst, sMinConst, sMul } from '../plan/to-size.js';
import { lowerFusedAttention } from '../attention/attention.js';
import { attentionBackwardKernel } from '../attention/backward.js';
import { type TableLayout, partialRows, tableLayout, tableReduceKernel, tableTileArrays } from '../attention/backward-table.js';
import { shapeOf } from '../attention/node.js';
import { chooseAttentionBackwardSchedule } from '../attention/schedule.js';
import { dimConst, dimConstValue, dimMul } from '../../base/dim.js';
import type { FusedHost } from './fused.js';
import type { Lowering, LoweringTarget } from './lowering.js';
import { emitArange, emitConstFill, emitElementwise, emitFusedMap, emitGrid } from './map.js';
import { emitFusedReduce } from './fused-reduce.js';
import { emitConcat, emitGather, emitScatterAdd, emitPermute, emitSlice } from './movement.js';
import { emitReduce } from './reduce.js';
import { emitNorm, emitSoftmax } from './softmax-norm.js';
import { emitMatmul } from '../matmul/matmul.js';
import { mmaAttentionBackwardKernel } from '../attention/mma-backward.js';
import { emitScatter } from './scatter.js';
import { dimExpr } from './dims.js';
import { isElementwiseOp } from './scalar.js';
import { type CrossEntropyResults, ceResultKey, emitFusedCrossEntropy } from './cross-entropy.js';

export type { LoweringTarget } from './lowering.js';

export function lowerToKernels(g: Graph, target: LoweringTarget, schedule: Schedule = chooseSchedule(target)): KernelProgram {
  return new LoweringRun(g, schedule, target).run();
}

/** The state of one lowering run; the op-family lowerings (lower/*.ts, matmul/) see it as lowering.ts's Lowering. */
export class LoweringRun implements Lowering {
  private readonly kernels: Kernel[] = [];
  readonly storage = new Map<number, number | 'folded'>();
  /** Kernel names: sanitized, unique, none of the target's reserved words (WGSL and CUDA symbols). */
  private readonly names: NameScope;
  private readonly temps = new Map<number, KernelTemp>();
  private readonly origin: number[] = [];

  constructor(
    readonly g: Graph,
    readonly s: Schedule,
    readonly target: LoweringTarget,
  ) {
    this.names = new NameScope(target.reservedNames ?? new Set());
  }

  /** The first fused_attention_lse node of each fused_attention (its kernel writes that node's buffer). */
  private readonly lseNodes = new Map<number, number>();

  private lseOf(attention: number): number | undefined {
    return this.lseNodes.get(attention);
  }

  /** The first gradient result nodes of each fused_cross_entropy (its kernels write them). */
  private readonly ceResults = new Map<number, CrossEntropyResults>();

  /** The first fused_attention_k / _v node of each fused_attention (its kernels write them). */
  private readonly presentResults = new Map<number, { k?: Node; v?: Node }>();

  /** The first fused_attention_grad_k / _v node of each fused_attention_grad (its kernel writes them). */
  private readonly gradResults = new Map<number, { k?: number; v?: number }>();

  /** The first fused_attention_grad_t node per (fused_attention_grad, table operand): the table reduce kernel writes it. */
  private readonly tableResults = new Map<number, Map<number, number>>();

  run(): KernelProgram {
    const du = new DefUse(this.g);
    for (const n of this.g.nodes) {
      const a = n.operands[0];
      if (n.op === 'fused_attention_lse' && a !== undefined && !this.lseNodes.has(a)) this.lseNodes.set(a, n.id);
      const which = n.op === 'fused_attention_grad_k' ? 'k' : n.op === 'fused_attention_grad_v' ? 'v' : undefined;
      if (which !== undefined && a !== undefined) {
        const r = this.gradResults.get(a) ?? {};
        if (r[which] === undefined) this.gradResults.set(a, { ...r, [which]: n.id });
      }
      if (n.op === 'fused_attention_grad_t' && a !== undefined) {
        const r = this.tableResults.get(a) ?? new Map<number, number>();
        const t = n.attrs['operand'];
        if (t?.kind === 'int' && !r.has(t.value)) r.set(t.value, n.id);
        this.tableResults.set(a, r);
      }
      const kv = n.op === 'fused_attention_k' ? 'k' : n.op === 'fused_attention_v' ? 'v' : undefined;
      if (kv !== undefined && a !== undefined) {
        const r = this.presentResults.get(a) ?? {};
        if (r[kv] === undefined) this.presentResults.set(a, { ...r, [kv]: n });
      }
      if (n.op.startsWith('fused_cross_entropy_') && a !== undefined) {
        const r = this.ceResults.get(a) ?? {};
        const key = ceResultKey(n.op);
        if (r[key] === undefined) this.ceResults.set(a, { ...r, [key]: n });
      }
    }
    for (const n of this.g.nodes) {
      switch (n.op) {
        case 'input':
        case 'weight':
        case 'packed_weight': // a weight buffer filled at load (pack-weights)
          this.storage.set(n.id, n.id);
          break;
        case 'reshape':
        case 'view': // fold-views: consumers read the source's buffer through the map (lower/view.ts)
          this.storage.set(n.id, this.bufferOf(this.operand(n, 0)));
          break;
        case 'fused_attention_lse': {
          // The attention kernel writes the LSE (lowerFusedAttention); a second LSE node of the
          // same attention (no CSE ran) shares the first one's buffer.
          const first = this.g.nodes[this.lseOf(this.operand(n, 0).id) ?? n.id] ?? n;
          this.storage.set(n.id, first.id === n.id ? n.id : this.bufferOf(first));
          break;
        }
        case 'fused_attention_k':
        case 'fused_attention_v': {
          // Written by the attention's kernels (lowered at the fused_attention, earlier); a second
          // node of the same result shares the first one's buffer.
          const first = this.presentResults.get(this.operand(n, 0).id)?.[n.op === 'fused_attention_k' ? 'k' : 'v'] ?? n;
          this.storage.set(n.id, first.id === n.id ? n.id : this.bufferOf(first));
          break;
        }
        case 'fused_attention_grad_k':
        case 'fused_attention_grad_v': {
          // Written by the backward kernel (lowered at the fused_attention_grad, earlier); a second
          // node of the same result shares the first one's buffer.
          const r = this.gradResults.get(this.operand(n, 0).id);
          const first = r?.[n.op === 'fused_attention_grad_k' ? 'k' : 'v'] ?? n.id;
          this.storage.set(n.id, first === n.id ? n.id : this.bufferOf(this.g.nodes[first] ?? n));
          break;
        }
        case 'fused_attention_grad_t': {
          // Written by the table reduce kernel after the backward kernel (emitTableGradients).
          const t = n.attrs['operand'];
          const first = this.tableResults.get(this.operand(n, 0).id)?.get(t?.kind === 'int' ? t.value : -1) ?? n.id;
          this.storage.set(n.id, first === n.id ? n.id : this.bufferOf(this.g.nodes[first] ?? n));
          break;
        }
        case 'fused_cross_entropy_dh':
        case 'fused_cross_entropy_dw':
        case 'fused_cross_entropy_db': {
          // Written by the cross-entropy's kernels (lowered at the fused_cross_entropy, earlier);
          // a second node of the same result shares the first one's buffer.
          const first = this.ceResults.get(this.operand(n, 0).id)?.[ceResultKey(n.op)] ?? n;
          this.storage.set(n.id, first.id === n.id ? n.id : this.bufferOf(first));
          break;
        }
        case 'const': {
          const foldable = !du.isOutput(n.id) && du.users(n.id).every((u) => isElementwiseOp(u.op) || u.op === 'grid');
          if (foldable) this.storage.set(n.id, 'folded');
          else emitConstFill(this, n);
          break;
        }
        default:
          this.storage.set(n.id, n.id);
          this.lowerNode(n);
      }
      while (this.origin.length < this.kernels.length) this.origin.push(n.id);
    }
    return { graph: this.g.name, dims: this.g.dims, kernels: this.kernels, storage: this.storage, temps: this.temps, origin: this.origin };
  }

  /** Values a lowering adds that are no graph node (a norm's output kept for a matmul): temps. */
  private readonly synthetic = new Map<number, Node>();
  /** Such temps by what they compute, so kernels needing the same value share one (matmul/matmul.ts). */
  readonly sharedTemps = new Map<string, Node>();

  /**
   * A temp buffer holding `node`'s value (its id is replaced by a fresh temp id, returned with
   * it): later operand lookups of that id find the node, and plans allocate it from `temps`.
   */
  tempNode(node: Omit<Node, 'id'>, elements: SizeExpr): Node {
    const id = this.freshId();
    const n: Node = { ...node, id };
    this.temps.set(id, { dtype: n.type.dtype, elements });
    this.storage.set(id, id);
    this.synthetic.set(id, n);
    return n;
  }

  /** Ids past the graph's for temps and aliases, never reused. */
  private idCount = 0;
  private freshId(): number {
    return this.g.nodes.length + this.idCount++;
  }

  /**
   * A value that lives in `of`'s buffer (a view of it read through the view's map, a chunk of a
   * temp at a smaller shape): a fresh id whose storage is `of`'s, so kernels can bind it.
   */
  aliasNode(node: Omit<Node, 'id'>, of: number): Node {
    const id = this.freshId();
    const n: Node = { ...node, id };
    const src = this.g.nodes[of] ?? this.synthetic.get(of);
    if (src === undefined) throw new Error(`internal: alias of unknown value %${of}`);
    // A graph value not lowered yet (a result written by an earlier node's kernels) lives in its own buffer.
    this.storage.set(id, this.storage.get(of) === undefined && this.g.nodes[of] !== undefined ? of : this.bufferOf(src));
    this.synthetic.set(id, n);
    return n;
  }

  operand(n: Node, i: number): Node {
    const id = n.operands[i];
    const o = id === undefined ? undefined : (this.g.nodes[id] ?? this.synthetic.get(id));
    if (o === undefined) throw new Error(`internal: node %${n.id} (${n.op}) lacks operand ${i}`);
    return o;
  }

  private bufferOf(n: Node): number {
    const s = this.storage.get(n.id);
    if (s === undefined || s === 'folded') throw new Error(`internal: %${n.id} has no buffer`);
    return s;
  }

  private lowerNode(n: Node): void {
    if (isElementwiseOp(n.op)) return emitElementwise(this, n, n.op);
    switch (n.op) {
      case 'matmul':
        return emitMatmul(this, n);
      case 'sum':
      case 'mean':
      case 'max_reduce':
      case 'logsumexp':
        return emitReduce(this, n);
      case 'softmax':
        return emitSoftmax(this, n);
      case 'layernorm':
      case 'rmsnorm':
        return emitNorm(this, n);
      case 'gather':
        return emitGather(this, n);
      case 'scatter_add':
        return emitScatterAdd(this, n);
      case 'permute':
        return emitPermute(this, n);
      case 'slice':
        return emitSlice(this, n);
      case 'concat':
        return emitConcat(this, n);
      case 'scatter':
        return emitScatter(this, n);
      case 'arange':
        return emitArange(this, n);
      case 'grid':
        return emitGrid(this, n);
      case 'fused_attention':
        return this.emitFusedAttention(n);
      case 'fused_attention_grad':
        return this.emitFusedAttentionGrad(n);
      case 'fused_cross_entropy':
        return emitFusedCrossEntropy(this, n, this.ceResults.get(n.id) ?? {});
      case 'fused_map':
        return emitFusedMap(this, n);
      case 'fused_reduce':
        return emitFusedReduce(this, n);
      case 'fused_matmul':
        return emitMatmul(this, n);
      default:
        throw new Error(`internal: op '${n.op}' at ${formatSpan(n.loc)} has no plain lowering`);
    }
  }

  finish(
    n: Node | readonly Node[],
    op: string,
    kb: { readonly buffers: readonly GlobalBuffer[]; readonly shared: readonly SharedArray[]; readonly bindings: readonly number[] },
    body: readonly Stmt[],
    workgroupSize: readonly [number, number, number],
    grid: readonly [SizeExpr, SizeExpr, SizeExpr],
    schedule: KernelSchedule,
    traffic: Traffic,
    when?: StepCondition,
  ): void {
    const nodes = Array.isArray(n) ? (n as readonly Node[]) : [n as Node];
    const used = new Set<string>();
    forEachExpr(body, (e) => {
      if (e.kind === 'uniform') used.add(e.dim);
    });
    const uniforms = this.g.dims.filter((d) => used.has(d));
    for (const d of used) if (!this.g.dims.includes(d)) throw new Error(`internal: kernel ${op} reads unknown dim ${d}`);
    // `attention_l0_matmul` from the source scope of the first node; `k<N>_<op>` without one (.ir input).
    const scope = nodes[0]?.scope;
    const name = this.names.claim(scope !== undefined ? `${scope}_${op}` : `k${this.kernels.length}_${op}`);
    this.kernels.push({
      name,
      op,
      locs: nodes.map((x) => formatSpan(x.loc)),
      workgroupSize,
      grid,
      uniforms,
      buffers: kb.buffers,
      shared: kb.shared,
      body,
      schedule,
      traffic,
      bindings: kb.bindings,
      ...(when !== undefined ? { when } : {}),
    });
  }

  /** fused_attention: one flash-attention kernel, or the split-K pair for decode (attention/attention.ts). */
  private emitFusedAttention(n: Node): void {
    const firstTempId = this.g.nodes.length + this.idCount;
    if (this.synthetic.size > 0 && [...this.synthetic.keys()].some((id) => id >= firstTempId)) throw new Error('internal: temp ids overlap');
    const attention = this.s.byShape?.attention?.[scheduleShapeKey(this.g, n)] ?? this.s.attention;
    const lseNode = this.g.nodes[this.lseOf(n.id) ?? -1];
    const lse = lseNode === undefined ? {} : { lse: lseNode };
    const present = this.presentResults.get(n.id);
    const r = lowerFusedAttention({ graph: this.g, node: n, target: this.target, firstTempId, ...(attention !== undefined ? { schedule: attention } : {}), ...(this.s.mmaAttention !== undefined ? { mma: this.s.mmaAttention } : {}), ...lse, ...(present !== undefined ? { present } : {}) });
    for (const [id, t] of r.temps) {
      this.temps.set(id, t);
      this.storage.set(id, id);
      this.idCount = Math.max(this.idCount, id - this.g.nodes.length + 1);
    }
    // The cache writes first: the prefill kernels (and a split kernel that does not write) read them.
    if (r.cacheWriteKernel !== undefined && present !== undefined) this.emitCacheWrites(n, present, r.cacheWriteKernel.when);
    for (const k of r.kernels) this.finish(n, k.op, k, k.body, k.workgroupSize, k.grid, k.schedule, k.traffic, k.when);
  }

  /**
   * The K/V results of attention `n` as map kernels of its load lambdas (the prefill path, or
   * every path when the schedule keeps the cache write out of the split kernel): the kernel the
   * present = concat(past, new) fused_map had before fuse-cache-write, guarded by `when`.
   */
  private emitCacheWrites(n: Node, present: { readonly k?: Node; readonly v?: Node }, when: StepCondition | undefined): void {
    for (const which of ['k', 'v'] as const) {
      const r = present[which];
      if (r === undefined) continue;
      const load = n.attrs[which === 'k' ? 'kload' : 'vload'];
      const shape = n.attrs[which === 'k' ? 'kshape' : 'vshape'];
      if (load?.kind !== 'lambda' || shape?.kind !== 'dims') throw new Error(`internal: fused_attention_${which} needs the attention's load lambda`);
      // A fused_map whose id is the result's (its kernel writes that buffer) over the operands the
      // lambda reads, in the order it first reads them (the map fuse-cache-write folded: its kernel again).
      const pre: number[] = [];
      const visit = (x: ScalarExpr): void => {
        if (x.kind === 'read' && !pre.includes(x.operand)) pre.push(x.operand);
        scalarChildren(x).forEach(visit);
      };
      visit(load.body);
      const body = mapScalarExpr(load.body, (x, rec) => (x.kind === 'read' ? { ...x, operand: pre.indexOf(x.operand), indices: x.indices.map(rec) } : undefined));
      const operands = pre.map((i) => n.operands[i] ?? -1);
      const map: Node = { id: r.id, op: 'fused_map', operands, attrs: { body: { ...load, body }, shape }, type: r.type, loc: r.loc, ...(r.scope !== undefined ? { scope: r.scope } : {}) };
      const before = this.kernels.length;
      emitFusedMap(this, map);
      if (when !== undefined) for (let i = before; i < this.kernels.length; i++) this.kernels[i] = { ...(this.kernels[i] as Kernel), when };
    }
  }

  /** fused_attention_grad: one kernel writing dQ and its dK / dV results (attention/backward.ts). */
  private emitFusedAttentionGrad(n: Node): void {
    const r = this.gradResults.get(n.id) ?? {};
    const k = this.operand(n, 1);
    const v = this.operand(n, 2);
    // A result no node reads still gets written: into a temp.
    const resultNode = (id: number | undefined, like: Node, op: string): Node =>
      this.g.nodes[id ?? -1] ?? this.tempNode({ op, operands: [n.id], attrs: {}, type: like.type, loc: n.loc }, dimToSize(like.type.shape.reduce((a, d) => dimMul(a, d), dimConst(1))));
    const dK = resultNode(r.k, k, 'fused_attention_grad_k');
    const dV = resultNode(r.v, v, 'fused_attention_grad_v');
    // Tensor cores first (f16/bf16 operands, CUDA sm_80+: attention/mma-backward.ts); the f32 kernel below where it declines.
    const mma = this.s.mmaAttentionBackward === undefined ? undefined : mmaAttentionBackwardKernel({ graph: this.g, node: n, dK, dV, target: this.target }, this.s.mmaAttentionBackward);
    if (mma !== undefined) return this.finish(n, mma.op, mma, mma.body, mma.workgroupSize, mma.grid, mma.schedule, mma.traffic, mma.when);
    const dk = dimConstValue(k.type.shape[3] ?? dimConst(0));
    const dv = dimConstValue(v.type.shape[3] ?? dimConst(0));
    if (dk === undefined || dv === undefined) throw new Error('internal: fused_attention_grad needs constant head widths');
    const schedule = this.s.attentionBackward ?? chooseAttentionBackwardSchedule(this.target, dk, dv, tableTileArrays(this.g, n));
    const tables = this.tablePartials(n, schedule.tileCols);
    const kd = attentionBackwardKernel({ graph: this.g, node: n, dK, dV, target: this.target, schedule, ...(tables !== undefined ? { partials: tables.partials } : {}) });
    this.finish(n, kd.op, kd, kd.body, kd.workgroupSize, kd.grid, kd.schedule, kd.traffic, kd.when);
    if (tables !== undefined) this.emitTableGradients(n, tables, schedule.tileCols);
  }

  /** A fused_attention_grad with learned tables (`table_grads`): its layout and the per-workgroup partial sums temp (attention/backward-table.ts). */
  private tablePartials(n: Node, Bc: number): { layout: TableLayout; partials: Node } | undefined {
    const layout = tableLayout(this.g, n);
    if (layout === undefined) return undefined;
    const shape = shapeOf(this.operand(n, 0).type, this.operand(n, 1).type, this.operand(n, 2).type);
    const partials = this.tempNode({ op: 'fused_attention_grad_t', operands: [n.id], attrs: {}, type: { dtype: 'f32', shape: [] }, loc: n.loc }, sMul(partialRows(shape, Bc), sConst(layout.entries)));
    return { layout, partials };
  }

  /** The tables' gradients: one reduce kernel over the backward kernel's partial rows, into each fused_attention_grad_t (or a temp no node reads). */
  private emitTableGradients(n: Node, t: { layout: TableLayout; partials: Node }, Bc: number): void {
    const firsts = this.tableResults.get(n.id);
    const results = new Map(
      t.layout.tables.map((x) => {
        const like = this.operand(n, x.operand);
        const node = this.g.nodes[firsts?.get(x.operand) ?? -1] ?? this.tempNode({ op: 'fused_attention_grad_t', operands: [n.id], attrs: {}, type: like.type, loc: n.loc }, sConst(x.numel));
        return [x.operand, node] as const;
      }),
    );
    const shape = shapeOf(this.operand(n, 0).type, this.operand(n, 1).type, this.operand(n, 2).type);
    const kd = tableReduceKernel(t.layout, t.partials, results, shape, Bc);
    this.finish(n, kd.op, kd, kd.body, kd.workgroupSize, kd.grid, kd.schedule, kd.traffic, kd.when);
  }

  /** Workgroup ids past `count` (a formula) along x then y: [min(count, max), ceil(count / max)]. */
  linearGrid(count: SizeExpr): readonly [SizeExpr, SizeExpr, SizeExpr] {
    const m = this.s.maxWorkgroupsPerDim;
    return [sMinConst(count, m), sCeilDiv(count, m), sConst(1)];
  }

  /** The flat workgroup index of a linearGrid launch: wid.y * max + wid.x. */
  linearWorkgroup(kb: KernelBuilder, out: Stmt[]): Expr {
    return kb.let(out, 'wg', add(mul(builtin('workgroup_id', 1), u32(this.s.maxWorkgroupsPerDim)), builtin('workgroup_id', 0)));
  }


  constLiteral(n: Node): Expr {
    return lit(computeType(n.type.dtype), floatAttr(n, 'value'));
  }

  fusedHost(kb: KernelBuilder): FusedHost {
    return {
      operand: (n, i) => this.operand(n, i),
      folded: (o) => (this.storage.get(o.id) === 'folded' ? this.constLiteral(o) : undefined),
      dimExpr,
      flops: (n) => this.flops(n),
      kb,
    };
  }

  flops(n: Node): SizeExpr {
    const def = getOp(n.op);
    if (def === undefined) return sConst(0);
    const types = n.operands.map((_, i) => this.operand(n, i).type);
    return dimToSize(def.flops(types, n.type, n.attrs));
  }
}
