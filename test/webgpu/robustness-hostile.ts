// The hostile model of issue 9, shared by the robustness tests (WGSL/CUDA in robustness.test.ts,
// the host module model.ts in test/e2e/cli-robustness-host.test.ts): key strings, identifiers and
// file names built to break out of comments, strings and templates in every output language.

// Every hostile string carries EVIL so that any user text leaking into code is easy to find.
// Written as .tfx string literals (\n, \", \\ and \u escapes are decoded by the lexer; a brace
// may only open a {l} placeholder, so `${l}` is the template-literal probe).
export const hostileKeys = [
  String.raw`EVIL0 */ fn main() /* `,
  String.raw`EVIL1 \" + x; var y = 1; //`,
  'EVIL2 ${l} `rm -rf` </script><script>alert(1)</script>',
  String.raw`EVIL3 \n@compute @workgroup_size(1) fn evil() ;\n#include <stdlib.h>`,
  String.raw`EVIL4 \\ \u0000 \u0085 \u2028 \u2029 \r \t \u000b \u000c`,
  String.raw`EVIL5 fn struct let var const __global__ __device__ class function return`,
  String.raw`EVIL6 数据 wé ight 🙂 \u200b`,
  String.raw`EVIL7 ??/ \\\n#define float int`,
];
// Identifiers the grammar accepts that are keywords or builtins in WGSL, CUDA/C++ or TypeScript.
export const hostileIdents = ['struct', 'let', 'var', 'const', '__global__', '__device__', 'class', 'main', 'ptr', 'array', 'loop', 'select', 'workgroup', 'storage', 'uniform', 'int', 'float', 'template', 'export', 'await', 'enable', 'switch', '_', '__'];
export const hostileFiles = ['EVILFILE */\n"${x}`.tfx', 'EVILFILE\u0085@compute fn x()\u2028\r\u000b.tfx', 'EVILFILE \\\n#error spliced.tfx'];

export function hostileModel(): string {
  const id = (i: number): string => hostileIdents[i % hostileIdents.length] ?? 'x';
  const weights = hostileKeys.slice(2).map((k, i) => `weight w${i}[l in 0..layers]: f32[d] = "${k.replace('EVIL', `EVIL${i}{l}`)}"`);
  return `config {
  d = 4
  layers = 2
}
dims T
input ${id(0)}: f32[T, d] = "${hostileKeys[0]}"
weight ${id(2)}: f32[d, d] = "${hostileKeys[1]}"
${weights.join('\n')}
output ${id(6)}: f32[T, d] = "${hostileKeys[3]}"
${hostileIdents
  .slice(7)
  .map((f, i) => `fn ${f}(x: f32[T, d], l: index) -> f32[T, d] {\n  return ${i % 3 === 0 ? 'softmax(x)' : i % 3 === 1 ? `exp(x @ ${id(2)}) + w0[l]` : `tanh(x) * w${i % weights.length}[l]`}\n}`)
  .join('\n')}
model ${id(5)} {
  h = ${id(0)}
  for l in 0..layers {
${hostileIdents
  .slice(7)
  .map((f) => `    h = ${f}(h, l)`)
  .join('\n')}
  }
  ${id(6)} = h
}
`;
}
