// fuse-reduce: a sum or max_reduce becomes one `fused_reduce` with the elementwise chain it reads
// (its operand, when that is a fused_map or an elementwise op read only by it) as the `body`
// evaluated per input element, and the elementwise consumer of its result (its only use, same
// shape, reading it at the result index) as the `epilogue`: one row kernel instead of up to three.
// The int8 KV cache's scale (examples/variants/gpt2-kv-int8.tfx) is the case it was made for:
//
//   before                                                  after
//   %15 = fused_map %14 {body=(..) => abs(read(0, ..))}      %17 = fused_reduce %14 {body=(i0, i1, i2, i3) =>
//   %16 = max_reduce %15 {axes=[3], keepdims=true}                abs(read(0, i0, i2, i1, i3)), reduce="max",
//   %17 = fused_map %16 {body=(..) =>                             axes=[3], keepdims=true, epilogue=(i0, i1, i2, i3)
//         max(div(read(0, i0, i1, i2, i3), 127.0), 1e-6)}         => max(div(acc(), 127.0), 1e-6), shape=..}
//
// `read(k, ...)` in either lambda reads operand k (the body's operands first, then the
// consumer's others); `acc()` in the epilogue is the reduced value. Not fused: a reduction
// whose operand has other uses and whose result has no such consumer (nothing to gain), a
// non-float operand, or more than MAX_FUSED_READS operands. Runs after fuse-elementwise (the
// chains are fused_maps by then). Needs: types inferred. Keeps: outputs, interface, types.
import type { Graph, Node, ScalarExpr } from '../graph/ir.js';
import { boolAttr, intsAttr } from '../graph/ir.js';
import { DefUse, rebuildGraph } from '../graph/rewrite.js';
import { idx, mapScalarExpr, someScalarExpr } from '../graph/lambda.js';
import { shapeEquals } from '../graph/types.js';
import { MAX_FUSED_READS, lambdaOf } from './fuse-elementwise.js';
import { countRuleHits, type GraphPass, type PassContext } from './pass.js';

const NAME = 'fuse-reduce';

const kinds: Readonly<Record<string, string>> = { sum: 'sum', max_reduce: 'max' };

/** Every read of operand `k` in `e` is at the identity index (i0, i1, ...). */
function readsAtIdentity(e: ScalarExpr, k: number): boolean {
  return !someScalarExpr(e, (x) => x.kind === 'read' && x.operand === k && !x.indices.every((y, i) => y.kind === 'index' && y.axis === i));
}

/** Reads of operand `k` become `acc()`; the others move to `remap(j)`. */
function toEpilogue(e: ScalarExpr, k: number, accType: Node['type']['dtype'], remap: (j: number) => number): ScalarExpr {
  return mapScalarExpr(e, (x, rec) => {
    if (x.kind !== 'read') return undefined;
    if (x.operand === k) return { kind: 'apply', op: 'acc', args: [], dtype: accType };
    return { ...x, operand: remap(x.operand), indices: x.indices.map(rec) };
  });
}

interface Plan {
  /** The body's producer (absorbed) or undefined: the body reads the reduction's operand. */
  readonly producer?: Node;
  readonly consumer?: Node;
}

const isFloat = (n: Node): boolean => n.type.dtype === 'f32' || n.type.dtype === 'f16' || n.type.dtype === 'bf16';

function run(g: Graph, ctx: PassContext): Graph {
  const du = new DefUse(g);
  const plans = new Map<number, Plan>(); // reduction id -> what it absorbs
  const taken = new Set<number>();
  for (const r of g.nodes) {
    if (kinds[r.op] === undefined || !isFloat(r)) continue;
    const x = g.nodes[r.operands[0] ?? -1];
    if (x === undefined || !isFloat(x)) continue;
    const producer = !du.isOutput(x.id) && du.users(x.id).length === 1 && x.op !== 'view' && lambdaOf(g, x) !== undefined && !taken.has(x.id) ? x : undefined;
    const us = du.users(r.id);
    const c = us[0];
    const cl = c === undefined ? undefined : lambdaOf(g, c);
    const bodyReads = producer?.operands.length ?? 1;
    const consumer =
      !du.isOutput(r.id) && us.length === 1 && c !== undefined && cl !== undefined && !taken.has(c.id) && shapeEquals(c.type.shape, r.type.shape) && readsAtIdentity(cl.body, c.operands.indexOf(r.id)) && c.operands.filter((o) => o === r.id).length === 1 && bodyReads + c.operands.length - 1 <= MAX_FUSED_READS
        ? c
        : undefined;
    if (producer === undefined && consumer === undefined) continue;
    if (bodyReads > MAX_FUSED_READS) continue;
    plans.set(r.id, { ...(producer !== undefined ? { producer } : {}), ...(consumer !== undefined ? { consumer } : {}) });
    if (producer !== undefined) taken.add(producer.id);
    if (consumer !== undefined) taken.add(consumer.id);
    taken.add(r.id);
  }
  if (plans.size === 0) return g;
  const absorbed = new Set<number>();
  const at = new Map<number, number>(); // the node that becomes the fused_reduce -> its reduction
  for (const [rid, p] of plans) {
    if (p.producer !== undefined) absorbed.add(p.producer.id);
    if (p.consumer !== undefined) {
      absorbed.add(rid);
      at.set(p.consumer.id, rid);
    } else at.set(rid, rid);
  }
  const out = rebuildGraph(g, (n, rb) => {
    const rid = at.get(n.id);
    if (rid === undefined) return absorbed.has(n.id) ? undefined : rb.copy(n);
    const r = g.nodes[rid];
    const p = plans.get(rid);
    const x = g.nodes[r?.operands[0] ?? -1];
    if (r === undefined || p === undefined || x === undefined) throw new Error('internal: fuse-reduce lost its reduction');
    const pl = p.producer === undefined ? undefined : lambdaOf(g, p.producer);
    const params = pl?.params ?? x.type.shape.map((_, k) => `i${k}`);
    const body: ScalarExpr = pl?.body ?? { kind: 'read', operand: 0, indices: x.type.shape.map((_, k) => idx(k)), dtype: x.type.dtype };
    const bodyOperands = p.producer?.operands ?? [x.id];
    const c = p.consumer;
    const cl = c === undefined ? undefined : lambdaOf(g, c);
    let epilogue: { kind: 'lambda'; params: readonly string[]; body: ScalarExpr } = { kind: 'lambda', params: r.type.shape.map((_, k) => `i${k}`), body: { kind: 'apply', op: 'acc', args: [], dtype: r.type.dtype } };
    let others: number[] = [];
    if (c !== undefined && cl !== undefined) {
      const k = c.operands.indexOf(r.id);
      const rest = c.operands.map((_, j) => j).filter((j) => j !== k);
      others = rest.map((j) => c.operands[j] ?? -1);
      epilogue = { kind: 'lambda', params: cl.params, body: toEpilogue(cl.body, k, r.type.dtype, (j) => bodyOperands.length + rest.indexOf(j)) };
    }
    return rb.b.add({
      op: 'fused_reduce',
      operands: [...bodyOperands, ...others].map(rb.mapped),
      attrs: {
        shape: { kind: 'dims', value: x.type.shape },
        body: { kind: 'lambda', params, body },
        reduce: { kind: 'str', value: kinds[r.op] ?? 'sum' },
        axes: { kind: 'ints', value: intsAttr(r, 'axes') },
        keepdims: { kind: 'bool', value: boolAttr(r, 'keepdims') },
        epilogue,
      },
      type: n.type,
      loc: r.loc,
      from: [r.loc, ...(p.producer !== undefined ? [p.producer.loc] : []), ...(c !== undefined ? [c.loc] : []), ...(n.from ?? [])],
      ...(r.scope !== undefined ? { scope: r.scope } : {}),
    });
  });
  countRuleHits(ctx, `${NAME}/fused_reduce`, plans.size);
  return out;
}

export const fuseReduce: GraphPass = {
  name: NAME,
  summary: 'fold the elementwise chain a sum/max_reduce reads and the elementwise consumer of its result into one fused_reduce (a row kernel)',
  run,
};
