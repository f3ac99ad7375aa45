// Host-side fused attention tile counter: runs the kernel's own block-sparsity bound and class
// statements (attention/sparsity.ts) on the CPU, for tests and reports.
import type { Dim } from '../../base/dim.js';
import type { Graph, Node } from '../../graph/ir.js';
import { type EvalEnv, evalLets } from '../ir/eval-expr.js';
import { type AttentionTiles, type Expr, type Stmt, exprType, u32 } from '../ir/ir.js';
import { KernelBuilder } from '../ir/builder.js';
import { type TargetLimits, lavapipeLimits } from '../schedule/schedule.js';
import { storageType } from '../ir/storage.js';
import { type AttentionBackwardSchedule, type AttentionSchedule, type Mode, prefillMode } from './schedule.js';
import { kvTileLogic } from './sparsity-kv.js';
import { shapeOf } from './node.js';
import { type UniformRead, tileLogic } from './sparsity.js';
import { keyType, lambdaExpr, lambdaOf, queryType, valueType } from './lambdas.js';

export interface TileCounts {
  /** Query tiles x key tiles (all of them, per batch and head group: a GQA tile spans the G query heads of a KV head). */
  readonly tiles: number;
  /** Key tiles the loop iterates (inside the monotone bounds). */
  readonly iterated: number;
  /** Tiles whose K/V are loaded and scores computed (iterated and may be true). */
  readonly visited: number;
  /** Visited tiles that evaluate the mask per element. */
  readonly partial: number;
}

/**
 * Runs the prefill kernel's own block-sparsity statements (bounds per query tile, class per key
 * tile) on the host for concrete dims: how many tiles the kernel visits. `tensors` holds the
 * values (row-major) of the operands the mask reads free of q and k, by operand index as in
 * `read(i, ...)` (a per-batch length); needed only when the mask has such reads. `target`: the
 * limits the kernel is lowered for (they decide how many heads of a GQA group share a tile).
 */
export function countAttentionTiles(
  g: Graph,
  n: Node,
  dims: ReadonlyMap<string, number>,
  s: AttentionSchedule,
  tensors?: ReadonlyMap<number, ArrayLike<number>>,
  target: TargetLimits = lavapipeLimits,
): TileCounts {
  const shape = shapeOf(queryType(operandOf(g, n, 0), n), keyType(operandOf(g, n, 1), n), valueType(operandOf(g, n, 2), n));
  const mode = prefillMode(shape, s, target);
  return countTiles(g, n, dims, { rows: mode.rows, heads: mode.heads, cols: s.tileCols }, tensors);
}

function operandOf(g: Graph, n: Node, i: number): Node {
  const o = g.nodes[n.operands[i] ?? -1];
  if (o === undefined) throw new Error(`internal: fused_attention lacks operand ${i}`);
  return o;
}

/**
 * The tiles a fused attention kernel of geometry `tiles` (Traffic.perTile.tiles: what the kernel's
 * own block-sparsity statements were built with; prefill, or split-K decode with `splits`) visits
 * at `dims`. `tensors` as countAttentionTiles.
 */
export function countTiles(g: Graph, n: Node, dims: ReadonlyMap<string, number>, tiles: AttentionTiles, tensors?: ReadonlyMap<number, ArrayLike<number>>): TileCounts {
  const operand = (i: number): Node => operandOf(g, n, i);
  const shape = shapeOf(queryType(operand(0), n), keyType(operand(1), n), valueType(operand(2), n));
  const { kb, buffers, uniformRead } = hostReads(g, n, tensors);
  const splits = tiles.splits ?? 1;
  const mode: Mode = { kind: tiles.splits === undefined ? 'prefill' : 'split', rows: tiles.rows, heads: tiles.heads };
  // tileLogic reads the key tile width (and, in split mode only, the partitions) from the schedule.
  const s: AttentionSchedule = { tileRows: tiles.rows / tiles.heads, tileCols: tiles.cols, lanes: 1, useSubgroups: false, splits, decodeMaxT: 0 };
  const logic = tileLogic(kb, shape, lambdaOf(n, 'mask'), s, mode, uniformRead);
  const val = (d: Dim): number => d.terms.reduce((acc, t) => acc + t.coef * t.vars.reduce((p, x) => p * (dims.get(x) ?? NaN), 1), 0);
  const [B, Hq, T, S] = [val(shape.B), val(shape.Hq), val(shape.T), val(shape.S)];
  const qTiles = Math.ceil(T / (mode.rows / mode.heads));
  const kTiles = Math.ceil(S / tiles.cols);
  let iterated = 0;
  let visited = 0;
  let partial = 0;
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < Hq / mode.heads; h++) {
      // Split-K: workgroup x is (query tile, partition); each key tile belongs to one partition.
      for (let wx = 0; wx < qTiles * splits; wx++) {
        const env: EvalEnv = { vars: new Map(), uniforms: dims, workgroupId: [wx, h, b], buffers };
        evalLets([...logic.header, ...logic.bounds], env);
        const start = evalOf(logic.ktStart, env);
        const end = evalOf(logic.ktEnd, env);
        for (let kt = start; kt < end; kt++) {
          env.vars.set(logic.ktVar, kt);
          evalLets(logic.perTile, env);
          iterated++;
          if (evalOf(logic.mayTrue, env) !== 0) {
            visited++;
            if (evalOf(logic.mayFalse, env) !== 0) partial++;
          }
        }
      }
    }
  }
  return { tiles: B * (Hq / mode.heads) * qTiles * kTiles, iterated, visited, partial };
}

/** A kernel builder whose mask reads free of q and k load `tensors` (by operand index) on the host. */
function hostReads(g: Graph, n: Node, tensors: ReadonlyMap<number, ArrayLike<number>> | undefined): { kb: KernelBuilder; buffers: Map<number, ArrayLike<number>>; uniformRead: UniformRead } {
  const kb = new KernelBuilder();
  const buffers = new Map<number, ArrayLike<number>>(); // slot -> values
  const slots = new Map<number, number>(); // operand -> slot
  const slotOf = (i: number): number => {
    let sl = slots.get(i);
    if (sl === undefined) {
      const values = tensors?.get(i);
      if (values === undefined) throw new Error(`countAttentionTiles: the mask reads operand ${i} per workgroup; pass its values`);
      const o = operandOf(g, n, i);
      sl = kb.slot(`t${i}`, o.id, 'read', storageType(o.type.dtype));
      slots.set(i, sl);
      buffers.set(sl, values);
    }
    return sl;
  };
  const uniformRead: UniformRead = (out, e, b, h) => lambdaExpr({ kb, slotOf }, g, n, out, e, [b, h, u32(0), u32(0)], undefined);
  return { kb, buffers, uniformRead };
}

/**
 * The attention backward's dK/dV role (attention/backward.ts, fused_attention_grad node `n`):
 * runs its block-sparsity statements (attention/sparsity-kv.ts) on the host at `dims`. A tile is
 * a (key tile, query head, query tile) triple; `tensors` as countAttentionTiles. The dQ role runs
 * the forward's statements: countTiles with `{ rows: tileRows, heads: 1, cols: tileCols }`.
 */
export function countBackwardKvTiles(g: Graph, n: Node, dims: ReadonlyMap<string, number>, s: AttentionBackwardSchedule, tensors?: ReadonlyMap<number, ArrayLike<number>>): TileCounts {
  const operand = (i: number): Node => operandOf(g, n, i);
  const shape = shapeOf(operand(0).type, operand(1).type, operand(2).type);
  const { kb, buffers, uniformRead } = hostReads(g, n, tensors);
  const logic = kvTileLogic(kb, shape, lambdaOf(n, 'mask'), s.tileRows, s.tileCols, uniformRead);
  const val = (d: Dim): number => d.terms.reduce((acc, t) => acc + t.coef * t.vars.reduce((p, x) => p * (dims.get(x) ?? NaN), 1), 0);
  const [B, Hq, Hkv, T, S] = [val(shape.B), val(shape.Hq), val(shape.Hkv), val(shape.T), val(shape.S)];
  const qTiles = Math.ceil(T / s.tileRows);
  const kTiles = Math.ceil(S / s.tileCols);
  let iterated = 0;
  let visited = 0;
  let partial = 0;
  for (let b = 0; b < B; b++) {
    for (let hk = 0; hk < Hkv; hk++) {
      for (let kt = 0; kt < kTiles; kt++) {
        const env: EvalEnv = { vars: new Map(), uniforms: dims, workgroupId: [kt, hk, b], buffers };
        evalLets(logic.header, env);
        for (let gh = 0; gh < Hq / Hkv; gh++) {
          env.vars.set(logic.ghVar, gh);
          evalLets(logic.perHead, env);
          const end = evalOf(logic.qtEnd, env);
          for (let qt = evalOf(logic.qtStart, env); qt < end; qt++) {
            env.vars.set(logic.qtVar, qt);
            evalLets(logic.perTile, env);
            iterated++;
            if (evalOf(logic.mayTrue, env) !== 0) {
              visited++;
              if (evalOf(logic.mayFalse, env) !== 0) partial++;
            }
          }
        }
      }
    }
  }
  return { tiles: B * Hq * kTiles * qTiles, iterated, visited, partial };
}

function evalOf(e: Expr, env: EvalEnv): number {
  const tmp: Stmt[] = [{ kind: 'let', name: '__x', type: exprType(e), init: e }];
  evalLets(tmp, env);
  return env.vars.get('__x') ?? NaN;
}
