// docs/ops.md is generated from the catalog; this fails when it is stale.
import { readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { renderOpsDoc } from '../../../src/ops/docs.js';
import { catalog } from '../../../src/ops/catalog.js';

const path = 'docs/ops.md';

describe('docs/ops.md', () => {
  it('lists every catalog op', () => {
    const text = renderOpsDoc();
    for (const name of catalog.keys()) expect(text).toContain(`| \`${name}\` |`);
  });
  it('is up to date (regenerate: TFC_UPDATE_DOCS=1 npx vitest run test/unit/ops/docs.test.ts)', () => {
    const want = renderOpsDoc();
    if (process.env['TFC_UPDATE_DOCS'] === '1') writeFileSync(path, want);
    let have = '';
    try {
      have = readFileSync(path, 'utf8');
    } catch {
      have = '<missing>';
    }
    expect(have, 'docs/ops.md is stale: run TFC_UPDATE_DOCS=1 npx vitest run test/unit/ops/docs.test.ts').toBe(want);
  });
});
