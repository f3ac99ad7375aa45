// The committed grammar/cst.d.ts must match what chevrotain generates from the grammar now.
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { cstDtsText } from '../../../grammar/parser.js';

const dtsPath = fileURLToPath(new URL('../../../grammar/cst.d.ts', import.meta.url));

describe('grammar/cst.d.ts', () => {
  it('is the current output of generateCstDts for the grammar', () => {
    const want = cstDtsText();
    if (process.env['TFC_WRITE_CST_DTS'] === '1') writeFileSync(dtsPath, want);
    const have = readFileSync(dtsPath, 'utf8');
    expect(have, 'stale: run TFC_WRITE_CST_DTS=1 npx vitest run test/unit/grammar/cst-dts.test.ts').toBe(want);
  });
});
