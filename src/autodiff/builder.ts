// The GradBuilder the catalog's vjp rules build backward nodes with (src/ops/define.ts declares
// it, so the catalog never imports this layer): graph nodes appended to a GraphBuilder, each
// typed by its op's `infer`, located at the forward node being differentiated.
import { type Dim, dimConst, dimConstValue, dimEquals } from '../base/dim.js';
import { InternalError } from '../diag/diagnostic.js';
import type { Span } from '../diag/span.js';
import type { Attrs, ScalarExpr } from '../graph/ir.js';
import { idx } from '../graph/lambda.js';
import type { GraphBuilder } from '../graph/rewrite.js';
import { type DType, type TensorType, printType, shapeEquals } from '../graph/types.js';
import { getOp } from '../ops/catalog.js';
import type { GradBuilder } from '../ops/define.js';

const isOne = (d: Dim | undefined): boolean => d !== undefined && dimConstValue(d) === 1;

export class NodeGradBuilder implements GradBuilder {
  loc: Span;
  scope: string | undefined;
  private readonly consts = new Map<string, number>();

  constructor(
    private readonly b: GraphBuilder,
    loc: Span,
  ) {
    this.loc = loc;
  }

  /** Backward nodes from here on are attributed to `loc` (and kernel names to `scope`). */
  at(loc: Span, scope: string | undefined): void {
    this.loc = loc;
    this.scope = scope;
  }

  type(id: number): TensorType {
    return this.b.node(id).type;
  }

  dtype(id: number): DType {
    return this.type(id).dtype;
  }

  node(name: string, operands: readonly number[], attrs: Attrs = {}, declared?: TensorType): number {
    const op = getOp(name);
    if (op === undefined) throw new InternalError(`grad builds unknown op '${name}'`);
    const types = operands.map((o) => this.type(o));
    const type = op.infer(types, attrs, declared);
    if ('code' in type) throw new InternalError(`grad builds ${name}(${types.map(printType).join(', ')}): ${type.message}`);
    return this.b.add({ op: name, operands, attrs, type, loc: this.loc, ...(this.scope !== undefined ? { scope: this.scope } : {}) });
  }

  op(name: string, ...args: number[]): number {
    return this.opWith(name, {}, ...args);
  }

  /** Folds x*1, 1*x, x+0, 0+x where the result keeps x's type (derivatives are full of them). */
  opWith(name: string, attrs: Attrs, ...args: number[]): number {
    const [a, b] = args;
    if (args.length === 2 && a !== undefined && b !== undefined) {
      const unit = name === 'mul' ? 1 : name === 'add' ? 0 : undefined;
      if (unit !== undefined && this.isConst(b, unit) && this.type(b).shape.length === 0) return a;
      if (unit !== undefined && this.isConst(a, unit) && this.type(a).shape.length === 0) return b;
      if (name === 'add') {
        const merged = this.mergeConcats(a, b);
        if (merged !== undefined) return merged;
      }
    }
    return this.node(name, args, attrs);
  }

  /**
   * add(concat(0, x), concat(y, 0, 0)) with the non-zero pieces disjoint is one concat(y, 0, x):
   * the cotangents of slices that split a value (q, k, v out of one projection) come back as
   * one concat instead of zero-padded copies summed. Constant piece sizes only.
   */
  private mergeConcats(a: number, b: number): number | undefined {
    const pa = this.pieces(a);
    const pb = this.pieces(b);
    if (pa === undefined || pb === undefined || pa.axis !== pb.axis || pa.total !== pb.total || !shapeEquals(this.type(a).shape, this.type(b).shape)) return undefined;
    const live = [...pa.parts, ...pb.parts].filter((p) => p.value !== undefined).sort((x, y) => x.start - y.start);
    const t = this.type(a);
    const zeros = (n: number): number => this.zeros({ dtype: t.dtype, shape: t.shape.map((d, i) => (i === pa.axis ? dimConst(n) : d)) });
    const list: number[] = [];
    let at = 0;
    for (const p of live) {
      if (p.start < at || p.value === undefined) return undefined; // overlapping pieces: a real sum
      if (p.start > at) list.push(zeros(p.start - at));
      list.push(p.value);
      at = p.start + p.size;
    }
    if (at < pa.total) list.push(zeros(pa.total - at));
    return list.length === 1 ? list[0] : this.node('concat', list, { axis: { kind: 'int', value: pa.axis } });
  }

  /** A concat's pieces along its axis (`value` undefined for a zeros grid), when every size is a constant. */
  private pieces(id: number): { axis: number; total: number; parts: { start: number; size: number; value: number | undefined }[] } | undefined {
    const n = this.b.node(id);
    const ax = n.attrs['axis'];
    if (n.op !== 'concat' || ax === undefined || ax.kind !== 'int') return undefined;
    const parts: { start: number; size: number; value: number | undefined }[] = [];
    let total = 0;
    for (const o of n.operands) {
      const d = this.type(o).shape[ax.value];
      const size = d === undefined ? undefined : dimConstValue(d);
      if (size === undefined) return undefined;
      parts.push({ start: total, size, value: this.isZeros(o) ? undefined : o });
      total += size;
    }
    return { axis: ax.value, total, parts };
  }

  private isZeros(id: number): boolean {
    const n = this.b.node(id);
    const body = n.attrs['body'];
    return n.op === 'grid' && n.operands.length === 0 && body !== undefined && body.kind === 'lambda' && body.body.kind === 'const' && body.body.value === 0;
  }

  private isConst(id: number, v: number): boolean {
    const n = this.b.node(id);
    const a = n.attrs['value'];
    return n.op === 'const' && a !== undefined && a.kind === 'float' && a.value === v;
  }

  lit(like: number, value: number): number {
    return this.constant(value, this.dtype(like));
  }

  cast(x: number, dtype: DType): number {
    return this.dtype(x) === dtype ? x : this.node('cast', [x], { to: { kind: 'dtype', value: dtype } });
  }

  constant(value: number, dtype: DType): number {
    const key = `${dtype}:${Object.is(value, -0) ? '-0' : String(value)}`;
    const hit = this.consts.get(key);
    if (hit !== undefined) return hit;
    const id = this.node('const', [], { value: { kind: 'float', value } }, { dtype, shape: [] });
    this.consts.set(key, id);
    return id;
  }

  dimValue(d: Dim, dtype: DType): number {
    const c = dimConstValue(d);
    if (c !== undefined) return this.constant(c, dtype);
    const body: ScalarExpr = { kind: 'apply', op: 'cast', args: [{ kind: 'dim', dim: d }], dtype };
    return this.node('grid', [], { shape: { kind: 'dims', value: [] }, body: { kind: 'lambda', params: [], body } });
  }

  unbroadcast(id: number, shape: readonly Dim[]): number {
    const from = this.type(id).shape;
    if (shapeEquals(from, shape)) return id;
    const lead = from.length - shape.length;
    const axes: number[] = [];
    from.forEach((d, i) => {
      const to = shape[i - lead];
      if (i < lead) axes.push(i);
      else if (to !== undefined && isOne(to) && !isOne(d)) axes.push(i);
      else if (to === undefined || !dimEquals(d, to)) throw new InternalError(`grad: cannot sum ${printType(this.type(id))} back to [${shape.length}]`);
    });
    const summed = axes.length === 0 ? id : this.node('sum', [id], { axes: { kind: 'ints', value: axes }, keepdims: { kind: 'bool', value: true } });
    return shapeEquals(this.type(summed).shape, shape) ? summed : this.node('reshape', [summed], { shape: { kind: 'dims', value: shape } });
  }

  broadcastTo(id: number, shape: readonly Dim[]): number {
    const t = this.type(id);
    if (shapeEquals(t.shape, shape)) return id;
    const lead = shape.length - t.shape.length;
    const indices = t.shape.map((d, j): ScalarExpr => (isOne(d) && !isOne(shape[lead + j]) ? { kind: 'const', value: 0, dtype: 'i32' } : idx(lead + j)));
    const body: ScalarExpr = { kind: 'read', operand: 0, indices, dtype: t.dtype };
    return this.node('grid', [id], { shape: { kind: 'dims', value: shape }, body: { kind: 'lambda', params: shape.map((_, i) => `i${i}`), body } });
  }

  zeros(type: TensorType): number {
    const body: ScalarExpr = { kind: 'const', value: 0, dtype: type.dtype };
    return this.node('grid', [], { shape: { kind: 'dims', value: type.shape }, body: { kind: 'lambda', params: type.shape.map((_, i) => `i${i}`), body } });
  }
}
