// fuse-attention: finds softmax(mods(q @ k^T * scale)) @ v however the model spells it and
// replaces the chain by one `fused_attention` node (op contract: docs/passes.md "Fused attention",
// src/ops/attention.ts). Runs on the webgpu and cuda pipelines; the interp pipeline keeps the
// unfused graph, so the interpreter stays the reference the fused kernels are checked against.
//
//   before (GPT-2, as the graph builder and simplify-movement leave it)
//   %22 = permute %19 {perm=[0,2,3,1]} : f32[B,4,16,T]               k^T (split_heads + transpose)
//   %23 = matmul %18, %22 : f32[B,4,T,T]
//   %24 = const {value=4.0} : f32[]
//   %25 = div %23, %24 : f32[B,4,T,T]
//   %26 = grid {body=(qi, ki) => le(ki, qi), shape=dims[T,T]} : bool[T,T]
//   %27 = const {value=-inf} : f32[]
//   %28 = where %26, %25, %27 : f32[B,4,T,T]
//   %29 = softmax %28 {axis=3} : f32[B,4,T,T]
//   %30 = matmul %29, %21 : f32[B,4,T,16]
//   after
//   %22 = permute %19 {perm=[0,2,1,3]} : f32[B,4,T,16]                k itself
//   %23 = fused_attention %18, %22, %21 {mask=(b, h, q, k) => le(k, q), scale=0.25} : f32[B,4,T,16]
//
// What is recognized (write new spellings down here and in the test):
// - the scores: `q @ kT` where kT is `permute`/`transpose` of k (composed with split_heads) or a
//   pre-transposed tensor (a permute is then emitted), or `transpose(k @ transpose(q))` (keys
//   first); scalar `mul`/`div` by constants on q, on kT or right on the scores fold into `scale`.
// - between scores and softmax, any chain of elementwise ops (one operand on the score path, the
//   others independent of it) becomes the `score` lambda: bias tensors, `grid` score mods (ALiBi,
//   relative-position tables: the grid body is inlined, its axes mapped onto (b, h, q, k) by
//   broadcast alignment, its operands become extra operands), soft-capping, additive masks.
//   Outermost `where(pred, s, -inf)` (or `where(pred, -inf, s)`, as `not(pred)`) with `pred`
//   independent of the scores become the `mask` lambda (conjoined with `and`); only an exact
//   `-inf` const is a mask, `where(pred, s, -1e9)` stays a score mod.
// - `softmax` over the last axis, used only by the matmul `p @ v`.
// - heads: scores of any rank >= 2. Leading axes are [batch, head axes...]; the head axes are
//   flattened into h (q keeps them all). K and V may broadcast trailing head axes (size 1): Llama's
//   GQA view q [B,Hkv,G,T,dk] with k [B,Hkv,1,S,dk], or MQA's k [B,1,S,dk]; then KV head = h / G,
//   exactly the op's grouping. Materialized repeats (concat/tiling of K/V heads) are read as
//   ordinary per-query-head K/V (correct, not deduplicated).
// - the LSE: `logsumexp(x, axis=-1)` of the softmax's own operand x (FlexAttention's return_lse)
//   becomes `fused_attention_lse %fused` (docs/passes.md "Attention LSE"); a logsumexp of any
//   other intermediate is an ordinary second user (not fused, and the remark names it).
// Every intermediate (scores, each mod, probabilities) must have no other user; otherwise a
// remark says why and the chain stays unfused. Needs: types inferred, simplify-movement run
// before (composed permutes). Keeps: every output; the fused node's `from` lists what it replaced.
// Over 400 lines: one pattern (matchAt) with the helpers only it uses (scale peeling, score
// lambda building) and its rewrite; docs/passes.md "Fused attention" is the contract.
import { type Dim, dimConst, dimConstValue, dimMul } from '../base/dim.js';
import type { Span } from '../diag/span.js';
import { type Attrs, type Graph, type Node, type ScalarExpr, intAttr, intsAttr, lambdaAttr } from '../graph/ir.js';
import { printSpan } from '../graph/print.js';
import { DefUse, GraphBuilder, isInterfaceNode, removeDeadNodes } from '../graph/rewrite.js';
import { ap, dimValue, i32, idx, mapScalarExpr } from '../graph/lambda.js';
import { type DType, type TensorType, isFloat, printType, shapeEquals } from '../graph/types.js';
import { attentionParams, scoreExpr } from '../ops/attention.js';
import { getOp } from '../ops/catalog.js';
import type { GraphPass, PassContext } from './pass.js';

const PASS = 'fuse-attention';

const isNarrow = (t: DType): boolean => t === 'f16' || t === 'bf16';

/**
 * A score lambda built from f16/bf16 graph ops, computed in f32: narrow applies and constants
 * become f32, narrow reads are cast to f32 where they are read (index expressions are i32 and stay).
 * `add(score(), read:f16(3, h))` -> `add(score(), cast:f32(read:f16(3, h)))`. f32 bodies are unchanged.
 */
function widenToF32(e: ScalarExpr): ScalarExpr {
  switch (e.kind) {
    case 'index':
    case 'dim':
      return e;
    case 'const':
      return isNarrow(e.dtype) ? { ...e, dtype: 'f32' } : e;
    case 'read': {
      const r = { ...e, indices: e.indices.map(widenToF32) };
      return isNarrow(e.dtype) ? ap('cast', 'f32', r) : r;
    }
    case 'apply': {
      const args = e.args.map(widenToF32);
      return { ...e, args, dtype: isNarrow(e.dtype) ? 'f32' : e.dtype };
    }
  }
}

/** A view of an old-graph value: permutes and reshapes to apply, in order. */
interface View {
  readonly base: number;
  readonly steps: readonly ({ readonly op: 'permute'; readonly perm: readonly number[] } | { readonly op: 'reshape'; readonly shape: readonly Dim[] })[];
}

interface Match {
  readonly softmax: number;
  readonly pv: number;
  readonly q: View;
  readonly k: View;
  readonly v: View;
  readonly scale: number;
  readonly mask: ScalarExpr | undefined;
  readonly score: ScalarExpr | undefined;
  /** Old ids of the tensors the lambdas read, in operand order (operand 3 + i). */
  readonly extras: readonly number[];
  /** The fused result [B, Hq, T, dv] and the P @ V shape it is reshaped back to. */
  readonly fusedType: TensorType;
  /** The nodes replaced, for `from`. */
  readonly replaced: readonly number[];
  /** `logsumexp(x, axis=-1)` of the softmax input x: they become fused_attention_lse. */
  readonly lse: readonly number[];
}

class NotFused {
  constructor(readonly reason: string) {}
}

const swapLast2 = (rank: number): number[] => [...Array.from({ length: rank - 2 }, (_, i) => i), rank - 1, rank - 2];
const isSwapLast2 = (perm: readonly number[]): boolean => perm.length >= 2 && perm.every((a, i) => a === (swapLast2(perm.length)[i] ?? -1));
const isOne = (d: Dim | undefined): boolean => d !== undefined && dimConstValue(d) === 1;
const product = (ds: readonly Dim[]): Dim => ds.reduce((p, d) => dimMul(p, d), dimConst(1));

/** Def-use facts of the input graph (src/graph/rewrite.ts DefUse) and the single-use checks a match needs. */
class Uses extends DefUse {
  /** The ids of the nodes using `id`, one per use. */
  userIds(id: number): number[] {
    return this.users(id).map((n) => n.id);
  }
  /** Users that a fusion absorbs besides the chain's own (the LSE logsumexps of the softmax input). */
  private readonly absorbed = new Map<number, ReadonlySet<number>>();
  absorb(id: number, users: readonly number[]): void {
    this.absorbed.set(id, new Set(users));
  }
  /** Throws NotFused unless `id` is used exactly once (by `by`) and is no graph output. */
  requireSingleUse(id: number, what: string): void {
    this.requireUsesWithin(id, undefined, what);
  }
  /**
   * Throws NotFused unless every use of `id` is by a node of `inside` (the fused region: a score
   * modifier may read the scores several times, `s * sigmoid(s)`) and `id` is no graph output;
   * `inside` undefined: exactly one use.
   */
  requireUsesWithin(id: number, inside: ReadonlySet<number> | undefined, what: string): void {
    const skip = this.absorbed.get(id);
    const us = this.userIds(id).filter((x) => skip?.has(x) !== true);
    if (this.isOutput(id)) throw new NotFused(`${what} is also a graph output`);
    if (inside === undefined ? us.length > 1 : us.some((x) => !inside.has(x))) {
      const list = [...new Set(us)].map((x) => `%${x} (${this.node(x).op} at ${printSpan(this.node(x).loc)})`).join(', ');
      // A logsumexp of other scores than the softmax's cannot become the fused LSE output.
      const lse = us.find((x) => this.node(x).op === 'logsumexp');
      const note = lse === undefined ? '' : `; the logsumexp at ${printSpan(this.node(lse).loc)} reads these, not the softmax's input over the key axis, so it is no LSE output of the attention`;
      throw new NotFused(`${what} used ${us.length} times, by ${list}${note}`);
    }
  }
}

function constScalar(u: Uses, id: number): number | undefined {
  const n = u.node(id);
  if (n.op !== 'const' || n.type.shape.length !== 0) return undefined;
  const v = n.attrs['value'];
  return v !== undefined && v.kind === 'float' ? v.value : undefined;
}

/** `x * c`, `c * x` or `x / c` with a scalar const c and x of the same shape: [x, factor]. */
function scalarScale(u: Uses, id: number): [number, number] | undefined {
  const n = u.node(id);
  const [a, b] = n.operands;
  if (a === undefined || b === undefined || n.operands.length !== 2) return undefined;
  const same = (x: number): boolean => shapeEquals(u.node(x).type.shape, n.type.shape) && u.node(x).type.dtype === n.type.dtype;
  if (n.op === 'mul') {
    const cb = constScalar(u, b);
    if (cb !== undefined && same(a)) return [a, cb];
    const ca = constScalar(u, a);
    if (ca !== undefined && same(b)) return [b, ca];
  }
  if (n.op === 'div') {
    const cb = constScalar(u, b);
    if (cb !== undefined && same(a)) return [a, 1 / cb];
  }
  return undefined;
}

/** Peels scalar scales off an operand of the score matmul (the scaled node may have other users). */
function peelOperandScale(u: Uses, id: number): { id: number; scale: number } {
  let cur = id;
  let scale = 1;
  for (let s = scalarScale(u, cur); s !== undefined; s = scalarScale(u, cur)) {
    cur = s[0];
    scale *= s[1];
  }
  return { id: cur, scale };
}

interface Core {
  /** The score node: matmul, or permute of a matmul (keys first). */
  readonly id: number;
  readonly q: View;
  readonly k: View;
  readonly scale: number;
  readonly replaced: readonly number[];
}

/** The score core at `id`, or undefined when `id` is not `q @ kT` / `transpose(k @ qT)`. */
function asCore(u: Uses, id: number): Core | undefined {
  const n = u.node(id);
  if (!isFloat(n.type.dtype)) return undefined;
  const rank = n.type.shape.length;
  if (n.op === 'matmul') {
    const [a, b] = n.operands;
    if (a === undefined || b === undefined) return undefined;
    const q = peelOperandScale(u, a);
    const kt = peelOperandScale(u, b);
    const ktRank = u.node(kt.id).type.shape.length;
    return { id, q: { base: q.id, steps: [] }, k: { base: kt.id, steps: [{ op: 'permute', perm: swapLast2(ktRank) }] }, scale: q.scale * kt.scale, replaced: [id] };
  }
  if (n.op === 'permute' && isSwapLast2(intsAttr(n, 'perm')) && rank >= 2) {
    const m = n.operands[0];
    if (m === undefined || u.node(m).op !== 'matmul') return undefined;
    const [a, b] = u.node(m).operands;
    if (a === undefined || b === undefined) return undefined;
    const k = peelOperandScale(u, a);
    const qt = peelOperandScale(u, b);
    const qtRank = u.node(qt.id).type.shape.length;
    return { id, q: { base: qt.id, steps: [{ op: 'permute', perm: swapLast2(qtRank) }] }, k: { base: k.id, steps: [] }, scale: k.scale * qt.scale, replaced: [m, id] };
  }
  return undefined;
}

/**
 * The score core below `id` through elementwise ops: a single one, or undefined when none; throws
 * NotFused when two different cores meet (the chain is ambiguous).
 */
function coreBelow(u: Uses, id: number, memo: Map<number, number | undefined>): number | undefined {
  if (memo.has(id)) return memo.get(id);
  memo.set(id, undefined); // a DAG, but guards against revisits
  const n = u.node(id);
  let found: number | undefined;
  if (asCore(u, id) !== undefined) found = id;
  else if (getOp(n.op)?.family === 'elementwise') {
    const below = new Set<number>();
    for (const o of n.operands) {
      const c = coreBelow(u, o, memo);
      if (c !== undefined) below.add(c);
    }
    if (below.size > 1) throw new NotFused(`its scores combine several matmuls (${[...below].map((c) => `%${c}`).join(', ')})`);
    found = [...below][0];
  }
  memo.set(id, found);
  return found;
}

/** Builds the lambdas for one attention: index mapping from score axes to (b, h, q, k), extras. */
class LambdaBuilder {
  readonly extras: number[] = [];
  constructor(
    private readonly u: Uses,
    private readonly scoreShape: readonly Dim[],
  ) {}

  private slot(id: number): number {
    const i = this.extras.indexOf(id);
    if (i >= 0) return 3 + i;
    this.extras.push(id);
    return 3 + this.extras.length - 1;
  }

  /** The index of score axis `a` as an expression of (b, h, q, k). */
  scoreAxis(a: number): ScalarExpr {
    const r = this.scoreShape.length;
    if (a === r - 1) return idx(3);
    if (a === r - 2) return idx(2);
    if (a === 0) return idx(0);
    // head axis a (1 <= a <= r-3): digit of h in the mixed radix of the head axes
    const inner = product(this.scoreShape.slice(a + 1, r - 2));
    let e: ScalarExpr = idx(1);
    if (dimConstValue(inner) !== 1) e = ap('div', 'i32', e, dimValue(inner));
    const size = this.scoreShape[a] ?? dimConst(1);
    if (a > 1) e = ap('mod', 'i32', e, dimValue(size));
    return e;
  }

  /** Index expressions for a tensor of `shape` broadcast (right-aligned) onto the scores. */
  private indicesFor(shape: readonly Dim[], map: (a: number) => ScalarExpr): ScalarExpr[] {
    const off = this.scoreShape.length - shape.length;
    if (off < 0) throw new NotFused(`a score operand of rank ${shape.length} is larger than the scores`);
    return shape.map((d, j) => (isOne(d) ? i32(0) : map(j + off)));
  }

  /** A value independent of the scores, read at the score element (b, h, q, k). */
  side(id: number): ScalarExpr {
    const n = this.u.node(id);
    if (n.op === 'const' && n.type.shape.length === 0) {
      const v = n.attrs['value'];
      if (v !== undefined && v.kind === 'float') return { kind: 'const', value: v.value, dtype: n.type.dtype };
    }
    if (n.op === 'grid') {
      // Inline the body: grid axis j is score axis j + (r - rank), or 0 where the grid has size 1.
      const axes = this.indicesFor(n.type.shape, (a) => this.scoreAxis(a));
      const body = lambdaAttr(n, 'body').body;
      return this.inline(body, axes, n.operands);
    }
    const op = getOp(n.op);
    if (op?.family === 'elementwise' && Object.entries(op.attrs).every(([k, kind]) => kind === 'dtype' && n.attrs[k]?.kind === 'dtype')) {
      // Index predicates combined outside a grid (`not(causal)`, `and(band, causal)`) stay index
      // expressions, so the kernel can still derive block sparsity from them.
      return ap(n.op, n.type.dtype, ...n.operands.map((o) => this.side(o)));
    }
    return { kind: 'read', operand: this.slot(id), indices: this.indicesFor(n.type.shape, (a) => this.scoreAxis(a)), dtype: n.type.dtype };
  }

  private inline(e: ScalarExpr, axes: readonly ScalarExpr[], operands: readonly number[]): ScalarExpr {
    return mapScalarExpr(e, (x, rec) => {
      if (x.kind === 'index') {
        const a = axes[x.axis];
        if (a === undefined) throw new Error(`internal: grid index ${x.axis} out of range`);
        return a;
      }
      if (x.kind !== 'read') return undefined;
      const o = operands[x.operand];
      if (o === undefined) throw new Error(`internal: grid reads operand ${x.operand}`);
      return { ...x, operand: this.slot(o), indices: x.indices.map(rec) };
    });
  }
}

/** Tries to fuse the attention whose softmax is `sm`; NotFused says why not. */
function matchAt(u: Uses, sm: number): Match {
  const smNode = u.node(sm);
  const x = smNode.operands[0];
  if (x === undefined) throw new NotFused('softmax has no operand');
  const r = smNode.type.shape.length;
  // logsumexp over the key axis of the very scores the softmax sees is the attention's LSE output
  // (FlexAttention's return_lse): those users of x are absorbed, not counted as other users.
  const lse = u.userIds(x).filter((id) => {
    const l = u.node(id);
    const axes = l.attrs['axes'];
    return l.op === 'logsumexp' && axes?.kind === 'ints' && axes.value.length === 1 && axes.value[0] === r - 1 && l.type.dtype === smNode.type.dtype;
  });
  u.absorb(x, lse);
  const memo = new Map<number, number | undefined>();
  const coreId = coreBelow(u, x, memo);
  if (coreId === undefined) throw new NotFused('no q @ k matmul under the softmax');
  const core = asCore(u, coreId);
  if (core === undefined) throw new Error('internal: core vanished');
  const axis = intAttr(smNode, 'axis');
  if (axis !== r - 1) throw new NotFused(`softmax is over axis ${axis}, not the key axis ${r - 1}`);
  const smUsers = u.userIds(sm);
  const pvId = smUsers[0];
  const pv = pvId === undefined ? undefined : u.node(pvId);
  if (pv === undefined || smUsers.length !== 1 || u.isOutput(sm) || pv.op !== 'matmul' || pv.operands[0] !== sm || pv.operands[1] === sm) {
    const what = smUsers.map((id) => `%${id} (${u.node(id).op} at ${printSpan(u.node(id).loc)})`).join(', ');
    throw new NotFused(`probabilities are used by ${what === '' ? 'no matmul' : what}${u.isOutput(sm) ? ' and a graph output' : ''}, not only by one '@ v'`);
  }
  const vId = pv.operands[1];
  if (vId === undefined) throw new Error('internal: matmul without rhs');
  const scoreShape = smNode.type.shape;
  const replaced = new Set<number>([...core.replaced, sm, pv.id]);
  for (const id of core.replaced) u.requireSingleUse(id, `scores at ${printSpan(u.node(id).loc)}`);
  u.requireSingleUse(sm, 'probabilities');

  // Nodes whose every use must be inside the fused region, with what to call them if not.
  const inRegion: [number, string][] = [];
  // Scalar scales right on the scores fold into `scale`.
  let scale = core.scale;
  let top = coreId;
  for (;;) {
    const users = u.userIds(top);
    const next = users[0];
    if (next === undefined || users.length !== 1 || next === sm) break;
    const s = scalarScale(u, next);
    if (s === undefined || s[0] !== top) break;
    scale *= s[1];
    top = next;
    // Checked once the region is known: the modifier may read the scaled scores several times.
    inRegion.push([top, `scaled scores at ${printSpan(u.node(top).loc)}`]);
    replaced.add(top);
  }

  const lb = new LambdaBuilder(u, scoreShape);
  const onPath = (id: number): boolean => coreBelow(u, id, memo) === coreId;
  const isNegInf = (id: number): boolean => constScalar(u, id) === -Infinity;
  const masks: ScalarExpr[] = [];
  let cur = x;
  for (;;) {
    const n = u.node(cur);
    if (cur === top || n.op !== 'where' || !shapeEquals(n.type.shape, scoreShape)) break;
    const [c, a, b] = n.operands;
    if (c === undefined || a === undefined || b === undefined || onPath(c)) break;
    if (isNegInf(b) && onPath(a)) {
      u.requireSingleUse(cur, `masked scores at ${printSpan(n.loc)}`);
      masks.push(lb.side(c));
      replaced.add(cur);
      cur = a;
    } else if (isNegInf(a) && onPath(b)) {
      u.requireSingleUse(cur, `masked scores at ${printSpan(n.loc)}`);
      const pred = lb.side(c);
      masks.push(pred.kind === 'apply' && pred.op === 'not' && pred.args[0] !== undefined ? pred.args[0] : ap('not', 'bool', pred)); // not(not(p)) -> p
      replaced.add(cur);
      cur = b;
    } else break;
  }

  // The score modifier: any elementwise DAG over the scores, side values and indices. A node read
  // twice (`t = tanh(s); t * t`) appears twice in the lambda tree; the shader compiler merges them.
  const built = new Map<number, ScalarExpr>();
  const build = (id: number): ScalarExpr => {
    if (id === top) return scoreExpr;
    const done = built.get(id);
    if (done !== undefined) return done;
    const n = u.node(id);
    inRegion.push([id, `modified scores at ${printSpan(n.loc)}`]);
    const op = getOp(n.op);
    if (op === undefined || op.family !== 'elementwise') throw new NotFused(`${n.op} at ${printSpan(n.loc)} between the scores and the softmax is not elementwise`);
    for (const [key, kind] of Object.entries(op.attrs)) {
      const a = n.attrs[key];
      if (kind !== 'dtype' || a === undefined || a.kind !== 'dtype' || a.value !== n.type.dtype) {
        throw new NotFused(`${n.op} at ${printSpan(n.loc)} has attribute '${key}', which a score lambda cannot carry`);
      }
    }
    if (!shapeEquals(n.type.shape, scoreShape)) throw new NotFused(`${n.op} at ${printSpan(n.loc)} broadcasts the scores to ${printType(n.type)}`);
    replaced.add(id);
    const e = ap(n.op, n.type.dtype, ...n.operands.map((o) => (onPath(o) ? build(o) : lb.side(o))));
    built.set(id, e);
    return e;
  };
  // f16/bf16 scores: the kernels keep scores in f32 (score() is f32), so the mods run there too,
  // reading narrow operands through casts; the unfused chain would round after every op.
  const scoreBody = widenToF32(build(cur));
  const region = new Set([...replaced, sm]);
  for (const [id, what] of inRegion) u.requireUsesWithin(id, region, what);
  const mask = masks.reduce<ScalarExpr | undefined>((acc, m) => (acc === undefined ? m : ap('and', 'bool', acc, m)), undefined);

  // Heads: canonical rank-4 views of q, k, v.
  const lead = scoreShape.slice(0, r - 2);
  const batch = lead[0] ?? dimConst(1);
  const heads = lead.slice(1);
  const hq = product(heads);
  const tq = scoreShape[r - 2] ?? dimConst(1);
  const s = scoreShape[r - 1] ?? dimConst(1);
  const shapeOf = (view: View): readonly Dim[] => {
    let shape = u.node(view.base).type.shape;
    for (const st of view.steps) shape = st.op === 'permute' ? st.perm.map((a) => shape[a] ?? dimConst(1)) : st.shape;
    return shape;
  };
  const padLead = (shape: readonly Dim[]): Dim[] => {
    const l = shape.slice(0, -2);
    return [...Array.from({ length: lead.length - l.length }, () => dimConst(1)), ...l];
  };
  const qShape = shapeOf(core.q);
  const dk = qShape[qShape.length - 1] ?? dimConst(1);
  const qLead = padLead(qShape);
  if (qShape.length - 2 > lead.length || !shapeEquals(qLead, lead)) throw new NotFused(`queries ${printType({ dtype: 'f32', shape: qShape })} are broadcast against the keys`);
  /** KV heads of a K or V view: a prefix of the query head axes, then size-1 axes only. */
  const kvHeads = (what: string, shape: readonly Dim[]): Dim => {
    if (shape.length - 2 > lead.length) throw new NotFused(`${what} has more batch axes than the scores`);
    const l = padLead(shape);
    if (lead.length > 0 && !shapeEquals([l[0] ?? dimConst(1)], [batch])) throw new NotFused(`${what} ${printType({ dtype: 'f32', shape })} is shared across the batch`);
    let p = 1;
    while (p < lead.length && shapeEquals([l[p] ?? dimConst(1)], [lead[p] ?? dimConst(1)]) && !isOne(lead[p])) p++;
    for (let i = p; i < lead.length; i++) {
      if (!isOne(l[i])) throw new NotFused(`${what} ${printType({ dtype: 'f32', shape })} repeats heads in a pattern the KV-head grouping (h / group) cannot express`);
    }
    return product(lead.slice(1, p));
  };
  const kShape = shapeOf(core.k);
  const vView: View = { base: vId, steps: [] };
  const vShape = shapeOf(vView);
  const hkv = kvHeads('k', kShape);
  const hkvV = kvHeads('v', vShape);
  if (!shapeEquals([hkv], [hkvV])) throw new NotFused(`k has ${printType({ dtype: 'f32', shape: [hkv] })} KV heads but v has ${printType({ dtype: 'f32', shape: [hkvV] })}`);
  const dv = vShape[vShape.length - 1] ?? dimConst(1);
  const to4 = (view: View, shape: readonly Dim[], want: readonly Dim[]): View =>
    shapeEquals(shape, want) ? view : { base: view.base, steps: [...view.steps, { op: 'reshape', shape: want }] };

  return {
    softmax: sm,
    pv: pv.id,
    q: to4(core.q, qShape, [batch, hq, tq, dk]),
    k: to4(core.k, kShape, [batch, hkv, s, dk]),
    v: to4(vView, vShape, [batch, hkv, s, dv]),
    scale,
    mask,
    score: scoreBody.kind === 'apply' && scoreBody.op === 'score' ? undefined : scoreBody,
    extras: lb.extras,
    fusedType: { dtype: pv.type.dtype, shape: [batch, hq, tq, dv] },
    replaced: [...replaced].sort((a, b) => a - b),
    lse: pv.type.dtype === smNode.type.dtype ? lse : [],
  };
}

/** Appends `permute`/`reshape` steps to a value, composing with the producer and dropping no-ops. */
function emitView(b: GraphBuilder, base: number, view: View, loc: Span, scope: { scope?: string }): number {
  let id = base;
  for (const st of view.steps) {
    const n = b.node(id);
    if (st.op === 'permute') {
      let src = id;
      let perm = st.perm;
      if (n.op === 'permute' && n.operands[0] !== undefined) {
        const p = intsAttr(n, 'perm');
        perm = st.perm.map((a) => p[a] ?? -1);
        src = n.operands[0];
      }
      if (perm.every((a, i) => a === i)) {
        id = src;
        continue;
      }
      const srcType = b.node(src).type;
      id = b.add({ op: 'permute', operands: [src], attrs: { perm: { kind: 'ints', value: perm } }, type: { dtype: srcType.dtype, shape: perm.map((a) => srcType.shape[a] ?? dimConst(1)) }, loc, ...scope });
    } else {
      const src = n.op === 'reshape' && n.operands[0] !== undefined ? n.operands[0] : id;
      const srcType = b.node(src).type;
      if (shapeEquals(srcType.shape, st.shape)) {
        id = src;
        continue;
      }
      id = b.add({ op: 'reshape', operands: [src], attrs: { shape: { kind: 'dims', value: st.shape } }, type: { dtype: srcType.dtype, shape: st.shape }, loc, ...scope });
    }
  }
  return id;
}

function fuseAll(g: Graph, ctx: PassContext, reject?: (extras: readonly number[]) => string | undefined): Graph {
  const u = new Uses(g);
  const matches = new Map<number, Match>();
  for (const n of g.nodes) {
    if (n.op !== 'softmax') continue;
    try {
      const m = matchAt(u, n.id);
      const why = reject?.(m.extras);
      if (why !== undefined) throw new NotFused(why);
      matches.set(m.pv, m);
    } catch (e) {
      if (!(e instanceof NotFused)) throw e;
      if (e.reason === 'no q @ k matmul under the softmax' && !u.userIds(n.id).some((x) => u.node(x).op === 'matmul')) continue; // not attention
      ctx.remark({ pass: PASS, loc: n.loc, message: `attention at ${printSpan(n.loc)} not fused: ${e.reason}` });
    }
  }
  if (matches.size === 0) return g;

  const b = new GraphBuilder();
  const map: number[] = [];
  const made = new Set<number>(); // new ids emitted by this pass
  const m = (id: number): number => {
    const v = map[id];
    if (v === undefined) throw new Error(`internal: %${id} used before its definition`);
    return v;
  };
  // The fused node replaces the `p @ v` matmul and each LSE logsumexp; it is emitted at the first
  // of them in graph order, with any operand not yet emitted (v after a logsumexp) emitted first.
  const fusedAt = new Map<number, Match>();
  for (const match of matches.values()) for (const id of [match.pv, ...match.lse]) fusedAt.set(id, match);
  const visit = (id: number): number => {
    const done = map[id];
    if (done !== undefined) return done;
    const n = u.node(id);
    const match = fusedAt.get(id);
    if (match === undefined) {
      map[id] = b.copy(n, n.operands.map(visit));
      return m(id);
    }
    const sm = u.node(match.softmax);
    const pvNode = u.node(match.pv);
    const before = b.size;
    // Kernel names follow the source scope of the attention (`attention_l0_fused_attention`).
    const scope: { scope?: string } = pvNode.scope === undefined ? {} : { scope: pvNode.scope };
    const q = emitView(b, visit(match.q.base), match.q, sm.loc, scope);
    const k = emitView(b, visit(match.k.base), match.k, sm.loc, scope);
    const v = emitView(b, visit(match.v.base), match.v, sm.loc, scope);
    const attrs: Record<string, Attrs[string]> = { scale: { kind: 'float', value: match.scale } };
    if (match.mask !== undefined) attrs['mask'] = { kind: 'lambda', params: attentionParams, body: match.mask };
    if (match.score !== undefined) attrs['score'] = { kind: 'lambda', params: attentionParams, body: match.score };
    const from = match.replaced.map((r) => u.node(r).loc);
    const extras = match.extras.map(visit);
    const fused = b.add({ op: 'fused_attention', operands: [q, k, v, ...extras], attrs, type: match.fusedType, loc: sm.loc, from, ...scope });
    /** `value` reshaped to the replaced node's type where the fused shape differs. */
    const asOld = (value: number, old: Node): number =>
      shapeEquals(b.node(value).type.shape, old.type.shape)
        ? value
        : b.add({ op: 'reshape', operands: [value], attrs: { shape: { kind: 'dims', value: old.type.shape } }, type: old.type, loc: old.loc, ...scope });
    map[match.pv] = asOld(fused, pvNode);
    for (const l of match.lse) {
      const old = u.node(l);
      const lseType = { dtype: match.fusedType.dtype, shape: match.fusedType.shape.slice(0, 3) };
      const lseId = b.add({ op: 'fused_attention_lse', operands: [fused], attrs: {}, type: lseType, loc: old.loc, from: [old.loc], ...scope });
      map[l] = asOld(lseId, old);
    }
    for (let i = before; i < b.size; i++) made.add(i);
    return m(id);
  };
  for (const n of g.nodes) visit(n.id);
  const built = b.finish(g, g.outputs.map((o) => ({ ...o, value: m(o.value) })));
  // Drop what the fusion left unused: copies of nodes that had a use before, and views this
  // pass made. Nodes that were already dead stay (eliminate-dead-code's job).
  const usedBefore = g.nodes.map((n) => u.uses(n.id).length > 0 || u.isOutput(n.id));
  const origin: (number | undefined)[] = [];
  map.forEach((nu, old) => {
    if (!made.has(nu)) origin[nu] = old;
  });
  return removeDeadNodes(built, (n) => isInterfaceNode(n) || (!made.has(n.id) && !(usedBefore[origin[n.id] ?? -1] ?? false)));
}

export const fuseAttention: GraphPass = {
  name: PASS,
  summary: 'replace softmax(mods(q @ kT * scale)) @ v chains by one fused_attention (remarks say why one is not fused)',
  run: (g, ctx) => fuseAll(g, ctx),
};

/**
 * fuse-attention for a forward graph about to be differentiated (src/train/fuse-forward.ts): an
 * attention whose mask or score mod reads a tensor that `carriesGrad` (one carrying a gradient
 * that is no small constant-size table: src/train/fuse-forward.ts) stays unfused, with a remark.
 */
export function fuseAttentionBeforeGrad(carriesGrad: (id: number) => boolean): GraphPass {
  return {
    name: PASS,
    summary: fuseAttention.summary,
    run: (g, ctx) =>
      fuseAll(g, ctx, (extras) => {
        const w = extras.find(carriesGrad);
        return w === undefined ? undefined : `its score mod reads %${w}, which carries a gradient and is no small constant-size table: the fused backward's table gradient sums at most 8192 entries`;
      }),
  };
}
