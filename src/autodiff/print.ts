// The backward graph as `tfc compile --grad --emit grad` prints it: the IR text (parseGraph reads
// it back: the annotations are `//` comments) with a header naming the gradients and the saved
// activations, `// saved` after each forward value the backward reads, and a `// backward` line
// where the backward nodes start.
import { formatSpan } from '../diag/span.js';
import { printGraph, type PrintOptions } from '../graph/print.js';
import { printType } from '../graph/types.js';
import type { GradResult } from './grad.js';

export function printGrad(r: GradResult, opts: PrintOptions = {}): string {
  const g = r.graph;
  const saved = new Set(r.saved);
  const lines = printGraph(g, opts).split('\n');
  const out: string[] = [];
  const loss = g.outputs[0]?.name ?? '?';
  out.push(`// backward of '${loss}': %0-%${r.forwardNodes - 1} forward, %${r.forwardNodes}-%${g.nodes.length - 1} backward`);
  out.push(`// gradients: ${r.gradients.map((x) => x.output).join(', ')}`);
  out.push(`// saved activations (forward values the backward reads; weights, inputs and constants not counted): ${r.saved.length}`);
  for (const id of r.saved) {
    const n = g.nodes[id];
    if (n !== undefined) out.push(`//   %${id} ${n.op} : ${printType(n.type)}  ${formatSpan(n.loc)}`);
  }
  // printGraph writes node %i on line i + 1 (after the `graph` line).
  lines.forEach((line, i) => {
    const id = i - 1;
    if (id === r.forwardNodes && id < g.nodes.length) out.push('  // backward');
    out.push(id >= 0 && saved.has(id) ? `${line}  // saved` : line);
  });
  return out.join('\n');
}
