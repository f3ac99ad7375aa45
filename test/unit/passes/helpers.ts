// Shared by the pass tests: parse IR text (the test input), run one pass through the driver
// with verification on, and print the result for checkLines.
import { expect } from 'vitest';
import { DiagnosticSink } from '../../../src/diag/diagnostic.js';
import type { Graph } from '../../../src/graph/ir.js';
import { parseGraph } from '../../../src/graph/parse.js';
import { printGraph } from '../../../src/graph/print.js';
import { freezeGraph } from '../../../src/graph/rewrite.js';
import { verifyGraph } from '../../../src/graph/verify.js';
import { runPipeline } from '../../../src/passes/driver.js';
import { type GraphPass, type PassContext, createPassContext } from '../../../src/passes/pass.js';

export function ir(text: string): Graph {
  const sink = new DiagnosticSink();
  const g = parseGraph(text, 'test.ir', sink);
  if (g === undefined) throw new Error(`bad test IR:\n${sink.items.map((d) => `${d.loc.line}:${d.loc.col} ${d.message}`).join('\n')}`);
  expect(verifyGraph(g)).toEqual([]);
  return freezeGraph(g);
}

/** Runs `pass` on the IR text (verified before and after) and returns the printed result. */
export function runPass(pass: GraphPass, text: string, ctx: PassContext = createPassContext({ verify: true })): string {
  const out = runPipeline(ir(text), [pass], ctx);
  return printGraph(out, { locs: false });
}

/** Prints `g` and parses it back: no diagnostics, the same text, a graph that verifies. Returns the text. */
export function expectPrintParsesBack(g: Graph): string {
  const text = printGraph(g);
  const sink = new DiagnosticSink();
  const back = parseGraph(text, 'rt.ir', sink);
  expect(sink.items).toEqual([]);
  if (back === undefined) throw new Error('no graph');
  expect(printGraph(back)).toBe(text);
  expect(verifyGraph(back)).toEqual([]);
  return text;
}

/** Deterministic test data over `shape`'s elements: sin(seed * 7.1 + i * 1.37). */
export const sinFill = (shape: number[], seed: number): number[] => Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => Math.sin(seed * 7.1 + i * 1.37));
