// Parser golden tests: each <case>.tfx here is parsed and its printAst tree (with locations)
// compared with <case>.ast.txt; `npx vitest run test/golden/ast -u` rewrites them for review.
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseTfx } from '../../../grammar/parse.js';
import { printAst } from '../../../grammar/print-ast.js';
import { DiagnosticSink } from '../../../src/diag/diagnostic.js';

const dir = fileURLToPath(new URL('.', import.meta.url));
const cases = readdirSync(dir).filter((f) => f.endsWith('.tfx')).sort();

describe('parser goldens (printAst)', () => {
  it('has cases', () => {
    expect(cases.length).toBeGreaterThanOrEqual(7);
  });
  for (const file of cases) {
    it(`parses ${file} to the expected tree`, async () => {
      const text = readFileSync(`${dir}/${file}`, 'utf8');
      expect(text.startsWith('#'), 'each case begins with a comment saying what it shows').toBe(true);
      const sink = new DiagnosticSink();
      const module = parseTfx(text, file, sink);
      expect(sink.items).toEqual([]);
      await expect(printAst(module, { locs: true })).toMatchFileSnapshot(`${dir}/${file.replace(/\.tfx$/, '.ast.txt')}`);
    });
  }
});
