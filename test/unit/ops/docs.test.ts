// docs/ops.md is generated from the catalog by `npm run gen-docs` (src/cli/gen-docs.ts); this
// fails when it is stale. The test only reads: a test that writes the file it checks cannot fail.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { renderOpsDoc } from '../../../src/ops/docs.js';
import { catalog } from '../../../src/ops/catalog.js';

const path = 'docs/ops.md';

describe('docs/ops.md', () => {
  it('lists every catalog op', () => {
    const text = renderOpsDoc();
    for (const name of catalog.keys()) expect(text).toContain(`| \`${name}\` |`);
  });
  it('is up to date (regenerate: npm run gen-docs)', () => {
    let have = '';
    try {
      have = readFileSync(path, 'utf8');
    } catch {
      have = '<missing>';
    }
    expect(have, 'docs/ops.md is stale: run npm run gen-docs').toBe(renderOpsDoc());
  });
});
