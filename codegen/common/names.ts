// Reserved words of the targets we print: each printer's NameScope (src/base/names.ts) bans its
// own, and the compile driver passes kernelNameReserved to the lowering through the target
// (LoweringTarget.reservedNames), as kernel names are symbols in both WGSL files and CUDA.

/**
 * WGSL keywords and reserved words (WGSL spec 15.2 and 15.3), predeclared types and the builtin
 * functions our kernels call (a local named `max` would shadow `max()`).
 */
export const wgslReserved: ReadonlySet<string> = new Set([
  // keywords
  'alias', 'break', 'case', 'const', 'const_assert', 'continue', 'continuing', 'default', 'diagnostic', 'discard',
  'else', 'enable', 'false', 'fn', 'for', 'if', 'let', 'loop', 'override', 'requires', 'return', 'struct', 'switch',
  'true', 'var', 'while',
  // reserved words
  'NULL', 'Self', 'abstract', 'active', 'alignas', 'alignof', 'as', 'asm', 'asm_fragment', 'async', 'attribute',
  'auto', 'await', 'become', 'binding_array', 'cast', 'catch', 'class', 'co_await', 'co_return', 'co_yield',
  'coherent', 'column_major', 'common', 'compile', 'compile_fragment', 'concept', 'const_cast', 'consteval',
  'constexpr', 'constinit', 'crate', 'debugger', 'decltype', 'delete', 'demote', 'demote_to_helper', 'do',
  'dynamic_cast', 'enum', 'explicit', 'export', 'extends', 'extern', 'external', 'fallthrough', 'filter', 'final',
  'finally', 'friend', 'from', 'fxgroup', 'get', 'goto', 'groupshared', 'highp', 'impl', 'implements', 'import',
  'inline', 'instanceof', 'interface', 'layout', 'lowp', 'macro', 'macro_rules', 'match', 'mediump', 'meta', 'mod',
  'module', 'move', 'mut', 'mutable', 'namespace', 'new', 'nil', 'noexcept', 'noinline', 'nointerpolation',
  'noperspective', 'null', 'nullptr', 'of', 'operator', 'package', 'packoffset', 'partition', 'pass', 'patch',
  'pixelfragment', 'precise', 'precision', 'premerge', 'priv', 'protected', 'pub', 'public', 'readonly', 'ref',
  'regardless', 'register', 'reinterpret_cast', 'require', 'resource', 'restrict', 'self', 'set', 'shared',
  'sizeof', 'smooth', 'snorm', 'static', 'static_assert', 'static_cast', 'std', 'subroutine', 'super', 'target',
  'template', 'this', 'thread_local', 'throw', 'trait', 'try', 'type', 'typedef', 'typeid', 'typename', 'typeof',
  'union', 'unless', 'unorm', 'unsafe', 'unsized', 'use', 'using', 'varying', 'virtual', 'volatile', 'wgsl',
  'where', 'with', 'writeonly', 'yield',
  // predeclared types and enumerants
  'bool', 'f16', 'f32', 'i32', 'u32', 'vec2', 'vec3', 'vec4', 'mat2x2', 'mat3x3', 'mat4x4', 'array', 'atomic', 'ptr',
  'sampler', 'read', 'write', 'read_write', 'function', 'private', 'workgroup', 'uniform', 'storage',
  // builtin functions the kernels call
  'abs', 'bitcast', 'cos', 'exp', 'floor', 'round', 'clamp', 'extractBits', 'atomicAnd', 'atomicOr', 'atomicLoad', 'inverseSqrt', 'log', 'max', 'min', 'pow', 'select', 'sin', 'sqrt',
  'tanh', 'workgroupBarrier', 'subgroupAdd', 'subgroupMax', 'subgroupBroadcastFirst',
  // names the WGSL printer itself declares
  'main', 'dims', 'Dims', 'lid', 'wid', 'gid', 'lindex', 'sg_size', 'sg_lane', 'tfc_erf', 'tfc_neg_inf',
]);

/**
 * C++ keywords, CUDA builtin variables and types, the math functions and macros the CUDA kernels
 * use (a local named `expf` would shadow it; `NAN` is a macro), and the names the CUDA printer
 * declares itself.
 */
export const cudaReserved: ReadonlySet<string> = new Set([
  // C++20 keywords and alternative tokens
  'alignas', 'alignof', 'and', 'and_eq', 'asm', 'auto', 'bitand', 'bitor', 'bool', 'break', 'case', 'catch', 'char',
  'char8_t', 'char16_t', 'char32_t', 'class', 'compl', 'concept', 'const', 'consteval', 'constexpr', 'constinit',
  'const_cast', 'continue', 'co_await', 'co_return', 'co_yield', 'decltype', 'default', 'delete', 'do', 'double',
  'dynamic_cast', 'else', 'enum', 'explicit', 'export', 'extern', 'false', 'float', 'for', 'friend', 'goto', 'if',
  'inline', 'int', 'long', 'mutable', 'namespace', 'new', 'noexcept', 'not', 'not_eq', 'nullptr', 'operator', 'or',
  'or_eq', 'private', 'protected', 'public', 'register', 'reinterpret_cast', 'requires', 'return', 'short', 'signed',
  'sizeof', 'static', 'static_assert', 'static_cast', 'struct', 'switch', 'template', 'this', 'thread_local',
  'throw', 'true', 'try', 'typedef', 'typeid', 'typename', 'union', 'unsigned', 'using', 'virtual', 'void',
  'volatile', 'wchar_t', 'while', 'xor', 'xor_eq', 'restrict', 'std', 'main',
  // CUDA builtins, types and macros
  'threadIdx', 'blockIdx', 'blockDim', 'gridDim', 'warpSize', 'dim3', 'half', 'half2', 'nv_bfloat16', 'uint', 'INFINITY',
  'NAN', 'HUGE_VAL', 'HUGE_VALF', 'M_PI', 'M_E', 'EOF', 'NULL', 'assert', 'printf', 'min', 'max', 'abs',
  // math functions the kernels call
  'expf', 'logf', 'sqrtf', 'rsqrtf', 'tanhf', 'erff', 'sinf', 'cosf', 'fabsf', 'floorf', 'rintf', 'powf', 'fmaxf', 'fminf', 'fmodf',
  'exp', 'log', 'sqrt', 'tanh', 'erf', 'sin', 'cos', 'floor', 'rint', 'pow', 'fmod',
  // names the CUDA printer declares
  'lindex', 'sg_size', 'sg_lane', 'tfc_warp_sum', 'tfc_warp_max', 'tfc_warp_broadcast_first',
]);

/** Kernel names are also WGSL/CUDA identifiers (labels, entry points); ban both targets' words. */
export const kernelNameReserved: ReadonlySet<string> = new Set([...wgslReserved, ...cudaReserved]);
