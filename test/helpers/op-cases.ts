// Every catalog op as a tiny .tfx model with dims B, T, run against the float64 interpreter by
// the per-op tests of each target (test/webgpu/ops.test.ts, test/cuda/emulate.test.ts).

/** A feature size that is no multiple of any tile, warp or subgroup. */
export const F = 33;
/** Dims B, T and the input x: f32[B, T, F]; each case adds its outputs and model. */
export const header = `dims B, T\ninput x: f32[B, T, ${F}]\n`;
const unary = (name: string, expr: string) => ({ name, src: `${header}output y: f32[B, T, ${F}]\nmodel m {\n  y = ${expr}\n}\n` });
const binary = (name: string, expr: string, out = 'f32') => ({
  name,
  src: `${header}weight w: f32[${F}] = "w"\noutput y: ${out}[B, T, ${F}]\nmodel m {\n  y = ${expr}\n}\n`,
});

export interface OpCase {
  readonly name: string;
  readonly src: string;
}

export const opCases: readonly OpCase[] = [
  unary('neg', '-x'),
  unary('exp', 'exp(x)'),
  unary('log', 'log(abs(x) + 0.5)'),
  unary('sqrt', 'sqrt(abs(x))'),
  unary('rsqrt', 'rsqrt(abs(x) + 0.1)'),
  unary('tanh', 'tanh(3 * x)'),
  unary('erf', 'erf(2 * x)'),
  unary('sin', 'sin(4 * x)'),
  unary('cos', 'cos(4 * x)'),
  unary('abs', 'abs(x)'),
  unary('relu', 'relu(x)'),
  unary('silu', 'silu(4 * x)'),
  unary('sigmoid', 'sigmoid(4 * x)'),
  unary('gelu-erf', 'gelu(3 * x)'),
  unary('gelu-tanh', 'gelu(3 * x, approx="tanh")'),
  unary('softmax-last', 'softmax(8 * x, axis=-1)'),
  binary('add', 'x + w'),
  binary('sub', 'x - w'),
  binary('mul', 'x * w'),
  binary('div', 'x / (abs(w) + 0.5)'),
  binary('pow', 'pow(abs(x) + 0.1, w * 2)'),
  binary('max', 'max(x, w)'),
  binary('min', 'min(x, w)'),
  binary('mod', 'x % (abs(w) + 0.3)'),
  binary('where-lt', 'where(x < w, x, w)'),
  binary('where-le-ge', 'where((x <= w) && (x >= -w), 1.0, 0.0) + where(!(x > w) || (x == w), 2.0, 0.0)'),
  binary('ne', 'where(x != w, x, 0.0)'),
  binary('lt-bool-output', 'x < w', 'bool'),
  binary('layernorm', 'layernorm(x, w, w * 0.5)'),
  binary('rmsnorm', 'rmsnorm(x, w)'),
  {
    name: 'reductions',
    src: `${header}output s: f32[B, T]\noutput mx: f32[B, ${F}]\noutput mn: f32[B, T, 1]\nmodel m {\n  s = sum(x, axis=-1)\n  mx = max(x, axis=1)\n  mn = mean(x, axis=-1, keepdims=true)\n}\n`,
  },
  {
    name: 'logsumexp',
    // Over the last axis (scores up to +-30) and over a middle axis.
    src: `${header}output a: f32[B, T]\noutput b: f32[B, 1, ${F}]\nmodel m {\n  a = logsumexp(x * 30, axis=-1)\n  b = logsumexp(x, axis=1, keepdims=true)\n}\n`,
  },
  { name: 'softmax-middle-axis', src: `${header}output y: f32[B, T, ${F}]\nmodel m {\n  y = softmax(x * 5, axis=1)\n}\n` },
  { name: 'matmul', src: `${header}weight w: f32[${F}, 7] = "w"\noutput y: f32[B, T, 7]\nmodel m {\n  y = x @ w\n}\n` },
  { name: 'matmul-batched-transpose', src: `${header}output y: f32[B, T, T]\nmodel m {\n  y = x @ transpose(x)\n}\n` },
  {
    name: 'gather',
    src: `dims B, T\ninput tokens: i32[B, T]\nweight wte: f32[11, ${F}] = "wte"\noutput y: f32[B, T, ${F}]\nmodel m {\n  y = wte[tokens]\n}\n`,
  },
  {
    name: 'movement',
    src: `${header}output y: f32[T, B, 3, 11]\noutput z: f32[B, T, 40]\noutput s: f32[B, T, 10]\nmodel m {\n  y = permute(reshape(x, [B, T, 3, 11]), [1, 0, 2, 3])\n  z = concat(x, slice(x, 0, 7, axis=-1), axis=-1)\n  a, b, c = split(slice(x, 3, 33, axis=-1), 3, axis=-1)\n  s = a + b * c\n}\n`,
  },
  {
    name: 'arange-grid-cast',
    src: `${header}output pos: i32[T]\noutput masked: f32[B, T, T]\noutput c: i32[B, T, ${F}]\nmodel m {\n  pos = arange(T) * 2\n  causal = grid[T, T](q, k) => k <= q\n  masked = where(causal, x @ transpose(x), -inf) |> softmax(axis=-1)\n  c = cast(x * 10, i32)\n}\n`,
  },
];
