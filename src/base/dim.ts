// Symbolic dimensions: polynomials over run-time dims (B, T, ...) with integer coefficients,
// kept in one canonical form so that equal expressions compare equal (`T + P` == `P + T`).

export interface DimTerm {
  readonly coef: number; // a non-zero integer
  readonly vars: readonly string[]; // sorted; repeats mean powers; [] is the constant term
}

export interface Dim {
  readonly terms: readonly DimTerm[]; // canonical order, no zero coefficients, vars-lists unique
}

function termKey(t: DimTerm): string {
  return t.vars.join('*');
}

function compareTerms(a: DimTerm, b: DimTerm): number {
  // Higher degree first, then lexicographic; the constant (degree 0) last.
  if (a.vars.length !== b.vars.length) return b.vars.length - a.vars.length;
  const ka = termKey(a);
  const kb = termKey(b);
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

function normalize(terms: readonly DimTerm[]): Dim {
  const byKey = new Map<string, DimTerm>();
  for (const t of terms) {
    const vars = [...t.vars].sort();
    const k = vars.join('*');
    const prev = byKey.get(k);
    byKey.set(k, { coef: (prev?.coef ?? 0) + t.coef, vars });
  }
  const out = [...byKey.values()].filter((t) => t.coef !== 0).sort(compareTerms);
  return { terms: out };
}

export function dimConst(n: number): Dim {
  if (!Number.isInteger(n)) throw new RangeError(`dimConst needs an integer, got ${n}`);
  return normalize([{ coef: n, vars: [] }]);
}

export function dimVar(name: string): Dim {
  return { terms: [{ coef: 1, vars: [name] }] };
}

export function dimAdd(a: Dim, b: Dim): Dim {
  return normalize([...a.terms, ...b.terms]);
}

export function dimNeg(a: Dim): Dim {
  return normalize(a.terms.map((t) => ({ coef: -t.coef, vars: t.vars })));
}

export function dimSub(a: Dim, b: Dim): Dim {
  return dimAdd(a, dimNeg(b));
}

export function dimMul(a: Dim, b: Dim): Dim {
  const out: DimTerm[] = [];
  for (const x of a.terms) for (const y of b.terms) out.push({ coef: x.coef * y.coef, vars: [...x.vars, ...y.vars] });
  return normalize(out);
}

/** Exact division: defined only when every coefficient of `a` divides by the constant `b`,
 *  or when `a` is a multiple of the single-term `b`. Otherwise undefined (not an integer for all values). */
export function dimDiv(a: Dim, b: Dim): Dim | undefined {
  const bc = dimConstValue(b);
  if (bc !== undefined) {
    if (bc === 0) return undefined;
    if (a.terms.some((t) => t.coef % bc !== 0)) return undefined;
    return normalize(a.terms.map((t) => ({ coef: t.coef / bc, vars: t.vars })));
  }
  if (b.terms.length !== 1) return dimEquals(a, b) ? dimConst(1) : undefined;
  const [bt] = b.terms;
  if (bt === undefined) return undefined;
  const out: DimTerm[] = [];
  for (const t of a.terms) {
    if (t.coef % bt.coef !== 0) return undefined;
    const rest = [...t.vars];
    for (const v of bt.vars) {
      const i = rest.indexOf(v);
      if (i < 0) return undefined;
      rest.splice(i, 1);
    }
    out.push({ coef: t.coef / bt.coef, vars: rest });
  }
  return normalize(out);
}

export function dimConstValue(a: Dim): number | undefined {
  if (a.terms.length === 0) return 0;
  const [t] = a.terms;
  if (a.terms.length === 1 && t !== undefined && t.vars.length === 0) return t.coef;
  return undefined;
}

export function dimIsConst(a: Dim): boolean {
  return dimConstValue(a) !== undefined;
}

export function dimEquals(a: Dim, b: Dim): boolean {
  if (a.terms.length !== b.terms.length) return false;
  return a.terms.every((t, i) => {
    const u = b.terms[i];
    return u !== undefined && t.coef === u.coef && termKey(t) === termKey(u);
  });
}

export function dimVars(a: Dim): string[] {
  return [...new Set(a.terms.flatMap((t) => t.vars))].sort();
}

/** The value under concrete bindings; undefined when a variable is unbound. */
export function dimEval(a: Dim, env: ReadonlyMap<string, number>): number | undefined {
  let sum = 0;
  for (const t of a.terms) {
    let p = t.coef;
    for (const v of t.vars) {
      const x = env.get(v);
      if (x === undefined) return undefined;
      p *= x;
    }
    sum += p;
  }
  return sum;
}

/** Replaces variables by other dims (used when a generic function is called). */
export function dimSubstitute(a: Dim, sub: ReadonlyMap<string, Dim>): Dim {
  let acc = dimConst(0);
  for (const t of a.terms) {
    let p = dimConst(t.coef);
    for (const v of t.vars) p = dimMul(p, sub.get(v) ?? dimVar(v));
    acc = dimAdd(acc, p);
  }
  return acc;
}

/** Canonical text: `B*T + 3`, `P + T`, `2*T - 1`, `0`. `compact` drops spaces (used inside types). */
export function printDim(a: Dim, compact = false): string {
  if (a.terms.length === 0) return '0';
  const plus = compact ? '+' : ' + ';
  const minus = compact ? '-' : ' - ';
  let s = '';
  a.terms.forEach((t, i) => {
    const mag = Math.abs(t.coef);
    const body = t.vars.length === 0 ? String(mag) : (mag === 1 ? '' : `${mag}*`) + t.vars.join('*');
    if (i === 0) s += (t.coef < 0 ? '-' : '') + body;
    else s += (t.coef < 0 ? minus : plus) + body;
  });
  return s;
}

/** Parses the text printDim writes (and any +,-,* expression over identifiers and integers). */
export function parseDim(text: string): Dim | undefined {
  const tokens = text.match(/\s*([A-Za-z_][A-Za-z0-9_]*|\d+|[-+*()])\s*/g);
  if (tokens === null || tokens.join('').replace(/\s/g, '') !== text.replace(/\s/g, '')) return undefined;
  const toks = tokens.map((t) => t.trim());
  let pos = 0;
  const peek = (): string | undefined => toks[pos];
  const parseAtom = (): Dim | undefined => {
    const t = toks[pos++];
    if (t === undefined) return undefined;
    if (t === '(') {
      const e = parseSum();
      if (toks[pos++] !== ')') return undefined;
      return e;
    }
    if (t === '-') {
      const e = parseAtom();
      return e === undefined ? undefined : dimNeg(e);
    }
    if (/^\d+$/.test(t)) return dimConst(Number(t));
    if (/^[A-Za-z_]/.test(t)) return dimVar(t);
    return undefined;
  };
  const parseProd = (): Dim | undefined => {
    let e = parseAtom();
    while (e !== undefined && peek() === '*') {
      pos++;
      const r = parseAtom();
      e = r === undefined ? undefined : dimMul(e, r);
    }
    return e;
  };
  const parseSum = (): Dim | undefined => {
    let e = parseProd();
    while (e !== undefined && (peek() === '+' || peek() === '-')) {
      const op = toks[pos++];
      const r = parseProd();
      e = r === undefined ? undefined : op === '+' ? dimAdd(e, r) : dimSub(e, r);
    }
    return e;
  };
  const e = parseSum();
  return pos === toks.length ? e : undefined;
}
