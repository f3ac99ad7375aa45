// Deterministic identifier sanitizer for generated names: source names become valid identifiers,
// a scope's reserved words are banned, clashes get `_1`, `_2` suffixes in claim order. Used by the
// kernel lowering (kernel names) and the printers (locals); the reserved words come from codegen.

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
