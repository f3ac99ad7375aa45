// AdamW (decoupled weight decay, Loshchilov & Hutter; torch.optim.AdamW's update) with global
// gradient-norm clipping (torch.nn.utils.clip_grad_norm_), appended to a graph as catalog ops, so a
// training step (forward, loss, backward, update) is one graph that the normal pipeline fuses and
// lowers: the update of each weight becomes an elementwise kernel (or joins its gradient's).
//
// Per weight w with gradient g, moments m and v (inputs `adam.m.NAME`, `adam.v.NAME`, same shape):
//   c  = min(1, clip / (||G|| + 1e-6))          ||G||: the L2 norm over ALL gradients together
//   g' = c * g
//   m' = b1 m + (1 - b1) g'          v' = b2 v + (1 - b2) g'^2
//   w' = w - lr wd w - lr (m' / bc1) / (sqrt(v' / bc2) + eps)
// with bc1 = 1 - b1^t and bc2 = 1 - b2^t given by the host each step (inputs `train.bc1`,
// `train.bc2`) beside the learning rate `train.lr`: the step count and a learning-rate schedule
// never change the compiled graph. Outputs: `NAME` (the new weight, the checkpoint's tensor name),
// `adam.m.NAME`, `adam.v.NAME`, and `train.grad_norm` (||G|| before clipping).
import type { Span } from '../diag/span.js';
import { type Attrs, type Graph, type GraphOutput, type Node, attr, strAttr } from '../graph/ir.js';
import { GraphBuilder } from '../graph/rewrite.js';
import { type DType, type TensorType, tensorType } from '../graph/types.js';

export interface AdamWOptions {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  /** Clip the global gradient norm to this value; Infinity: no clipping. */
  readonly clipNorm: number;
  /**
   * Gradient accumulation: the step adds its gradient to `accum.NAME` (state) and updates the
   * weights only when the input `train.apply` is 1, with the gradient (accum + g) * `train.accum_scale`
   * (1/N over N micro-batches), then clears the accumulator; with `train.apply` 0 the weights and
   * moments pass through unchanged.
   */
  readonly accumulate?: boolean;
  /**
   * beta1, beta2, eps, the weight decay and the clip norm as scalar inputs (`train.beta1`, ...:
   * `adamNames.hyper`) instead of constants, so that a compiled step (a generated module's
   * `createTrainer`) takes them as options; the values above are then only the defaults the host
   * feeds. A clip norm of Infinity feeds as Infinity (min(1, inf) = 1: no clipping).
   */
  readonly hyperInputs?: boolean;
}

/** torch.optim.AdamW's defaults, with charlm's train.py weight decay and clipping. */
export const defaultAdamW: AdamWOptions = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, clipNorm: 1.0 };

/** Names of the optimizer's own inputs and outputs (the host feeds and keeps them). */
export const adamNames = {
  m: (weight: string): string => `adam.m.${weight}`,
  v: (weight: string): string => `adam.v.${weight}`,
  lr: 'train.lr',
  bc1: 'train.bc1',
  bc2: 'train.bc2',
  gradNorm: 'train.grad_norm',
  accum: (weight: string): string => `accum.${weight}`,
  apply: 'train.apply',
  accumScale: 'train.accum_scale',
  /** With `hyperInputs`: the scalar inputs holding the options of the same key. */
  hyper: { beta1: 'train.beta1', beta2: 'train.beta2', eps: 'train.eps', weightDecay: 'train.weight_decay', clipNorm: 'train.clip_norm' },
} as const;

/**
 * Appends the AdamW update of every weight in `gradOf` (weight name -> the node holding its
 * gradient, same type as the weight) to `g`. The graph's existing outputs are kept first; the
 * updated weights, moments and the gradient norm follow.
 */
export function appendAdamW(g: Graph, gradOf: ReadonlyMap<string, number>, o: AdamWOptions = defaultAdamW): Graph {

  const b = new GraphBuilder();
  for (const n of g.nodes) b.copy(n, n.operands);
  const weights = new Map<string, Node>();
  for (const n of g.nodes) if (n.op === 'weight' && n.attrs['rows'] === undefined) weights.set(strAttr(n, 'name'), n);
  if (gradOf.size === 0) throw new Error('appendAdamW: no gradients to apply');
  const first = [...gradOf.values()][0] ?? 0;
  const loc: Span = g.nodes[first]?.loc ?? { file: '<adamw>', line: 0, col: 0, endLine: 0, endCol: 0 };
  const scope = 'adamw';
  const scalar = (dtype: DType = 'f32'): TensorType => tensorType(dtype, []);
  const add = (op: string, operands: readonly number[], type: TensorType, attrs: Attrs = {}): number => b.add({ op, operands, attrs, type, loc, scope });
  const cst = (value: number): number => add('const', [], scalar(), { value: attr.float(value) });
  const input = (name: string, type: TensorType): number => add('input', [], type, { name: attr.str(name) });
  const bin = (op: string, x: number, y: number): number => {
    const tx = b.node(x).type;
    const ty = b.node(y).type;
    return add(op, [x, y], tx.shape.length >= ty.shape.length ? tx : ty);
  };
  const un = (op: string, x: number): number => add(op, [x], b.node(x).type);

  // With accumulation, the gradient the update uses is (accum + g) * accum_scale.
  const raw = gradOf;
  const summed = new Map<string, number>();
  let applyCond: number | undefined;
  if (o.accumulate === true) {
    const apply = input(adamNames.apply, scalar());
    const scale = input(adamNames.accumScale, scalar());
    applyCond = add('gt', [apply, cst(0.5)], scalar('bool'));
    const eff = new Map<string, number>();
    for (const [name, gid] of raw) {
      const acc = input(adamNames.accum(name), b.node(gid).type);
      const sum = bin('add', acc, gid);
      summed.set(name, sum);
      eff.set(name, bin('mul', sum, scale));
    }
    gradOf = eff;
  }
  // The global norm of all gradients, and the clip factor min(1, clip / (norm + 1e-6)).
  let sq: number | undefined;
  for (const [name, gid] of gradOf) {
    const t = b.node(gid).type;
    const w = weights.get(name);
    if (w === undefined) throw new Error(`appendAdamW: '${name}' is not a weight of ${g.name}`);
    if (t.dtype !== 'f32' || w.type.shape.length !== t.shape.length) throw new Error(`appendAdamW: the gradient of '${name}' is ${t.dtype}[${t.shape.length} axes], the weight f32[${w.type.shape.length} axes]`);
    const sumSq = add('sum', [bin('mul', gid, gid)], scalar(), { axes: attr.ints(t.shape.map((_, i) => i)), keepdims: attr.bool(false) });
    sq = sq === undefined ? sumSq : bin('add', sq, sumSq);
  }
  const norm = un('sqrt', sq ?? cst(0));
  // A hyperparameter: a constant where it is used (as before hyperInputs existed), or with
  // `hyperInputs` one scalar input fed every step; `1 - beta` is then computed in f32 (2.4e-7 off
  // the host's constant for 0.9).
  const fed = new Map<string, number>();
  const once = (key: string, make: () => number): number => {
    const have = fed.get(key);
    if (have !== undefined) return have;
    const id = make();
    fed.set(key, id);
    return id;
  };
  const hyper = (key: keyof typeof adamNames.hyper): number => (o.hyperInputs === true ? once(key, () => input(adamNames.hyper[key], scalar())) : cst(o[key]));
  const oneMinus = (key: 'beta1' | 'beta2'): number => (o.hyperInputs === true ? once(`1-${key}`, () => bin('sub', cst(1), hyper(key))) : cst(1 - o[key]));
  const clip = o.hyperInputs === true || Number.isFinite(o.clipNorm) ? bin('min', cst(1), bin('div', hyper('clipNorm'), bin('add', norm, cst(1e-6)))) : cst(1);
  const lr = input(adamNames.lr, scalar());
  const bc1 = input(adamNames.bc1, scalar());
  const bc2 = input(adamNames.bc2, scalar());

  const outputs: GraphOutput[] = [...g.outputs];
  for (const [name, gid] of gradOf) {
    const w = weights.get(name);
    if (w === undefined) continue;
    const t = w.type;
    const gc = bin('mul', gid, clip);
    const m = input(adamNames.m(name), t);
    const v = input(adamNames.v(name), t);
    const m2 = bin('add', bin('mul', hyper('beta1'), m), bin('mul', oneMinus('beta1'), gc));
    const v2 = bin('add', bin('mul', hyper('beta2'), v), bin('mul', oneMinus('beta2'), bin('mul', gc, gc)));
    const step = bin('div', bin('div', m2, bc1), bin('add', un('sqrt', bin('div', v2, bc2)), hyper('eps')));
    const decayed = o.hyperInputs !== true && o.weightDecay === 0 ? w.id : bin('sub', w.id, bin('mul', bin('mul', lr, hyper('weightDecay')), w.id));
    const w2 = bin('sub', decayed, bin('mul', lr, step));
    if (applyCond === undefined) {
      outputs.push({ name, value: w2, loc: w.loc }, { name: adamNames.m(name), value: m2, loc: w.loc }, { name: adamNames.v(name), value: v2, loc: w.loc });
      continue;
    }
    // Only on an applying step: the update, and the accumulator cleared; else all pass through.
    const pick = (yes: number, no: number): number => add('where', [applyCond ?? -1, yes, no], t);
    const acc2 = pick(bin('mul', summed.get(name) ?? -1, cst(0)), summed.get(name) ?? -1);
    outputs.push(
      { name, value: pick(w2, w.id), loc: w.loc },
      { name: adamNames.m(name), value: pick(m2, m), loc: w.loc },
      { name: adamNames.v(name), value: pick(v2, v), loc: w.loc },
      { name: adamNames.accum(name), value: acc2, loc: w.loc },
    );
  }
  outputs.push({ name: adamNames.gradNorm, value: norm, loc });
  return b.finish(g, outputs);
}
