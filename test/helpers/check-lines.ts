// A small FileCheck: states a property of printed output line by line instead of snapshotting
// all of it. Directives (one per line, an optional `//` or `#` prefix is ignored):
//   CHECK: pat       the next line at or after the current position that contains pat
//   CHECK-NEXT: pat  the line right after the previous match contains pat
//   CHECK-NOT: pat   no line between the previous match and the next match (or the end) has pat;
//                    alone (no CHECK at all) it covers the whole output; one that can cover no
//                    line (before a CHECK-NEXT, after the last line) is an error in the checks
// In a pattern, runs of spaces match any run of spaces and `{{re}}` is a regular expression.
// Lines of `checks` without a directive are ignored, so IR text with inline CHECK comments works.

interface Directive {
  readonly kind: 'CHECK' | 'CHECK-NEXT' | 'CHECK-NOT';
  readonly pattern: string;
  readonly re: RegExp;
  readonly line: number; // in the checks text, for messages
}

function compile(pattern: string): RegExp {
  let src = '';
  let rest = pattern;
  while (rest.length > 0) {
    const open = rest.indexOf('{{');
    const lit = open < 0 ? rest : rest.slice(0, open);
    src += lit
      .split(/[ \t]+/)
      .map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
      .join('[ \\t]+');
    if (open < 0) break;
    const close = rest.indexOf('}}', open + 2);
    if (close < 0) throw new Error(`checkLines: unterminated {{ in pattern '${pattern}'`);
    src += `(?:${rest.slice(open + 2, close)})`;
    rest = rest.slice(close + 2);
  }
  return new RegExp(src);
}

export function parseDirectives(checks: string): Directive[] {
  const out: Directive[] = [];
  checks.split('\n').forEach((raw, i) => {
    const m = /^\s*(?:\/\/|#)?\s*(CHECK(?:-NEXT|-NOT)?):[ \t]?(.*?)\s*$/.exec(raw);
    if (m === null) return;
    const kind = m[1] as Directive['kind'];
    const pattern = m[2] ?? '';
    out.push({ kind, pattern, re: compile(pattern), line: i + 1 });
  });
  if (out.length === 0) throw new Error('checkLines: no CHECK directives given');
  if (out[0]?.kind === 'CHECK-NEXT') throw new Error('checkLines: CHECK-NEXT cannot be the first directive');
  return out;
}

/** Throws an Error describing the first directive that fails; returns normally otherwise. */
export function checkLines(output: string, checks: string): void {
  const lines = output.split('\n');
  const directives = parseDirectives(checks);
  let pos = 0; // first line not yet consumed
  let pendingNot: Directive[] = [];
  const show = (from: number): string =>
    lines
      .slice(Math.max(0, from - 2), from + 6)
      .map((l, k) => `${String(Math.max(0, from - 2) + k + 1).padStart(4)} | ${l}`)
      .join('\n');
  const failNot = (d: Directive, at: number): never => {
    throw new Error(`CHECK-NOT (checks line ${d.line}) '${d.pattern}' matched output line ${at + 1}: ${lines[at]}\n${show(at)}`);
  };
  const checkNots = (from: number, to: number): void => {
    // A CHECK-NOT right before a CHECK-NEXT, or after the last line, scans nothing and can never fail.
    const [first] = pendingNot;
    if (first !== undefined && from >= to) throw new Error(`CHECK-NOT (checks line ${first.line}) '${first.pattern}' scans no output line: move it before a CHECK, or check the whole output with CHECK-NOT lines alone`);
    for (const d of pendingNot) for (let i = from; i < to; i++) if (d.re.test(lines[i] ?? '')) failNot(d, i);
    pendingNot = [];
  };
  for (const d of directives) {
    if (d.kind === 'CHECK-NOT') {
      pendingNot.push(d);
      continue;
    }
    if (d.kind === 'CHECK-NEXT') {
      const line = lines[pos];
      if (line === undefined || !d.re.test(line)) {
        throw new Error(`CHECK-NEXT (checks line ${d.line}) '${d.pattern}' does not match output line ${pos + 1}: ${line ?? '<end>'}\n${show(pos)}`);
      }
      checkNots(pos, pos);
      pos += 1;
      continue;
    }
    let found = -1;
    for (let i = pos; i < lines.length; i++) {
      if (d.re.test(lines[i] ?? '')) {
        found = i;
        break;
      }
    }
    if (found < 0) throw new Error(`CHECK (checks line ${d.line}) '${d.pattern}' not found from output line ${pos + 1} on:\n${show(pos)}`);
    checkNots(pos, found);
    pos = found + 1;
  }
  checkNots(pos, lines.length);
}
