// The kernel IR: one GPU kernel as a launch grid, global buffers, workgroup arrays and a small
// structured statement/expression tree. Target neutral: codegen/wgsl (and later codegen/cuda)
// print it through spelling tables; nothing here knows WGSL or CUDA syntax.
// Over 400 lines: the IR's type definitions with their small constructors and walkers, read
// together by every lowering and printer.
import type { SizeExpr, StepCondition } from '../plan/plan.js';
import type { DType } from '../../graph/types.js';

export function assertNever(x: never): never {
  throw new Error(`internal: unexpected ${JSON.stringify(x)}`);
}

/**
 * Scalar value types inside a kernel. Storage never holds `bool` (stored as u32 0/1). `i8` is a
 * storage type (a global buffer of one-byte elements, graph dtype i8): a `load` from such a slot
 * is typed i8 and a `store` takes a value cast to i8 (truncated toward zero, saturated to
 * -128..127); targets hold i8 values in 32-bit integer registers (WGSL i32, CUDA int), and
 * lowerings compute on them as i32 (`computeType`). WGSL packs four to a u32 word.
 */
export type ScalarType = 'f32' | 'f16' | 'i32' | 'u32' | 'bool' | 'i8';
export const scalarTypes: readonly ScalarType[] = ['f32', 'f16', 'i32', 'u32', 'bool', 'i8'];

export type BinaryOp =
  | 'add' | 'sub' | 'mul' | 'div' | 'rem' // rem: truncated remainder (C `%`)
  | 'lt' | 'le' | 'gt' | 'ge' | 'eq' | 'ne'
  | 'and' | 'or'; // on bool
export const binaryOps: readonly BinaryOp[] = ['add', 'sub', 'mul', 'div', 'rem', 'lt', 'le', 'gt', 'ge', 'eq', 'ne', 'and', 'or'];

export type UnaryOp = 'neg' | 'not';

/** Math functions every target spells somehow (erf may be an emitted helper); round: half to even. */
export type MathFn = 'exp' | 'log' | 'sqrt' | 'rsqrt' | 'tanh' | 'erf' | 'sin' | 'cos' | 'abs' | 'floor' | 'round' | 'pow' | 'max' | 'min';
export const mathFns: readonly MathFn[] = ['exp', 'log', 'sqrt', 'rsqrt', 'tanh', 'erf', 'sin', 'cos', 'abs', 'floor', 'round', 'pow', 'max', 'min'];

/** Thread and group ids (u32); `axis` picks x, y, z for the vector ones. */
export type BuiltinId =
  | 'local_id' // thread index inside the workgroup, per axis
  | 'local_index' // flattened thread index inside the workgroup
  | 'workgroup_id'
  | 'global_id'
  | 'subgroup_size'
  | 'subgroup_lane'; // invocation index inside the subgroup
export const builtinIds: readonly BuiltinId[] = ['local_id', 'local_index', 'workgroup_id', 'global_id', 'subgroup_size', 'subgroup_lane'];

/**
 * Subgroup (warp) collectives, abstract: targets map them to subgroupAdd/__shfl_xor_sync/...
 * 'shuffle' returns `arg` of the invocation whose subgroup lane is the expression's `lane`;
 * 'broadcast' the same with a `lane` that is a u32 literal (WGSL subgroupBroadcast: on a CPU
 * adapter one lane extract and a splat, where a shuffle by a run-time lane is a per-lane permute).
 */
export type SubgroupOp = 'sum' | 'max' | 'broadcast_first' | 'shuffle' | 'broadcast';
export const subgroupOps: readonly SubgroupOp[] = ['sum', 'max', 'broadcast_first', 'shuffle', 'broadcast'];

export type Expr =
  | { readonly kind: 'lit'; readonly type: ScalarType; readonly value: number } // value may be +-Infinity or NaN for floats
  | { readonly kind: 'var'; readonly name: string; readonly type: ScalarType }
  | { readonly kind: 'builtin'; readonly id: BuiltinId; readonly axis: 0 | 1 | 2 }
  | { readonly kind: 'uniform'; readonly dim: string } // a symbolic dim's value, u32
  | { readonly kind: 'load'; readonly slot: number; readonly index: Expr; readonly type: ScalarType } // global buffer
  | { readonly kind: 'array_load'; readonly array: string; readonly index: Expr; readonly type: ScalarType } // workgroup or private array
  | { readonly kind: 'unary'; readonly op: UnaryOp; readonly arg: Expr; readonly type: ScalarType }
  | { readonly kind: 'binary'; readonly op: BinaryOp; readonly a: Expr; readonly b: Expr; readonly type: ScalarType }
  | { readonly kind: 'call'; readonly fn: MathFn; readonly args: readonly Expr[]; readonly type: ScalarType }
  | { readonly kind: 'select'; readonly cond: Expr; readonly ifTrue: Expr; readonly ifFalse: Expr; readonly type: ScalarType }
  | { readonly kind: 'cast'; readonly to: ScalarType; readonly arg: Expr }
  | { readonly kind: 'subgroup'; readonly op: SubgroupOp; readonly arg: Expr; readonly type: ScalarType; readonly lane?: Expr }; // lane (u32): the source lane of 'shuffle' and 'broadcast' only

export type Stmt =
  | { readonly kind: 'let'; readonly name: string; readonly type: ScalarType; readonly init: Expr } // immutable
  | { readonly kind: 'var'; readonly name: string; readonly type: ScalarType; readonly init: Expr } // mutable, always initialized
  | { readonly kind: 'private_array'; readonly name: string; readonly type: ScalarType; readonly length: number; readonly init: Expr } // every element = init
  | { readonly kind: 'assign'; readonly name: string; readonly value: Expr }
  | { readonly kind: 'store'; readonly slot: number; readonly index: Expr; readonly value: Expr }
  /**
   * One vector load from a slot declared with `vector` = names.length elements per access
   * (`index` counts vectors): binds each element to an immutable scalar `names[i]`. On a CPU
   * adapter a vector load is one bounds check and address for `vector` lanes' worth of data.
   */
  | { readonly kind: 'load_vec'; readonly names: readonly string[]; readonly slot: number; readonly index: Expr; readonly type: ScalarType }
  | { readonly kind: 'array_store'; readonly array: string; readonly index: Expr; readonly value: Expr }
  | {
      readonly kind: 'for'; // for (var v = start; v < end; v += step): u32 counter
      readonly var: string;
      readonly start: Expr;
      readonly end: Expr;
      readonly step: Expr;
      readonly body: readonly Stmt[];
    }
  | {
      readonly kind: 'if';
      readonly cond: Expr;
      readonly then: readonly Stmt[];
      readonly else: readonly Stmt[];
      /**
       * 'subgroup': the lowering guarantees `cond` is the same on every invocation of a subgroup
       * (not of the workgroup), so subgroup operations inside are legal (no barriers). WGSL then
       * turns its `subgroup_uniformity` diagnostic off; a CUDA warp takes one side of it.
       */
      readonly uniformity?: 'subgroup';
    }
  | { readonly kind: 'barrier' } // workgroup barrier (memory + execution)
  | { readonly kind: 'comment'; readonly text: string }
  | MatrixStmt;

/**
 * Element types of matrix-multiply tiles: 16-bit floats staged in workgroup arrays, products
 * accumulated in f32 (tensor cores on CUDA sm_80+). Storage of such a tile is a `u32` workgroup
 * array holding pairs of 16-bit values (element 2i in the low half of word i), since ScalarType
 * has no bf16.
 */
export type MatrixInput = 'f16' | 'bf16';

/** How the B tile of an `mma` is stored: K x N row-major, or N x K row-major (B transposed). */
export type MmaBLayout = 'k_by_n' | 'n_by_k';

/** A 16-bit-element matrix inside a packed `u32` workgroup array: offset and row stride in elements. */
export interface TileRef {
  readonly array: string;
  readonly offset: Expr; // u32, even
  readonly stride: number; // elements per row, even
}

/**
 * Matrix intrinsics: only targets with matrix units print them (CUDA: mma.sync, cp.async); the
 * WGSL printer rejects them and WebGPU schedules never choose them.
 * - `mma`: one subgroup (warp of 32) computes acc += A * B for A 16x16 (row-major at `a`) and B
 *   16x8 at `b`: row-major K x N (`bLayout` 'k_by_n', element (k, n) at k * stride + n) or N x K
 *   ('n_by_k', at n * stride + k: a transposed weight, `x @ transpose(w)`). Each invocation holds 4 accumulators at acc[accOffset..+3]:
 *   lane l owns rows l/4 and l/4 + 8, columns 2(l%4) and 2(l%4) + 1 (acc i: row + 8*(i>=2),
 *   column + (i&1)); the PTX mma.m16n8k16 C/D fragment. Every lane of the subgroup executes it.
 * - `mma_regs`: the same product with A from registers: `aRegs[aOffset..+7]` (f32, a private
 *   array), rounded to `input`, in the order of two C fragments side by side (the accumulators of
 *   n-tiles 2j and 2j + 1 of an earlier mma are the A fragment of k slice j: FlashAttention-2's
 *   P V without a shared P tile). Element e holds row g + 8 * ((e >> 1) & 1), column
 *   2t + 8 * (e >> 2) + (e & 1) of the 16x16 A (g = lane / 4, t = lane % 4).
 * - `async_copy`: 8 consecutive elements of buffer `slot` from `index` into `array` at element
 *   `arrayOffset` (a multiple of 8), rounded to `input`; only the first `count` (u32, 0..8) are
 *   read, the rest are zero. May complete asynchronously: the data is there after `async_wait`
 *   and a barrier.
 * - `async_commit`: closes the group of async copies issued so far by this invocation.
 * - `async_wait`: waits until at most `pending` committed groups are still in flight.
 */
export type MatrixStmt =
  | { readonly kind: 'mma'; readonly input: MatrixInput; readonly acc: string; readonly accOffset: number; readonly a: TileRef; readonly b: TileRef; readonly bLayout: MmaBLayout }
  | { readonly kind: 'mma_regs'; readonly input: MatrixInput; readonly acc: string; readonly accOffset: number; readonly aRegs: string; readonly aOffset: number; readonly b: TileRef; readonly bLayout: MmaBLayout }
  | { readonly kind: 'async_copy'; readonly input: MatrixInput; readonly array: string; readonly arrayOffset: Expr; readonly slot: number; readonly index: Expr; readonly count: Expr }
  | { readonly kind: 'async_commit' }
  | { readonly kind: 'async_wait'; readonly pending: number };

export type Access = 'read' | 'read_write';

/** A global buffer slot: binding index, role name (`a`, `out`), access mode and element type. */
export interface GlobalBuffer {
  readonly slot: number;
  readonly role: string;
  readonly access: Access;
  readonly type: ScalarType;
  /** Read `vector` (4) elements per access through `load_vec` only (WGSL `array<vec4<T>>`); absent: scalar access. */
  readonly vector?: 4;
}

export interface SharedArray {
  readonly name: string;
  readonly type: ScalarType;
  readonly length: number;
}

/** The tile sizes and thread counts a kernel was built with; printed in headers. */
export type KernelSchedule =
  | { readonly kind: 'map'; readonly workgroupSize: number } // one thread per output element
  | { readonly kind: 'row'; readonly workgroupSize: number; readonly useSubgroups: boolean } // one workgroup per row
  | {
      readonly kind: 'tiled_matmul';
      readonly tileRows: number;
      readonly tileCols: number;
      readonly tileK: number;
      readonly threadRows: number; // outputs per thread along rows
      readonly threadCols: number;
      readonly isDirect?: boolean; // operands read from global memory, no workgroup tiles
      readonly laneBroadcast?: boolean; // one subgroup per workgroup, A rows broadcast from lanes (matmul/lanes.ts)
      readonly aVector?: 1 | 4; // elements per load of A / B (laneBroadcast)
      readonly bVector?: 1 | 4;
      readonly rowsFirst?: boolean; // workgroup x over row tiles (laneBroadcast)
      readonly kLanes?: boolean; // K split across one subgroup's lanes (decode steps, matmul/gemv.ts)
      readonly normFold?: 'inline' | 'separate'; // (the schedule the node was given; 'separate' kernels carry none)
    }
  | {
      readonly kind: 'flash_attention'; // attention/attention.ts: one workgroup per (query tile, head, batch)
      readonly tileRows: number;
      readonly tileCols: number;
      readonly lanes: number; // threads per query row
      readonly useSubgroups: boolean;
      readonly splits: number; // cache partitions (split-K decode), 1 for prefill
      readonly mma?: MatrixInput; // attention/mma.ts: S and P V on m16n8k16 tensor cores, 16 rows per warp
      readonly laneBroadcast?: boolean; // attention/lanes.ts: one subgroup, rows broadcast from lanes
      readonly backward?: boolean; // attention/backward.ts: dK/dV role per key tile (tileCols keys), dQ role per query tile (tileRows rows)
    }
  | {
      readonly kind: 'cross_entropy'; // lower/cross-entropy.ts: one workgroup per row of a chunk of the fused cross-entropy
      readonly workgroupSize: number;
      readonly useSubgroups: boolean;
      readonly chunkRows: number; // the schedule's chunk (Schedule.crossEntropy)
      readonly chunk: number; // this launch's chunk, 0-based, of `chunks`
      readonly chunks: number;
      readonly firstRow: number; // rows [firstRow, firstRow + rows) of `total`
      readonly rows: number;
      readonly total: number;
      readonly gradient: boolean; // writes (softmax - onehot) / N over the logits tile
    }
  | {
      readonly kind: 'mma_matmul'; // matmul/mma.ts: warps of mma tiles, multi-stage async copies
      readonly tileRows: number;
      readonly tileCols: number;
      readonly tileK: number;
      readonly warpRows: number; // warps per block along M
      readonly warpCols: number; // warps per block along N
      readonly stages: number; // shared-memory buffers of the K loop (2: double buffering)
      readonly input: MatrixInput;
    };

/** Global memory traffic and arithmetic as formulas of the dims (see analysis/traffic.ts for the rules). */
export interface Traffic {
  readonly bytesRead: SizeExpr;
  readonly bytesWritten: SizeExpr;
  readonly flops: SizeExpr;
  /**
   * Fused attention prefill: the part of `bytesRead` and `flops` that is spent per key tile (K/V
   * loads, scores, lambda reads), counted above for every tile; the traffic report scales it by
   * the tiles block sparsity lets the kernel visit at the report's dims (attention/count.ts).
   */
  readonly perTile?: { readonly bytesRead: SizeExpr; readonly flops: SizeExpr; readonly tiles: AttentionTiles };
  /**
   * The fused attention backward (attention/backward.ts), whose `perTile` is its dQ role (the
   * forward's tile walk): the part its dK/dV role spends per (key tile, query head, query tile)
   * triple, scaled by the triples that role's block sparsity visits (count.ts countBackwardKvTiles).
   */
  readonly perKvTile?: { readonly bytesRead: SizeExpr; readonly flops: SizeExpr };
}

/** A fused attention kernel's tile geometry, as its block-sparsity statements see it (attention/sparsity.ts). */
export interface AttentionTiles {
  /** Tile rows per workgroup: (query row, head) pairs. */
  readonly rows: number;
  /** Query heads per workgroup (GQA: heads sharing a KV head's tiles). */
  readonly heads: number;
  /** Keys per tile. */
  readonly cols: number;
  /** Split-K decode: cache partitions per query tile (workgroup x = tile * splits + partition); absent for prefill. */
  readonly splits?: number;
}

export interface Kernel {
  readonly name: string; // sanitized, unique in the program
  readonly op: string; // the graph op (or ops) it computes, for listings
  readonly locs: readonly string[]; // `file:line:col` of the graph nodes
  readonly workgroupSize: readonly [number, number, number];
  readonly grid: readonly [SizeExpr, SizeExpr, SizeExpr]; // workgroups per axis
  readonly uniforms: readonly string[]; // dims read, in graph order; u32 each
  readonly buffers: readonly GlobalBuffer[];
  readonly shared: readonly SharedArray[];
  readonly body: readonly Stmt[];
  readonly schedule: KernelSchedule;
  readonly traffic: Traffic;
  /** Graph values bound to each slot, same order as `buffers` (used by compile-plan). */
  readonly bindings: readonly number[];
  /** Launch only when this holds for the run's dims (two paths for one op; see plan/plan.ts). */
  readonly when?: StepCondition;
}

/** A buffer a lowering needs that is no graph value (split-K partials): id >= the graph's node count. */
export interface KernelTemp {
  readonly dtype: DType;
  readonly elements: SizeExpr;
}

/** The lowered program: kernels in launch order plus where each graph value lives. */
export interface KernelProgram {
  readonly graph: string;
  readonly dims: readonly string[];
  readonly kernels: readonly Kernel[];
  /**
   * For each graph node id: the node whose buffer holds its data (itself, or the source of a
   * reshape view), or 'folded' for scalar constants folded into consumers as literals.
   */
  readonly storage: ReadonlyMap<number, number | 'folded'>;
  /** Temps that are not graph values, by the ids kernels bind them with. */
  readonly temps?: ReadonlyMap<number, KernelTemp>;
  /** Per kernel (same order), the graph node it was lowered from: `tfc tune` times a shape's kernels by it. */
  readonly origin?: readonly number[];
}

// ---- builders (small helpers so lowering reads like the loop nest) ----

export const lit = (type: ScalarType, value: number): Expr => ({ kind: 'lit', type, value });
export const u32 = (value: number): Expr => lit('u32', value);
export const v = (name: string, type: ScalarType): Expr => ({ kind: 'var', name, type });
export const uniform = (dim: string): Expr => ({ kind: 'uniform', dim });
export const builtin = (id: BuiltinId, axis: 0 | 1 | 2 = 0): Expr => ({ kind: 'builtin', id, axis });
export const load = (slot: number, index: Expr, type: ScalarType): Expr => ({ kind: 'load', slot, index, type });
export const arrayLoad = (array: string, index: Expr, type: ScalarType): Expr => ({ kind: 'array_load', array, index, type });
export const cast = (to: ScalarType, arg: Expr): Expr => {
  if (exprType(arg) === to) return arg;
  // An i8 value widened to i32 for arithmetic and narrowed again (a copy into an i8 output) is itself.
  if (to === 'i8' && arg.kind === 'cast' && arg.to === 'i32' && exprType(arg.arg) === 'i8') return arg.arg;
  return { kind: 'cast', to, arg };
};
export const call = (fn: MathFn, args: readonly Expr[], type: ScalarType): Expr => ({ kind: 'call', fn, args, type });
export const select = (cond: Expr, ifTrue: Expr, ifFalse: Expr): Expr => ({ kind: 'select', cond, ifTrue, ifFalse, type: exprType(ifTrue) });
export const subgroup = (op: Exclude<SubgroupOp, 'shuffle'>, arg: Expr): Expr => ({ kind: 'subgroup', op, arg, type: exprType(arg) });
/** `arg` as held by the invocation at the constant subgroup lane `lane` (< the subgroup size). */
export const subgroupBroadcast = (arg: Expr, lane: number): Expr => ({ kind: 'subgroup', op: 'broadcast', arg, lane: u32(lane), type: exprType(arg) });
/** `arg` as held by the invocation at subgroup lane `lane` (u32, < the subgroup size). */
export const subgroupShuffle = (arg: Expr, lane: Expr): Expr => ({ kind: 'subgroup', op: 'shuffle', arg, lane, type: exprType(arg) });
export const unary = (op: UnaryOp, arg: Expr): Expr => ({ kind: 'unary', op, arg, type: exprType(arg) });

const comparisons: ReadonlySet<BinaryOp> = new Set(['lt', 'le', 'gt', 'ge', 'eq', 'ne', 'and', 'or']);
export function bin(op: BinaryOp, a: Expr, b: Expr): Expr {
  return { kind: 'binary', op, a, b, type: comparisons.has(op) ? 'bool' : exprType(a) };
}
/** u32 arithmetic with constant folding of literal operands (keeps index math readable). */
export function add(a: Expr, b: Expr): Expr {
  if (isLit(a, 0)) return b;
  if (isLit(b, 0)) return a;
  if (a.kind === 'lit' && b.kind === 'lit' && a.type === 'u32') return u32(a.value + b.value);
  return bin('add', a, b);
}
export function mul(a: Expr, b: Expr): Expr {
  if (isLit(a, 1)) return b;
  if (isLit(b, 1)) return a;
  if (isLit(a, 0) || isLit(b, 0)) return lit(exprType(a), 0);
  if (a.kind === 'lit' && b.kind === 'lit' && a.type === 'u32') return u32(a.value * b.value);
  return bin('mul', a, b);
}
export const sub = (a: Expr, b: Expr): Expr => (isLit(b, 0) ? a : bin('sub', a, b));
export const div = (a: Expr, b: Expr): Expr => (isLit(b, 1) ? a : bin('div', a, b));
export const rem = (a: Expr, b: Expr): Expr => (isLit(b, 1) ? lit(exprType(a), 0) : bin('rem', a, b));
export const lt = (a: Expr, b: Expr): Expr => bin('lt', a, b);
export const and = (a: Expr, b: Expr): Expr => bin('and', a, b);

export function isLit(e: Expr, value: number): boolean {
  return e.kind === 'lit' && e.value === value;
}

export function exprType(e: Expr): ScalarType {
  switch (e.kind) {
    case 'lit':
    case 'var':
    case 'load':
    case 'array_load':
    case 'unary':
    case 'binary':
    case 'call':
    case 'select':
    case 'subgroup':
      return e.type;
    case 'builtin':
    case 'uniform':
      return 'u32';
    case 'cast':
      return e.to;
    default:
      return assertNever(e);
  }
}

/** Visits every expression under `stmts` (pre-order), including nested statement bodies. */
export function forEachExpr(stmts: readonly Stmt[], f: (e: Expr) => void): void {
  const visit = (e: Expr): void => {
    f(e);
    switch (e.kind) {
      case 'lit':
      case 'var':
      case 'builtin':
      case 'uniform':
        return;
      case 'load':
      case 'array_load':
        return visit(e.index);
      case 'unary':
      case 'cast':
        return visit(e.arg);
      case 'subgroup':
        visit(e.arg);
        if (e.lane !== undefined) visit(e.lane);
        return;
      case 'binary':
        visit(e.a);
        return visit(e.b);
      case 'call':
        return e.args.forEach(visit);
      case 'select':
        visit(e.cond);
        visit(e.ifTrue);
        return visit(e.ifFalse);
      default:
        return assertNever(e);
    }
  };
  for (const s of stmts) {
    switch (s.kind) {
      case 'let':
      case 'var':
      case 'private_array':
        visit(s.init);
        break;
      case 'assign':
        visit(s.value);
        break;
      case 'store':
      case 'array_store':
        visit(s.index);
        visit(s.value);
        break;
      case 'load_vec':
        visit(s.index);
        break;
      case 'for':
        visit(s.start);
        visit(s.end);
        visit(s.step);
        forEachExpr(s.body, f);
        break;
      case 'if':
        visit(s.cond);
        forEachExpr(s.then, f);
        forEachExpr(s.else, f);
        break;
      case 'mma':
        visit(s.a.offset);
        visit(s.b.offset);
        break;
      case 'mma_regs':
        visit(s.b.offset);
        break;
      case 'async_copy':
        visit(s.arrayOffset);
        visit(s.index);
        visit(s.count);
        break;
      case 'barrier':
      case 'comment':
      case 'async_commit':
      case 'async_wait':
        break;
      default:
        assertNever(s);
    }
  }
}

/** Every statement, nested ones included (pre-order). */
export function forEachStmt(stmts: readonly Stmt[], f: (s: Stmt) => void): void {
  for (const s of stmts) {
    f(s);
    if (s.kind === 'for') forEachStmt(s.body, f);
    if (s.kind === 'if') {
      forEachStmt(s.then, f);
      forEachStmt(s.else, f);
    }
  }
}

/** Whether the kernel uses matrix intrinsics (`mma`, `async_*`), which only some targets print. */
export function usesMatrixStmts(k: Kernel): boolean {
  let found = false;
  forEachStmt(k.body, (s) => {
    if (s.kind === 'mma' || s.kind === 'mma_regs' || s.kind === 'async_copy' || s.kind === 'async_commit' || s.kind === 'async_wait') found = true;
  });
  return found;
}

/** What a kernel needs from the target: f16 arithmetic, subgroup operations. */
export function kernelFeatures(k: Kernel): { readonly usesF16: boolean; readonly usesSubgroups: boolean } {
  let usesF16 = k.buffers.some((b) => b.type === 'f16') || k.shared.some((a) => a.type === 'f16');
  let usesSubgroups = false;
  forEachExpr(k.body, (e) => {
    if (exprType(e) === 'f16') usesF16 = true;
    if (e.kind === 'subgroup') usesSubgroups = true;
    if (e.kind === 'builtin' && (e.id === 'subgroup_size' || e.id === 'subgroup_lane')) usesSubgroups = true;
  });
  forEachStmt(k.body, (s) => {
    if (s.kind === 'mma' || s.kind === 'mma_regs') usesSubgroups = true; // a warp collective: needs whole warps
    if ((s.kind === 'let' || s.kind === 'var' || s.kind === 'private_array' || s.kind === 'load_vec') && s.type === 'f16') usesF16 = true;
  });
  return { usesF16, usesSubgroups };
}
