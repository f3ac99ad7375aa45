// Elementwise ops: unary, binary and `where`, with numpy broadcasting over symbolic dims.
// Each op has a dtype rule, a per-element function (`scalar`, `scalarTyped`, also used inside
// grid lambdas) and FLOPs = number of result elements.
import { type Dim, dimConst, dimConstValue, dimEquals, dimMul } from '../base/dim.js';
import type { DiagCode } from '../diag/codes.js';
import { type Attrs, type Attr } from '../graph/ir.js';
import { type DType, type TensorType, isFloat, printType } from '../graph/types.js';
import { broadcastOffsets, coerce, makeTensor, type Tensor64 } from '../base/tensor.js';
import { InterpError } from './errors.js';
import { erf, floorMod, geluErf, geluTanh, roundHalfEven } from './scalar-math.js';

export { erf, floorMod, geluErf, geluTanh, roundHalfEven } from './scalar-math.js';
import { type DiffBuilder, type OpDef, type OpError, type OperandTyping, type ScalarBuilder, type ScalarLowering, type ScalarMathFn, type ScalarTypes, type ScalarVjp, type InterpContext, type VjpRule, defineOp } from './define.js';

// ---------------------------------------------------------------------------------------------
// Shared shape helpers (matmul and norm use them too).

/** Product of the dims: the element count as a formula. */
export function numelDim(shape: readonly Dim[]): Dim {
  return shape.reduce((acc, d) => dimMul(acc, d), dimConst(1));
}

function isOne(d: Dim): boolean {
  return dimConstValue(d) === 1;
}

/** numpy broadcasting: dims match when equal or one is the constant 1. Undefined if they do not. */
export function broadcastDims(a: readonly Dim[], b: readonly Dim[]): Dim[] | undefined {
  const rank = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    const x = a[a.length - rank + i];
    const y = b[b.length - rank + i];
    if (x === undefined && y !== undefined) out.push(y);
    else if (y === undefined && x !== undefined) out.push(x);
    else if (x !== undefined && y !== undefined) {
      if (dimEquals(x, y) || isOne(y)) out.push(x);
      else if (isOne(x)) out.push(y);
      else return undefined;
    }
  }
  return out;
}

export function opError(code: DiagCode, message: string): OpError {
  return { code, message };
}

/** The result of broadcasting several operand types (shapes only), or a TFC201 error. */
export function broadcastTypes(types: readonly TensorType[]): readonly Dim[] | OpError {
  const [first, ...rest] = types;
  if (first === undefined) return [];
  let shape: readonly Dim[] = first.shape;
  let shown: TensorType = first;
  for (const t of rest) {
    const next = broadcastDims(shape, t.shape);
    if (next === undefined) return opError('TFC201', `cannot broadcast ${printType(shown)} with ${printType(t)}`);
    shape = next;
    shown = { dtype: shown.dtype, shape };
  }
  return shape;
}

// ---------------------------------------------------------------------------------------------
// Dtype classes.

export type DtypeClass = 'float' | 'numeric' | 'bool' | 'any';

function checkClass(op: string, cls: DtypeClass, t: TensorType): OpError | undefined {
  switch (cls) {
    case 'float':
      return isFloat(t.dtype) ? undefined : opError('TFC207', `${op} needs a floating-point operand, got ${printType(t)}`);
    case 'numeric':
      // i8 is a storage type (quantized caches): arithmetic on it would wrap at 8 bits, so it is
      // refused; `cast(x, f32)` (or i32) first. Comparisons, `where` and casts take it.
      if (t.dtype === 'i8') return opError('TFC207', `${op} needs a float or i32 operand, got ${printType(t)} (i8 is a storage type: cast it to f32 or i32 first)`);
      return t.dtype !== 'bool' ? undefined : opError('TFC207', `${op} needs a float or i32 operand, got ${printType(t)}`);
    case 'bool':
      return t.dtype === 'bool' ? undefined : opError('TFC208', `${op} needs a bool operand, got ${printType(t)}`);
    case 'any':
      return undefined;
  }
}

function intDivisor(b: number, op: string): number {
  if (b === 0) throw new InterpError('TFC309', `integer ${op} by zero`);
  return b;
}

// ---------------------------------------------------------------------------------------------
// Definitions.

type Fn = (...xs: number[]) => number;

/** An elementwise op's definition: adding an op is one of these in `elementwiseOps` (or registerOp) and nothing else. */
export interface ElementwiseSpec {
  readonly name: string;
  readonly arity: 1 | 2 | 3;
  readonly doc: string;
  /** Operand dtype class; binary and ternary value operands must also share one dtype. */
  readonly cls: DtypeClass;
  /** Result dtype: the operand's, bool (comparisons), or from the `to` attribute (cast). */
  readonly result?: 'same' | 'bool' | 'cast';
  readonly attrs?: Readonly<Record<string, Attr['kind']>>;
  readonly f: Fn;
  /** i32 semantics where they differ from the float function. */
  readonly i32?: Fn;
  /** Dtype- or attribute-dependent function, overriding f and i32. */
  readonly typed?: (types: ScalarTypes) => Fn;
  readonly check?: (attrs: Attrs) => OpError | undefined;
  /** The kernel lowering of one element (written once for every target, through ScalarBuilder). */
  readonly lower: ScalarLowering;
  /** Operand conversion before `lower`; default from `result`: 'bool' compares, 'cast' keeps its own, else the result type. */
  readonly typing?: OperandTyping;
  /** The builtin's doc when users call the op by name (`exp(x)`, `pow(a, b)`); absent: an operator or a builtin of its own. */
  readonly builtin?: string;
  /** The per-element vjp (for graph nodes and grid lambdas alike); ops with a bool result have none. */
  readonly grad?: ScalarVjp;
}

const boolResult = 'its result is bool: no cotangent flows through it';

/** The node-level vjp of an elementwise op: its per-element rule on tensors, each argument's part summed back over broadcast axes. */
function vjpOf(grad: ScalarVjp): VjpRule {
  return (g, a) => {
    const parts = grad(g, a.x, a.y, a.dy, a.node.attrs);
    return a.x.map((x, i) => {
      const p = parts[i];
      return a.needs[i] !== true || p === undefined ? undefined : g.unbroadcast(p, g.type(x).shape);
    });
  };
}

function inferElementwise(spec: ElementwiseSpec, operands: readonly TensorType[], attrs: Attrs): TensorType | OpError {
  if (operands.length !== spec.arity) {
    return opError('TFC104', `${spec.name} takes ${spec.arity} operand(s), got ${operands.length}`);
  }
  const attrError = spec.check?.(attrs);
  if (attrError !== undefined) return attrError;
  // `where`: the condition is bool; the two values share a dtype.
  const values = spec.name === 'where' ? operands.slice(1) : operands;
  if (spec.name === 'where') {
    const cond = operands[0];
    if (cond !== undefined && cond.dtype !== 'bool') {
      return opError('TFC208', `where needs a bool condition, got ${printType(cond)}`);
    }
  }
  const [v0, v1] = values;
  if (v0 === undefined) return opError('TFC104', `${spec.name} has no operands`);
  if (v1 !== undefined && v1.dtype !== v0.dtype) {
    return opError('TFC202', `cannot ${spec.name} ${printType(v0)} and ${printType(v1)}: dtypes ${v0.dtype} and ${v1.dtype} differ`);
  }
  const clsError = checkClass(spec.name, spec.cls, v0);
  if (clsError !== undefined) return clsError;
  const shape = broadcastTypes(operands);
  if (!Array.isArray(shape)) return shape as OpError;
  let dtype: DType = v0.dtype;
  if (spec.result === 'bool') dtype = 'bool';
  if (spec.result === 'cast') {
    const to = attrs['to'];
    if (to === undefined || to.kind !== 'dtype') return opError('TFC110', `cast needs a dtype attribute 'to'`);
    dtype = to.value;
  }
  return { dtype, shape };
}

function typedOf(spec: ElementwiseSpec): (types: ScalarTypes) => Fn {
  if (spec.typed !== undefined) return spec.typed;
  const { f, i32 } = spec;
  return (types) => (types.operand === 'i32' && i32 !== undefined ? i32 : f);
}

/** Applies the per-element function over the broadcast result shape. */
function interpElementwise(typed: (types: ScalarTypes) => Fn, operands: readonly Tensor64[], ctx: InterpContext): Tensor64 {
  const dtype = ctx.node.type.dtype;
  const first = operands[0];
  const fn = typed({ operand: first?.dtype ?? dtype, result: dtype, attrs: ctx.node.attrs });
  const out = makeTensor(dtype, ctx.shape);
  const offsets = operands.map((t) => broadcastOffsets(t.shape, ctx.shape));
  const args = new Array<number>(operands.length).fill(0);
  for (let i = 0; i < out.data.length; i++) {
    for (let k = 0; k < operands.length; k++) args[k] = operands[k]?.data[offsets[k]?.[i] ?? 0] ?? NaN;
    out.data[i] = coerce(dtype, fn(...args));
  }
  return out;
}

/** The catalog entry of an elementwise op: dtype rule, float64 interpreter, FLOPs, kernel lowering, builtin. */
export function defineElementwise(spec: ElementwiseSpec): OpDef {
  const typed = typedOf(spec);
  return defineOp({
    name: spec.name,
    family: 'elementwise',
    arity: spec.arity,
    attrs: spec.attrs ?? {},
    doc: spec.doc,
    infer: (operands, attrs) => inferElementwise(spec, operands, attrs),
    interp: (operands, ctx) => interpElementwise(typed, operands, ctx),
    flops: (_operands, result) => numelDim(result.shape),
    scalar: spec.f,
    scalarTyped: typed,
    lower: spec.lower,
    typing: spec.typing ?? (spec.result === 'bool' ? 'compare' : spec.result === 'cast' ? 'own' : 'result'),
    ...(spec.builtin !== undefined ? { builtin: spec.builtin } : {}),
    ...(spec.grad !== undefined ? { vjp: vjpOf(spec.grad), scalarVjp: spec.grad } : { noGrad: spec.result === 'bool' || spec.cls === 'bool' ? boolResult : `${spec.name} has no derivative rule` }),
    lowering: 'unfused',
  });
}

// ---------------------------------------------------------------------------------------------
// Kernel lowerings (target-neutral, through ScalarBuilder).

function arg<E>(args: readonly E[], i: number): E {
  const a = args[i];
  if (a === undefined) throw new Error(`internal: missing operand ${i}`);
  return a;
}
const math1 =
  (fn: ScalarMathFn): ScalarLowering =>
  (b, a) =>
    b.call(fn, [arg(a, 0)]);
const math2 =
  (fn: 'pow' | 'max' | 'min'): ScalarLowering =>
  (b, a) =>
    b.call(fn, [arg(a, 0), arg(a, 1)]);
const binop =
  (op: 'add' | 'sub' | 'mul' | 'div' | 'eq' | 'ne' | 'lt' | 'le' | 'gt' | 'ge' | 'and' | 'or'): ScalarLowering =>
  (b, a) =>
    b.binary(op, arg(a, 0), arg(a, 1));
function sigmoidOf<E>(b: ScalarBuilder<E>, x: E): E {
  return b.binary('div', b.lit(x, 1), b.binary('add', b.lit(x, 1), b.call('exp', [b.unary('neg', x)])));
}
/** tanh: 0.5*x*(1 + tanh(sqrt(2/pi)*(x + 0.044715*x^3)));  erf: 0.5*x*(1 + erf(x/sqrt(2))). */
const lowerGelu: ScalarLowering = (b, a, attrs) => {
  const x = arg(a, 0);
  const approx = attrs['approx'];
  const isTanh = approx !== undefined && approx.kind === 'str' && approx.value === 'tanh';
  const inner = isTanh
    ? b.call('tanh', [b.binary('mul', b.lit(x, Math.sqrt(2 / Math.PI)), b.binary('add', x, b.binary('mul', b.lit(x, 0.044715), b.binary('mul', x, b.binary('mul', x, x)))))])
    : b.call('erf', [b.binary('mul', x, b.lit(x, Math.SQRT1_2))]);
  return b.binary('mul', b.binary('mul', b.lit(x, 0.5), x), b.binary('add', b.lit(x, 1), inner));
};
/** Floor modulo (Python `%`): the result takes the divisor's sign. */
const lowerMod: ScalarLowering = (b, a) => {
  const x = arg(a, 0);
  const y = arg(a, 1);
  if (b.isInt(x)) {
    const r = b.binary('rem', x, y);
    const fix = b.binary('and', b.binary('ne', r, b.lit(x, 0)), b.binary('ne', b.binary('lt', r, b.lit(x, 0)), b.binary('lt', y, b.lit(x, 0))));
    return b.select(fix, b.binary('add', r, y), r);
  }
  return b.binary('sub', x, b.binary('mul', y, b.call('floor', [b.binary('div', x, y)])));
};

// Per-element vjps: `x` the arguments, `y` the result, `g` its cotangent (DiffBuilder builds
// nodes or lambda expressions alike). Kinks follow PyTorch: relu and abs give 0 at 0, max/min
// split the cotangent evenly on ties.
const unaryGrad =
  (f: <E>(b: DiffBuilder<E>, x: E, y: E, g: E) => E): ScalarVjp =>
  (b, x, y, g) => [f(b, arg(x, 0), y, g)];
/** d/dx gelu: erf form 0.5(1 + erf(x/sqrt2)) + x exp(-x^2/2)/sqrt(2 pi); tanh form with t = tanh(k(x + 0.044715x^3)): 0.5(1 + t) + 0.5x(1 - t^2) k (1 + 3*0.044715x^2). */
const gradGelu: ScalarVjp = (b, xs, _y, g, attrs) => {
  const x = arg(xs, 0);
  const approx = attrs['approx'];
  const c = (v: number): typeof x => b.lit(x, v);
  let d: typeof x;
  if (approx !== undefined && approx.kind === 'str' && approx.value === 'tanh') {
    const k = Math.sqrt(2 / Math.PI);
    const x2 = b.op('mul', x, x);
    const t = b.op('tanh', b.op('mul', c(k), b.op('add', x, b.op('mul', c(0.044715), b.op('mul', x, x2)))));
    const du = b.op('mul', c(k), b.op('add', c(1), b.op('mul', c(3 * 0.044715), x2)));
    d = b.op('add', b.op('mul', c(0.5), b.op('add', c(1), t)), b.op('mul', b.op('mul', c(0.5), x), b.op('mul', b.op('sub', c(1), b.op('mul', t, t)), du)));
  } else {
    const cdf = b.op('mul', c(0.5), b.op('add', c(1), b.op('erf', b.op('mul', x, c(Math.SQRT1_2)))));
    const pdf = b.op('mul', c(1 / Math.sqrt(2 * Math.PI)), b.op('exp', b.op('mul', c(-0.5), b.op('mul', x, x))));
    d = b.op('add', cdf, b.op('mul', x, pdf));
  }
  return [b.op('mul', g, d)];
};
/** max(a, b) (`pick` = gt) or min (`pick` = lt): the cotangent goes to the chosen argument, half to each on a tie. */
const gradPick =
  (pick: 'gt' | 'lt'): ScalarVjp =>
  (b, xs, _y, g) => {
    const x = arg(xs, 0);
    const y = arg(xs, 1);
    const zero = b.lit(g, 0);
    const half = b.op('mul', g, b.lit(g, 0.5));
    const tie = b.op('where', b.op('eq', x, y), half, zero);
    return [b.op('where', b.op(pick, x, y), g, tie), b.op('where', b.op(pick, y, x), g, tie)];
  };

const b = (c: boolean): number => (c ? 1 : 0);

const geluCheck = (attrs: Attrs): OpError | undefined => {
  const a = attrs['approx'];
  if (a === undefined) return undefined; // grid lambdas apply gelu without attributes: erf
  if (a.kind !== 'str' || (a.value !== 'tanh' && a.value !== 'erf')) {
    return opError('TFC110', `gelu approx must be "tanh" or "erf", got ${a.kind === 'str' ? JSON.stringify(a.value) : a.kind}`);
  }
  return undefined;
};

export const elementwiseOps: readonly OpDef[] = [
  // Unary.
  defineElementwise({ name: 'neg', grad: unaryGrad((b, _x, _y, g) => b.op('neg', g)), arity: 1, cls: 'numeric', doc: '-x (i32 wraps)', builtin: 'negation, per element', lower: (b, a) => b.unary('neg', arg(a, 0)), f: (x) => -x, i32: (x) => -x | 0 }),
  defineElementwise({ name: 'exp', grad: unaryGrad((b, _x, y, g) => b.op('mul', g, y)), arity: 1, cls: 'float', doc: 'e to the x', builtin: 'e to the x, per element', lower: math1('exp'), f: Math.exp }),
  defineElementwise({ name: 'log', grad: unaryGrad((b, x, _y, g) => b.op('div', g, x)), arity: 1, cls: 'float', doc: 'natural logarithm (log 0 = -inf, log of a negative = NaN)', builtin: 'natural logarithm, per element', lower: math1('log'), f: Math.log }),
  defineElementwise({ name: 'sqrt', grad: unaryGrad((b, _x, y, g) => b.op('div', g, b.op('mul', b.lit(y, 2), y))), arity: 1, cls: 'float', doc: 'square root', builtin: 'square root, per element', lower: math1('sqrt'), f: Math.sqrt }),
  defineElementwise({ name: 'rsqrt', grad: unaryGrad((b, _x, y, g) => b.op('mul', g, b.op('mul', b.lit(y, -0.5), b.op('mul', y, b.op('mul', y, y))))), arity: 1, cls: 'float', doc: '1 / sqrt(x)', builtin: '1 / sqrt(x), per element', lower: math1('rsqrt'), f: (x) => 1 / Math.sqrt(x) }),
  defineElementwise({ name: 'tanh', grad: unaryGrad((b, _x, y, g) => b.op('mul', g, b.op('sub', b.lit(y, 1), b.op('mul', y, y)))), arity: 1, cls: 'float', doc: 'hyperbolic tangent', builtin: 'hyperbolic tangent, per element', lower: math1('tanh'), f: Math.tanh }),
  defineElementwise({ name: 'erf', grad: unaryGrad((b, x, _y, g) => b.op('mul', g, b.op('mul', b.lit(x, 2 / Math.sqrt(Math.PI)), b.op('exp', b.op('neg', b.op('mul', x, x)))))), arity: 1, cls: 'float', doc: 'error function (float64 series / continued fraction, rel. error < 1e-14)', builtin: 'error function, per element', lower: math1('erf'), f: erf }),
  defineElementwise({ name: 'sin', grad: unaryGrad((b, x, _y, g) => b.op('mul', g, b.op('cos', x))), arity: 1, cls: 'float', doc: 'sine (radians)', builtin: 'sine, per element', lower: math1('sin'), f: Math.sin }),
  defineElementwise({ name: 'cos', grad: unaryGrad((b, x, _y, g) => b.op('neg', b.op('mul', g, b.op('sin', x)))), arity: 1, cls: 'float', doc: 'cosine (radians)', builtin: 'cosine, per element', lower: math1('cos'), f: Math.cos }),
  defineElementwise({ name: 'round', grad: unaryGrad((b, _x, _y, g) => b.op('mul', g, b.lit(g, 0))), arity: 1, cls: 'float', doc: 'nearest integer, halves to even (as torch.round, WGSL round); derivative 0 (as PyTorch)', builtin: 'nearest integer, halves to even (2.5 -> 2), per element', lower: math1('round'), f: roundHalfEven }),
  defineElementwise({ name: 'abs', grad: unaryGrad((b, x, _y, g) => b.op('where', b.op('gt', x, b.lit(x, 0)), g, b.op('where', b.op('lt', x, b.lit(x, 0)), b.op('neg', g), b.lit(g, 0)))), arity: 1, cls: 'numeric', doc: '|x| (i32 wraps at -2^31)', builtin: 'absolute value, per element', lower: math1('abs'), f: Math.abs, i32: (x) => Math.abs(x) | 0 }),
  defineElementwise({ name: 'relu', grad: unaryGrad((b, x, _y, g) => b.op('where', b.op('gt', x, b.lit(x, 0)), g, b.lit(g, 0))), arity: 1, cls: 'numeric', doc: 'max(x, 0); NaN stays NaN', builtin: 'max(x, 0), per element', lower: (b, a) => b.call('max', [arg(a, 0), b.lit(arg(a, 0), 0)]), f: (x) => (x > 0 || Number.isNaN(x) ? x : 0) }),
  defineElementwise({ name: 'silu', grad: unaryGrad((b, x, _y, g) => { const s = b.op('sigmoid', x); return b.op('mul', g, b.op('mul', s, b.op('add', b.lit(x, 1), b.op('mul', x, b.op('sub', b.lit(x, 1), s))))); }), arity: 1, cls: 'float', doc: 'x * sigmoid(x)', builtin: 'x * sigmoid(x), per element', lower: (b, a) => b.binary('mul', arg(a, 0), sigmoidOf(b, arg(a, 0))), f: (x) => x / (1 + Math.exp(-x)) }),
  defineElementwise({ name: 'sigmoid', grad: unaryGrad((b, _x, y, g) => b.op('mul', g, b.op('mul', y, b.op('sub', b.lit(y, 1), y)))), arity: 1, cls: 'float', doc: '1 / (1 + e^-x)', builtin: '1 / (1 + exp(-x)), per element', lower: (b, a) => sigmoidOf(b, arg(a, 0)), f: (x) => 1 / (1 + Math.exp(-x)) }),
  defineElementwise({ name: 'not', arity: 1, cls: 'bool', result: 'same', doc: 'logical not of a bool', lower: (b, a) => b.unary('not', arg(a, 0)), f: (x) => b(x === 0) }),
  defineElementwise({
    name: 'gelu',
    grad: gradGelu,
    arity: 1,
    cls: 'float',
    lower: lowerGelu,
    attrs: { approx: 'str' },
    check: geluCheck,
    doc: 'approx="erf": 0.5x(1+erf(x/sqrt2)); approx="tanh": 0.5x(1+tanh(sqrt(2/pi)(x+0.044715x^3)))',
    f: geluErf,
    typed: (t) => {
      const a = t.attrs['approx'];
      return a !== undefined && a.kind === 'str' && a.value === 'tanh' ? geluTanh : geluErf;
    },
  }),
  defineElementwise({
    name: 'cast',
    grad: (b, x, _y, g) => { const from = b.dtype(arg(x, 0)); return [isFloat(from) && isFloat(b.dtype(g)) ? b.cast(g, from) : undefined]; },
    arity: 1,
    cls: 'any',
    lower: (b, a) => b.toResult(arg(a, 0)),
    result: 'cast',
    attrs: { to: 'dtype' },
    doc: 'dtype conversion: to i32 truncates toward zero (saturating, NaN -> 0), to bool is x != 0',
    f: (x) => x,
    typed: (t) => (x) => coerce(t.result, x),
  }),
  // Binary.
  defineElementwise({ name: 'add', grad: (_b, _x, _y, g) => [g, g], arity: 2, cls: 'numeric', doc: 'a + b (i32 wraps)', lower: binop('add'), f: (x, y) => x + y, i32: (x, y) => (x + y) | 0 }),
  defineElementwise({ name: 'sub', grad: (b, _x, _y, g) => [g, b.op('neg', g)], arity: 2, cls: 'numeric', doc: 'a - b (i32 wraps)', lower: binop('sub'), f: (x, y) => x - y, i32: (x, y) => (x - y) | 0 }),
  defineElementwise({ name: 'mul', grad: (b, x, _y, g) => [b.op('mul', g, arg(x, 1)), b.op('mul', g, arg(x, 0))], arity: 2, cls: 'numeric', doc: 'a * b (i32 wraps)', lower: binop('mul'), f: (x, y) => x * y, i32: (x, y) => Math.imul(x, y) }),
  defineElementwise({
    name: 'div',
    grad: (b, x, y, g) => [b.op('div', g, arg(x, 1)), b.op('neg', b.op('div', b.op('mul', g, y), arg(x, 1)))],
    arity: 2,
    cls: 'numeric',
    lower: binop('div'),
    doc: 'a / b; i32 truncates toward zero, i32 division by zero is an error (TFC309)',
    f: (x, y) => x / y,
    i32: (x, y) => Math.trunc(x / intDivisor(y, 'division')) | 0,
  }),
  defineElementwise({
    name: 'mod',
    grad: (b, x, y, g) => [g, b.op('neg', b.op('mul', g, b.op('div', b.op('sub', arg(x, 0), y), arg(x, 1))))],
    arity: 2,
    cls: 'numeric',
    lower: lowerMod,
    doc: 'floor modulo as in Python: the result has the sign of b (-7 mod 3 = 2); i32 mod 0 is an error (TFC309)',
    f: floorMod,
    i32: (x, y) => floorMod(x, intDivisor(y, 'modulo')) | 0,
  }),
  defineElementwise({ name: 'pow', grad: (b, x, y, g) => [b.op('mul', g, b.op('mul', arg(x, 1), b.op('pow', arg(x, 0), b.op('sub', arg(x, 1), b.lit(g, 1))))), b.op('mul', g, b.op('mul', y, b.op('log', arg(x, 0))))], arity: 2, cls: 'float', doc: 'a to the power b', builtin: 'x to the y, with broadcasting', lower: math2('pow'), f: Math.pow }),
  defineElementwise({ name: 'max', grad: gradPick('gt'), arity: 2, cls: 'numeric', doc: 'elementwise maximum; NaN propagates', lower: math2('max'), f: Math.max }),
  defineElementwise({ name: 'min', grad: gradPick('lt'), arity: 2, cls: 'numeric', doc: 'elementwise minimum; NaN propagates', builtin: 'smaller of two values, with broadcasting', lower: math2('min'), f: Math.min }),
  defineElementwise({ name: 'eq', arity: 2, cls: 'any', result: 'bool', doc: 'a == b -> bool', lower: binop('eq'), f: (x, y) => b(x === y) }),
  defineElementwise({ name: 'ne', arity: 2, cls: 'any', result: 'bool', doc: 'a != b -> bool (true for NaN)', lower: binop('ne'), f: (x, y) => b(x !== y) }),
  defineElementwise({ name: 'lt', arity: 2, cls: 'any', result: 'bool', doc: 'a < b -> bool', lower: binop('lt'), f: (x, y) => b(x < y) }),
  defineElementwise({ name: 'le', arity: 2, cls: 'any', result: 'bool', doc: 'a <= b -> bool', lower: binop('le'), f: (x, y) => b(x <= y) }),
  defineElementwise({ name: 'gt', arity: 2, cls: 'any', result: 'bool', doc: 'a > b -> bool', lower: binop('gt'), f: (x, y) => b(x > y) }),
  defineElementwise({ name: 'ge', arity: 2, cls: 'any', result: 'bool', doc: 'a >= b -> bool', lower: binop('ge'), f: (x, y) => b(x >= y) }),
  defineElementwise({ name: 'and', arity: 2, cls: 'bool', doc: 'logical and of bools', lower: binop('and'), f: (x, y) => b(x !== 0 && y !== 0) }),
  defineElementwise({ name: 'or', arity: 2, cls: 'bool', doc: 'logical or of bools', lower: binop('or'), f: (x, y) => b(x !== 0 || y !== 0) }),
  // Ternary.
  defineElementwise({ name: 'where', grad: (b, x, _y, g) => [undefined, b.op('where', arg(x, 0), g, b.lit(g, 0)), b.op('where', arg(x, 0), b.lit(g, 0), g)], arity: 3, cls: 'any', doc: 'cond ? a : b per element; cond is bool, a and b share a dtype', typing: 'select', lower: (b, a) => b.select(arg(a, 0), arg(a, 1), arg(a, 2)), f: (c, x, y) => (c !== 0 ? x : y) }),
];

/** The per-element function for an elementwise op under dtypes (used by grid lambdas). */
export function scalarFunction(op: OpDef, types: ScalarTypes): Fn | undefined {
  if (op.scalarTyped !== undefined) return op.scalarTyped(types);
  return op.scalar;
}
