// `--dtype f16|bf16` (issue 15): the model's float type rewritten on the checked graph, before any
// pass, so every later stage (passes, kernels, host module, weight checks) sees one interface.
//
//   before                                          after (--dtype f16)
//   %1 = weight {name="w"} : f32[64,64]             %1 = weight {name="w"} : f16[64,64]
//   %4 = const {value=-1e9} : f32[]                 %4 = const {value=-inf} : f16[]      (warning TFC221)
//   %5 = cast %0 {to=f32} : f32[B,T]                %5 = cast %0 {to=f16} : f16[B,T]
//   %6 = grid {body=(i) => mul(read(0, i), 0.5)}    the same, its f32 reads, consts and applies typed f16
//
// Every f32 becomes the new type (types, `cast` targets, lambda values); i32, bool and dtypes
// the model declares as f16/bf16 stay. The kernels still accumulate in f32 (matmul, reductions,
// norm statistics, attention scores and softmax statistics): this narrows storage. A constant
// the new type cannot hold becomes +-inf here, so the interpreter and the kernels agree on it
// (a WGSL literal past f16's range would be a shader-creation error), with a warning.
// Fused ops carry lambdas whose parts the catalog types f32 on purpose (attention's `score()`),
// so a graph holding them (an .ir dumped after fusion) is refused: retype before fusing.
import { type Diagnostic, diag, warning } from '../diag/diagnostic.js';
import { getOp } from '../ops/catalog.js';
import type { Attr, Attrs, Graph, Node, ScalarExpr } from './ir.js';
import type { DType, TensorType } from './types.js';

/** The float types a model can be narrowed to. */
export type NarrowFloat = 'f16' | 'bf16';

/** Largest finite value of each narrow type (IEEE binary16: 65504; bfloat16 keeps f32's exponent range). */
const maxFinite: Readonly<Record<NarrowFloat, number>> = { f16: 65504, bf16: 3.3895313892515355e38 };

/**
 * `v` where `to` can hold it, else +-inf: values past the largest finite one by more than half an
 * ulp round to infinity (round to nearest: f16's threshold is 65520).
 */
export function narrowConstant(v: number, to: NarrowFloat): number {
  if (!Number.isFinite(v)) return v;
  const limit = to === 'f16' ? 65520 : 3.3961775292304740e38;
  return Math.abs(v) >= limit ? (v < 0 ? -Infinity : Infinity) : v;
}

function shown(x: number): string {
  if (!Number.isFinite(x)) return x < 0 ? '-inf' : 'inf';
  return Math.abs(x) >= 1e6 ? x.toExponential() : String(x);
}

export interface RetypeResult {
  /** Undefined when the graph cannot be retyped (errors in `diagnostics`). */
  readonly graph?: Graph;
  readonly diagnostics: readonly Diagnostic[];
}

/** The graph with every f32 replaced by `to` (see the file comment). */
export function retypeFloats(g: Graph, to: NarrowFloat): RetypeResult {
  const ds: Diagnostic[] = [];
  const fused = g.nodes.find((n) => getOp(n.op)?.family === 'fused');
  if (fused !== undefined) {
    ds.push(diag('TFC314', fused.loc, `--dtype ${to} retypes a graph before fusion, but %${fused.id} is ${fused.op} (dump the IR with --emit ir, not --emit fused)`));
    return { diagnostics: ds };
  }
  const dt = (t: DType): DType => (t === 'f32' ? to : t);
  const ty = (t: TensorType): TensorType => (t.dtype === 'f32' ? { ...t, dtype: to } : t);
  const constant = (n: Node, v: number): number => {
    const w = narrowConstant(v, to);
    if (w !== v) ds.push(warning('TFC221', n.loc, `the constant ${shown(v)} is beyond ${to}'s range (largest finite ${shown(maxFinite[to])}) and becomes ${shown(w)} under --dtype ${to}`));
    return w;
  };
  const expr = (n: Node, e: ScalarExpr): ScalarExpr => {
    switch (e.kind) {
      case 'index':
      case 'dim':
        return e;
      case 'const':
        return e.dtype === 'f32' ? { ...e, dtype: to, value: constant(n, e.value) } : e;
      case 'read':
        return { ...e, dtype: dt(e.dtype), indices: e.indices.map((x) => expr(n, x)) };
      case 'apply':
        return { ...e, dtype: dt(e.dtype), args: e.args.map((x) => expr(n, x)) };
    }
  };
  const attr = (n: Node, a: Attr): Attr => {
    if (a.kind === 'dtype') return { kind: 'dtype', value: dt(a.value) };
    if (a.kind === 'lambda') return { ...a, body: expr(n, a.body) };
    return a;
  };
  const nodes = g.nodes.map((n): Node => {
    const attrs: Record<string, Attr> = {};
    for (const [k, a] of Object.entries(n.attrs)) attrs[k] = attr(n, a);
    const value = n.attrs['value'];
    if (n.op === 'const' && n.type.dtype === 'f32' && value?.kind === 'float') attrs['value'] = { kind: 'float', value: constant(n, value.value) };
    return { ...n, type: ty(n.type), attrs: attrs as Attrs };
  });
  return { graph: { ...g, nodes }, diagnostics: ds };
}
