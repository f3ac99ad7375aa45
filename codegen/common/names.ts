// Deterministic identifier sanitizer for generated code: source names become valid identifiers,
// reserved words of the target are banned, clashes get `_1`, `_2` suffixes in claim order.

/** Any text to `[A-Za-z_][A-Za-z0-9_]*`: accents stripped, other characters become `_`. */
export function sanitizeIdentifier(raw: string): string {
  let s = raw.normalize('NFKD').replace(/[\u0300-\u036f]/g, '');
  s = s.replace(/[^A-Za-z0-9_]/g, '_').replace(/_+/g, '_').replace(/^_+|_+$/g, '');
  if (s === '') s = 'v';
  if (/^[0-9]/.test(s)) s = `n${s}`;
  return s;
}

/** A set of names in one scope; `claim` returns a fresh, valid, non-reserved identifier. */
export class NameScope {
  private readonly taken = new Set<string>();

  constructor(private readonly reserved: ReadonlySet<string>) {}

  claim(raw: string): string {
    const base = sanitizeIdentifier(raw);
    let name = base;
    for (let i = 1; this.reserved.has(name) || this.taken.has(name); i++) name = `${base}_${i}`;
    this.taken.add(name);
    return name;
  }

  /** Marks a name (e.g. a generated one) as used without sanitizing it. */
  reserve(name: string): void {
    this.taken.add(name);
  }
}

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
  'abs', 'bitcast', 'cos', 'exp', 'floor', 'inverseSqrt', 'log', 'max', 'min', 'pow', 'select', 'sin', 'sqrt',
  'tanh', 'workgroupBarrier', 'subgroupAdd', 'subgroupMax', 'subgroupBroadcastFirst',
  // names the WGSL printer itself declares
  'main', 'dims', 'Dims', 'lid', 'wid', 'gid', 'lindex', 'sg_size', 'sg_lane', 'tfc_erf', 'tfc_neg_inf',
]);

/** Kernel names are also WGSL/CUDA identifiers (labels, entry points); ban both targets' words. */
export const kernelNameReserved: ReadonlySet<string> = wgslReserved;
