// Renders diagnostics as `file:line:col: error[TFC###]: message` with the source line and a caret.
import type { Diagnostic } from './diagnostic.js';
import { formatSpan } from './span.js';

/** sources: file name -> text, used to show the offending line. */
export function renderDiagnostic(d: Diagnostic, sources: ReadonlyMap<string, string>): string {
  const out: string[] = [];
  const where = d.loc.line > 0 ? `${formatSpan(d.loc)}: ` : d.loc.file !== '<unknown>' ? `${d.loc.file}: ` : '';
  out.push(`${where}${d.severity}[${d.code}]: ${d.message}`);
  const text = sources.get(d.loc.file);
  if (text !== undefined && d.loc.line > 0) {
    const line = text.split(/\r?\n/)[d.loc.line - 1];
    if (line !== undefined) {
      const num = String(d.loc.line);
      const pad = ' '.repeat(num.length);
      const shown = line.replace(/\t/g, ' ');
      const endCol = d.loc.endLine === d.loc.line ? Math.max(d.loc.endCol, d.loc.col) : shown.length;
      const width = Math.max(1, Math.min(endCol, shown.length + 1) - d.loc.col + 1);
      out.push(`${pad} |`);
      out.push(`${num} | ${shown}`);
      out.push(`${pad} | ${' '.repeat(Math.max(0, d.loc.col - 1))}^${'~'.repeat(Math.max(0, width - 1))}`);
    }
  }
  for (const n of d.notes) {
    out.push(n.loc !== undefined && n.loc.line > 0 ? `note: ${n.message} at ${formatSpan(n.loc)}` : `note: ${n.message}`);
  }
  return out.join('\n');
}

export function renderDiagnostics(ds: readonly Diagnostic[], sources: ReadonlyMap<string, string>): string {
  return ds.map((d) => renderDiagnostic(d, sources)).join('\n\n');
}
