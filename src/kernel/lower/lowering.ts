// The lowering state as the op families see it (lower/map.ts, movement.ts, reduce.ts,
// softmax-norm.ts, matmul/): what they read and call while emitting their kernels. lower.ts's
// LoweringRun implements it; a file of its own so the families and the driver that calls them do
// not import each other.
import type { Graph, Node } from '../../graph/ir.js';
import type { KernelBuilder } from '../ir/builder.js';
import type { Expr, GlobalBuffer, KernelSchedule, SharedArray, Stmt, Traffic } from '../ir/ir.js';
import type { SizeExpr, StepCondition } from '../plan/plan.js';
import type { Schedule, TargetLimits } from '../schedule/schedule.js';
import type { FusedHost } from './fused.js';

/**
 * A target's limits plus the words kernel names must avoid: the reserved words of every language
 * the kernels are printed in (the compile layer passes codegen's kernelNameReserved; absent: none).
 */
export type LoweringTarget = TargetLimits & { readonly reservedNames?: ReadonlySet<string> };

export interface Lowering {
  readonly g: Graph;
  readonly s: Schedule;
  readonly target: LoweringTarget;
  /** Each value's buffer: its own id, another value's (views, reshapes), or folded into its users. */
  readonly storage: Map<number, number | 'folded'>;
  /** Temps by what they compute, so kernels needing the same value share one (matmul/matmul.ts). */
  readonly sharedTemps: Map<string, Node>;
  /**
   * A temp buffer holding `node`'s value (its id is replaced by a fresh temp id, returned with
   * it): later operand lookups of that id find the node, and plans allocate it from `temps`.
   */
  tempNode(node: Omit<Node, 'id'>, elements: SizeExpr): Node;
  /**
   * A value that lives in `of`'s buffer (a view read through its map, a chunk of a temp at a
   * smaller shape): a fresh id whose storage is `of`'s (lower/cross-entropy.ts).
   */
  aliasNode(node: Omit<Node, 'id'>, of: number): Node;
  operand(n: Node, i: number): Node;
  /** Adds the finished kernel for `n` (or a group of nodes), named from the first node's scope. */
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
  ): void;
  /** Workgroup ids past `count` (a formula) along x then y: [min(count, max), ceil(count / max)]. */
  linearGrid(count: SizeExpr): readonly [SizeExpr, SizeExpr, SizeExpr];
  /** The flat workgroup index of a linearGrid launch: wid.y * max + wid.x. */
  linearWorkgroup(kb: KernelBuilder, out: Stmt[]): Expr;
  constLiteral(n: Node): Expr;
  fusedHost(kb: KernelBuilder): FusedHost;
  flops(n: Node): SizeExpr;
}
