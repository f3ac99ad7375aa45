// A second result of a multi-result fused op (`resultOf`: fused_attention_grad's dK/dV/table
// gradients, fused_cross_entropy's gradients, fused_attention's written K/V): one operand, the
// producer; its type is declared (the producer's operands give it, which a one-operand `infer`
// cannot see), checked by `accepts`; the float64 rule is the producer's, computed once per producer
// (the caller's `interp` reads its part); lowered only with the producer.
import { dimConst } from '../base/dim.js';
import type { Tensor64 } from '../base/tensor.js';
import { InternalError } from '../diag/diagnostic.js';
import type { AttrKind, Node } from '../graph/ir.js';
import { type TensorType, printType } from '../graph/types.js';
import { type InterpContext, type OpDef, defineOp } from './define.js';
import { opError } from './elementwise.js';

export interface SecondResultSpec {
  readonly name: string;
  /** The op whose result this is (operand 0 must be one). */
  readonly resultOf: string;
  readonly doc: string;
  readonly attrs?: Readonly<Record<string, AttrKind>>;
  /** The declared type it needs, in words for the error (`rank-4 f32`), given the producer's type. */
  readonly needs: (producer: TensorType) => string;
  readonly accepts: (declared: TensorType, producer: TensorType) => boolean;
  readonly noGrad: string;
  /** Its value from the producer's operands and the producer node. */
  readonly value: (operands: readonly Tensor64[], producer: Node, ctx: InterpContext) => Tensor64;
}

export function defineSecondResult(spec: SecondResultSpec): OpDef {
  const { name, resultOf } = spec;
  return defineOp({
    name,
    family: 'fused',
    arity: 1,
    attrs: spec.attrs ?? {},
    resultOf,
    doc: spec.doc,
    infer: (operands, _attrs, declared) => {
      const [p] = operands;
      if (p === undefined || operands.length !== 1) return opError('TFC104', `${name} takes 1 operand (a ${resultOf}), got ${operands.length}`);
      if (declared === undefined || !spec.accepts(declared, p)) return opError('TFC216', `${name} of ${printType(p)} needs a declared ${spec.needs(p)} type`);
      return declared;
    },
    noGrad: spec.noGrad,
    interp: (operands, ctx) => {
      if (ctx.producer === undefined) throw new InternalError(`${name} is interpreted with its ${resultOf}`);
      return spec.value(operands, ctx.producer, ctx);
    },
    flops: () => dimConst(0), // counted by the producer
    lowering: 'fused-only',
  });
}
