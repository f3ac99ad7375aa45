import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { diagnosticCodes } from '../../src/diag/codes.js';
import { renderDiagnosticsDoc } from '../../src/cli/gen-docs.js';

describe('generated docs', () => {
  it('docs/diagnostics.md is up to date with src/diag/codes.ts (regenerate: npm run gen-docs)', () => {
    const onDisk = readFileSync(new URL('../../docs/diagnostics.md', import.meta.url), 'utf8');
    expect(onDisk).toBe(renderDiagnosticsDoc());
  });

  it('lists every code on one line', () => {
    const doc = renderDiagnosticsDoc();
    for (const [code, text] of Object.entries(diagnosticCodes)) {
      expect(doc.split('\n').filter((l) => l.includes(`**${code}**`))).toEqual([`- **${code}**: ${text}`]);
    }
  });
});
