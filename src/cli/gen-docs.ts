// `npm run gen-docs`: regenerates docs/diagnostics.md from src/diag/codes.ts and docs/ops.md from
// the op catalog (src/ops/docs.ts). test/unit/docs.test.ts fails when either is stale.
import { existsSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { diagnosticCodes } from '../diag/codes.js';
import { renderOpsDoc } from '../ops/docs.js';

const groups: readonly (readonly [string, string])[] = [
  ['0', 'Lexing and parsing'],
  ['1', 'Names'],
  ['2', 'Shapes and dtypes'],
  ['3', 'Data and command line'],
  ['4', 'Target limits'],
];

/** docs/diagnostics.md: one line per code, grouped by hundreds. */
export function renderDiagnosticsDoc(): string {
  const out = [
    '# tfc diagnostics',
    '',
    '<!-- Generated from src/diag/codes.ts by `npm run gen-docs`; do not edit. -->',
    '',
    'Every user mistake is reported as `FILE:LINE:COL: error[TFC###]: message` with the source line',
    'and a caret. Errors exit with status 1 (2 for usage errors: unknown flag, missing file, bad',
    '`--set` syntax). `tfc explain TFC###` prints the line below for one code.',
  ];
  for (const [digit, title] of groups) {
    const codes = Object.entries(diagnosticCodes).filter(([code]) => code.startsWith(`TFC${digit}`));
    if (codes.length === 0) continue;
    out.push('', `## ${digit}xx: ${title}`, '');
    for (const [code, text] of codes) out.push(`- **${code}**: ${text}`);
  }
  return out.join('\n') + '\n';
}

/** The repository root: the working directory when it holds src/diag/codes.ts (npm scripts run there). */
function repoRoot(): string {
  let dir = process.cwd();
  while (!existsSync(join(dir, 'src', 'diag', 'codes.ts'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('gen-docs: run it inside the tfc repository');
    dir = up;
  }
  return dir;
}

export function generatedDocs(): ReadonlyMap<string, string> {
  return new Map([
    ['docs/diagnostics.md', renderDiagnosticsDoc()],
    ['docs/ops.md', renderOpsDoc()],
  ]);
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const root = repoRoot();
  for (const [path, text] of generatedDocs()) {
    writeFileSync(join(root, path), text);
    process.stdout.write(`wrote ${path}\n`);
  }
}
