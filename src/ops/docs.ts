// Renders docs/ops.md from the op catalog, so the op reference cannot drift from the code.
// Regenerate: npm run gen-docs (src/cli/gen-docs.ts writes docs/ops.md and docs/diagnostics.md)
import type { OpFamily } from './define.js';
import { catalog } from './catalog.js';

const familyOrder: readonly OpFamily[] = ['source', 'elementwise', 'reduce', 'matmul', 'movement', 'norm', 'fused'];

function cell(text: string): string {
  return text.replace(/\|/g, '\\|');
}

export function renderOpsDoc(): string {
  const lines: string[] = [
    '# Graph IR ops',
    '',
    '<!-- Generated from src/ops/catalog.ts by src/ops/docs.ts; do not edit. Regenerate with',
    '     npm run gen-docs -->',
    '',
    'Every op is declared once in `src/ops/` with its shape and dtype rule, float64 interpreter,',
    'FLOP formula and this line. The interpreter computes in float64; f16 and bf16 values are held',
    'at full float64 precision (no rounding): it is the exact reference.',
    '',
  ];
  const ops = [...catalog.values()];
  for (const family of familyOrder) {
    const inFamily = ops.filter((op) => op.family === family);
    if (inFamily.length === 0) continue;
    lines.push(`## ${family}`, '', '| op | operands | attrs | lowering | meaning |', '|---|---|---|---|---|');
    for (const op of inFamily) {
      const attrs = [
        ...Object.entries(op.attrs).map(([k, kind]) => `\`${k}: ${kind}\``),
        ...Object.entries(op.optionalAttrs ?? {}).map(([k, kind]) => `\`${k}?: ${kind}\` (optional)`),
      ].join(', ');
      lines.push(`| \`${op.name}\` | ${op.arity} | ${attrs === '' ? '-' : attrs} | ${op.lowering} | ${cell(op.doc)} |`);
    }
    lines.push('');
  }
  return lines.join('\n');
}
