// Schedules for the plain lowering: tile sizes and thread counts chosen from the target's
// limits, never inside lower/lower.ts. A test (or `tfc tune`, later) can pass its own Schedule.
import type { AttentionBackwardSchedule, AttentionSchedule } from '../attention/schedule.js';
import type { Graph, Node } from '../../graph/ir.js';
import { dimConst, dimConstValue } from '../../base/dim.js';
import { hasVectorRuns, unitStrideAxis } from '../lower/view.js';
import { printType } from '../../graph/types.js';

/** What the lowering may assume about the device (WebGPU adapter limits, CUDA properties). */
export interface TargetLimits {
  readonly name: string;
  readonly maxWorkgroupStorageBytes: number;
  readonly maxInvocationsPerWorkgroup: number;
  readonly maxWorkgroupsPerDim: number;
  /** 0 when subgroup operations are unavailable; otherwise the smallest subgroup size. */
  readonly subgroupSize: number;
  readonly hasF16: boolean;
  /**
   * A CPU implementation (lavapipe, SwiftShader): invocations are SIMD lanes of one CPU thread,
   * workgroup memory and global loads go through the same caches, and barriers switch coroutines.
   * Schedules then read operands directly instead of staging tiles (docs/performance.md, Performance
   * notes). Absent means a GPU.
   */
  readonly isCpu?: boolean;
  /**
   * Tensor cores with mma.sync m16n8k16 for f16/bf16 inputs and cp.async (NVIDIA sm_80+): f16/bf16
   * matmuls lower to matmul/mma.ts. Only CUDA targets set it; the WGSL printer cannot print those kernels.
   */
  readonly tensorCores?: boolean;
}

/** WebGPU defaults every adapter offers (no subgroups assumed). */
export const webgpuDefaultLimits: TargetLimits = {
  name: 'webgpu-default',
  maxWorkgroupStorageBytes: 16384,
  maxInvocationsPerWorkgroup: 256,
  maxWorkgroupsPerDim: 65535,
  subgroupSize: 0,
  hasF16: false,
};

/** Mesa lavapipe through Dawn (see DEVELOPERS.md): subgroups of 8, shader-f16, 32 KiB storage. */
export const lavapipeLimits: TargetLimits = {
  name: 'lavapipe',
  maxWorkgroupStorageBytes: 32768,
  maxInvocationsPerWorkgroup: 1024,
  maxWorkgroupsPerDim: 65535,
  subgroupSize: 8,
  hasF16: true,
  isCpu: true,
};

/**
 * CUDA sm_80+ (A100/H100): 48 KiB static `__shared__` per block (opt-in dynamic shared memory goes
 * to 99 KiB on sm_80 and 227 KiB on sm_90, not used yet), 1024 threads per block, warps of 32 and
 * native f16. Grid y/z are capped at 65535 (x allows 2^31-1; the lowering folds y into x).
 */
export const cudaLimits: TargetLimits = {
  name: 'cuda-sm80',
  maxWorkgroupStorageBytes: 49152,
  maxInvocationsPerWorkgroup: 1024,
  maxWorkgroupsPerDim: 65535,
  subgroupSize: 32,
  hasF16: true,
  tensorCores: true,
};

export interface MatmulSchedule {
  readonly tileRows: number; // output rows per workgroup (M)
  readonly tileCols: number; // output columns per workgroup (N)
  readonly tileK: number; // K slice staged in workgroup memory per step
  readonly threadRows: number; // outputs per thread along M
  readonly threadCols: number; // outputs per thread along N
  /**
   * Read A and B straight from global memory in the K loop (no workgroup tiles, no barriers;
   * `tileK` unused). Faster on CPU targets, where a staged tile is only an extra copy.
   */
  readonly isDirect?: boolean;
  /**
   * Subgroup-broadcast outer product (matmul/lanes.ts; what a CPU adapter wants): the
   * workgroup is one subgroup of L lanes (threadRows = tileRows, tileCols = L x threadCols). Lane
   * l loads A's rows l, l + L, ... along K; `subgroupBroadcast` hands each row's values to every
   * lane (on a CPU: one lane extract, where a per-lane load is a gather); each lane multiplies
   * them into its threadCols contiguous columns of B. Every A and B element is loaded once per
   * workgroup, by one lane. `tileK` is the unrolled K step. Needs subgroups.
   */
  readonly laneBroadcast?: boolean;
  /** laneBroadcast: elements per load of A along K, 4 (vector loads: K a multiple of 4, A contiguous along K) or 1. */
  readonly aVector?: 1 | 4;
  /** laneBroadcast: elements per load of B along its contiguous axis (N, or K for a transposed weight), 4 or 1. */
  readonly bVector?: 1 | 4;
  /**
   * laneBroadcast: workgroup x runs over row tiles (y over column tiles), so consecutive
   * workgroups share one column strip of B and read it from memory once instead of once per row
   * tile (A, the activations, is the smaller operand and stays in cache): 1.3-1.8x on lavapipe at
   * GPT-2 small's shapes.
   */
  readonly rowsFirst?: boolean;
  /**
   * K split across the lanes of one subgroup (matmul/gemv.ts; decode-shaped matmuls): the
   * workgroup owns tileRows x tileCols outputs (threadRows/threadCols equal them: every lane holds
   * the whole tile), lane l reads k = k0 + l tileK ..., one subgroupAdd per output at the end.
   * Each weight element is read once per row tile with no idle lane. Needs subgroups.
   */
  readonly kLanes?: boolean;
  /**
   * Streaming decode matmul (matmul/stream.ts): workgroups of one subgroup over tiles of
   * tileK weight rows x tileCols columns (a multiple of 4 x the subgroup size), lanes reading
   * adjacent vec4s of one row at a time; partial sums per tile go to a temp that a second kernel
   * reduces (with the epilogue). tileRows rows of A per workgroup. Needs a 2-D weight contiguous
   * along N.
   */
  readonly kSplit?: boolean;
  /**
   * How a fused_matmul's folded norm (fuse-norm) runs: 'inline' (default) folds it into the K
   * loop; 'separate' runs it as a row kernel into a temp that the matmul reads (two kernels).
   * Fusion as a schedule choice: on lavapipe the inline fold cost the lane kernel 7-57% (gamma@W
   * and beta@W per column, a mean pass over A per workgroup) while a one-subgroup layernorm
   * kernel moves M x K x 12 bytes in well under a millisecond (docs/performance.md).
   */
  readonly normFold?: 'inline' | 'separate';
  /**
   * How a paired fused_matmul (`pair`: silu(gate) * up over the two halves of a packed gate/up
   * product, pack-weights + fuse-epilogue) runs: 'inline', the kernel computes each result
   * column's gate and up products in the same thread (the tile's columns are split between the
   * two halves) and writes only the result, one dispatch; 'separate' (absent), the product
   * [.., 2N] goes to a temp and a map kernel applies the epilogue (two dispatches). 'inline'
   * needs the K-split GEMV (kLanes) or the tiled kernel (staged or direct; even threadCols);
   * lowering refuses it elsewhere (ScheduleError), and the tensor-core path always runs separate
   * (MmaMatmulSchedule has no such field). The templates choose: the decode GEMV and the GPU
   * tiles inline (the decode step's minimum of dispatches), the CPU adapter's prefill lane kernel
   * separate (not built there).
   */
  readonly pairFold?: 'inline' | 'separate';
}

/**
 * The tensor-core matmul (matmul/mma.ts): a tileRows x tileCols block tile, K in steps of tileK
 * (a multiple of 16), warpRows x warpCols warps each owning a (tileRows/warpRows) x
 * (tileCols/warpCols) part as m16n8 mma tiles (so multiples of 16 and 8), two shared-memory stages.
 */
export interface MmaMatmulSchedule {
  readonly tileRows: number;
  readonly tileCols: number;
  readonly tileK: number;
  readonly warpRows: number;
  readonly warpCols: number;
}

/**
 * The tensor-core prefill attention (attention/mma.ts): tileRows query rows per block, 16
 * per warp; K/V tiles of tileCols keys (halved while the Q, K and V tiles exceed the target's
 * shared memory: 32 keys at dk = dv = 128).
 */
export interface MmaAttentionSchedule {
  readonly tileRows: number;
  readonly tileCols: number;
}

/** Shared memory of the mma attention: Q (tileRows x dk), K (keys x dk), V (keys x dv), 16-bit, rows padded. */
export function mmaAttentionSharedBytes(rows: number, keys: number, dk: number, dv: number): number {
  return 2 * (rows * (dk + mmaTilePad) + keys * (dk + mmaTilePad) + keys * (dv + mmaTilePad));
}

/**
 * The tensor-core attention backward (attention/mma-backward.ts, FlashAttention-2's backward on
 * m16n8k16): query tiles of tileRows rows and key tiles of tileCols keys, both multiples of 16
 * (16 rows or keys per warp). The dK/dV role's block is a key tile (tileCols / 16 warps) streaming
 * query tiles; the dQ role's block a query tile (tileRows / 16 warps) streaming key tiles. Halved
 * (the larger, both when equal) while the tiles exceed the target's shared memory.
 */
export interface MmaAttentionBackwardSchedule {
  readonly tileRows: number;
  readonly tileCols: number;
}

/** Shared memory of the mma backward: Q and dO (tileRows rows), K and V (keys), 16-bit, rows padded; each row's LSE and D in f32. */
export function mmaAttentionBackwardSharedBytes(rows: number, keys: number, dk: number, dv: number): number {
  return 2 * (rows + keys) * (dk + dv + 2 * mmaTilePad) + 8 * rows;
}

/** Row padding of the mma tiles in 16-bit elements: keeps rows 16-byte aligned for cp.async and shifts banks. */
export const mmaTilePad = 8;

/**
 * Shared memory of the mma matmul: two stages of an A tile and a B tile of 16-bit elements, rows
 * padded; B as K x N or (transposed weights) N x K, whichever is larger.
 */
export function mmaSharedBytes(m: MmaMatmulSchedule): number {
  const b = Math.max(m.tileK * (m.tileCols + mmaTilePad), m.tileCols * (m.tileK + mmaTilePad));
  return 2 * 2 * (m.tileRows * (m.tileK + mmaTilePad) + b);
}

export interface Schedule {
  /** Threads per workgroup of one-thread-per-element kernels. */
  readonly mapWorkgroupSize: number;
  /** Threads per workgroup of one-workgroup-per-row kernels (reductions, softmax, norms). */
  readonly rowWorkgroupSize: number;
  readonly useSubgroups: boolean;
  readonly matmul: MatmulSchedule;
  /** f16/bf16 matmuls on tensor cores (targets with `tensorCores`); absent: they take `matmul`. */
  readonly mmaMatmul?: MmaMatmulSchedule;
  /** f16/bf16 fused attention prefill on tensor cores (targets with `tensorCores`); absent: the scalar kernel. */
  readonly mmaAttention?: MmaAttentionSchedule;
  /** f16/bf16 fused attention backward on tensor cores (targets with `tensorCores`); absent: the f32 kernel (`attentionBackward`). */
  readonly mmaAttentionBackward?: MmaAttentionBackwardSchedule;
  readonly maxWorkgroupsPerDim: number;
  /**
   * Matmuls with at most `maxRows` rows (M, batch folded in; a decode step) take `schedule`
   * instead of `matmul`; where M is symbolic the plan holds both kernels, guarded by `when`.
   */
  readonly decodeMatmul?: {
    readonly maxRows: number;
    readonly schedule: MatmulSchedule;
    /** For a 2-D weight contiguous along N (a [K, N] weight): the streaming kSplit schedule instead (decodeScheduleFor). */
    readonly streaming?: MatmulSchedule;
  };
  /** Forces fused attention tiles; absent: chosen per node from the target (attention/attention.ts). */
  readonly attention?: AttentionSchedule;
  /** Forces the fused cross-entropy's chunk of rows; absent: chooseCrossEntropySchedule per node (lower/cross-entropy.ts). */
  readonly crossEntropy?: CrossEntropySchedule;
  /** Forces the fused attention backward's tiles; absent: chosen per node from the target (attention/backward.ts). */
  readonly attentionBackward?: AttentionBackwardSchedule;
  /**
   * Per-shape overrides (`tfc tune`'s cached winners), keyed by `scheduleShapeKey`; a node whose
   * key is absent uses `matmul` / `attention` above.
   */
  readonly byShape?: {
    readonly matmul?: Readonly<Record<string, MatmulSchedule>>;
    readonly attention?: Readonly<Record<string, AttentionSchedule>>;
  };
}

/**
 * A schedule that cannot lower the node it was given (a hand-written or cached schedule, or a
 * chooser bug): lowering never falls back silently. `field` names the offending schedule field.
 */
export class ScheduleError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`illegal schedule: ${field}: ${message}`);
    this.name = 'ScheduleError';
  }
}

/**
 * The CPU adapter's matmul: subgroup-broadcast tiles of 2L x 4L (16 x 32 on lavapipe's 8 lanes),
 * 4 columns per lane, K steps of 4, row tiles first. 2.2-3.3x the direct 8x8 kernel at GPT-2
 * small's shapes, ~75% of the adapter's measured FMA peak (docs/performance.md, Performance notes).
 * 4L-row tiles ran at the same speed but took 6x longer to compile (12 s for a layernorm + gelu
 * kernel on lavapipe: 128 accumulators per lane spill). Vector widths are left to
 * specializeMatmul per node.
 */
export function laneMatmulTemplate(lanes: number): MatmulSchedule {
  return { tileRows: 2 * lanes, tileCols: 4 * lanes, tileK: 4, threadRows: 2 * lanes, threadCols: 4, laneBroadcast: true, rowsFirst: true };
}

/**
 * The CPU adapter's decode-step matmul: K split over the subgroup's lanes, one row, 8 columns per
 * workgroup, K steps of 4 per lane (matmul/gemv.ts). 8 columns streamed 1.5-3.5x faster than
 * 32 on lavapipe at 768 x 3072 (scratch GEMV variants; more workgroups, fewer streams per lane).
 * A folded norm runs inline (normalize on load) for the decode step's minimum of dispatches
 * (docs/performance.md, "Decode dispatches"); see decodeNormFold.
 */
export function gemvTemplate(): MatmulSchedule {
  return { tileRows: 1, tileCols: 8, tileK: 4, threadRows: 1, threadCols: 8, kLanes: true, normFold: decodeNormFold, pairFold: 'inline' };
}

/**
 * How the decode templates run a folded norm: 'inline', each GEMV workgroup computes its row's
 * statistics (one row: K floats read twice from cache) and normalizes A on load, so the norm is
 * no dispatch of its own (GPT-2 small: 2 per layer + ln_f, 174 -> 149 per step); 'separate', a
 * one-row norm kernel then the plain GEMV. Measured on lavapipe (quiet, one hour, docs/performance.md):
 * inline made c_fc and the LM head ~1.7x slower (15.9 vs 9.1 ms, 16.3 vs 11.8 ms per step) and the
 * decode step 118 vs 102 ms, so 'separate'. `tfc tune` times both.
 */
export const decodeNormFold: 'inline' | 'separate' = 'separate';

/**
 * The CPU adapter's decode matmul for [K, N] weights: tiles of 32 weight rows x 16L columns
 * (matmul/stream.ts), one row of A.
 */
export function streamTemplate(lanes: number): MatmulSchedule {
  return { tileRows: 1, tileCols: 16 * lanes, tileK: 32, threadRows: 1, threadCols: 16, kSplit: true, normFold: decodeNormFold };
}

/**
 * The chooser's decode schedule for a node: the streaming one where the weight is 2-D and
 * contiguous along N in vec4 runs (GPT-2's Conv1D weights) and the batch folds into the rows,
 * else the K-split one (a transposed weight, Llama's projections and the LM head, streams well
 * with it: lanes read along K within one weight row).
 */
export function decodeScheduleFor(g: Graph, n: Node, d: NonNullable<Schedule['decodeMatmul']>): MatmulSchedule {
  const a = g.nodes[n.operands[0] ?? -1];
  const b = g.nodes[n.operands[1] ?? -1];
  if (d.streaming === undefined || a === undefined || b === undefined) return d.schedule;
  const folds = b.type.shape.length === 2 && a.type.shape.length === n.type.shape.length;
  return folds && unitStrideAxis(g, b) === 1 && hasVectorRuns(g, b, 1, 4) ? d.streaming : d.schedule;
}

/**
 * The chooser's per-node step for a matmul: a laneBroadcast schedule whose vector widths are
 * unset gets 4-element loads of A (along K) and of B (along its contiguous axis) wherever the
 * operand's layout and K allow (hasVectorRuns), else 1. Fields a schedule sets (a test, a tune
 * cache, a file) are kept as they are: lowering validates them and fails naming the field.
 */
export function specializeMatmul(g: Graph, n: Node, ms: MatmulSchedule, operands?: { readonly a: Node; readonly b: Node }): MatmulSchedule {
  if (ms.laneBroadcast !== true && ms.kLanes !== true && ms.kSplit !== true) return ms;
  // `operands`: a lowering's own matmul (no graph node) names its operands itself.
  const a = operands?.a ?? g.nodes[n.operands[0] ?? -1];
  const b = operands?.b ?? g.nodes[n.operands[1] ?? -1];
  if (a === undefined || b === undefined) return ms;
  if (ms.kSplit === true) return ms;
  // A template's norm without a choice (the lane kernel's): a separate row kernel where A is a
  // plain buffer. The lane kernel's inline fold cost 7-57% (prefill). The decode templates say
  // theirs (decodeNormFold).
  if (ms.normFold === undefined && n.op === 'fused_matmul' && n.attrs['norm'] !== undefined && a.op !== 'view') ms = { ...ms, normFold: 'separate' };
  if (ms.aVector !== undefined && ms.bVector !== undefined) return ms;
  const aRank = a.type.shape.length;
  const bRank = b.type.shape.length;
  const K = dimConstValue(a.type.shape[aRank - 1] ?? dimConst(1));
  // The K-split kernel has no scalar tail: a template's K step drops to 1 where it cannot divide K.
  if (ms.kLanes === true && ms.aVector === undefined && (K === undefined || K % ms.tileK !== 0)) ms = { ...ms, tileK: 1 };
  const whole = K !== undefined && K % ms.tileK === 0 && ms.tileK % 4 === 0;
  const vecTypes = new Set(['f32', 'f16', 'bf16']);
  const aVector = ms.aVector ?? (whole && vecTypes.has(a.type.dtype) && hasVectorRuns(g, a, aRank - 1, 4) ? 4 : 1);
  // B's loads run along its contiguous axis (the lowering's loop layout): N, or K for a transposed weight.
  const alongK = unitStrideAxis(g, b) === bRank - 2;
  const bRuns = alongK ? whole && hasVectorRuns(g, b, bRank - 2, 4) : ms.threadCols % 4 === 0 && K !== undefined && K % ms.tileK === 0 && hasVectorRuns(g, b, bRank - 1, 4);
  const bVector = ms.bVector ?? (bRuns && vecTypes.has(b.type.dtype) ? 4 : 1);
  return { ...ms, aVector, bVector };
}

/** `tfc tune`'s shape key of a matmul / fused_matmul / fused_attention node: operand types -> result type. */
export function scheduleShapeKey(g: Graph, n: Node): string {
  const count = n.op === 'fused_attention' ? 3 : 2;
  const types = n.operands.slice(0, count).map((id) => {
    const o = g.nodes[id];
    return o === undefined ? '?' : printType(o.type);
  });
  return `${types.join(',')}->${printType(n.type)}`;
}

/** Shared memory of the tiled matmul: an A tile and a B tile of f32. */
export function matmulSharedBytes(m: MatmulSchedule): number {
  return 4 * (m.tileRows * m.tileK + m.tileK * m.tileCols);
}

/** Shared memory of a row kernel: one f32 partial per thread for each reduction phase (2 phases). */
export function rowSharedBytes(workgroupSize: number): number {
  return 2 * 4 * workgroupSize;
}

/**
 * 64x64 output tiles with 4x4 outputs per thread (256 threads, 8 KiB of tiles) where the target
 * allows, else 32x32 with 2x2 (256 threads, 4 KiB), else 16x16 with 1x1. A CPU target gets
 * 64x64 tiles of 8x8 outputs per thread (64 threads = 8 SIMD rows of 8 lanes) read directly:
 * 3-4x the staged 16x16-thread kernel on lavapipe (bench/matmul-lavapipe.ts).
 */
export function chooseSchedule(target: TargetLimits): Schedule {
  if (target.isCpu === true && target.maxInvocationsPerWorkgroup >= 64) {
    return {
      mapWorkgroupSize: Math.min(256, target.maxInvocationsPerWorkgroup),
      // A row (softmax, norms, reductions) per subgroup: its lanes stride the row and one subgroup
      // reduction folds it, no workgroup memory or barrier (256 threads cost 32 coroutines per row).
      rowWorkgroupSize: target.subgroupSize > 0 ? target.subgroupSize : Math.min(256, target.maxInvocationsPerWorkgroup),
      useSubgroups: target.subgroupSize > 0,
      matmul: target.subgroupSize > 0 ? laneMatmulTemplate(target.subgroupSize) : { tileRows: 64, tileCols: 64, tileK: 16, threadRows: 8, threadCols: 8, isDirect: true },
      ...(target.subgroupSize > 0 ? { decodeMatmul: { maxRows: 1, schedule: gemvTemplate(), streaming: streamTemplate(target.subgroupSize) } } : {}),
      maxWorkgroupsPerDim: target.maxWorkgroupsPerDim,
    };
  }
  // Paired epilogues inline where a thread holds both halves' columns (threadCols even).
  const candidates: readonly MatmulSchedule[] = [
    { tileRows: 64, tileCols: 64, tileK: 16, threadRows: 4, threadCols: 4, pairFold: 'inline' },
    { tileRows: 32, tileCols: 32, tileK: 16, threadRows: 2, threadCols: 2, pairFold: 'inline' },
    { tileRows: 16, tileCols: 16, tileK: 16, threadRows: 1, threadCols: 1 },
  ];
  const fits = (m: MatmulSchedule): boolean =>
    matmulSharedBytes(m) <= target.maxWorkgroupStorageBytes &&
    (m.tileRows / m.threadRows) * (m.tileCols / m.threadCols) <= target.maxInvocationsPerWorkgroup;
  const matmul = candidates.find(fits) ?? { tileRows: 8, tileCols: 8, tileK: 8, threadRows: 1, threadCols: 1 };
  const threads = Math.min(256, target.maxInvocationsPerWorkgroup);
  // 64x64x32 with 2x2 warps of 32x32 (2x4 mma tiles, 32 f32 accumulators per thread), 19 KiB of
  // double-buffered tiles: several blocks per SM, ample for the model widths we compile.
  const mma: MmaMatmulSchedule = { tileRows: 64, tileCols: 64, tileK: 32, warpRows: 2, warpCols: 2 };
  const hasMma = target.tensorCores === true && target.subgroupSize === 32 && mmaSharedBytes(mma) <= target.maxWorkgroupStorageBytes;
  return {
    mapWorkgroupSize: threads,
    rowWorkgroupSize: threads,
    useSubgroups: target.subgroupSize > 0,
    matmul,
    ...(hasMma ? { mmaMatmul: mma, mmaAttention: { tileRows: 64, tileCols: 64 }, mmaAttentionBackward: { tileRows: 64, tileCols: 64 } } : {}),
    maxWorkgroupsPerDim: target.maxWorkgroupsPerDim,
  };
}

/**
 * The fused cross-entropy (lower/cross-entropy.ts): rows are taken `chunkRows` at a time; each
 * chunk's logits tile [chunkRows, V] (f32) is the only vocabulary-wide buffer of the loss and its
 * gradient, written by the LM head's matmul, overwritten by the gradient in place, then read by
 * the dh and dw products.
 */
export interface CrossEntropySchedule {
  readonly chunkRows: number;
}

/**
 * The logits tile budget: half of WebGPU's guaranteed 128 MiB storage binding (GPT-2 small: 333
 * rows of 50257 fit, 320 taken). Smaller tiles mean more chunks, and each chunk is its own
 * kernels (the chunk's first row is a literal in them), so the budget trades memory for launches.
 */
export const crossEntropyTileBytes = 64 * 1024 * 1024;

/**
 * The chunk for `rows` rows over a vocabulary of `vocab`: as many rows as keep the f32 tile
 * within crossEntropyTileBytes (at least 1, at most all of them), rounded down to a multiple of 64
 * (the GPU matmul's row tile) when that leaves at least one tile.
 */
export function chooseCrossEntropySchedule(rows: number, vocab: number, budgetBytes: number = crossEntropyTileBytes): CrossEntropySchedule {
  const fit = Math.max(1, Math.floor(budgetBytes / (4 * Math.max(1, vocab))));
  if (fit >= rows) return { chunkRows: Math.max(1, rows) };
  return { chunkRows: fit >= 64 ? fit - (fit % 64) : fit };
}
