// Diagnostic cases: every test/golden/diag/*.tfx states what it shows in its first comment and
// lists the diagnostics it must produce as `# expect: error[TFCnnn] at LINE:COL` lines (an
// optional `# set: name=value,...` line passes overrides; `# dtype: f16` retypes the checked
// graph as `--dtype f16` does). The runner checks exactly those codes
// at exactly those places, and that each renders with a caret under the source line.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkSource } from '../../src/check/check-source.js';
import { diagnosticCodes } from '../../src/diag/codes.js';
import { renderDiagnostic } from '../../src/diag/render.js';
import { retypeFloats } from '../../src/graph/retype-floats.js';

const dir = join(import.meta.dirname, 'diag');
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.tfx'))
  .sort();

function expectations(text: string): string[] {
  return [...text.matchAll(/^#\s*expect:\s*(error|warning)\[(TFC\d{3})\] at (\d+):(\d+)\s*$/gm)].map(
    (m) => `${m[1]}[${m[2]}] at ${m[3]}:${m[4]}`,
  );
}

function overrides(text: string): Map<string, number> {
  const out = new Map<string, number>();
  const m = /^#\s*set:\s*(.+)$/m.exec(text);
  for (const kv of m?.[1]?.split(',') ?? []) {
    const [k, v] = kv.split('=');
    if (k !== undefined && v !== undefined) out.set(k.trim(), Number(v));
  }
  return out;
}

describe('diagnostic cases', () => {
  it('has case files', () => {
    expect(files.length).toBeGreaterThan(0);
  });

  for (const f of files) {
    it(f, () => {
      const text = readFileSync(join(dir, f), 'utf8');
      expect(text.startsWith('#'), `${f} must begin with a comment saying what it shows`).toBe(true);
      const expected = expectations(text);
      expect(expected.length, `${f} has no '# expect:' line`).toBeGreaterThan(0);
      const checked = checkSource(text, f, overrides(text));
      const dtype = /^#\s*dtype:\s*(f16|bf16)\s*$/m.exec(text)?.[1] as 'f16' | 'bf16' | undefined;
      const r = dtype === undefined || checked.graph === undefined ? checked : { diagnostics: [...checked.diagnostics, ...retypeFloats(checked.graph, dtype).diagnostics] };
      const got = r.diagnostics.map((d) => `${d.severity}[${d.code}] at ${d.loc.line}:${d.loc.col}`);
      const sources = new Map([[f, text]]);
      const rendered = r.diagnostics.map((d) => renderDiagnostic(d, sources)).join('\n\n');
      expect([...got].sort(), rendered).toEqual([...expected].sort());
      for (const d of r.diagnostics) {
        const out = renderDiagnostic(d, sources);
        expect(out, 'rendered diagnostic has a caret line').toMatch(/^\s*\|\s*\^/m);
        expect(out.startsWith(`${f}:${d.loc.line}:${d.loc.col}: ${d.severity}[${d.code}]: `)).toBe(true);
      }
    });
  }

  // Codes no .tfx source can produce, with the reason. Everything else in 0xx-2xx has a case.
  const noCase: Readonly<Record<string, string>> = {};

  it('has a case for every lexing, parsing, name and shape code', () => {
    const codes = Object.keys(diagnosticCodes).filter((c) => /^TFC[012]\d\d$/.test(c));
    const covered = new Set(files.map((f) => f.slice(0, 6)));
    const missing = codes.filter((c) => !covered.has(c) && noCase[c] === undefined);
    expect(missing).toEqual([]);
  });
});
