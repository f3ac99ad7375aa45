// Collects the diagnostics of one CLI run with the source texts they point into, and renders
// them to stderr as `file:line:col: error[TFC###]: message` with caret lines.
import { DiagnosticSink, type Diagnostic } from '../diag/diagnostic.js';
import { renderDiagnostics } from '../diag/render.js';

export class Reporter {
  readonly sink = new DiagnosticSink();
  readonly sources = new Map<string, string>();
  private printed = 0;

  constructor(private readonly write: (text: string) => void) {}

  addSource(file: string, text: string): void {
    this.sources.set(file, text);
  }

  report(d: Diagnostic): void {
    this.sink.report(d);
  }

  reportAll(ds: readonly Diagnostic[]): void {
    for (const d of ds) this.sink.report(d);
  }

  get hasErrors(): boolean {
    return this.sink.hasErrors;
  }

  /** Prints the diagnostics not printed yet (errors first in source order is the stages' job). */
  flush(): void {
    const fresh = this.sink.items.slice(this.printed);
    this.printed = this.sink.items.length;
    if (fresh.length === 0) return;
    this.write(renderDiagnostics(fresh, this.sources) + '\n');
  }

  /** A closing count line, as compilers print: `2 errors, 1 warning`. */
  summary(): string | undefined {
    const errors = this.sink.items.filter((d) => d.severity === 'error').length;
    const warnings = this.sink.items.filter((d) => d.severity === 'warning').length;
    if (errors === 0) return undefined;
    const plural = (n: number, w: string): string => `${n} ${w}${n === 1 ? '' : 's'}`;
    const capped = this.sink.items.length >= this.sink.limit ? ' (stopped at the limit)' : '';
    return `${plural(errors, 'error')}${warnings > 0 ? `, ${plural(warnings, 'warning')}` : ''}${capped}`;
  }
}
